"""The tenant workflows' decisions, with their activities replaced by functions of the same name.

They run on Temporal's time-skipping test server, so a day's wait for a payment,
a deletion's grace period and hours of usage measurements take no wall time. The
fakes keep the tenant's row in memory, so a workflow reads back what it wrote; the
real activities are exercised in tests/integration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from waiting import eventually

from ferry.activities.database import (
    ApplyPlanInput,
    CreateTenantInput,
    CreateTenantResult,
    DeletedTenantRows,
    OverQuotaInput,
    TenantLookup,
    TenantRecord,
    TenantRef,
    TenantStatusInput,
    UsageMeasurement,
    UsageReport,
)
from ferry.activities.events import OutboundEvent, PublishedEvent
from ferry.activities.storage import ObjectCount, PrefixRequest
from ferry.contracts.enums import StorageProvider, TenantPlan, TenantStatus
from ferry.contracts.ids import event_id_for
from ferry.contracts.plans import GiB, limits_for, upgrade_price
from ferry.contracts.policy import TenantPolicy
from ferry.contracts.storage import BucketRef
from ferry.contracts.workflows import (
    TENANT_ID,
    tenant_monitoring_id,
    tenant_provisioning_id,
    tenant_upgrade_id,
)
from ferry.worker import TENANT_WORKFLOWS
from ferry.workflows import tenant_provisioning
from ferry.workflows.tenant_monitoring import (
    LifecycleRequest,
    MonitoringInput,
    MonitoringState,
    PlanChange,
    TenantMonitoringWorkflow,
    UsageUpdate,
)
from ferry.workflows.tenant_provisioning import (
    ProvisioningResult,
    TenantCreation,
    TenantProvisioningWorkflow,
)
from ferry.workflows.tenant_upgrade import (
    PaymentResult,
    TenantUpgradeWorkflow,
    UpgradeRequest,
    UpgradeState,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The calls that change a tenant's rows or storage.
WRITES = (
    "create_tenant", "create_bucket", "set_tenant_status", "apply_tenant_plan",
    "set_tenant_over_quota", "delete_tenant_rows", "delete_bucket", "delete_prefix",
)  # fmt: skip


class FakeActivities:
    """One tenant's row, bucket and outbound topics in memory; records every call in order.

    `fail` makes an activity raise, for every request or for the ones `when` picks.
    """

    def __init__(self, tenant_id: str, tenant: TenantRecord | None = None) -> None:
        self.tenant_id = tenant_id
        self.tenant = tenant
        # Processed files in the database, and the bytes in the tenant's bucket.
        self.files = 0
        self.bytes = 0
        self.stored_bytes = 0
        self.calls: list[tuple[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.failures: dict[str, tuple[Exception, Callable[[Any], bool]]] = {}
        # Cleared, it holds `apply_tenant_plan` until the test sets it.
        self.plan_gate = asyncio.Event()
        self.plan_gate.set()
        # Places (provider, bucket, prefix) a deletion emptied, and the ones that keep
        # objects whatever is deleted (as a provider that acknowledged and kept them).
        self.emptied: set[tuple[str, str, str]] = set()
        self.stubborn: dict[tuple[str, str, str], int] = {}
        # Whether the database and storage sides of provisioning were running at once.
        self.setup_started: set[str] = set()
        self.setup_together = asyncio.Event()

    def fail(
        self, name: str, error: Exception, when: Callable[[Any], bool] = lambda _: True
    ) -> None:
        self.failures[name] = (error, when)

    def requests(self, name: str) -> list[Any]:
        return [request for called, request in self.calls if called == name]

    def names(self, *names: str) -> list[str]:
        return [called for called, _ in self.calls if called in names]

    def over_quota_marks(self) -> list[bool]:
        return [request.over_quota for request in self.requests("set_tenant_over_quota")]

    def published(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event_type"] == event_type]

    def _call(self, name: str, request: Any) -> None:
        self.calls.append((name, request))
        failure = self.failures.get(name)
        if failure is not None and failure[1](request):
            raise failure[0]

    def _row(self) -> TenantRecord:
        if self.tenant is None:
            raise ApplicationError("no such tenant", type="TenantNotFound", non_retryable=True)
        return self.tenant

    def _update(self, **changes: Any) -> TenantRecord:
        self.tenant = dataclasses.replace(self._row(), **changes)
        return self.tenant

    async def _set_up(self, side: str) -> None:
        """Waits a while for the other side to start: only a parallel start sets the flag."""
        self.setup_started.add(side)
        if len(self.setup_started) == 2:
            self.setup_together.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.setup_together.wait(), timeout=5)

    def activities(self) -> list[Any]:
        @activity.defn(name="get_tenant")
        async def get_tenant(ref: TenantRef) -> TenantLookup:
            self._call("get_tenant", ref)
            return TenantLookup(found=self.tenant is not None, tenant=self.tenant)

        @activity.defn(name="create_tenant")
        async def create_tenant(request: CreateTenantInput) -> CreateTenantResult:
            await self._set_up("database")
            self._call("create_tenant", request)
            limits = limits_for(request.plan)
            self.tenant = TenantRecord(
                tenant_id=request.tenant_id,
                name=request.name,
                plan=request.plan,
                status=TenantStatus.PROVISIONING,
                region=request.region,
                admin_email=request.admin_email,
                storage_provider=request.storage_provider,
                storage_bucket=request.storage_bucket,
                quota_bytes=limits.quota_bytes,
                quota_files=limits.quota_files,
                max_file_bytes=limits.max_file_bytes,
            )
            return CreateTenantResult(self.tenant, created=True)

        @activity.defn(name="set_tenant_status")
        async def set_status(request: TenantStatusInput) -> TenantRecord:
            self._call("set_tenant_status", request)
            return self._update(status=request.status, status_reason=request.reason)

        @activity.defn(name="apply_tenant_plan")
        async def apply_plan(request: ApplyPlanInput) -> TenantRecord:
            await self.plan_gate.wait()
            self._call("apply_tenant_plan", request)
            limits = limits_for(request.plan)
            return self._update(
                plan=request.plan,
                quota_bytes=limits.quota_bytes,
                quota_files=limits.quota_files,
                max_file_bytes=limits.max_file_bytes,
            )

        @activity.defn(name="set_tenant_over_quota")
        async def set_over_quota(request: OverQuotaInput) -> TenantRecord:
            self._call("set_tenant_over_quota", request)
            return self._update(over_quota=request.over_quota)

        @activity.defn(name="delete_tenant_rows")
        async def delete_rows(ref: TenantRef) -> DeletedTenantRows:
            self._call("delete_tenant_rows", ref)
            deleted = DeletedTenantRows(ref.tenant_id, {"tenants": int(self.tenant is not None)})
            self.tenant = None
            return deleted

        @activity.defn(name="measure_tenant_usage")
        async def measure_usage(ref: TenantRef) -> UsageMeasurement:
            self._call("measure_tenant_usage", ref)
            row = self._row()
            return UsageMeasurement(
                tenant_id=ref.tenant_id,
                files=self.files,
                bytes=self.bytes,
                quota_bytes=row.quota_bytes,
                quota_files=row.quota_files,
                plan=row.plan,
                over_quota=row.over_quota,
            )

        @activity.defn(name="record_usage")
        async def record_usage(report: UsageReport) -> UsageReport:
            self._call("record_usage", report)
            return report

        @activity.defn(name="create_bucket")
        async def create_bucket(request: BucketRef) -> BucketRef:
            await self._set_up("storage")
            self._call("create_bucket", request)
            return request

        @activity.defn(name="delete_bucket")
        async def delete_bucket(request: BucketRef) -> ObjectCount:
            self._call("delete_bucket", request)
            self.emptied.add((request.provider, request.bucket, ""))
            if request.provider != "local":
                return ObjectCount(0, 0)
            return ObjectCount(self.files, self.stored_bytes)

        @activity.defn(name="measure_prefix")
        async def measure_prefix(request: PrefixRequest) -> ObjectCount:
            self._call("measure_prefix", request)
            place = (request.provider, request.bucket, request.prefix)
            if place in self.stubborn:
                return ObjectCount(self.stubborn[place], 1)
            if place in self.emptied:
                return ObjectCount(0, 0)
            return ObjectCount(self.files, self.stored_bytes)

        @activity.defn(name="delete_prefix")
        async def delete_prefix(request: PrefixRequest) -> ObjectCount:
            self._call("delete_prefix", request)
            self.emptied.add((request.provider, request.bucket, request.prefix))
            return ObjectCount(1, 10) if "quarantine" in request.bucket else ObjectCount(0, 0)

        @activity.defn(name="count_tenant_rows")
        async def count_rows(ref: TenantRef) -> DeletedTenantRows:
            self._call("count_tenant_rows", ref)
            return DeletedTenantRows(ref.tenant_id, {"tenants": int(self.tenant is not None)})

        @activity.defn(name="publish_event")
        async def publish(event: OutboundEvent) -> PublishedEvent:
            self._call("publish_event", event)
            self.events.append(event.fields)
            return PublishedEvent("ferry.tenant-events.v1", 0, len(self.events))

        return [
            get_tenant, create_tenant, set_status, apply_plan, set_over_quota, delete_rows,
            measure_usage, record_usage, create_bucket, delete_bucket, measure_prefix,
            delete_prefix, count_rows, publish,
        ]  # fmt: skip


def a_tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def a_tenant(
    tenant_id: str, plan: TenantPlan = TenantPlan.FREE, status: TenantStatus = TenantStatus.ACTIVE
) -> TenantRecord:
    limits = limits_for(plan)
    return TenantRecord(
        tenant_id=tenant_id,
        name="Acme",
        plan=plan,
        status=status,
        region="local",
        admin_email=f"admin@{tenant_id}.example",
        storage_provider=StorageProvider.LOCAL,
        storage_bucket=f"ferry-{tenant_id}",
        quota_bytes=limits.quota_bytes,
        quota_files=limits.quota_files,
        max_file_bytes=limits.max_file_bytes,
    )


@asynccontextmanager
async def tenant_worker(env: WorkflowEnvironment, fakes: FakeActivities) -> AsyncIterator[str]:
    """A worker for the tenant workflows on a task queue of its own."""
    queue = f"tenants-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=queue, workflows=TENANT_WORKFLOWS, activities=fakes.activities()
    ):
        try:
            yield queue
        finally:
            # A monitoring workflow never ends by itself; its timers must not fire into
            # the tests that come after.
            await stop_monitoring(env, fakes.tenant_id)


# The last event of a monitoring workflow that has nothing in flight.
IDLE = {EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED}


async def stop_monitoring(env: WorkflowEnvironment, tenant_id: str) -> None:
    """Terminates the tenant's monitoring workflow, if it runs, once it waits on its timer.

    Terminated with an activity or a workflow task in flight, a workflow leaves the
    test server unable to skip time again, for every later test.
    """
    handle = env.client.get_workflow_handle(tenant_monitoring_id(tenant_id))

    async def running() -> bool:
        try:
            description = await handle.describe()
        except RPCError:
            return False
        return description.status == WorkflowExecutionStatus.RUNNING

    async def settled() -> bool:
        if not await running():
            return True
        events = [event async for event in handle.fetch_history_events()]
        return events[-1].event_type in IDLE

    with contextlib.suppress(AssertionError):
        await eventually(settled, "the monitoring workflow to wait on its timer", timeout=10)
    if await running():
        await handle.terminate(reason="the test is over")


# ---------------------------------------------------------------------------
# Provisioning
# ---------------------------------------------------------------------------


def creation(tenant_id: str) -> TenantCreation:
    return TenantCreation(
        event_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        name="Acme",
        plan="free",
        region="local",
        admin_email=f"admin@{tenant_id}.example",
        storage_provider="local",
        policy=TenantPolicy(),
    )


async def provision(
    env: WorkflowEnvironment, fakes: FakeActivities, request: TenantCreation
) -> ProvisioningResult:
    async with tenant_worker(env, fakes) as queue:
        return await env.client.execute_workflow(
            TenantProvisioningWorkflow.run,
            request,
            id=tenant_provisioning_id(request.tenant_id),
            task_queue=queue,
        )


async def assert_not_started(env: WorkflowEnvironment, workflow_id: str) -> None:
    try:
        await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
    else:
        raise AssertionError(f"{workflow_id} should not have been started")


async def test_a_new_tenant_gets_rows_and_bucket_together_then_monitoring_and_a_welcome(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id)
    request = creation(tenant_id)
    workflow_id = tenant_provisioning_id(tenant_id)

    async with tenant_worker(env, fakes) as queue:
        result = await env.client.execute_workflow(
            TenantProvisioningWorkflow.run, request, id=workflow_id, task_queue=queue
        )
        monitoring = env.client.get_workflow_handle_for(
            TenantMonitoringWorkflow.run, tenant_monitoring_id(tenant_id)
        )
        await eventually(
            lambda: fakes.published("tenant.usage_reported"), "the first usage measurement"
        )
        watched = await monitoring.query(TenantMonitoringWorkflow.state)
        description = await monitoring.describe()

    bucket = f"ferry-{tenant_id}"
    assert (result.status, result.tenant_id, result.bucket, result.provider, result.detail) == (
        "provisioned", tenant_id, bucket, "local", None,
    )  # fmt: skip
    assert fakes.setup_together.is_set(), "the rows and the bucket were not created in parallel"
    [rows] = fakes.requests("create_tenant")
    assert (rows.tenant_id, rows.plan, rows.admin_email, rows.storage_bucket) == (
        tenant_id, TenantPlan.FREE, request.admin_email, bucket,
    )  # fmt: skip
    assert fakes.requests("create_bucket") == [BucketRef("local", bucket)]
    assert fakes.requests("set_tenant_status") == [
        TenantStatusInput(tenant_id, TenantStatus.ACTIVE)
    ]
    assert fakes.names("delete_bucket", "delete_tenant_rows") == []

    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.typed_search_attributes.get(TENANT_ID) == tenant_id
    assert (watched.status, watched.plan, watched.provider, watched.bucket) == (
        "active", "free", "local", bucket,
    )  # fmt: skip
    assert watched.quota_bytes == limits_for(TenantPlan.FREE).quota_bytes

    provisioning = [e for e in fakes.events if e["source"] == tenant_provisioning.SOURCE]
    welcome, provisioned = provisioning
    assert welcome["event_type"] == "notification.requested"
    assert welcome["event_id"] == event_id_for(workflow_id, "notification.requested")
    assert (welcome["channel"], welcome["recipient"], welcome["template"]) == (
        "email", request.admin_email, "tenant-welcome",
    )  # fmt: skip
    assert welcome["params"] == {"tenant_id": tenant_id, "name": "Acme", "plan": "free"}
    assert provisioned["event_type"] == "tenant.provisioned"
    assert provisioned["event_id"] == event_id_for(workflow_id, "tenant.provisioned")
    assert provisioned["storage"] == {"provider": "local", "bucket": bucket}
    assert (provisioned["plan"], provisioned["detail"]) == ("free", None)
    assert {welcome["correlation_id"], provisioned["correlation_id"]} == {request.event_id}
    assert result.events == [welcome["event_id"], provisioned["event_id"]]


async def assert_reported_failure(
    env: WorkflowEnvironment, fakes: FakeActivities, result: ProvisioningResult
) -> None:
    """One `tenant.provisioning_failed` with the reason, no activation, no monitoring."""
    assert result.status == "failed"
    [failed] = fakes.events
    assert failed["event_type"] == "tenant.provisioning_failed"
    assert failed["event_id"] == event_id_for(
        tenant_provisioning_id(fakes.tenant_id), "tenant.provisioning_failed"
    )
    assert failed["detail"] == result.detail
    assert failed["storage"] == {"provider": "local", "bucket": f"ferry-{fakes.tenant_id}"}
    assert result.events == [failed["event_id"]]
    assert fakes.requests("set_tenant_status") == []
    await assert_not_started(env, tenant_monitoring_id(fakes.tenant_id))


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (ApplicationError("bucket name is taken", type="BucketRefused", non_retryable=True), 1),
        (ApplicationError("storage is unavailable", type="StorageUnavailable"), 5),
    ],
    ids=["refused", "unavailable-until-attempts-run-out"],
)
async def test_a_bucket_that_could_not_be_created_undoes_the_rows_and_reports_why(
    env: WorkflowEnvironment, error: ApplicationError, attempts: int
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id)
    fakes.fail("create_bucket", error)

    result = await provision(env, fakes, creation(tenant_id))

    assert result.detail == f"storage failed: {error.type}: {error.message}"
    assert len(fakes.requests("create_bucket")) == attempts
    assert len(fakes.requests("create_tenant")) == 1
    # A bucket that was refused every time was never made: only the rows are undone.
    assert result.compensated == ["tenant rows"]
    assert fakes.requests("delete_tenant_rows") == [TenantRef(tenant_id)]
    assert fakes.requests("delete_bucket") == []
    assert fakes.tenant is None
    await assert_reported_failure(env, fakes, result)


async def test_an_existing_tenant_is_refused_and_left_untouched(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    existing = a_tenant(tenant_id, plan=TenantPlan.PRO)
    fakes = FakeActivities(tenant_id, tenant=existing)

    result = await provision(env, fakes, creation(tenant_id))

    assert (result.status, result.detail, result.compensated) == (
        "failed", f"tenant {tenant_id!r} exists already", [],
    )  # fmt: skip
    assert fakes.names(*WRITES) == []
    assert fakes.tenant == existing
    await assert_reported_failure(env, fakes, result)


async def test_a_tenant_id_that_is_not_a_slug_fails_validation_before_anything_is_created(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = f"Acme_{uuid.uuid4().hex[:6]}"
    fakes = FakeActivities(tenant_id)

    result = await provision(env, fakes, creation(tenant_id))

    assert result.detail == f"tenant id {tenant_id!r} is not a slug of 2 to 57 characters"
    assert [name for name, _ in fakes.calls] == ["publish_event"]  # not even a look-up
    await assert_reported_failure(env, fakes, result)


# ---------------------------------------------------------------------------
# Upgrade
# ---------------------------------------------------------------------------


def upgrade(tenant_id: str, from_plan: str = "free", to_plan: str = "pro") -> UpgradeRequest:
    return UpgradeRequest(
        event_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        upgrade_id=f"up-{uuid.uuid4().hex[:8]}",
        from_plan=from_plan,
        to_plan=to_plan,
        requested_by="owner-1",
        policy=TenantPolicy(),
    )


def payment(
    request: UpgradeRequest,
    succeeded: bool = True,
    reason: str | None = None,
    upgrade_id: str | None = None,
) -> PaymentResult:
    return PaymentResult(
        event_id=str(uuid.uuid4()),
        payment_id="pay-1",
        succeeded=succeeded,
        upgrade_id=upgrade_id or request.upgrade_id,
        amount_minor=29_00 if succeeded else None,
        currency="EUR",
        reason=reason,
    )


def upgrade_workflow_id(request: UpgradeRequest) -> str:
    return tenant_upgrade_id(request.tenant_id, request.upgrade_id)


async def start_upgrade(
    env: WorkflowEnvironment, queue: str, request: UpgradeRequest
) -> WorkflowHandle[Any, UpgradeState]:
    return await env.client.start_workflow(
        TenantUpgradeWorkflow.run, request, id=upgrade_workflow_id(request), task_queue=queue
    )


async def charge_requested(fakes: FakeActivities) -> dict[str, Any]:
    await eventually(lambda: fakes.published("billing.charge_requested"), "the charge request")
    [charge] = fakes.published("billing.charge_requested")
    return charge


def failed_upgrade(
    fakes: FakeActivities, state: UpgradeState, detail: str, *, rolled_back: bool
) -> dict[str, Any]:
    """The upgrade failed with `detail`, in its state and in its one `tenant.upgrade_failed`."""
    assert (state.outcome, state.rolled_back, state.detail) == ("failed", rolled_back, detail)
    [failed] = fakes.published("tenant.upgrade_failed")
    assert (failed["rolled_back"], failed["detail"]) == (rolled_back, detail)
    return failed


async def test_a_paid_upgrade_applies_the_plan_and_tells_the_monitoring_workflow(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    fakes.files, fakes.bytes = 200, 6 * GiB  # over the free plan's 5 GiB
    request = upgrade(tenant_id)
    workflow_id = upgrade_workflow_id(request)

    async with tenant_worker(env, fakes) as queue:
        monitoring = await start_monitoring(env, queue, tenant_id, TenantPolicy())
        await eventually(
            lambda: fakes.over_quota_marks() == [True], "the tenant to be marked over quota"
        )
        handle = await start_upgrade(env, queue, request)
        charge = await charge_requested(fakes)
        paid = payment(request)
        await handle.signal(TenantUpgradeWorkflow.payment_result, paid)
        state = await handle.result()

        # The plan change reaches the monitoring workflow, whose quota grows: the mark goes.
        await eventually(
            lambda: fakes.over_quota_marks() == [True, False], "the over-quota mark to be lifted"
        )
        watched = await monitoring.query(TenantMonitoringWorkflow.state)
        child = await env.client.get_workflow_handle(f"{workflow_id}/apply").describe()

    assert child.status == WorkflowExecutionStatus.COMPLETED
    assert child.typed_search_attributes.get(TENANT_ID) == tenant_id
    assert charge["event_id"] == event_id_for(workflow_id, "billing.charge_requested")
    assert charge["payment_request_id"] == event_id_for(workflow_id, "payment-request")
    assert charge["amount_minor"] == upgrade_price(TenantPlan.FREE, TenantPlan.PRO) == 29_00
    assert (charge["currency"], charge["upgrade_id"], charge["correlation_id"]) == (
        "EUR", request.upgrade_id, request.event_id,
    )  # fmt: skip
    assert fakes.requests("apply_tenant_plan") == [ApplyPlanInput(tenant_id, TenantPlan.PRO)]
    assert fakes.tenant is not None and fakes.tenant.plan == TenantPlan.PRO
    [upgraded] = fakes.published("tenant.upgraded")
    assert upgraded["event_id"] == event_id_for(workflow_id, "tenant.upgraded")
    assert (upgraded["from_plan"], upgraded["to_plan"], upgraded["upgrade_id"]) == (
        "free", "pro", request.upgrade_id,
    )  # fmt: skip
    assert (upgraded["rolled_back"], upgraded["detail"]) == (False, None)
    assert fakes.published("tenant.upgrade_failed") == []
    assert (state.outcome, state.payment, state.ignored_signals) == ("upgraded", paid, 0)
    assert state.payment_request_id == charge["payment_request_id"]
    assert state.events == [charge["event_id"], upgraded["event_id"]]
    assert event_id_for(workflow_id, "plan-apply") in watched.seen.ids
    assert (watched.plan, watched.quota_bytes, watched.over_quota) == (
        "pro", limits_for(TenantPlan.PRO).quota_bytes, False,
    )  # fmt: skip
    assert len(fakes.published("tenant.quota_exceeded")) == 1


async def test_a_failed_payment_leaves_the_plan_as_it_was(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    request = upgrade(tenant_id)

    async with tenant_worker(env, fakes) as queue:
        handle = await start_upgrade(env, queue, request)
        await charge_requested(fakes)
        declined = payment(request, succeeded=False, reason="card declined")
        await handle.signal(TenantUpgradeWorkflow.payment_result, declined)
        state = await handle.result()

    detail = "payment failed: card declined; the plan stays as it was"
    failed = failed_upgrade(fakes, state, detail, rolled_back=True)
    assert fakes.requests("apply_tenant_plan") == []
    assert fakes.tenant is not None and fakes.tenant.plan == TenantPlan.FREE
    assert [e["event_type"] for e in fakes.events] == [
        "billing.charge_requested", "tenant.upgrade_failed",
    ]  # fmt: skip
    assert failed["event_id"] == event_id_for(upgrade_workflow_id(request), "tenant.upgrade_failed")


async def test_no_payment_within_a_day_fails_the_upgrade_without_waiting_a_day(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    request = upgrade(tenant_id)
    assert request.policy is not None and request.policy.payment_timeout_seconds == 86400
    started = asyncio.get_running_loop().time()

    async with tenant_worker(env, fakes) as queue:
        handle = await start_upgrade(env, queue, request)
        state = await handle.result()

    # A day for the payment, and a day more for a late one to refund: no wall time.
    assert asyncio.get_running_loop().time() - started < 60
    detail = "no payment result within 86400 s; the plan stays as it was"
    failed = failed_upgrade(fakes, state, detail, rolled_back=True)
    assert state.payment is None
    assert fakes.requests("apply_tenant_plan") == []
    assert [e["event_type"] for e in fakes.events] == [
        "billing.charge_requested", "tenant.upgrade_failed",
    ]  # fmt: skip
    assert failed["event_id"] == event_id_for(upgrade_workflow_id(request), "tenant.upgrade_failed")


async def test_an_upgrade_that_timed_out_shows_its_outcome_once_no_late_payment_came(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    request = upgrade(tenant_id)

    async with tenant_worker(env, fakes) as queue:
        state = await (await start_upgrade(env, queue, request)).result()

    # The wait for a late payment is over: the stage is the outcome, as it is after a
    # late payment was refunded.
    assert state.stage == f"failed: {state.detail}"


async def test_a_payment_that_arrives_after_the_timeout_is_refunded(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    request = upgrade(tenant_id)

    async with tenant_worker(env, fakes) as queue:
        handle = await start_upgrade(env, queue, request)
        charge = await charge_requested(fakes)
        await env.sleep(24 * 3600)
        await eventually(lambda: fakes.published("tenant.upgrade_failed"), "the timeout")
        late = payment(request)
        await handle.signal(TenantUpgradeWorkflow.payment_result, late)
        state = await handle.result()

    assert (state.outcome, state.rolled_back, state.payment) == ("failed", True, late)
    assert state.stage == f"failed: {state.detail}"
    assert fakes.requests("apply_tenant_plan") == []
    assert [e["event_type"] for e in fakes.events] == [
        "billing.charge_requested", "tenant.upgrade_failed", "billing.refund_requested",
    ]  # fmt: skip
    [refund] = fakes.published("billing.refund_requested")
    assert refund["event_id"] == event_id_for(
        upgrade_workflow_id(request), "billing.refund_requested"
    )
    assert (refund["payment_request_id"], refund["payment_id"], refund["amount_minor"]) == (
        charge["payment_request_id"], "pay-1", 29_00,
    )  # fmt: skip
    assert refund["reason"] == "the payment arrived after the upgrade timed out"


async def test_repeated_and_late_payment_signals_change_nothing(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    request = upgrade(tenant_id)
    fakes.plan_gate.clear()  # the upgrade cannot finish before every signal is in

    async with tenant_worker(env, fakes) as queue:
        handle = await start_upgrade(env, queue, request)
        await charge_requested(fakes)
        paid = payment(request)
        for _ in range(3):
            await handle.signal(TenantUpgradeWorkflow.payment_result, paid)
        late = payment(request, succeeded=False, reason="card declined")
        await handle.signal(TenantUpgradeWorkflow.payment_result, late)

        async def all_ignored() -> bool:
            state = await handle.query(TenantUpgradeWorkflow.state)
            return state.ignored_signals == 3

        await eventually(all_ignored, "the repeats to be counted")
        fakes.plan_gate.set()
        state = await handle.result()

    assert (state.outcome, state.payment, state.ignored_signals) == ("upgraded", paid, 3)
    assert fakes.requests("apply_tenant_plan") == [ApplyPlanInput(tenant_id, TenantPlan.PRO)]
    assert len(fakes.published("tenant.upgraded")) == 1
    assert fakes.published("tenant.upgrade_failed") == []


async def test_a_payment_for_another_upgrade_does_not_decide_this_one(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    request = upgrade(tenant_id)

    async with tenant_worker(env, fakes) as queue:
        handle = await start_upgrade(env, queue, request)
        await charge_requested(fakes)
        other = payment(request, succeeded=False, reason="other", upgrade_id="up-other")
        await handle.signal(TenantUpgradeWorkflow.payment_result, other)
        paid = payment(request)
        await handle.signal(TenantUpgradeWorkflow.payment_result, paid)
        state = await handle.result()

    assert (state.outcome, state.payment, state.ignored_signals) == ("upgraded", paid, 1)


async def test_a_plan_that_cannot_be_applied_is_rolled_back_and_refunded(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    fakes.fail(
        "apply_tenant_plan",
        ApplicationError(
            "the plan's limits are refused", type="InvalidTransition", non_retryable=True
        ),
        when=lambda request: request.plan == TenantPlan.PRO,
    )
    request = upgrade(tenant_id)
    workflow_id = upgrade_workflow_id(request)

    # No monitoring workflow runs: the restore's signal to it fails and is only logged.
    async with tenant_worker(env, fakes) as queue:
        handle = await start_upgrade(env, queue, request)
        charge = await charge_requested(fakes)
        paid = payment(request)
        await handle.signal(TenantUpgradeWorkflow.payment_result, paid)
        state = await handle.result()

    reason = "applying the plan failed: InvalidTransition: the plan's limits are refused"
    detail = f"{reason}; the old plan is restored and refunded"
    failed_upgrade(fakes, state, detail, rolled_back=True)
    assert fakes.requests("apply_tenant_plan") == [
        ApplyPlanInput(tenant_id, TenantPlan.PRO), ApplyPlanInput(tenant_id, TenantPlan.FREE),
    ]  # fmt: skip
    assert fakes.tenant is not None and fakes.tenant.plan == TenantPlan.FREE
    assert [e["event_type"] for e in fakes.events] == [
        "billing.charge_requested", "billing.refund_requested", "tenant.upgrade_failed",
    ]  # fmt: skip
    [refund] = fakes.published("billing.refund_requested")
    assert refund["event_id"] == event_id_for(workflow_id, "billing.refund_requested")
    assert (refund["payment_request_id"], refund["payment_id"], refund["upgrade_id"]) == (
        charge["payment_request_id"], "pay-1", request.upgrade_id,
    )  # fmt: skip
    assert (refund["amount_minor"], refund["currency"], refund["reason"]) == (29_00, "EUR", reason)
    assert fakes.published("tenant.upgraded") == []


async def test_a_plan_that_cannot_be_restored_either_is_refunded_and_not_called_rolled_back(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    fakes.fail(
        "apply_tenant_plan",
        ApplicationError("the database refused", type="InvalidTransition", non_retryable=True),
    )
    request = upgrade(tenant_id)

    async with tenant_worker(env, fakes) as queue:
        handle = await start_upgrade(env, queue, request)
        await charge_requested(fakes)
        await handle.signal(TenantUpgradeWorkflow.payment_result, payment(request))
        state = await handle.result()

    reason = "applying the plan failed: InvalidTransition: the database refused"
    detail = (
        f"{reason}; restoring the free plan failed too "
        "(InvalidTransition: the database refused); refunded"
    )
    failed_upgrade(fakes, state, detail, rolled_back=False)
    assert [r.plan for r in fakes.requests("apply_tenant_plan")] == ["pro", "free"]
    assert [e["event_type"] for e in fakes.events] == [
        "billing.charge_requested", "billing.refund_requested", "tenant.upgrade_failed",
    ]  # fmt: skip
    [refund] = fakes.published("billing.refund_requested")
    assert (refund["reason"], refund["amount_minor"]) == (reason, 29_00)


@pytest.mark.parametrize(
    ("plan", "status", "from_plan", "to_plan", "detail"),
    [
        ("pro", "active", "free", "enterprise", "the tenant is on the pro plan, not free"),
        ("pro", "active", "pro", "free", "free is not a bigger plan than pro"),
        ("free", "suspended", "free", "pro", "the tenant is suspended"),
    ],
    ids=["not-on-from-plan", "downgrade", "suspended"],
)
async def test_an_invalid_upgrade_is_refused_without_a_charge(
    env: WorkflowEnvironment,
    plan: str,
    status: str,
    from_plan: str,
    to_plan: str,
    detail: str,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, a_tenant(tenant_id, TenantPlan(plan), TenantStatus(status)))
    request = upgrade(tenant_id, from_plan, to_plan)

    async with tenant_worker(env, fakes) as queue:
        state = await (await start_upgrade(env, queue, request)).result()

    failed = failed_upgrade(fakes, state, detail, rolled_back=False)
    assert state.payment_request_id is None
    assert fakes.events == [failed]
    assert failed["event_id"] == event_id_for(upgrade_workflow_id(request), "tenant.upgrade_failed")
    assert (failed["from_plan"], failed["to_plan"]) == (from_plan, to_plan)
    assert fakes.names(*WRITES) == []


# ---------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------


async def start_monitoring(
    env: WorkflowEnvironment, queue: str, tenant_id: str, policy: TenantPolicy
) -> WorkflowHandle[Any, MonitoringState]:
    """Starts the monitoring. The handle names no run, so its queries and signals reach
    the latest run after continue-as-new; it is the one whose `result()` skips time."""
    return await env.client.start_workflow(
        TenantMonitoringWorkflow.run,
        MonitoringInput(tenant_id, policy),
        id=tenant_monitoring_id(tenant_id),
        task_queue=queue,
    )


async def measured(fakes: FakeActivities, times: int) -> None:
    await eventually(
        lambda: len(fakes.published("tenant.usage_reported")) >= times,
        f"{times} usage measurements",
    )


async def test_monitoring_measures_every_interval_and_continues_as_new_before_history_grows(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    fakes.files, fakes.bytes, fakes.stored_bytes = 12, 3_000, 4_000
    policy = TenantPolicy(usage_interval_seconds=60, history_limit=150)
    workflow_id = tenant_monitoring_id(tenant_id)

    async with tenant_worker(env, fakes) as queue:
        monitoring = await start_monitoring(env, queue, tenant_id, policy)
        await measured(fakes, 1)
        first_run = (await monitoring.describe()).run_id
        await env.sleep(60 * 60)
        await measured(fakes, 50)
        watched = await monitoring.query(TenantMonitoringWorkflow.state)
        description = await monitoring.describe()

    assert watched.runs > 1
    assert description.run_id != first_run
    assert description.status == WorkflowExecutionStatus.RUNNING
    # The carried state is trusted: the tenant is read once, not once per run.
    assert fakes.requests("get_tenant") == [TenantRef(tenant_id)]
    assert (watched.files, watched.bytes, watched.status) == (12, 4_000, "active")

    reports = fakes.published("tenant.usage_reported")
    ids = [report["event_id"] for report in reports]
    assert ids == [
        event_id_for(workflow_id, "tenant.usage_reported", sequence)
        for sequence in range(len(reports))
    ]
    assert len(set(ids)) == len(ids)
    assert {(r["files"], r["bytes"], r["plan"]) for r in reports} == {(12, 4_000, "free")}
    recorded: list[UsageReport] = fakes.requests("record_usage")[: len(reports)]
    assert len(recorded) == len(reports)
    for earlier, later in itertools.pairwise(recorded):
        assert later.window_start == earlier.window_end
        assert later.window_end - later.window_start >= timedelta(seconds=60)
    for report, record in zip(reports, recorded, strict=True):
        assert record.window_start == EPOCH + timedelta(milliseconds=report["window_start"])
        assert record.window_end == EPOCH + timedelta(milliseconds=report["window_end"])


async def test_usage_over_quota_marks_the_tenant_once_and_lifts_the_mark_when_it_falls(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))  # free: 5 GiB
    fakes.files, fakes.bytes = 100, 1 * GiB
    policy = TenantPolicy(usage_interval_seconds=60)
    workflow_id = tenant_monitoring_id(tenant_id)
    quota = limits_for(TenantPlan.FREE)

    async with tenant_worker(env, fakes) as queue:
        monitoring = await start_monitoring(env, queue, tenant_id, policy)
        await measured(fakes, 1)
        assert fakes.over_quota_marks() == []

        fakes.bytes = 6 * GiB
        await env.sleep(60)
        await eventually(lambda: fakes.over_quota_marks() == [True], "the over-quota mark")
        await env.sleep(60)
        await measured(fakes, 3)  # still over: no new mark, no new event
        fakes.bytes = 2 * GiB
        await env.sleep(60)
        await eventually(lambda: fakes.over_quota_marks() == [True, False], "the mark to be lifted")
        assert len(fakes.published("tenant.quota_exceeded")) == 1

        # The meter's running totals pass the quota between two measurements.
        update = UsageUpdate(event_id=str(uuid.uuid4()), files=150, bytes=7 * GiB)
        await monitoring.signal(TenantMonitoringWorkflow.usage_updated, update)
        await eventually(
            lambda: fakes.over_quota_marks() == [True, False, True], "the mark from the meter"
        )
        await env.sleep(60)  # the next measurement sees 2 GiB again
        await eventually(
            lambda: fakes.over_quota_marks() == [True, False, True, False], "the mark lifted again"
        )

        # A repeat of the meter's event is ignored; the plan change after it is acted on.
        measurements = len(fakes.requests("measure_tenant_usage"))
        await monitoring.signal(TenantMonitoringWorkflow.usage_updated, update)
        await monitoring.signal(
            TenantMonitoringWorkflow.plan_changed, PlanChange(str(uuid.uuid4()), "free")
        )
        await eventually(
            lambda: len(fakes.requests("measure_tenant_usage")) > measurements,
            "the plan change to be acted on",
        )
        watched = await monitoring.query(TenantMonitoringWorkflow.state)

    assert fakes.over_quota_marks() == [True, False, True, False]
    assert fakes.tenant is not None and not fakes.tenant.over_quota
    assert not watched.over_quota
    first, second = fakes.published("tenant.quota_exceeded")
    assert first["event_id"] == event_id_for(workflow_id, "tenant.quota_exceeded")
    assert first["correlation_id"] is None
    assert first["detail"] == (
        f"100 files and {6 * GiB} bytes used; the free plan allows "
        f"{quota.quota_files} files and {quota.quota_bytes} bytes"
    )
    assert second["event_id"] == event_id_for(workflow_id, "tenant.quota_exceeded", 1)
    assert second["correlation_id"] == update.event_id
    assert second["detail"].startswith(f"150 files and {7 * GiB} bytes used")


async def test_a_tenant_is_suspended_reactivated_and_deleted_only_after_its_grace_period(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    grace = 24 * 3600
    policy = TenantPolicy(deletion_grace_seconds=grace, providers=["local", "s3"])
    workflow_id = tenant_monitoring_id(tenant_id)

    def statuses() -> list[tuple[str, str | None]]:
        return [(str(r.status), r.reason) for r in fakes.requests("set_tenant_status")]

    suspend = LifecycleRequest(str(uuid.uuid4()), "suspend", "billing", reason="unpaid invoice")
    reactivate = LifecycleRequest(str(uuid.uuid4()), "reactivate", "billing")
    delete = LifecycleRequest(str(uuid.uuid4()), "delete", "owner-1", reason="closing")
    removals = ("delete_bucket", "delete_prefix", "delete_tenant_rows")

    async with tenant_worker(env, fakes) as queue:
        monitoring = await start_monitoring(env, queue, tenant_id, policy)
        await measured(fakes, 1)

        await monitoring.signal(TenantMonitoringWorkflow.lifecycle, suspend)
        await eventually(lambda: fakes.published("tenant.suspended"), "the suspension")
        await monitoring.signal(TenantMonitoringWorkflow.lifecycle, reactivate)
        await eventually(lambda: fakes.published("tenant.reactivated"), "the reactivation")
        # The suspension again, as Kafka may redeliver it: the tenant stays active.
        await monitoring.signal(TenantMonitoringWorkflow.lifecycle, suspend)
        await monitoring.signal(TenantMonitoringWorkflow.lifecycle, delete)
        await eventually(lambda: len(statuses()) == 3, "the deletion request")
        assert statuses() == [
            ("suspended", "unpaid invoice"), ("active", None), ("deleting", "closing"),
        ]  # fmt: skip

        await env.sleep(grace - 600)
        assert fakes.names(*removals) == []
        assert fakes.tenant is not None and fakes.tenant.status == TenantStatus.DELETING
        watched = await monitoring.query(TenantMonitoringWorkflow.state)
        assert watched.status == "deleting"

        final = await monitoring.result()

    assert final.status == "deleted"
    bucket = f"ferry-{tenant_id}"
    # The bucket on each provider (an upload may have failed over), the tenant's objects
    # in the shared quarantine and ingest buckets on each provider, then the rows.
    assert fakes.names(*removals) == [
        "delete_bucket", "delete_bucket",
        "delete_prefix", "delete_prefix", "delete_prefix", "delete_prefix",
        "delete_tenant_rows",
    ]  # fmt: skip
    assert fakes.requests("delete_bucket") == [
        BucketRef("local", bucket), BucketRef("s3", bucket),
    ]  # fmt: skip
    assert fakes.requests("delete_prefix") == [
        PrefixRequest("local", "ferry-quarantine", f"quarantine/{tenant_id}/"),
        PrefixRequest("local", "ferry-ingest", f"tenants/{tenant_id}/"),
        PrefixRequest("s3", "ferry-quarantine", f"quarantine/{tenant_id}/"),
        PrefixRequest("s3", "ferry-ingest", f"tenants/{tenant_id}/"),
    ]
    assert fakes.requests("delete_tenant_rows") == [TenantRef(tenant_id)]
    assert fakes.tenant is None

    [suspended] = fakes.published("tenant.suspended")
    assert suspended["event_id"] == event_id_for(workflow_id, "tenant.suspended")
    assert (suspended["correlation_id"], suspended["detail"]) == (
        suspend.event_id, "unpaid invoice",
    )  # fmt: skip
    [reactivated] = fakes.published("tenant.reactivated")
    assert reactivated["event_id"] == event_id_for(workflow_id, "tenant.reactivated")
    assert reactivated["correlation_id"] == reactivate.event_id
    [deleted] = fakes.published("tenant.deleted")
    assert deleted["event_id"] == event_id_for(workflow_id, "tenant.deleted")
    assert deleted["tenant_id"] == tenant_id
    assert fakes.events[-1] is deleted
    # The receipt: what each place and table gave up, after a fresh look found nothing left.
    assert deleted["rows_deleted"] == {"tenants": 1}
    assert deleted["objects_deleted"] == {
        f"local:{bucket}/": fakes.files, f"s3:{bucket}/": 0,
        f"local:ferry-quarantine/quarantine/{tenant_id}/": 1,
        f"local:ferry-ingest/tenants/{tenant_id}/": 0,
        f"s3:ferry-quarantine/quarantine/{tenant_id}/": 1,
        f"s3:ferry-ingest/tenants/{tenant_id}/": 0,
    }  # fmt: skip
    assert deleted["bytes_deleted"] == fakes.stored_bytes + 20
    assert deleted["verified"] is True
    assert deleted["detail"].endswith("verified: no row and no object left")
    looked = fakes.requests("measure_prefix")[-6:]
    assert looked == [
        PrefixRequest("local", bucket, ""), PrefixRequest("s3", bucket, ""),
        *fakes.requests("delete_prefix"),
    ]  # fmt: skip
    assert fakes.requests("count_tenant_rows") == [TenantRef(tenant_id)]


async def test_a_deletion_that_leaves_objects_behind_fails_loudly_and_announces_nothing(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    # The provider says the prefix is deleted, and a fresh listing still finds two objects.
    fakes.stubborn[("local", "ferry-ingest", f"tenants/{tenant_id}/")] = 2
    policy = TenantPolicy(deletion_grace_seconds=60, providers=["local"])
    delete = LifecycleRequest(str(uuid.uuid4()), "delete", "owner-1", reason="closing")

    async with tenant_worker(env, fakes) as queue:
        monitoring = await start_monitoring(env, queue, tenant_id, policy)
        await measured(fakes, 1)
        await monitoring.signal(TenantMonitoringWorkflow.lifecycle, delete)
        with pytest.raises(WorkflowFailureError) as failed:
            await monitoring.result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DeletionIncomplete"
    assert cause.message == (
        f"tenant {tenant_id} not deleted: 2 objects in local:ferry-ingest/tenants/{tenant_id}/"
    )
    assert fakes.published("tenant.deleted") == []


async def test_a_reactivation_during_the_grace_period_cancels_the_deletion(
    env: WorkflowEnvironment,
) -> None:
    tenant_id = a_tenant_id()
    fakes = FakeActivities(tenant_id, tenant=a_tenant(tenant_id))
    grace = 24 * 3600
    policy = TenantPolicy(deletion_grace_seconds=grace)
    delete = LifecycleRequest(str(uuid.uuid4()), "delete", "owner-1", reason="closing")
    reactivate = LifecycleRequest(str(uuid.uuid4()), "reactivate", "owner-1")

    async with tenant_worker(env, fakes) as queue:
        monitoring = await start_monitoring(env, queue, tenant_id, policy)
        await measured(fakes, 1)
        await monitoring.signal(TenantMonitoringWorkflow.lifecycle, delete)
        await eventually(lambda: fakes.requests("set_tenant_status"), "the deletion request")
        deadline = (await monitoring.query(TenantMonitoringWorkflow.state)).delete_at
        assert deadline is not None
        await env.sleep(2 * 3600)
        await monitoring.signal(TenantMonitoringWorkflow.lifecycle, reactivate)
        await eventually(lambda: fakes.published("tenant.reactivated"), "the reactivation")
        await env.sleep(grace)
        await eventually(
            lambda: fakes.published("tenant.usage_reported")[-1]["window_end"] > deadline,
            "a measurement after the cancelled deadline",
        )
        watched = await monitoring.query(TenantMonitoringWorkflow.state)
        description = await monitoring.describe()

    assert [r.status for r in fakes.requests("set_tenant_status")] == ["deleting", "active"]
    [reactivated] = fakes.published("tenant.reactivated")
    assert reactivated["detail"] == "the pending deletion is cancelled"
    assert fakes.names("delete_bucket", "delete_prefix", "delete_tenant_rows") == []
    assert fakes.published("tenant.deleted") == []
    assert (watched.status, watched.delete_at) == ("active", None)
    assert description.status == WorkflowExecutionStatus.RUNNING
