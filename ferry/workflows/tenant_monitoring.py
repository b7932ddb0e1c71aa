"""tenant_monitoring_workflow: a tenant's usage, quota and lifecycle, for its whole life."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        DatabaseActivities,
        OverQuotaInput,
        TenantRecord,
        TenantRef,
        TenantStatusInput,
        UsageMeasurement,
        UsageReport,
    )
    from ferry.activities.storage import ObjectCount, PrefixRequest, StorageActivities
    from ferry.contracts.enums import TenantPlan, TenantStatus
    from ferry.contracts.errors import TENANT_NOT_FOUND
    from ferry.contracts.events import (
        Event,
        TenantDeleted,
        TenantQuotaExceeded,
        TenantReactivated,
        TenantSuspended,
        TenantUsageReported,
    )
    from ferry.contracts.policy import TenantPolicy
    from ferry.contracts.workflows import (
        LIFECYCLE_SIGNAL,
        PLAN_SIGNAL,
        USAGE_SIGNAL,
        LifecycleRequest,
        UsageUpdate,
    )
    from ferry.contracts.workflows import TENANT_MONITORING as WORKFLOW
    from ferry.workflows.common import STORAGE_RETRY, call_db, emit
    from ferry.workflows.dedupe import SeenEvents
    from ferry.workflows.tenant_deletion import delete_tenant_data, verify_deleted

SOURCE = "ferry.tenant-monitoring"
# A patch: after deleting, the run looks again (nothing may be left) and the event
# carries the receipt: rows by table, objects by place, bytes.
DELETION_RECEIPT = "deletion-receipt"


@dataclass
class PlanChange:
    """The tenant's plan changed (an upgrade, or its rollback)."""

    event_id: str
    plan: str


@dataclass
class MonitoringState:
    """What the monitoring workflow knows; carried across continue-as-new."""

    status: str = "active"  # active | suspended | deleting | deleted
    plan: str = "free"
    provider: str = "local"
    bucket: str = ""
    files: int = 0
    bytes: int = 0
    quota_bytes: int = 0
    quota_files: int = 0
    over_quota: bool = False
    # Epoch milliseconds: the last measurement, the next one, and the end of a deletion's grace.
    measured_at: int | None = None
    next_measure_at: int | None = None
    delete_at: int | None = None
    # Sequence numbers of the events emitted more than once (CONTRACT §2).
    emitted: dict[str, int] = field(default_factory=dict)
    seen: SeenEvents = field(default_factory=SeenEvents)
    # Signals received but not yet acted on when the run continued as new.
    inbox: list[Signal] = field(default_factory=list)
    runs: int = 1


@dataclass
class Signal:
    """One signal, as the workflow queues it to act on in order."""

    kind: str  # lifecycle | usage | plan
    lifecycle: LifecycleRequest | None = None
    usage: UsageUpdate | None = None
    plan: PlanChange | None = None

    @property
    def event_id(self) -> str:
        event = self.lifecycle or self.usage or self.plan
        assert event is not None
        return event.event_id


@dataclass
class MonitoringInput:
    tenant_id: str
    policy: TenantPolicy
    state: MonitoringState | None = None


