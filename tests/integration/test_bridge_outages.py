"""The bridge outlives its dependencies: Postgres and Kafka stopped under it, and
Temporal forgetting a workflow (as its retention does) while the ledger remembers."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition
from bridges import running, terminate_uploads, upload_event, workerless_bridge, workflow_ids
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from upstream import event as upstream_event
from waiting import eventually

from ferry.config import Settings
from ferry.consumers.dlq import read_dead_letters
from ferry.consumers.offsets import committed_offsets, start_group_at_end
from ferry.contracts.topics import INBOUND_TOPICS
from ferry.contracts.workflows import file_share_id, file_upload_id
from ferry.db.ledger import EventLedger
from ferry.devstack import Stack
from ferry.processes import bridge_client
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack

UPLOADS = "ferry.uploads.v1"


def gauge(bridge: object, dependency: str) -> float:
    metrics = bridge.metrics  # type: ignore[attr-defined]
    return float(metrics.dependency_up.labels(dependency)._value.get())


@pytest.mark.restarts_stack
async def test_the_bridge_waits_out_postgres_stopped_in_immediate_mode(
    stack: Stack, publisher: EventPublisher, settings: Settings, tenant: str, ledger: EventLedger
) -> None:
    client = await bridge_client(settings)
    group = f"test-pg-outage-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    # The tenant is new to the bridge: its first event must ask the database.
    events = [upload_event(tenant, f"f{i}.txt") for i in range(6)]
    try:
        async with running(workerless_bridge(client, publisher, settings, group, ledger)) as bridge:
            before = await committed_offsets(settings.kafka_bootstrap, group)
            await asyncio.to_thread(stack.stop_service, "postgres", signal.SIGQUIT)
            try:
                for event in events:
                    await publisher.publish(event, topic=UPLOADS)

                async def waiting_for_postgres() -> bool:
                    return gauge(bridge, "postgres") == 0

                await eventually(waiting_for_postgres, "waiting_for_postgres", timeout=30)
                await asyncio.sleep(6)  # the seed's bridge exited about 5 s into an outage
                assert bridge.counts["started"] == 0
                assert bridge.counts["dead-lettered"] == 0  # an outage is not the event's fault
                assert await committed_offsets(settings.kafka_bootstrap, group) == before
            finally:
                await asyncio.to_thread(stack.start_service, "postgres")

            async def all_started() -> bool:
                return bridge.counts["started"] == len(events)

            await eventually(all_started, "all_started", timeout=60, interval=0.25)
            assert gauge(bridge, "postgres") == 1
            assert set(await workflow_ids(client, tenant)) == {
                file_upload_id(tenant, e["file_id"]) for e in events
            }

            async def committed_and_marked() -> bool:
                after = await committed_offsets(settings.kafka_bootstrap, group)
                moved = any(after.get(tp, -1) > before.get(tp, -1) for tp in after)
                marked = [await ledger.processed(tenant, group, e["event_id"]) for e in events]
                return moved and all(marked)

            await eventually(committed_and_marked, "committed_and_marked", timeout=30)
    finally:
        await terminate_uploads(client, events)


@pytest.mark.restarts_stack
async def test_the_bridge_outlives_kafka_killed_and_goes_on_after_its_restart(
    stack: Stack, publisher: EventPublisher, settings: Settings, tenant: str, ledger: EventLedger
) -> None:
    client = await bridge_client(settings)
    group = f"test-kafka-outage-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    first = upload_event(tenant, "before.txt")
    after = [upload_event(tenant, f"after-{i}.txt") for i in range(4)]
    poison = f"not avro {uuid.uuid4().hex}".encode()
    try:
        async with running(workerless_bridge(client, publisher, settings, group, ledger)) as bridge:
            await publisher.publish(first, topic=UPLOADS)

            async def first_started() -> bool:
                return bridge.counts["started"] == 1

            await eventually(first_started, "first_started", timeout=30, interval=0.25)
            await asyncio.to_thread(stack.stop_service, "kafka", signal.SIGKILL)
            try:
                await asyncio.sleep(8)
            finally:
                await asyncio.to_thread(stack.start_service, "kafka")
            for event in after:
                await publisher.publish(event, topic=UPLOADS)
            sent = await publisher.send_raw(UPLOADS, poison, tenant.encode(), [])

            async def all_handled() -> bool:
                return (
                    bridge.counts["started"] == 1 + len(after)
                    and bridge.counts["dead-lettered"] == 1
                )

            # After a broker restart the group re-forms: allow for its session timeout.
            await eventually(all_handled, "all_handled", timeout=120, interval=0.5)
            tp = TopicPartition(UPLOADS, sent.partition)

            async def committed_past_the_poison() -> bool:
                offsets = await committed_offsets(settings.kafka_bootstrap, group)
                return offsets.get(tp, -1) > sent.offset

            await eventually(committed_past_the_poison, "committed_past_the_poison", timeout=60)
            letters = await read_dead_letters(settings.kafka_bootstrap, limit=200)
            assert [
                d
                for d in letters
                if d.header("ferry-source-offset") == str(sent.offset)
                and d.header("ferry-source-partition") == str(sent.partition)
            ]
    finally:
        await terminate_uploads(client, [first, *after])


async def test_a_redelivery_after_temporal_deleted_the_run_starts_nothing(
    publisher: EventPublisher, settings: Settings, client: Client, tenant: str, ledger: EventLedger
) -> None:
    """Retention deletes a closed run; a record delivered again after that (a consumer
    group reset, a replayed backup) must not start a second one: the ledger answers."""
    bridge_temporal = await bridge_client(settings)
    group = f"test-forgotten-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    event = upload_event(tenant, "old.txt")
    workflow_id = file_upload_id(tenant, event["file_id"])
    async with running(
        workerless_bridge(bridge_temporal, publisher, settings, group, ledger)
    ) as bridge:
        assert bridge.retention is not None
        # Old enough that Temporal may have forgotten its run: the bridge asks the ledger.
        event["occurred_at"] = datetime.now(UTC) - bridge.retention - timedelta(hours=1)
        await publisher.publish(event, topic=UPLOADS)

        async def started_and_marked() -> bool:
            return bridge.counts["started"] == 1 and await ledger.processed(
                tenant, group, event["event_id"]
            )

        await eventually(started_and_marked, "started_and_marked", timeout=30, interval=0.25)
        await terminate_uploads(bridge_temporal, [event])
        run = await client.get_workflow_handle(workflow_id).describe()
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run.run_id),
            ),
            retry=True,
        )

        async def forgotten() -> bool:
            try:
                await client.get_workflow_handle(workflow_id).describe()
            except RPCError as err:
                return err.status == RPCStatusCode.NOT_FOUND
            return False

        await eventually(forgotten, "forgotten", timeout=60, interval=0.5)
        await publisher.publish(event, topic=UPLOADS)

        async def counted_as_duplicate() -> bool:
            return bridge.counts["duplicate"] == 1

        await eventually(counted_as_duplicate, "counted_as_duplicate", timeout=30, interval=0.25)
        assert bridge.counts["started"] == 1
        assert await forgotten() is not False  # still no run of that ID
        assert await workflow_ids(client, tenant) == []


async def test_a_signal_repeated_after_its_workflow_closed_is_a_duplicate(
    publisher: EventPublisher, settings: Settings, client: Client, tenant: str, ledger: EventLedger
) -> None:
    """The same event twice is one effect even when the first ended the run (a payment
    that decided an upgrade, delivered again); another event for the closed run is still
    refused to its sender, in the DLQ."""
    bridge_temporal = await bridge_client(settings)
    group = f"test-late-signal-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    share_id = f"sh-{uuid.uuid4().hex[:8]}"
    share = upstream_event(
        "file.share_requested", tenant, share_id=share_id, file_id=str(uuid.uuid4()),
        shared_by="owner", grantee_type="email", grantee="a@example.org", permission="view",
        expires_at=None, notify=False, message=None,
    )  # fmt: skip
    revocation = upstream_event(
        "file.share_revocation_requested", tenant, share_id=share_id, revoked_by="owner"
    )
    # No commit during the test: the ledger cannot know the first delivery yet.
    quiet = workerless_bridge(
        bridge_temporal, publisher, settings, group, ledger, commit_interval=600
    )
    async with running(quiet) as bridge:
        await publisher.publish(share, topic="ferry.file-commands.v1")
        await publisher.publish(revocation, topic="ferry.file-commands.v1")

        async def signalled() -> bool:
            return bridge.counts["started"] == 1 and bridge.counts["signalled"] == 1

        await eventually(signalled, "signalled", timeout=30, interval=0.25)
        await client.get_workflow_handle(file_share_id(tenant, share_id)).terminate("closed")

        await publisher.publish(revocation, topic="ferry.file-commands.v1")
        late = {**revocation, "event_id": str(uuid.uuid4())}
        await publisher.publish(late, topic="ferry.file-commands.v1")

        async def both_handled() -> bool:
            return bridge.counts["duplicate"] == 1 and bridge.counts["dead-lettered"] == 1

        await eventually(both_handled, "both_handled", timeout=30, interval=0.25)
        assert bridge.counts["signalled"] == 1, bridge.counts
