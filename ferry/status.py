"""`ferry status`: the running system at a glance, refreshed live.

What it shows comes from where an operator would look: the stack's services, the
bridge's figures as Prometheus has them (lag, records per second, in flight at
Temporal), Temporal's visibility (running workflows by type), the DLQ's size on
Kafka, and the alerts Prometheus has firing. A source that does not answer is shown
as such; the view never fails because one is away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Group
from rich.table import Table
from temporalio.client import Client

from ferry.contracts import workflows as wf
from ferry.contracts.topics import DLQ
from ferry.devstack import ServiceStatus

T = TypeVar("T")
WORKFLOW_TYPES = (
    wf.FILE_UPLOAD,
    wf.FILE_SHARING,
    wf.FILE_MIGRATION,
    wf.TENANT_PROVISIONING,
    wf.TENANT_MONITORING,
    wf.TENANT_UPGRADE,
    wf.TENANT_PLAN_CHANGE,
    wf.RECONCILIATION,
)
UNKNOWN = "?"


@dataclass
class Snapshot:
    services: list[ServiceStatus] = field(default_factory=list)
    lag: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    in_flight: float | None = None
    running: dict[str, int] = field(default_factory=dict)
    dlq: int | None = None
    # The last reconciliation's counts by kind (uploads past their deadline, ...).
    stuck: dict[str, float] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)


async def _answer(name: str, call: Callable[[], Awaitable[T]], snap: Snapshot) -> T | None:
    try:
        return await asyncio.wait_for(call(), 5)
    except Exception as exc:  # one source away: say so, show the rest
        snap.unanswered.append(f"{name}: {type(exc).__name__}")
        return None


async def _prometheus(url: str, snap: Snapshot) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=4) as http:

        async def vector(expr: str) -> list[dict[str, Any]]:
            answer = (await http.get("/api/v1/query", params={"query": expr})).json()
            result: list[dict[str, Any]] = answer["data"]["result"]
            return result

        async def fetch() -> None:
            for r in await vector("ferry:bridge_lag:sum"):
                snap.lag[r["metric"].get("topic", "")] = float(r["value"][1])
            for r in await vector("sum by (topic) (rate(ferry_bridge_records_consumed_total[1m]))"):
                snap.rates[r["metric"].get("topic", "")] = float(r["value"][1])
            for r in await vector("ferry:reconciliation_found:latest"):
                snap.stuck[r["metric"].get("kind", "")] = float(r["value"][1])
            flight = await vector("sum(ferry_bridge_in_flight)")
            snap.in_flight = float(flight[0]["value"][1]) if flight else None
            alerts = (await http.get("/api/v1/alerts")).json()["data"]["alerts"]
            snap.alerts = [a for a in alerts if a["state"] == "firing"]

        await _answer("prometheus", fetch, snap)


async def _temporal(client: Client, snap: Snapshot) -> None:
    async def fetch() -> None:
        for kind in WORKFLOW_TYPES:
            query = f'WorkflowType = "{kind}" AND ExecutionStatus = "Running"'
            snap.running[kind] = (await client.count_workflows(query)).count

    await _answer("temporal", fetch, snap)


async def _dlq(bootstrap: str, snap: Snapshot) -> None:
    async def fetch() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            partitions = [TopicPartition(DLQ, p) for p in consumer.partitions_for_topic(DLQ) or {0}]
            starts = await consumer.beginning_offsets(partitions)
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        return sum(ends[tp] - starts[tp] for tp in partitions)

    snap.dlq = await _answer("kafka", fetch, snap)


async def snapshot(
    services: Callable[[], list[ServiceStatus]],
    client: Client | None,
    prometheus_url: str,
    bootstrap: str,
) -> Snapshot:
    snap = Snapshot(services=await asyncio.to_thread(services))
    tasks = [_prometheus(prometheus_url, snap), _dlq(bootstrap, snap)]
    if client is not None:
        tasks.append(_temporal(client, snap))
    else:
        snap.unanswered.append("temporal: not connected")
    await asyncio.gather(*tasks)
    return snap


def render(snap: Snapshot) -> Group:
    services = Table("service", "address", "state", title="Stack")
    for s in snap.services:
        state = (
            "[green]answering" if s.answering else "[yellow]running" if s.running else "[red]down"
        )
        services.add_row(s.name, s.address, state)

    flow = Table("topic", "records/s", "lag", title="Bridge (Prometheus)")
    for topic in sorted(set(snap.lag) | set(snap.rates)):
        rate = snap.rates.get(topic)
        lag = snap.lag.get(topic)
        flow.add_row(
            topic,
            UNKNOWN if rate is None else f"{rate:.1f}",
            UNKNOWN if lag is None else f"{lag:.0f}",
        )
    in_flight = UNKNOWN if snap.in_flight is None else f"{snap.in_flight:.0f}"
    flow.caption = f"in flight at Temporal: {in_flight}"

    running = Table("workflow type", "running", title="Temporal")
    for kind in WORKFLOW_TYPES:
        count = snap.running.get(kind)
        running.add_row(kind, UNKNOWN if count is None else str(count))

    health = Table("", "", title="Dead letters, alerts, stuck work")
    health.add_row("records in ferry.dlq.v1", UNKNOWN if snap.dlq is None else str(snap.dlq))
    names = sorted({a["labels"]["alertname"] for a in snap.alerts})
    health.add_row("alerts firing", ", ".join(names) if names else "none")
    stuck = ", ".join(f"{kind} {count:.0f}" for kind, count in sorted(snap.stuck.items()))
    health.add_row("stuck (last reconciliation)", stuck or UNKNOWN)
    if snap.unanswered:
        health.add_row("[yellow]not answering", ", ".join(snap.unanswered))
    return Group(services, flow, running, health)
