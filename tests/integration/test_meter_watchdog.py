"""The usage meter's watchdog on the local stack: a group that stops committing while
records are left gets its consumer started anew, and nothing is counted twice.

A module of its own: no other meter may count these events (test_meter.py runs one
for its whole module, and every meter signals the same monitoring workflows).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from test_meter import (
    SOURCE,
    MeterProcess,
    commit_end_offsets,
    probe,
    probe_queue,
    received,
    tenant_of,
    usage,
)
from upstream import delete_topics_of, file_processed
from waiting import eventually

from ferry.config import Settings
from ferry.contracts.topics import FILE_EVENTS
from ferry.devstack import Stack
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack
__all__ = ["probe", "probe_queue"]  # the fixtures, shared with test_meter.py


async def test_a_meter_whose_group_stops_committing_starts_its_consumer_anew(
    settings: Settings,
    stack: Stack,
    probe: WorkflowHandle[Any, Any],
    publisher: EventPublisher,
    tmp_path: Path,
) -> None:
    """Temporal frozen: the agent waits on its signal and commits nothing while a record
    is left, as a stalled faust agent would. The watchdog starts the consumer anew, and
    once Temporal is back every event is counted once: the totals the next signal carries
    (the one that waited may be lost with the old consumer, as the meter's totals-not-
    increments design allows)."""
    app_id = f"ferry-meter-test-{uuid.uuid4().hex[:8]}"
    await commit_end_offsets(settings.kafka_bootstrap, app_id, FILE_EVENTS)
    meter = MeterProcess(
        app_id, tmp_path / "meter.log", FERRY_METER_STALL_SECONDS="5", FERRY_METER_METRICS_PORT="0"
    )
    meter.start()
    await eventually(lambda: "Worker ready" in meter.output(), "the meter to be ready", timeout=60)
    tenant = tenant_of(probe)
    first, second, third = (file_processed(tenant, SOURCE, size) for size in (100, 200, 300))
    try:
        await publisher.publish(first)
        await received(probe, lambda u: len(u) >= 1, meter)
        stack.pause_service("temporal")
        try:
            await publisher.publish(second)
            await eventually(
                lambda: "starting its consumer anew" in meter.output(),
                "the meter to start its consumer anew",
                timeout=60,
            )
        finally:
            stack.pause_service("temporal", paused=False)
        await publisher.publish(second)  # redelivered: still counted once
        await publisher.publish(third)
        updates = await received(probe, lambda u: any(x.files >= 3 for x in u), meter, timeout=60)
        assert updates[0] == usage(first, 1, 100)
        assert updates[-1] == usage(third, 3, 600)
        assert updates in (
            [updates[0], updates[-1]],
            [updates[0], usage(second, 2, 300), updates[-1]],
        )
    finally:
        await asyncio.to_thread(meter.stop)
        await delete_topics_of(settings.kafka_bootstrap, app_id)
