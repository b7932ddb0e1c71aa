"""The tenant service on the local stack: provisioning, upgrades, quota and lifecycle.

Events go in through Kafka and the bridge, the workflows run on a real worker
against Postgres and the storage emulators, and the tests read the outcome where
a user would: on the outbound topics, in the database, in the buckets and in
the Temporal server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from upstream import creation, event, provision, send
from waiting import eventually

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.contracts.enums import TenantPlan, TenantStatus
from ferry.contracts.plans import limits_for
from ferry.contracts.policy import TenantPolicy
from ferry.contracts.workflows import USAGE_SIGNAL, tenant_monitoring_id
from ferry.db import tenant_scope
from ferry.demo import stage_upload
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage, StorageProvider, providers_from_env
from ferry.worker import ferry_worker
from ferry.workflows.tenant_monitoring import MonitoringState, UsageUpdate

pytestmark = pytest.mark.stack


def _new_tenant() -> str:
    return f"tn-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def tenant_events(settings: Settings) -> AsyncIterator[TopicFollower]:
    async with TopicFollower(settings.kafka_bootstrap, "ferry.tenant-events.v1") as follower:
        yield follower


@pytest.fixture
async def billing_commands(settings: Settings) -> AsyncIterator[TopicFollower]:
    async with TopicFollower(settings.kafka_bootstrap, "ferry.billing-commands.v1") as follower:
        yield follower


@pytest.fixture
async def notifications(settings: Settings) -> AsyncIterator[TopicFollower]:
    async with TopicFollower(settings.kafka_bootstrap, "ferry.notifications.v1") as follower:
        yield follower


async def _monitoring_state(client: Client, tenant: str) -> MonitoringState:
    handle = client.get_workflow_handle(tenant_monitoring_id(tenant))
    state: MonitoringState = await handle.query("state", result_type=MonitoringState)
    return state


async def _tenant_row(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: str
) -> dict[str, Any] | None:
    async with tenant_scope(sessionmaker, tenant) as db:
        row = await db.tenants.get()
        if row is None:
            return None
        return {
            "status": row.status,
            "plan": row.plan,
            "quota_bytes": row.quota_bytes,
            "max_file_bytes": row.max_file_bytes,
            "over_quota": row.over_quota,
        }


async def test_a_tenant_is_provisioned_end_to_end(
    bridge: Bridge,
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    notifications: TopicFollower,
    client: Client,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    tenant = _new_tenant()
    request = creation(tenant, provider="azure", plan="pro")
    started = time.perf_counter()
    await send(publisher, request)

    [provisioned] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"].startswith("tenant.provision")
    )
    elapsed = time.perf_counter() - started
    print(f"provisioned in {elapsed:.2f} s, from the record's publishing to tenant.provisioned")

    assert provisioned["event_type"] == "tenant.provisioned"
    assert provisioned["plan"] == "pro"
    assert provisioned["storage"] == {"provider": "azure", "bucket": f"ferry-{tenant}"}
    assert provisioned["correlation_id"] == request["event_id"]
    [welcome] = await notifications.wait_for(lambda e: e["tenant_id"] == tenant)
    assert welcome["recipient"] == f"owner@{tenant}.example"
    assert welcome["template"] == "tenant-welcome"

    row = await _tenant_row(sessionmaker, tenant)
    assert row is not None
    assert row["status"] == TenantStatus.ACTIVE
    assert row["quota_bytes"] == limits_for(TenantPlan.PRO).quota_bytes
    async with tenant_scope(sessionmaker, tenant) as db:
        assert await db.users.role_of(f"owner@{tenant}.example") == "owner"

    # The bucket exists on Azurite: an object can be written into it.
    azure = providers_from_env(settings.local_storage_root)["azure"]
    try:

        async def chunks() -> AsyncIterator[bytes]:
            yield b"probe"

        await azure.write(f"ferry-{tenant}", "probe", chunks())
        assert (await azure.list(f"ferry-{tenant}")).items[0].key == "probe"
    finally:
        await azure.close()

    monitoring = client.get_workflow_handle(tenant_monitoring_id(tenant))
    assert (await monitoring.describe()).status == WorkflowExecutionStatus.RUNNING
    state = await monitoring.query("state", result_type=MonitoringState)
    assert (state.status, state.plan) == ("active", "pro")

    # The same request again is a duplicate, not a second tenant.
    await send(publisher, {**request, "event_id": str(uuid.uuid4())})
    with pytest.raises(TimeoutError):
        await tenant_events.wait_for(
            lambda e: e["tenant_id"] == tenant and e["event_type"].startswith("tenant.provision"),
            timeout=3,
        )


@pytest.fixture
async def broken_storage_queue(client: Client, settings: Settings, tmp_path: Path) -> Any:
    """A worker whose `local` storage sits on a path that cannot hold a directory.

    The database, Kafka and Temporal are the real ones; only the disk under the
    tenant's bucket refuses to work, as a full or read-only volume would.
    """
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the storage root should be")
    queue = f"ferry-broken-{uuid.uuid4().hex[:8]}"
    providers: dict[str, StorageProvider] = {"local": LocalStorage(blocker / "storage")}
    async with ferry_worker(client, settings, queue, providers=providers):
        yield queue


async def test_a_provisioning_whose_storage_fails_leaves_nothing_behind(
    client: Client,
    broken_storage_queue: str,
    tenant_events: TopicFollower,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tenant = _new_tenant()

    result = await provision(client, broken_storage_queue, tenant)

    assert result.status == "failed"
    assert result.detail is not None and result.detail.startswith("storage failed")
    assert result.compensated == ["tenant rows"]
    assert await _tenant_row(sessionmaker, tenant) is None
    [failed] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"].startswith("tenant.provision"),
        timeout=10,
    )
    assert failed["event_type"] == "tenant.provisioning_failed"
    assert failed["detail"] == result.detail
    monitoring = client.get_workflow_handle(tenant_monitoring_id(tenant))
    with pytest.raises(Exception, match="not found"):
        await monitoring.describe()


async def test_a_paid_upgrade_changes_the_plan_and_duplicate_payments_change_nothing(
    bridge: Bridge,
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    billing_commands: TopicFollower,
    client: Client,
    task_queue: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tenant = _new_tenant()
    assert (await provision(client, task_queue, tenant)).status == "provisioned"
    upgrade = event(
        "tenant.upgrade_requested",
        tenant,
        upgrade_id="up-1",
        from_plan="free",
        to_plan="pro",
        requested_by="owner",
    )
    await send(publisher, upgrade)

    [charge] = await billing_commands.wait_for(lambda e: e["tenant_id"] == tenant)
    assert charge["event_type"] == "billing.charge_requested"
    assert (charge["upgrade_id"], charge["amount_minor"], charge["currency"]) == (
        "up-1",
        29_00,
        "EUR",
    )
    paid = event(
        "billing.payment_succeeded",
        tenant,
        payment_id="pay-1",
        upgrade_id="up-1",
        amount_minor=charge["amount_minor"],
        currency="EUR",
    )
    # The billing system delivers its event twice, then a contradicting late one.
    await send(publisher, paid)
    await send(publisher, paid)
    await send(
        publisher,
        event(
            "billing.payment_failed",
            tenant,
            payment_id="pay-1",
            upgrade_id="up-1",
            reason="card declined",
        ),
    )

    [upgraded] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"].startswith("tenant.upgrade")
    )
    assert upgraded["event_type"] == "tenant.upgraded"
    assert (upgraded["from_plan"], upgraded["to_plan"], upgraded["rolled_back"]) == (
        "free",
        "pro",
        False,
    )
    row = await _tenant_row(sessionmaker, tenant)
    assert row is not None
    assert row["plan"] == TenantPlan.PRO
    assert row["quota_bytes"] == limits_for(TenantPlan.PRO).quota_bytes
    assert row["max_file_bytes"] == limits_for(TenantPlan.PRO).max_file_bytes

    async def monitoring_knows() -> bool:
        return (await _monitoring_state(client, tenant)).plan == "pro"

    await eventually(
        monitoring_knows, "the monitoring workflow to know the usage", timeout=30, interval=0.1
    )
    handle = client.get_workflow_handle(f"tenant-upgrade/{tenant}/up-1")
    state = await handle.result()
    assert state["outcome"] == "upgraded"
    # Whichever of the three signals came after the decision was ignored.
    await eventually(
        lambda: _ignored(handle, 2), "the repeats to be ignored", timeout=30, interval=0.1
    )


async def _ignored(handle: Any, expected: int) -> bool:
    try:
        state = await handle.query("state")
    except Exception:
        return False
    return bool(state["ignored_signals"] >= expected)


async def test_a_failed_payment_leaves_the_old_plan(
    bridge: Bridge,
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    billing_commands: TopicFollower,
    client: Client,
    task_queue: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tenant = _new_tenant()
    assert (await provision(client, task_queue, tenant)).status == "provisioned"
    upgrade = event(
        "tenant.upgrade_requested",
        tenant,
        upgrade_id="up-9",
        from_plan="free",
        to_plan="enterprise",
        requested_by="owner",
    )
    await send(publisher, upgrade)
    [charge] = await billing_commands.wait_for(lambda e: e["tenant_id"] == tenant)
    assert charge["amount_minor"] == 499_00
    await send(
        publisher,
        event(
            "billing.payment_failed",
            tenant,
            payment_id="pay-9",
            upgrade_id="up-9",
            reason="card declined",
        ),
    )

    [failed] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"].startswith("tenant.upgrade")
    )
    assert failed["event_type"] == "tenant.upgrade_failed"
    assert failed["rolled_back"] is True
    assert "card declined" in failed["detail"]
    row = await _tenant_row(sessionmaker, tenant)
    assert row is not None and row["plan"] == TenantPlan.FREE


async def test_a_tenant_over_quota_has_its_next_upload_rejected(
    bridge: Bridge,
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    file_events: TopicFollower,
    client: Client,
    task_queue: str,
    local_storage: LocalStorage,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tenant = _new_tenant()
    assert (await provision(client, task_queue, tenant)).status == "provisioned"
    quota = limits_for(TenantPlan.FREE).quota_bytes
    monitoring = client.get_workflow_handle(tenant_monitoring_id(tenant))

    # What the usage meter sends when the tenant's processed files pass the quota.
    await monitoring.signal(USAGE_SIGNAL, UsageUpdate(str(uuid.uuid4()), 3, quota + 1))

    [exceeded] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"] == "tenant.quota_exceeded"
    )
    assert str(quota) in exceeded["detail"]
    row = await _tenant_row(sessionmaker, tenant)
    assert row is not None and row["over_quota"] is True

    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "one-more.txt", "text/plain", b"x" * 100
    )
    await send(publisher, upload)
    [rejected] = await file_events.wait_for(lambda e: e.get("file_id") == upload["file_id"])
    assert rejected["event_type"] == "file.rejected"
    assert rejected["reason"] == "quota_exceeded"


async def test_a_suspended_tenant_uploads_nothing_until_reactivated(
    bridge: Bridge,
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    file_events: TopicFollower,
    client: Client,
    task_queue: str,
    local_storage: LocalStorage,
    settings: Settings,
) -> None:
    tenant = _new_tenant()
    assert (await provision(client, task_queue, tenant)).status == "provisioned"

    suspension = event(
        "tenant.suspension_requested", tenant, reason="unpaid invoice", requested_by="billing"
    )
    await send(publisher, suspension)
    [suspended] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"] == "tenant.suspended"
    )
    assert (suspended["event_type"], suspended["detail"]) == ("tenant.suspended", "unpaid invoice")
    assert suspended["correlation_id"] == suspension["event_id"]

    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "while-suspended.txt", "text/plain", b"hi"
    )
    await send(publisher, upload)
    [rejected] = await file_events.wait_for(lambda e: e.get("file_id") == upload["file_id"])
    assert rejected["event_type"] == "file.rejected"
    assert "suspended" in rejected["detail"]

    await send(
        publisher,
        event("tenant.reactivation_requested", tenant, reason="paid", requested_by="billing"),
    )
    [reactivated] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"] == "tenant.reactivated"
    )
    assert reactivated["detail"] == "paid"
    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "after.txt", "text/plain", b"hello again"
    )
    await send(publisher, upload)
    [processed] = await file_events.wait_for(lambda e: e.get("file_id") == upload["file_id"])
    assert processed["event_type"] == "file.processed"


async def test_deletion_after_its_grace_period_removes_the_tenants_data(
    bridge: Bridge,
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    file_events: TopicFollower,
    client: Client,
    task_queue: str,
    local_storage: LocalStorage,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tenant = _new_tenant()
    policy = TenantPolicy(
        deletion_grace_seconds=3,
        providers=["local"],
        ingest_bucket=settings.ingest_bucket,
        quarantine_bucket=settings.quarantine_bucket,
    )
    assert (await provision(client, task_queue, tenant, policy=policy)).status == "provisioned"
    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "keep.txt", "text/plain", b"data" * 100
    )
    await send(publisher, upload)
    [processed] = await file_events.wait_for(lambda e: e.get("file_id") == upload["file_id"])
    assert processed["event_type"] == "file.processed"
    bucket = f"ferry-{tenant}"
    assert (await local_storage.list(bucket)).items

    requested = time.monotonic()
    await send(
        publisher,
        event("tenant.deletion_requested", tenant, reason="closed", requested_by="owner"),
    )

    [deleted] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"] == "tenant.deleted", timeout=60
    )
    assert time.monotonic() - requested >= policy.deletion_grace_seconds
    assert await _tenant_row(sessionmaker, tenant) is None
    assert not (await local_storage.list(bucket)).items
    assert not (await local_storage.list(settings.ingest_bucket, f"tenants/{tenant}/")).items
    monitoring = client.get_workflow_handle(tenant_monitoring_id(tenant))
    await monitoring.result()
    assert (await monitoring.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert deleted["source"] == "ferry.tenant-monitoring"
    # The receipt: one file's row and its one object (a text file has no thumbnails).
    assert deleted["verified"] is True
    assert deleted["rows_deleted"]["files"] == 1 and deleted["rows_deleted"]["tenants"] == 1
    assert deleted["objects_deleted"] == {
        f"local:{bucket}/": 1,
        f"local:{settings.quarantine_bucket}/quarantine/{tenant}/": 0,
        f"local:{settings.ingest_bucket}/tenants/{tenant}/": 0,
    }
    assert deleted["bytes_deleted"] == len(b"data" * 100)
