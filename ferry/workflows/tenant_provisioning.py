"""tenant_provisioning_workflow: a new tenant's rows, bucket and monitoring, or none of them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    TimeoutError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        CreateTenantInput,
        DatabaseActivities,
        TenantRef,
        TenantStatusInput,
    )
    from ferry.activities.storage import StorageActivities
    from ferry.contracts.convert import build
    from ferry.contracts.enums import StorageProvider, TenantPlan, TenantStatus
    from ferry.contracts.errors import INVALID_REQUEST, PERMANENT
    from ferry.contracts.events import (
        Event,
        NotificationRequested,
        TenantProvisioned,
        TenantProvisioningFailed,
    )
    from ferry.contracts.policy import TenantPolicy
    from ferry.contracts.storage import BucketRef
    from ferry.contracts.workflows import TENANT_PROVISIONING as WORKFLOW
    from ferry.contracts.workflows import TenantCreation, search_attributes, tenant_monitoring_id
    from ferry.workflows.common import (
        Staged,
        answer,
        call_db,
        failure_detail,
        tenant_policy,
    )
    from ferry.workflows.tenant_monitoring import MonitoringInput, TenantMonitoringWorkflow

SOURCE = "ferry.tenant-provisioning"
# A tenant slug (CONTRACT §2), short enough that `ferry-{slug}` is a valid bucket name.
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,56}")
WELCOME_TEMPLATE = "tenant-welcome"

# Provisioning is interactive: a step that keeps failing is given up within
# seconds, its siblings are undone and the requester is told why.
SETUP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=5,
    non_retryable_error_types=PERMANENT,
)


def bucket_for(tenant_id: str) -> str:
    """The tenant's own bucket, container or directory (CONTRACT §6)."""
    return f"ferry-{tenant_id}"


@dataclass
class ProvisioningResult:
    status: str  # provisioned | failed
    tenant_id: str
    bucket: str
    provider: str
    detail: str | None = None
    compensated: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class ProvisioningFailed(Exception):
    """Ends the provisioning as failed (after compensation): not a failure of the workflow."""


