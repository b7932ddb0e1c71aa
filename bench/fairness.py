"""Fairness benchmark: one tenant's burst of uploads, then one upload of a quiet tenant.

Measures the quiet tenant's upload latency on an idle worker (the median of
`--samples` uploads, one after another), then behind a burst of another tenant's
uploads twice in one run: with fairness off (the runs carry no
fairness key: Temporal dispatches their tasks first come, first served) and with
fairness on (each run's fairness key is its tenant, as the bridge starts them, and
its activities carry its plan's weight; the median of `--samples` quiet uploads,
one after another, while the burst is still queued). The goal: with fairness on,
the quiet upload completes within 2x its idle latency. Each quiet upload's time
is also taken apart by its history: its workflow and activity tasks' waits in
the queue (scheduled to started) and their runs (started to completed).

Fairness on is measured twice: as it is, and with a rate limit per fairness key on
the files queue (`--tenant-rate` activity tasks a second per tenant, times its plan's
weight; what `FERRY_TENANT_TASKS_PER_SECOND` sets), so that the burst never takes
every slot. For that measurement the burst tenant's own rate is reported too: what
the limit costs it.

The worker runs as its own process (`ferry worker`) on a task queue of the run's
own; the stack's Temporal must run with task queue fairness enabled, as the local
stack's does (`matching.enableFairness`). After each burst's quiet uploads, the
burst is waited out (its own rate: uploads over the time from its start to its last
result), so each measurement starts from an idle queue. The quiet tenant's uploads are all photos
(the mix's costliest kind). Prints a table and writes bench/results/fairness.json. Run:
`make bench-fairness`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority
from upload import WorkerProcess, one, small_mix, stage

from ferry.config import Settings, get_settings
from ferry.consumers.routes import tenant_priority
from ferry.contracts.enums import TenantPlan
from ferry.contracts.storage import StorageRef
from ferry.contracts.workflows import FileUploadInput, file_upload_id
from ferry.db import create_engine, create_sessionmaker
from ferry.demo import ensure_tenant
from ferry.processes import connect
from ferry.storage import LocalStorage
from ferry.temporal.queues import limit_each_key
from ferry.workflows.file_upload import FileUploadWorkflow

RESULTS = Path(__file__).parent / "results"
console = Console()


class Uploads:
    """Stages uploads of one tenant and starts their runs, fair or not."""

    def __init__(self, client: Client, settings: Settings, queue: str, tenant: str) -> None:
        self.client, self.settings, self.queue, self.tenant = client, settings, queue, tenant
        self.storage = LocalStorage(settings.local_storage_root)
        # Files staged so far, from a number of this run's own: each has bytes no run had
        # before (clamd keeps the verdicts of the bytes it has seen). A multiple of 3: the
        # quiet tenant's single uploads are all photos (`small_mix` goes photo, chart, PDF).
        self.made = 3 * secrets.randbelow(10**9)

    async def staged(self, count: int) -> list[FileUploadInput]:
        uploads = []
        # A whole number of photo-chart-PDF rounds, so the next call starts on a photo.
        mix, self.made = small_mix(count, first=self.made), self.made + 3 * -(-count // 3)
        for name, content_type, data in mix:
            file_id, key_size = await stage(
                self.storage, self.settings, self.tenant, name, one(data)
            )
            key, size = key_size.split("|")
            uploads.append(
                FileUploadInput(
                    event_id=str(uuid.uuid4()),
                    tenant_id=self.tenant,
                    file_id=file_id,
                    filename=name,
                    declared_content_type=content_type,
                    size_bytes=int(size),
                    storage=StorageRef("local", self.settings.ingest_bucket, key),
                    uploaded_by="bench",
                )
            )
        return uploads

    async def start(self, upload: FileUploadInput, fair: bool) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(
            FileUploadWorkflow.run,
            upload,
            id=file_upload_id(self.tenant, upload.file_id),
            task_queue=self.queue,
            priority=tenant_priority(self.tenant) if fair else Priority.default,
        )


@dataclass
class Sample:
    """One quiet upload: its latency, and where its run's time went by its history."""

    seconds: float
    waiting_for_workflow_tasks: float = 0.0
    in_workflow_tasks: float = 0.0
    waiting_for_activities: float = 0.0
    in_activities: float = 0.0

    def row(self) -> str:
        return (
            f"{self.seconds:.2f} s; workflow tasks {self.waiting_for_workflow_tasks:.2f} queued,"
            f" {self.in_workflow_tasks:.2f} run; activities {self.waiting_for_activities:.2f}"
            f" queued, {self.in_activities:.2f} run"
        )