@workflow.defn(name=WORKFLOW)
class TenantMonitoringWorkflow:
    """Watches one tenant for its whole life.

    Every `policy.usage_interval_seconds` it measures usage (processed files and
    bytes in the database, and the bytes in the tenant's bucket), stores and emits
    `tenant.usage_reported`, and checks the quota: the first time usage passes it,
    the tenant is marked over quota (uploads are refused with `quota_exceeded`) and
    `tenant.quota_exceeded` is emitted; once usage falls or the plan grows, the mark
    is lifted. The usage meter's signals move the figures between measurements.

    Signals, each acted on once (repeats of an event ID are ignored): plan changed,
    usage updated, and the lifecycle: suspend, reactivate, delete. Deletion waits
    out a grace period on a durable timer (a reactivation cancels it), then removes
    the tenant's objects, bucket and rows, emits `tenant.deleted` and ends.

    Queries: `state`. It continues as new before its history grows large.
    """

    def __init__(self) -> None:
        self._state = MonitoringState()
        self._tenant_id = ""

    @workflow.query
    def state(self) -> MonitoringState:
        return self._state

    @workflow.signal(name=LIFECYCLE_SIGNAL)
    def lifecycle(self, request: LifecycleRequest) -> None:
        self._receive(request.event_id, Signal("lifecycle", lifecycle=request))

    @workflow.signal(name=USAGE_SIGNAL)
    def usage_updated(self, update: UsageUpdate) -> None:
        self._receive(update.event_id, Signal("usage", usage=update))

    @workflow.signal(name=PLAN_SIGNAL)
    def plan_changed(self, change: PlanChange) -> None:
        self._receive(change.event_id, Signal("plan", plan=change))

    def _receive(self, event_id: str, signal: Signal) -> None:
        if self._state.seen.first_time(event_id):
            self._state.inbox.append(signal)

    @workflow.run
    async def run(self, monitoring: MonitoringInput) -> MonitoringState:
        self._tenant_id = monitoring.tenant_id
        policy = monitoring.policy
        if monitoring.state is None:
            await self._load()
        else:
            # Signals that reached this run before it started: new to the carried state?
            carried = monitoring.state
            early, self._state = self._state.inbox, carried
            for signal in early:
                if carried.seen.first_time(signal.event_id):
                    carried.inbox.append(signal)
        while True:
            self._show()
            await self._wait(policy)
            while self._state.inbox:
                await self._act(self._state.inbox.pop(0), policy)
            if self._state.status == "deleting" and self._due(self._state.delete_at):
                await self._delete(policy)
                return self._state
            if self._due(self._state.next_measure_at):
                await self._measure(policy)
            if self._history_is_long(policy):
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._state.runs += 1
                workflow.continue_as_new(MonitoringInput(self._tenant_id, policy, self._state))

    # The loop

    async def _wait(self, policy: TenantPolicy) -> None:
        """Until a signal arrives, or the next measurement or the end of a grace period."""
        deadlines = [self._state.next_measure_at or self._now()]
        if self._state.status == "deleting" and self._state.delete_at is not None:
            deadlines.append(self._state.delete_at)
        timeout = max(0, min(deadlines) - self._now()) / 1000
        if timeout == 0:
            return
        try:
            await workflow.wait_condition(lambda: bool(self._state.inbox), timeout=timeout)
        except TimeoutError:
            pass

    def _history_is_long(self, policy: TenantPolicy) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= policy.history_limit
        )

    def _now(self) -> int:
        return int(workflow.now().timestamp() * 1000)

    def _due(self, at: int | None) -> bool:
        return at is not None and self._now() >= at

    def _show(self) -> None:
        s = self._state
        detail = (
            f"{s.status}, plan {s.plan}: {s.files} files, {s.bytes} of {s.quota_bytes} bytes"
            + (", over quota" if s.over_quota else "")
        )
        workflow.set_current_details(detail)

    async def _act(self, signal: Signal, policy: TenantPolicy) -> None:
        if signal.lifecycle is not None:
            await self._lifecycle(signal.lifecycle, policy)
        elif signal.usage is not None:
            # The meter counts what was added; only a measurement sees usage fall.
            self._state.files = max(self._state.files, signal.usage.files)
            self._state.bytes = max(self._state.bytes, signal.usage.bytes)
            await self._check_quota(correlation_id=signal.usage.event_id)
        elif signal.plan is not None:
            await self._refresh_quota()
            await self._check_quota(correlation_id=signal.plan.event_id)

    # Usage and quota

    async def _load(self) -> None:
        lookup = await call_db(DatabaseActivities.get_tenant, TenantRef(self._tenant_id))
        if not lookup.found or lookup.tenant is None:
            raise TENANT_NOT_FOUND(f"unknown tenant {self._tenant_id!r}")
        tenant: TenantRecord = lookup.tenant
        self._state.status = str(tenant.status)
        self._state.plan = str(tenant.plan)
        self._state.provider = str(tenant.storage_provider)
        self._state.bucket = tenant.storage_bucket
        self._state.quota_bytes, self._state.quota_files = tenant.quota_bytes, tenant.quota_files
        self._state.over_quota = tenant.over_quota
        self._state.next_measure_at = self._now()

    async def _refresh_quota(self) -> UsageMeasurement:
        measured: UsageMeasurement = await call_db(
            DatabaseActivities.measure_tenant_usage, TenantRef(self._tenant_id)
        )
        s = self._state
        s.plan = str(measured.plan)
        s.quota_bytes, s.quota_files = measured.quota_bytes, measured.quota_files
        s.over_quota = measured.over_quota
        return measured

    async def _measure(self, policy: TenantPolicy) -> None:
        s = self._state
        measured = await self._refresh_quota()
        stored: ObjectCount = await workflow.execute_activity_method(
            StorageActivities.measure,
            PrefixRequest(s.provider, s.bucket, ""),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=STORAGE_RETRY,
        )
        now = self._now()
        window_start = s.measured_at or now
        # The bucket also holds thumbnails; whichever figure is larger is what the tenant uses.
        s.files, s.bytes = measured.files, max(measured.bytes, stored.bytes)
        s.measured_at, s.next_measure_at = now, now + int(policy.usage_interval_seconds * 1000)
        await call_db(
            DatabaseActivities.record_usage,
            UsageReport(
                tenant_id=self._tenant_id,
                window_start=_datetime(window_start),
                window_end=_datetime(now),
                files=s.files,
                bytes=s.bytes,
                quota_bytes=s.quota_bytes,
                plan=TenantPlan(s.plan),
            ),
        )
        await self._emit(
            TenantUsageReported(
                files=s.files,
                bytes=s.bytes,
                quota_bytes=s.quota_bytes,
                plan=s.plan,
                window_start=window_start,
                window_end=now,
            ),
            None,
        )
        await self._check_quota(correlation_id=None)

    async def _check_quota(self, correlation_id: str | None) -> None:
        s = self._state
        over = s.bytes > s.quota_bytes or s.files > s.quota_files
        if over == s.over_quota:
            return
        await call_db(
            DatabaseActivities.set_tenant_over_quota, OverQuotaInput(self._tenant_id, over)
        )
        s.over_quota = over
        if over:
            detail = (
                f"{s.files} files and {s.bytes} bytes used; the {s.plan} plan allows "
                f"{s.quota_files} files and {s.quota_bytes} bytes"
            )
            await self._emit(TenantQuotaExceeded(detail=detail), correlation_id)

    # Lifecycle

    async def _lifecycle(self, request: LifecycleRequest, policy: TenantPolicy) -> None:
        s = self._state
        if request.action == "suspend" and s.status == "active":
            await self._set_status(TenantStatus.SUSPENDED, request.reason)
            await self._emit(TenantSuspended(detail=request.reason), request.event_id)
        elif request.action == "reactivate" and s.status in ("suspended", "deleting"):
            cancelled = s.status == "deleting"
            await self._set_status(TenantStatus.ACTIVE, None)
            s.delete_at = None
            detail = "the pending deletion is cancelled" if cancelled else request.reason
            await self._emit(TenantReactivated(detail=detail), request.event_id)
        elif request.action == "delete" and s.status != "deleting":
            await self._set_status(TenantStatus.DELETING, request.reason)
            s.delete_at = self._now() + int(policy.deletion_grace_seconds * 1000)
        else:
            workflow.logger.info(
                "tenant %s is %s: %s changes nothing", self._tenant_id, s.status, request.action
            )

    async def _set_status(self, status: TenantStatus, reason: str | None) -> None:
        await call_db(
            DatabaseActivities.set_tenant_status, TenantStatusInput(self._tenant_id, status, reason)
        )
        self._state.status = str(status)

    async def _delete(self, policy: TenantPolicy) -> None:
        """The grace period is over: objects, bucket and rows go, in that order; then a fresh
        look finds nothing left (or the run fails, loudly), and `tenant.deleted` says what
        was removed."""
        s = self._state
        workflow.set_current_details("deleting the tenant's data")
        receipt = workflow.patched(DELETION_RECEIPT)
        removed = await delete_tenant_data(self._tenant_id, s.provider, s.bucket, policy)
        s.status = "deleted"
        if not receipt:  # histories from before the receipt
            await self._emit(TenantDeleted(detail=None), None)
            workflow.set_current_details("deleted")
            return
        await verify_deleted(self._tenant_id, removed.places())
        deleted = removed.receipt()
        await self._emit(deleted, None)
        workflow.set_current_details(f"deleted: {deleted.detail}")

    async def _emit(self, event: Event, correlation_id: str | None) -> str:
        sequence = self._state.emitted.get(event.EVENT_TYPE, 0)
        self._state.emitted[event.EVENT_TYPE] = sequence + 1
        return await emit(
            event,
            tenant_id=self._tenant_id,
            source=SOURCE,
            correlation_id=correlation_id,
            sequence=sequence,
        )


def _datetime(epoch_millis: int) -> datetime:
    return datetime.fromtimestamp(epoch_millis / 1000, tz=UTC)
