"""`ferry meter` on the local stack: file events on Kafka to usage signals in Temporal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker
from upstream import delete_topics_of, file_processed, file_rejected, provision

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.contracts.ids import event_id_for
from ferry.contracts.policy import TenantPolicy
from ferry.contracts.topics import FILE_EVENTS
from ferry.contracts.workflows import TENANT_MONITORING, USAGE_SIGNAL, UsageUpdate
from ferry.contracts.workflows import tenant_monitoring_id as workflow_id
from ferry.demo import stage_upload
from ferry.meter.app import topic_partitions
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage
from ferry.workflows.tenant_monitoring import MonitoringState

pytestmark = pytest.mark.stack

SOURCE = "ferry.test-meter"


@workflow.defn(name=TENANT_MONITORING, sandboxed=False)
class UsageProbeWorkflow:
    """Stands in for the real tenant_monitoring_workflow, so the test sees exactly what
    the meter sends: it records every usage signal and returns them from a query.
    """

    def __init__(self) -> None:
        self._updates: list[UsageUpdate] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=USAGE_SIGNAL)
    def usage_updated(self, update: UsageUpdate) -> None:
        self._updates.append(update)

    @workflow.query
    def updates(self) -> list[UsageUpdate]:
        return self._updates


class MeterProcess:
    """`ferry meter` as a separate process, stopped the way an operator stops it."""

    def __init__(self, app_id: str, log: Path, **env: str) -> None:
        self.app_id = app_id
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "FERRY_METER_APP_ID": self.app_id, **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ferry.cli", "meter"], env=env, stdout=out, stderr=out
            )

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM, then wait for a clean exit; how long it took."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"the meter did not stop in {timeout} s\n{self.output()}"
            ) from None
        assert code == 0, f"the meter exited with {code}\n{self.output()}"
        self.proc = None
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def commit_end_offsets(bootstrap: str, group: str, topic: str) -> None:
    """Make `group` start at the end of `topic`, as if it had read everything before."""
    partitions = [TopicPartition(topic, p) for p in range(await topic_partitions(bootstrap, topic))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit(dict(await consumer.end_offsets(partitions)))
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def meter_app_id(settings: Settings) -> AsyncIterator[str]:
    """A new app ID, so a new consumer group and changelog; its topics are deleted afterwards.

    The group starts at the end of the file events: a new meter would count the
    topic's whole history, which here is every earlier test run's files.
    """
    app_id = f"ferry-meter-test-{uuid.uuid4().hex[:8]}"
    await commit_end_offsets(settings.kafka_bootstrap, app_id, FILE_EVENTS)
    yield app_id
    await delete_topics_of(settings.kafka_bootstrap, app_id)


@pytest.fixture(scope="module")
def meter(meter_app_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeterProcess]:
    process = MeterProcess(meter_app_id, tmp_path_factory.mktemp("meter") / "meter.log")
    process.start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
async def probe_queue(client: Client) -> AsyncIterator[str]:
    queue = f"meter-probe-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[UsageProbeWorkflow]):
        yield queue


@pytest.fixture
async def probe(client: Client, probe_queue: str) -> AsyncIterator[WorkflowHandle[Any, Any]]:
    """The probe, running as the monitoring workflow of a new tenant."""
    tenant = f"m-{uuid.uuid4().hex[:12]}"
    handle = await client.start_workflow(
        UsageProbeWorkflow.run, id=workflow_id(tenant), task_queue=probe_queue
    )
    yield handle
    await handle.terminate("test finished")


def tenant_of(probe: WorkflowHandle[Any, Any]) -> str:
    return probe.id.removeprefix(workflow_id(""))


async def received(
    probe: WorkflowHandle[Any, Any],
    until: Callable[[list[UsageUpdate]], bool],
    meter: MeterProcess,
    timeout: float = 40.0,
) -> list[UsageUpdate]:
    """The probe's usage signals, once `until` holds for them."""
    updates: list[UsageUpdate] = []
    try:
        async with asyncio.timeout(timeout):
            while not until(updates := await probe.query(UsageProbeWorkflow.updates)):
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"the probe got {updates}\nmeter output:\n{meter.output()}") from None
    return updates


def usage(event: dict[str, Any], files: int, size: int) -> UsageUpdate:
    """The signal the meter sends after `event` moved the totals to (`files`, `size`)."""
    tenant, source_id = event["tenant_id"], event["event_id"]
    return UsageUpdate(event_id_for(f"meter/{tenant}/{source_id}", USAGE_SIGNAL), files, size)


async def test_each_processed_file_is_counted_once_and_the_totals_are_signalled(
    meter: MeterProcess, probe: WorkflowHandle[Any, Any], publisher: EventPublisher
) -> None:
    tenant = tenant_of(probe)
    first, second = file_processed(tenant, SOURCE, 1_000), file_processed(tenant, SOURCE, 2_345)

    await publisher.publish(first)
    await publisher.publish(first)  # re-delivered: the same event_id
    await publisher.publish(file_rejected(tenant, SOURCE))  # not a processed file
    await publisher.publish(second)

    updates = await received(probe, lambda u: any(x.files >= 2 for x in u), meter)
    assert updates == [usage(first, 1, 1_000), usage(second, 2, 3_345)]


async def test_the_totals_survive_a_restart_of_the_meter(
    meter: MeterProcess, probe: WorkflowHandle[Any, Any], publisher: EventPublisher
) -> None:
    tenant = tenant_of(probe)
    before, after = file_processed(tenant, SOURCE, 4_096), file_processed(tenant, SOURCE, 512)
    await publisher.publish(before)
    await received(probe, lambda u: len(u) >= 1, meter)

    stopped_in = await asyncio.to_thread(meter.stop)
    assert stopped_in < 10, f"the meter took {stopped_in:.1f} s to stop"
    meter.start()
    await publisher.publish(before)  # again, after the restart: still counted once
    await publisher.publish(after)

    updates = await received(probe, lambda u: len(u) >= 2, meter)
    assert updates == [usage(before, 1, 4_096), usage(after, 2, 4_608)]


async def test_a_real_upload_moves_the_real_monitoring_workflows_usage_within_seconds(
    meter: MeterProcess,
    bridge: Bridge,
    publisher: EventPublisher,
    client: Client,
    task_queue: str,
    settings: Settings,
    local_storage: LocalStorage,
) -> None:
    """The whole path: upload → file.processed → meter → tenant_monitoring_workflow."""
    tenant = f"m-{uuid.uuid4().hex[:12]}"
    # A measurement only every hour: what the state shows next comes from the meter.
    policy = TenantPolicy(usage_interval_seconds=3600)
    provisioned = await provision(client, task_queue, tenant, policy=policy)
    assert provisioned.status == "provisioned"
    data = b"metered bytes\n" * 700
    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "metered.txt", "text/plain", data
    )
    await publisher.publish(upload, topic="ferry.uploads.v1")

    monitoring = client.get_workflow_handle(workflow_id(tenant))
    async with asyncio.timeout(60):
        while True:
            state = await monitoring.query("state", result_type=MonitoringState)
            if state.files >= 1:
                break
            await asyncio.sleep(0.2)
    assert (state.files, state.bytes) == (1, len(data)), meter.output()
