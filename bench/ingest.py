"""Ingest benchmark: what the Kafka → Temporal bridge costs on top of Temporal itself.

On the local stack (`ferry stack up`), it measures

  (a) the raw rate of `client.start_workflow` against the Temporal server;
  (b) the rate of `file.uploaded` records turned into started workflows through
      Kafka and the bridge (`ferry consume` in its own process), and b/a; (a) and
      (b) in alternating rounds of 3000 workflows (four of each by default), averaged;
  (c) p50 and p99 from a record's timestamp to its workflow's start, with the
      records published at half the rate measured in (b);
  (d) the bridge process's CPU time and peak memory, and the raw client's CPU time beside it.

The workflows go to task queues without a worker (only the start is
measured), every phase to a fresh one, and are terminated afterwards. Prints a
table and writes JSON to bench/results/ingest.json, with every latency of (c)
by the time its record was published. Run: `make bench-ingest`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvloop
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from ferry.config import get_settings
from ferry.consumers.offsets import start_group_at_end
from ferry.consumers.routes import ROUTES
from ferry.contracts.topics import INBOUND_TOPICS
from ferry.db import create_engine, create_sessionmaker
from ferry.demo import ensure_tenant
from ferry.processes import connect
from ferry.producers import EventPublisher

RESULTS = Path(__file__).parent / "results"
console = Console()


def upload_event(tenant: str) -> dict[str, Any]:
    file_id = str(uuid.uuid4())
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "file.uploaded",
        "occurred_at": datetime.now(UTC),
        "tenant_id": tenant,
        "correlation_id": None,
        "source": "bench",
        "file_id": file_id,
        "filename": "bench.bin",
        "declared_content_type": "application/octet-stream",
        "size_bytes": 1,
        "storage": {
            "provider": "local",
            "bucket": "ferry-ingest",
            "key": f"tenants/{tenant}/uploads/{file_id}/bench.bin",
        },
        "sha256": None,
        "uploaded_by": "bench",
    }


async def raw_start_rate(client: Client, count: int, concurrency: int) -> tuple[float, float]:
    """(a) Workflows started per second by the client alone, `concurrency` at a time,
    with the same requests the bridge makes (policies, search attributes, summary);
    and the client's CPU seconds per 1000 starts."""
    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    QUEUES.append(queue)
    route = ROUTES["file.uploaded"]
    events = [upload_event(f"bench-raw-{i % concurrency}") for i in range(count)]
    gate = asyncio.Semaphore(concurrency)

    async def start(event: dict[str, Any]) -> None:
        async with gate:
            await route.start(client, event, queue)

    cpu_before = time.process_time()
    await asyncio.gather(*(start(e) for e in events))
    cpu = (time.process_time() - cpu_before) / count * 1000
    query = f'TaskQueue = "{queue}" AND TenantId STARTS_WITH "bench-raw-"'
    return await server_rate(client, query, count), cpu


async def server_rate(client: Client, query: str, count: int) -> float:
    """Starts per second as Temporal recorded them: from the first start to the last.

    Both rates are measured the same way, on the server's clock, so neither
    includes its client's start-up nor the benchmark's polling.
    """
    async with asyncio.timeout(60):  # visibility follows the starts closely, not at once
        while True:
            times = [wf.start_time.timestamp() async for wf in client.list_workflows(query)]
            if len(times) >= count:
                break
            await asyncio.sleep(0.5)
    return (len(times) - 1) / (max(times) - min(times))