@workflow.defn(name=WORKFLOW)
class TenantProvisioningWorkflow(Staged):
    """Creates a tenant: validate; then, in parallel, the database side (tenant row with
    its plan's quotas, admin user and membership) and the storage side (the tenant's
    bucket); activate; start the tenant's monitoring workflow (a child that outlives
    this one); request a welcome notification; emit `tenant.provisioned`.

    Each step that finished (or timed out, and so may have finished) registers its
    compensation; any failure runs them in reverse and emits
    `tenant.provisioning_failed` with the reason. An existing tenant is never
    touched: the request fails before anything is created.

    Queries: `progress` (the current stage). Current details show the stage.
    """

    def __init__(self) -> None:
        self._compensations: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    @workflow.run
    async def run(self, request: TenantCreation) -> ProvisioningResult:
        bucket = bucket_for(request.tenant_id)
        try:
            self._enter("validating")
            await self._validate(request)
            policy = request.policy or await tenant_policy()
            self._enter("creating database rows and bucket")
            await self._set_up(request, bucket)
            self._enter("activating")
            try:
                await call_db(
                    DatabaseActivities.set_tenant_status,
                    TenantStatusInput(request.tenant_id, TenantStatus.ACTIVE),
                )
            except ActivityError as err:
                raise ProvisioningFailed(f"activation failed: {failure_detail(err)}") from err
            self._enter("starting monitoring")
            await self._start_monitoring(request, policy)
        except ProvisioningFailed as failed:
            return await self._fail(request, bucket, str(failed))
        self._enter("welcoming")
        welcome = await self._emit(
            request,
            NotificationRequested(
                channel="email",
                recipient=request.admin_email,
                template=WELCOME_TEMPLATE,
                params={"tenant_id": request.tenant_id, "name": request.name, "plan": request.plan},
            ),
        )
        provisioned = await self._emit(
            request,
            TenantProvisioned(
                plan=request.plan, storage=BucketRef(request.storage_provider, bucket), detail=None
            ),
        )
        self._enter("provisioned")
        return ProvisioningResult(
            "provisioned",
            request.tenant_id,
            bucket,
            request.storage_provider,
            events=[welcome, provisioned],
        )

    async def _validate(self, request: TenantCreation) -> None:
        # The event's schema allows no other plan or provider; a request that names one
        # did not come through Kafka, and no event could report on it.
        if request.plan not in set(TenantPlan) or request.storage_provider not in set(
            StorageProvider
        ):
            raise INVALID_REQUEST(
                f"unknown plan {request.plan!r} or provider {request.storage_provider!r}"
            )
        problems = []
        if not SLUG.fullmatch(request.tenant_id):
            problems.append(f"tenant id {request.tenant_id!r} is not a slug of 2 to 57 characters")
        if not request.name.strip():
            problems.append("the tenant has no name")
        if "@" not in request.admin_email:
            problems.append("the admin e-mail address is not an address")
        if problems:
            raise ProvisioningFailed("; ".join(problems))
        lookup = await call_db(DatabaseActivities.get_tenant, TenantRef(request.tenant_id))
        if lookup.found:
            raise ProvisioningFailed(f"tenant {request.tenant_id!r} exists already")

    async def _set_up(self, request: TenantCreation, bucket: str) -> None:
        """The database side and the storage side, in parallel; both or neither."""
        storage = BucketRef(request.storage_provider, bucket)
        tenant = TenantRef(request.tenant_id)
        rows = workflow.execute_activity_method(
            DatabaseActivities.create_tenant,
            build(
                CreateTenantInput,
                request,
                plan=TenantPlan(request.plan),
                storage_provider=StorageProvider(request.storage_provider),
                storage_bucket=bucket,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SETUP_RETRY,
        )
        created = workflow.execute_activity_method(
            StorageActivities.create_bucket,
            storage,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SETUP_RETRY,
        )
        outcomes = await asyncio.gather(rows, created, return_exceptions=True)
        steps = (
            ("database", "tenant rows", DatabaseActivities.delete_tenant_rows, tenant),
            ("storage", "bucket", StorageActivities.delete_bucket, storage),
        )
        failures = []
        for (side, what, undo, undo_request), outcome in zip(steps, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, ActivityError):
                raise outcome
            if isinstance(outcome, ActivityError):
                failures.append(f"{side} failed: {failure_detail(outcome)}")
            # A step that timed out may have done its work: it is undone like a finished one.
            if not isinstance(outcome, ActivityError) or _timed_out(outcome):
                self._undo_with(what, undo, undo_request)
        if failures:
            raise ProvisioningFailed("; ".join(failures))

    async def _start_monitoring(self, request: TenantCreation, policy: TenantPolicy) -> None:
        """The tenant's monitoring workflow: a child that lives on after this workflow ends."""
        try:
            await workflow.start_child_workflow(
                TenantMonitoringWorkflow.run,
                MonitoringInput(request.tenant_id, policy),
                id=tenant_monitoring_id(request.tenant_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=search_attributes(request.tenant_id),
                static_summary=f"monitoring of tenant {request.tenant_id}",
            )
        except WorkflowAlreadyStartedError as err:
            raise ProvisioningFailed("the tenant's monitoring workflow is running already") from err

    def _undo_with(self, what: str, activity: Any, request: Any) -> None:
        async def undo() -> Any:
            return await workflow.execute_activity_method(
                activity,
                request,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(seconds=30), non_retryable_error_types=PERMANENT
                ),
            )

        self._compensations.append((what, undo))

    async def _fail(self, request: TenantCreation, bucket: str, detail: str) -> ProvisioningResult:
        self._enter("compensating")
        undone = []
        for what, undo in reversed(self._compensations):
            await undo()
            undone.append(what)
        failed = await self._emit(
            request,
            TenantProvisioningFailed(
                plan=request.plan,
                storage=BucketRef(request.storage_provider, bucket),
                detail=detail,
            ),
        )
        self._enter(f"failed: {detail}")
        return ProvisioningResult(
            "failed",
            request.tenant_id,
            bucket,
            request.storage_provider,
            detail=detail,
            compensated=undone,
            events=[failed],
        )

    async def _emit(self, request: TenantCreation, event: Event) -> str:
        return await answer(request, event, source=SOURCE)


def _timed_out(err: ActivityError) -> bool:
    return isinstance(err.cause, TimeoutError)
