"""`ferry meter`'s metrics on the local stack: what it counts and skips, its group's lag
as Kafka has it, and the stack's Prometheus scraping it as job ferry-meter."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families
from upstream import delete_topics_of, file_processed, file_rejected
from waiting import eventually

from ferry.config import Settings
from ferry.consumers.offsets import start_group_at_end
from ferry.contracts.topics import FILE_EVENTS
from ferry.devstack import Stack
from ferry.meter.app import topic_partitions
from ferry.meter.metrics import GroupLag, MeterMetrics
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack

SOURCE = "ferry.test-meter-metrics"

# Where the stack's Prometheus looks for the meter (the meter's default port).
METER_METRICS_PORT = 9467


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    """A topic of two partitions of this test's own."""
    name = f"ferry.test-meter-lag-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def test_the_lag_is_what_the_group_has_not_committed(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, f"record {n}".encode(), partition=0)
    finally:
        await producer.stop()
    behind, caught_up = f"{topic}-behind", f"{topic}-caught-up"
    await start_group_at_end(settings.kafka_bootstrap, caught_up, [topic])
    metrics = MeterMetrics()
    lags = {}
    for group in (behind, caught_up):
        lag = GroupLag(settings.kafka_bootstrap, group, topic, 2, metrics)
        await lag.start()
        try:
            lags[group] = await lag.measure()
        finally:
            await lag.stop()
    # A group that has committed nothing reads from the first record: all three are lag.
    assert lags == {behind: {0: 3, 1: 0}, caught_up: {0: 0, 1: 0}}
    gauge = "ferry_meter_consumer_lag"
    assert metrics.registry.get_sample_value(gauge, {"topic": topic, "partition": "0"}) == 0


class MeterProcess:
    """`ferry meter` as a separate process, serving its metrics where Prometheus looks."""

    def __init__(self, app_id: str, log: Path) -> None:
        env = {
            **os.environ,
            "FERRY_METER_APP_ID": app_id,
            "FERRY_METER_METRICS_PORT": str(METER_METRICS_PORT),
        }
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ferry.cli", "meter"], env=env, stdout=out, stderr=out
            )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
async def meter(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MeterProcess]:
    """A meter in a new group that starts at the end of the file events (a new group would
    count every earlier run's); the group's changelog topics are deleted afterwards."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", METER_METRICS_PORT)) == 0:
            pytest.fail(f"port {METER_METRICS_PORT} is taken: is another `ferry meter` running?")
    app_id = f"ferry-meter-metrics-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, app_id, [FILE_EVENTS])
    process = MeterProcess(app_id, tmp_path_factory.mktemp("meter") / "meter.log")
    try:
        yield process
    finally:
        await asyncio.to_thread(process.stop)
        await delete_topics_of(settings.kafka_bootstrap, app_id)


async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The meter's samples, by name and labels; empty while it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{METER_METRICS_PORT}/metrics")).text
    except httpx.HTTPError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_running_meter_serves_what_it_counted_skipped_and_its_lag(
    meter: MeterProcess, publisher: EventPublisher, settings: Settings
) -> None:
    partitions = await topic_partitions(settings.kafka_bootstrap, FILE_EVENTS)

    async def lag_measured() -> bool:
        samples = await scrape()
        return all(
            ("ferry_meter_consumer_lag", (("partition", str(p)), ("topic", FILE_EVENTS))) in samples
            for p in range(partitions)
        )

    await eventually(lag_measured, "the meter's lag on every partition", timeout=90, interval=1)
    before = await scrape()
    started = time.time()
    # A tenant without a monitoring workflow: its signal finds none.
    tenant = f"mm-{uuid.uuid4().hex[:10]}"
    event = file_processed(tenant, SOURCE)
    await publisher.publish(event)
    await publisher.publish(event)  # re-delivered: the same event ID
    await publisher.publish(file_rejected(tenant, SOURCE, "invalid_type", "not an image", None))
    await publisher.send_raw(FILE_EVENTS, b"not avro", tenant.encode(), [])

    records, signals = "ferry_meter_records_total", "ferry_meter_signals_total"
    expected = {
        (records, "counted"): 1,
        (records, "duplicate"): 1,
        (records, "other-event"): 1,
        (records, "undecodable"): 1,
        (signals, "no-workflow"): 1,
    }

    async def all_seen() -> bool:
        now = await scrape()
        # Other tests' events may be counted too: at least these, never fewer.
        return all(
            value(now, name, outcome=o) - value(before, name, outcome=o) >= n
            for (name, o), n in expected.items()
        )

    try:
        await eventually(all_seen, "the meter's counts", timeout=60, interval=0.5)
    except AssertionError:
        raise AssertionError(f"{await scrape()}\nmeter output:\n{meter.output()}") from None
    after = await scrape()
    assert value(after, "ferry_meter_last_counted_timestamp_seconds") >= started - 1
    assert value(after, signals, outcome="failed") == value(before, signals, outcome="failed")


async def prometheus(settings: Settings, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=10) as http:
        answer = (await http.get("/api/v1/query", params={"query": expr})).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def test_prometheus_scrapes_the_meter_and_records_its_lag(
    stack: Stack, meter: MeterProcess, settings: Settings
) -> None:
    async def scraped() -> bool:
        return bool(await prometheus(settings, 'up{job="ferry-meter"} == 1'))

    await eventually(scraped, "Prometheus scraping ferry-meter", timeout=60, interval=1)

    async def lag_recorded() -> bool:
        return bool(await prometheus(settings, f'ferry:meter_lag:sum{{topic="{FILE_EVENTS}"}}'))

    await eventually(lag_recorded, "ferry:meter_lag:sum", timeout=60, interval=1)
    counted = await prometheus(settings, 'ferry_meter_records_total{outcome="counted"}')
    assert [r["metric"]["job"] for r in counted] == ["ferry-meter"]