class BridgeProcess:
    """`ferry consume` in its own process, measured from outside."""

    def __init__(self, queue: str, group: str, port: int) -> None:
        env = {
            **os.environ,
            "FERRY_CONSUMER_GROUP": group,
            "FERRY_FILES_TASK_QUEUE": queue,
            "FERRY_BRIDGE_METRICS_PORT": str(port),
        }

        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferry.cli", "consume"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ps = psutil.Process(self.proc.pid)
        # One client for every scrape: making one costs more CPU than the scrape.
        self.http = httpx.AsyncClient()
        # `ferry_bridge_in_flight` at each scrape: whether the bridge kept Temporal busy.
        self.in_flight: list[float] = []

    async def started(self) -> int:
        try:
            text = (await self.http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        except httpx.HTTPError:
            return 0
        total = 0.0
        for line in text.splitlines():
            if line.startswith("ferry_bridge_records_total{") and 'outcome="started"' in line:
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith("ferry_bridge_in_flight "):
                self.in_flight.append(float(line.rsplit(" ", 1)[1]))
        return int(total)

    async def wait_started(self, count: int, timeout: float = 600) -> None:
        async with asyncio.timeout(timeout):
            while await self.started() < count:
                # A scrape costs the bridge CPU: once a second, as a Prometheus
                # server scrapes at most (usually every 15 s or more).
                await asyncio.sleep(1)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    async def stop(self) -> None:
        await self.http.aclose()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


# Many tenants, as in production: records of one tenant are started in order,
# so a handful of tenants would measure that ordering, not the bridge's cost.
BRIDGE_TENANTS = [f"bench-b-{i}" for i in range(500)]


async def publish_uploads(publisher: EventPublisher, count: int) -> None:
    events = [upload_event(BRIDGE_TENANTS[i % len(BRIDGE_TENANTS)]) for i in range(count)]
    await asyncio.gather(*(publisher.publish(e, topic="ferry.uploads.v1") for e in events))


async def backlog_rate(
    client: Client, publisher: EventPublisher, bootstrap: str, count: int
) -> tuple[float, float, float]:
    """(b) Records → started workflows per second, draining a backlog already on Kafka,
    by a bridge process of its own; its CPU seconds per 1000 records meanwhile; and
    the median of its requests in flight at Temporal, scraped once a second (near
    `max_in_flight` if the bridge kept Temporal as busy as the raw client does).

    No producer competes with the bridge for the two cores meanwhile.
    """
    queue, group = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    QUEUES.append(queue)
    await start_group_at_end(bootstrap, group, INBOUND_TOPICS)
    await publish_uploads(publisher, count)
    bridge = BridgeProcess(queue, group, port=19464)
    try:
        async with asyncio.timeout(120):
            while (first := await bridge.started()) == 0:
                await asyncio.sleep(0.01)
        cpu_before = bridge.cpu_seconds()
        bridge.in_flight.clear()
        await bridge.wait_started(count)
        cpu = (bridge.cpu_seconds() - cpu_before) / (count - first) * 1000
    finally:
        await bridge.stop()
    query = f'TaskQueue = "{queue}" AND TenantId STARTS_WITH "bench-b-"'
    return await server_rate(client, query, count), cpu, statistics.median(bridge.in_flight)


async def live_rate(publisher: EventPublisher, bridge: BridgeProcess, count: int) -> float:
    """(b') The same while the records are being published, the producer on this machine too."""
    baseline = await bridge.started()
    began = time.perf_counter()
    await publish_uploads(publisher, count)
    await bridge.wait_started(baseline + count)
    return count / (time.perf_counter() - began)


async def latency_at(
    publisher: EventPublisher, bridge: BridgeProcess, client: Client, rate: float, seconds: float
) -> list[tuple[float, float]]:
    """(c) Record timestamp → workflow start, in ms, publishing at `rate` per second.

    Each record's (seconds since the first was published, latency in ms), in
    publishing order: a pause shows as a run of neighbours that all waited.
    """
    baseline = await bridge.started()
    count = max(1, int(rate * seconds))
    sent_at: dict[str, float] = {}
    began = time.perf_counter()
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tenant = LATENCY_TENANTS[i % len(LATENCY_TENANTS)]
        event = upload_event(tenant)
        event["occurred_at"] = datetime.now(UTC)
        await publisher.publish(event, topic="ferry.uploads.v1")
        sent_at[f"file-upload/{tenant}/{event['file_id']}"] = event["occurred_at"].timestamp()
    await bridge.wait_started(baseline + count)
    first = min(sent_at.values())
    latencies = []
    async for wf in client.list_workflows(f'TenantId STARTS_WITH "{LATENCY_RUN}-"'):
        if wf.id in sent_at:
            sent = sent_at[wf.id]
            latencies.append((sent - first, (wf.start_time.timestamp() - sent) * 1000))
    return sorted(latencies)


def slowest(samples: list[tuple[float, float]], top: int = 20) -> list[dict[str, float]]:
    """The slowest records, by when they were published: a pause shows as a cluster."""
    worst = sorted(samples, key=lambda sample: sample[1], reverse=True)[:top]
    return [{"sent_s": round(t, 3), "ms": round(ms, 1)} for t, ms in sorted(worst)]


async def terminate_queue(client: Client, queue: str) -> int:
    """Terminate the benchmark's workflows, and wait until it is done.

    Done here rather than as a server-side batch job, so that the next run does
    not measure a server still busy terminating the previous run's workflows.
    """
    gate = asyncio.Semaphore(32)
    query = f'TaskQueue = "{queue}" AND ExecutionStatus = "Running"'
    ids = [wf.id async for wf in client.list_workflows(query)]

    async def terminate(workflow_id: str) -> None:
        async with gate:
            await client.get_workflow_handle(workflow_id).terminate("ingest benchmark cleanup")

    await asyncio.gather(*(terminate(i) for i in ids), return_exceptions=True)
    return len(ids)


# Tenants of their own per run, several: one tenant's records start one after
# another, and the latency at half load is meant for the bridge, not one key.
LATENCY_RUN = f"bench-lat-{uuid.uuid4().hex[:8]}"
LATENCY_TENANTS = [f"{LATENCY_RUN}-{i}" for i in range(50)]


# A fresh task queue for every phase: workflows waiting on a queue without a
# worker make later starts onto it slower. Terminated at the end.
QUEUES: list[str] = []
# Raw and bridge phases alternate in blocks of raw-bridge-bridge-raw: the server's
# rate drifts during a run (it slows as its database grows, and wanders by ±10%
# from one phase to the next), and this order gives both the same share of it.
BLOCK = ("raw", "bridge", "bridge", "raw")


async def main(count: int, concurrency: int, latency_seconds: float, blocks: int) -> dict[str, Any]:
    settings = get_settings()
    client = await connect(settings)
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=4)
    sessions = create_sessionmaker(engine)
    for tenant in [*BRIDGE_TENANTS, *LATENCY_TENANTS]:  # the bridge refuses unknown tenants
        await ensure_tenant(sessions, tenant)
    await engine.dispose()
    results: dict[str, Any] = {"count": count, "concurrency": concurrency, "blocks": blocks}
    raw: list[float] = []
    bridged: list[float] = []
    cpu: list[float] = []
    raw_cpu: list[float] = []
    in_flight: list[float] = []
    try:
        async with EventPublisher(settings.kafka_bootstrap) as publisher:
            for kind in BLOCK * blocks:
                if kind == "raw":
                    console.print(f"(a) {count} raw starts, {concurrency} concurrent…")
                    rate, cpu_per_1000 = await raw_start_rate(client, count, concurrency)
                    raw.append(rate)
                    raw_cpu.append(cpu_per_1000)
                else:
                    console.print(f"(b) a backlog of {count} records through the bridge…")
                    rate, cpu_per_1000, at_temporal = await backlog_rate(
                        client, publisher, settings.kafka_bootstrap, count
                    )
                    bridged.append(rate)
                    cpu.append(cpu_per_1000)
                    in_flight.append(at_temporal)
            results["raw_rounds_per_s"] = raw
            results["bridge_rounds_per_s"] = bridged
            results["bridge_rounds_median_in_flight"] = in_flight
            results["raw_starts_per_s"] = statistics.mean(raw)
            results["bridge_starts_per_s"] = statistics.mean(bridged)
            results["ratio"] = results["bridge_starts_per_s"] / results["raw_starts_per_s"]
            results["bridge_cpu_s_per_1000_at_full_rate"] = statistics.mean(cpu)
            results["raw_client_cpu_s_per_1000"] = statistics.mean(raw_cpu)

            queue, group = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
            QUEUES.append(queue)
            await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
            bridge = BridgeProcess(queue, group, port=19464)
            try:
                await publish_uploads(publisher, 1)  # joined and started: the bridge is up
                await bridge.wait_started(1, timeout=120)
                console.print(f"(b') {count} records published while the bridge runs…")
                results["bridge_live_starts_per_s"] = await live_rate(publisher, bridge, count)
                half = results["bridge_starts_per_s"] / 2
                console.print(f"(c) latency at {half:.0f} records/s for {latency_seconds:.0f}s…")
                cpu_before = bridge.cpu_seconds()
                samples = await latency_at(publisher, bridge, client, half, latency_seconds)
                latencies = [ms for _, ms in samples]
                results["latency_rate_per_s"] = half
                results["latency_p50_ms"] = statistics.median(latencies)
                results["latency_p99_ms"] = statistics.quantiles(latencies, n=100)[98]
                results["latency_max_ms"] = max(latencies)
                results["latency_slowest"] = slowest(samples)
                results["latency_samples"] = [[round(t, 3), round(ms, 1)] for t, ms in samples]
                results["bridge_cpu_s_per_1000_at_half_rate"] = (
                    (bridge.cpu_seconds() - cpu_before) / len(latencies) * 1000
                )
                results["bridge_peak_rss_mb"] = bridge.peak_rss_mb()
            finally:
                await bridge.stop()
    finally:
        console.print("terminating the benchmark's workflows…")
        for queue in QUEUES:
            await terminate_queue(client, queue)
    return results