async def accounted(seconds: float, handle: WorkflowHandle[Any, Any]) -> Sample:
    """The run's time by its history: each task's wait from scheduled to started, and
    its run from started to completed (the media steps overlap, so the activities' sums
    can exceed the whole)."""
    sample = Sample(seconds)
    scheduled: dict[int, float] = {}
    started: dict[int, float] = {}
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime().timestamp()
        kind = event.event_type
        if kind in (EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED):  # fmt: skip
            scheduled[event.event_id] = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started[event.event_id] = at
            was = event.workflow_task_started_event_attributes.scheduled_event_id
            sample.waiting_for_workflow_tasks += at - scheduled[was]
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            was = event.workflow_task_completed_event_attributes.started_event_id
            sample.in_workflow_tasks += at - started[was]
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.event_id] = at
            was = event.activity_task_started_event_attributes.scheduled_event_id
            sample.waiting_for_activities += at - scheduled[was]
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            was = event.activity_task_completed_event_attributes.started_event_id
            sample.in_activities += at - started[was]
    return sample


async def latency(uploads: Uploads, fair: bool) -> Sample:
    """One upload, from its start to its result."""
    [upload] = await uploads.staged(1)
    began = time.perf_counter()
    handle = await uploads.start(upload, fair)
    result = await handle.result()
    seconds = time.perf_counter() - began
    assert result.status == "processed", result
    return await accounted(seconds, handle)


