"""Orchestration benchmark: what Temporal costs per workflow, by the workflow's shape.

Runs workflows of no-op steps on the local stack's Temporal and reads the server's
CPU (and this process's, which hosts the workers) per workflow: an empty workflow
(the baseline, in the same run), one activity dispatched eagerly, one through the
task queue's matching, one local activity, three parallel activities on another
queue, a patch marker, and the shape of one small upload (a local step, the
inspection through matching, the local move, three media steps on the worker's own
queue, two local steps), and that shape again with the timeouts an upload's steps
carry (heartbeat and schedule-to-start timeouts, each a timer on the server), and the
shape of a small upload whose workflow's own worker holds the copy (the media steps
local activities, after one asking whether it holds it). The steps
do nothing, so what is measured is the orchestration alone: the floor under `make
bench-upload`'s Temporal figure.

Eager dispatch needs a free activity slot beside the ones the pollers hold, so the
eager worker has 8 slots and the other workers as many as Ferry's (one per core).
Prints a table and writes bench/results/orchestration.json. Run:
`make bench-orchestration`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from ferry.config import get_settings
from ferry.devstack import Stack

RESULTS = Path(__file__).parent / "results"
console = Console()
STEP = timedelta(seconds=30)

# Each shape is a string of steps: A an activity on the workflow's queue (eager when a
# slot is free), M one on another queue (through matching, as an upload's inspection
# goes when the worker's slots are busy), L a local activity, 3 three parallel
# activities on another queue (the media steps), P a patch marker, R an M raced by a
# timer that it beats (as the analysis races its deadline); H an M and T a 3 with the
# timeouts an upload's steps carry (a heartbeat timeout; the media steps' schedule-to-
# start too, each a timer the server keeps).
SHAPES = (
    ("empty workflow (the baseline)", ""),
    ("one activity, eager", "A"),
    ("one activity, through matching", "M"),
    ("one activity through matching, raced by a timer", "R"),
    ("one local activity", "L"),
    ("three parallel activities, another queue", "3"),
    ("a patch marker", "P"),
    ("a small upload's shape", "PLML3LL"),
    ("one activity through matching, with a heartbeat timeout", "H"),
    ("three parallel activities, another queue, with their timeouts", "T"),
    ("a small upload's shape, with its timeouts", "PLHLTLL"),
    ("a small upload's shape, its media steps local (its worker holds the copy)", "PLHLLLLLL"),
)
HEARTBEAT = timedelta(minutes=1)


@activity.defn
async def step(name: str) -> str:
    return name


@workflow.defn(sandboxed=False)
class Shape:
    @workflow.run
    async def run(self, shape: str, queues: list[str]) -> None:
        eager_queue, matching_queue, other_queue = queues
        for kind in shape:
            if kind == "P":
                workflow.patched("orchestration-benchmark")
            elif kind == "A":
                await workflow.execute_activity(step, "a", start_to_close_timeout=STEP)
            elif kind == "M":
                await workflow.execute_activity(
                    step, "m", task_queue=matching_queue, start_to_close_timeout=STEP
                )
            elif kind == "R":
                running = workflow.start_activity(
                    step, "r", task_queue=matching_queue, start_to_close_timeout=STEP
                )
                await workflow.wait_condition(running.done, timeout=STEP.total_seconds())
            elif kind == "H":
                await workflow.execute_activity(
                    step,
                    "h",
                    task_queue=matching_queue,
                    start_to_close_timeout=STEP,
                    heartbeat_timeout=HEARTBEAT,
                )
            elif kind == "T":
                await asyncio.gather(
                    *(
                        workflow.execute_activity(
                            step,
                            name,
                            task_queue=other_queue,
                            start_to_close_timeout=STEP,
                            schedule_to_start_timeout=HEARTBEAT,
                            heartbeat_timeout=HEARTBEAT,
                        )
                        for name in ("thumbnails", "metadata", "analysis")
                    )
                )
            elif kind == "L":
                await workflow.execute_local_activity(step, "l", start_to_close_timeout=STEP)
            elif kind == "3":
                await asyncio.gather(
                    *(
                        workflow.execute_activity(
                            step, name, task_queue=other_queue, start_to_close_timeout=STEP
                        )
                        for name in ("thumbnails", "metadata", "analysis")
                    )
                )
        assert eager_queue == workflow.info().task_queue


def temporal_process() -> psutil.Process:
    [pid] = [s.pid for s in Stack().status() if s.name == "temporal" and s.pid is not None]
    return psutil.Process(pid)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(
    client: Client, queues: list[str], shape: str, count: int, concurrency: int
) -> dict[str, float]:
    server, here = temporal_process(), psutil.Process()
    limit = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with limit:
            await client.execute_workflow(
                Shape.run, args=[shape, queues], id=f"orch-{uuid.uuid4()}", task_queue=queues[0]
            )

    await one()  # warm: the queues exist, the workers poll
    server_before, here_before = cpu_seconds(server), cpu_seconds(here)
    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - began
    return {
        "temporal_cpu_ms": 1000 * (cpu_seconds(server) - server_before) / count,
        "workers_cpu_ms": 1000 * (cpu_seconds(here) - here_before) / count,
        "workflows_per_s": count / elapsed,
    }


async def main(count: int, concurrency: int) -> dict[str, dict[str, float]]:
    settings = get_settings()
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    run = uuid.uuid4().hex[:8]
    queues = [f"orch-{run}", f"orch-{run}-matching", f"orch-{run}-other"]
    slots = os.cpu_count() or 1
    workers = [
        Worker(client, task_queue=queues[0], workflows=[Shape], activities=[step],
               max_concurrent_activities=8),
        Worker(client, task_queue=queues[1], activities=[step], max_concurrent_activities=slots),
        Worker(client, task_queue=queues[2], activities=[step], max_concurrent_activities=slots),
    ]  # fmt: skip
    results = {}
    async with contextlib.AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        for name, shape in SHAPES:
            console.print(f"{name}…")
            results[name] = await measure(client, queues, shape, count, concurrency)
    return results


def report(results: dict[str, dict[str, float]]) -> None:
    base = results["empty workflow (the baseline)"]["temporal_cpu_ms"]
    table = Table(title="Temporal's CPU per workflow, by shape")
    for column in ("shape", "Temporal ms", "beyond the empty workflow", "workers ms", "per s"):
        table.add_column(column)
    for name, figures in results.items():
        table.add_row(
            name,
            f"{figures['temporal_cpu_ms']:.1f}",
            f"{figures['temporal_cpu_ms'] - base:+.1f}",
            f"{figures['workers_cpu_ms']:.1f}",
            f"{figures['workflows_per_s']:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150, help="workflows per shape")
    parser.add_argument("--concurrency", type=int, default=8, help="workflows at once")
    args = parser.parse_args()
    outcome = asyncio.run(main(args.count, args.concurrency))
    report(outcome)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "orchestration.json").write_text(json.dumps(outcome, indent=2))
    console.print(f"written to {RESULTS / 'orchestration.json'}")