def report(results: dict[str, Any]) -> None:
    def rounds(key: str) -> str:
        return " · ".join(f"{rate:.0f}" for rate in results[key])

    table = Table("measure", "value", "goal", title="Ferry ingest benchmark")
    raw, bridged = results["raw_starts_per_s"], results["bridge_starts_per_s"]
    table.add_row("(a) raw start_workflow rate", f"{raw:.1f} /s ({rounds('raw_rounds_per_s')})", "")
    table.add_row(
        "(b) Kafka backlog → bridge → started",
        f"{bridged:.1f} /s ({rounds('bridge_rounds_per_s')})",
        "",
    )
    table.add_row("ratio b/a", f"{results['ratio']:.2f}", "≥ 0.90")
    table.add_row(
        "(b) requests at Temporal (median)",
        " · ".join(f"{n:.0f}" for n in results["bridge_rounds_median_in_flight"]),
        f"{results['concurrency']} (raw)",
    )
    live = results["bridge_live_starts_per_s"]
    table.add_row("(b') publishing while the bridge runs", f"{live:.1f} /s", "")
    table.add_row("load for latency", f"{results['latency_rate_per_s']:.1f} records/s", "½ of (b)")
    table.add_row("p50 record → start", f"{results['latency_p50_ms']:.1f} ms", "")
    table.add_row("p99 record → start", f"{results['latency_p99_ms']:.1f} ms", "≤ 250 ms")
    table.add_row("slowest record → start", f"{results['latency_max_ms']:.1f} ms", "")
    full, half = (
        results["bridge_cpu_s_per_1000_at_full_rate"],
        results["bridge_cpu_s_per_1000_at_half_rate"],
    )
    table.add_row("bridge CPU per 1000 records", f"{full:.2f} s (at ½ load: {half:.2f} s)", "")
    table.add_row(
        "raw client CPU per 1000 starts", f"{results['raw_client_cpu_s_per_1000']:.2f} s", ""
    )
    table.add_row("bridge peak RSS", f"{results['bridge_peak_rss_mb']:.0f} MB", "")
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="workflows per round")
    parser.add_argument(
        "--blocks", type=int, default=2, help="blocks of raw-bridge-bridge-raw rounds, averaged"
    )
    parser.add_argument(
        "--concurrency", type=int, default=256, help="raw starts in flight (the bridge's default)"
    )
    parser.add_argument("--latency-seconds", type=float, default=20)
    args = parser.parse_args()
    # The raw client runs on the event loop the bridge runs on (`ferry.cli`), so
    # that the ratio compares the work each does, not two event loops.
    outcome = uvloop.run(main(args.count, args.concurrency, args.latency_seconds, args.blocks))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(outcome, indent=2))
    report(outcome)
    console.print(f"written to {RESULTS / 'ingest.json'}")