def median(samples: list[Sample]) -> Sample:
    return sorted(samples, key=lambda sample: sample.seconds)[len(samples) // 2]


@dataclass
class Burst:
    """The quiet uploads measured behind a burst, and the whole burst's own rate."""

    samples: list[Sample]
    burst_per_second: float


async def behind_a_burst(
    burst: Uploads, quiet: Uploads, size: int, fair: bool, samples: int
) -> Burst:
    """The quiet tenant's uploads, one after another, while `size` uploads of the burst
    wait; then the burst is waited out, for its own rate."""
    handles = [await burst.start(upload, fair) for upload in await burst.staged(size)]
    began = time.perf_counter()
    await asyncio.sleep(2)  # the burst's tasks are queued and the worker is busy
    quiet_samples = [await latency(quiet, fair) for _ in range(samples)]
    # The whole burst's own rate: what fairness (and a limit) cost the tenant that bursts.
    for handle in handles:
        await handle.result()
    rate = size / (time.perf_counter() - began)
    await asyncio.sleep(3)  # the last copies are deleted and the worker is idle again
    return Burst(quiet_samples, rate)


async def main(size: int, samples: int, tenant_rate: float) -> dict[str, Any]:
    settings = get_settings()
    client = await connect(settings)
    await LocalStorage(settings.local_storage_root).create_bucket(settings.ingest_bucket)
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    names = {}
    for role in ("burst", "quiet"):
        names[role] = await ensure_tenant(
            create_sessionmaker(engine), f"bench-{role}-{uuid.uuid4().hex[:8]}", TenantPlan.FREE
        )
    await engine.dispose()
    queue = f"bench-fair-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(queue)
    burst = Uploads(client, settings, queue, names["burst"])
    quiet = Uploads(client, settings, queue, names["quiet"])
    try:
        await asyncio.sleep(3)  # the worker has started and polls
        await latency(quiet, fair=True)  # warm: the models load, the caches fill
        measured = {"idle": [await latency(quiet, fair=True) for _ in range(samples)]}
        rates = {}
        # Without fairness every quiet upload waits out the whole burst, and the second
        # would find it drained: one is measured.
        phases = (
            (True, "fairness_on", samples, None),
            (True, "fairness_limited", samples, tenant_rate),
            (False, "fairness_off", 1, None),
        )
        for fair, name, count, limit in phases:
            console.print(f"{name}: {size} uploads of one tenant, then {count} of another…")
            await limit_each_key(client, queue, limit, "fairness benchmark")
            taken = await behind_a_burst(burst, quiet, size, fair, count)
            measured[name], rates[name] = taken.samples, taken.burst_per_second
    finally:
        await limit_each_key(client, queue, None, "fairness benchmark: done")
        worker.stop()
    for name, taken in measured.items():
        console.print(f"{name}:")
        for sample in taken:
            console.print(f"  {sample.row()}")
    idle = median(measured["idle"]).seconds
    results: dict[str, Any] = {
        "burst_uploads": size,
        "samples": samples,
        "activity_slots": get_settings().worker_activity_slots,
        "tenant_rate": tenant_rate,
        "idle_seconds": idle,
    }
    for name in ("fairness_on", "fairness_limited", "fairness_off"):
        results[f"{name}_seconds"] = median(measured[name]).seconds
        results[f"{name}_ratio"] = results[f"{name}_seconds"] / idle
        results[f"{name}_burst_per_second"] = rates[name]
    results["samples_taken"] = {
        name: [dataclasses.asdict(sample) for sample in taken] for name, taken in measured.items()
    }
    return results


def report(results: dict[str, Any]) -> None:
    table = Table("measure", "value", "goal", title="Ferry fairness benchmark")
    table.add_row(
        f"quiet tenant's upload, idle worker (median of {results['samples']})",
        f"{results['idle_seconds']:.2f} s",
        "",
    )
    table.add_row(
        f"    behind {results['burst_uploads']} uploads, fairness off",
        f"{results['fairness_off_seconds']:.2f} s ({results['fairness_off_ratio']:.1f}x idle)",
        "",
    )
    table.add_row(
        f"    behind {results['burst_uploads']} uploads, fairness on",
        f"{results['fairness_on_seconds']:.2f} s ({results['fairness_on_ratio']:.1f}x idle)",
        "≤ 2x idle",
    )
    table.add_row(
        f"    fairness on, each tenant at most {results['tenant_rate']:g} tasks/s",
        f"{results['fairness_limited_seconds']:.2f} s"
        f" ({results['fairness_limited_ratio']:.1f}x idle)",
        "≤ 2x idle",
    )
    for name, what in (
        ("fairness_off", "fairness off"),
        ("fairness_on", "fairness on"),
        ("fairness_limited", "limited"),
    ):
        table.add_row(
            f"    the whole burst's own uploads/s, {what}",
            f"{results[f'{name}_burst_per_second']:.1f} /s",
            "",
        )
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=200, help="uploads in the burst")
    parser.add_argument("--samples", type=int, default=5, help="quiet uploads per measure")
    parser.add_argument(
        "--tenant-rate",
        type=float,
        default=1.5 * (os.cpu_count() or 1),
        help="activity tasks a second per tenant, for the limited measure (1.5 per core:"
        " about half of what this machine's files queue dispatches at full load, one"
        " task per small upload)",
    )
    args = parser.parse_args()
    outcome = asyncio.run(main(args.burst, args.samples, args.tenant_rate))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fairness.json").write_text(json.dumps(outcome, indent=2))
    report(outcome)
    console.print(f"written to {RESULTS / 'fairness.json'}")
