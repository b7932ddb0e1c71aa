"""tenant_upgrade_workflow: charge for a bigger plan, apply it, or roll everything back."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        ApplyPlanInput,
        DatabaseActivities,
        TenantRecord,
        TenantRef,
    )
    from ferry.contracts.convert import build
    from ferry.contracts.enums import TenantPlan, TenantStatus
    from ferry.contracts.errors import INVALID_REQUEST, PERMANENT
    from ferry.contracts.events import (
        BillingChargeRequested,
        BillingRefundRequested,
        Event,
        PlanChangeOutcome,
        TenantUpgraded,
        TenantUpgradeFailed,
    )
    from ferry.contracts.ids import event_id_for
    from ferry.contracts.plans import CURRENCY, is_upgrade, upgrade_price
    from ferry.contracts.policy import TenantPolicy
    from ferry.contracts.workflows import (
        PAYMENT_SIGNAL,
        PLAN_SIGNAL,
        PaymentResult,
        UpgradeRequest,
        search_attributes,
        tenant_monitoring_id,
    )
    from ferry.contracts.workflows import TENANT_PLAN_CHANGE as PLAN_CHANGE_WORKFLOW
    from ferry.contracts.workflows import TENANT_UPGRADE as WORKFLOW
    from ferry.workflows import tenant_monitoring
    from ferry.workflows.common import (
        answer,
        call_db,
        failure_detail,
        tenant_policy,
    )
    from ferry.workflows.dedupe import SeenEvents

SOURCE = "ferry.tenant-upgrade"


@dataclass
class UpgradeState:
    """What the `state` query shows."""

    stage: str = "received"
    payment_request_id: str | None = None
    amount_minor: int = 0
    currency: str = CURRENCY
    payment: PaymentResult | None = None
    ignored_signals: int = 0
    outcome: str | None = None  # upgraded | failed
    rolled_back: bool = False
    detail: str | None = None
    events: list[str] = field(default_factory=list)


@dataclass
class PlanChangeInput:
    """Apply a plan: quotas and limits in the database, then tell the monitoring workflow."""

    tenant_id: str
    plan: str
    event_id: str


@workflow.defn(name=PLAN_CHANGE_WORKFLOW)
class TenantPlanChangeWorkflow:
    """Applies a plan to a tenant (its quotas and limits) and signals its monitoring
    workflow, which re-checks the quota at once. A child of the upgrade, both to apply
    the new plan and, as compensation, to restore the old one."""

    @workflow.run
    async def run(self, change: PlanChangeInput) -> TenantRecord:
        workflow.set_current_details(f"applying the {change.plan} plan")
        tenant: TenantRecord = await call_db(
            DatabaseActivities.apply_tenant_plan,
            ApplyPlanInput(change.tenant_id, TenantPlan(change.plan)),
        )
        monitoring = workflow.get_external_workflow_handle(tenant_monitoring_id(change.tenant_id))
        try:
            await monitoring.signal(
                PLAN_SIGNAL,
                tenant_monitoring.PlanChange(change.event_id, change.plan),
            )
        except ApplicationError as err:
            # A tenant without a running monitoring workflow has its plan in the
            # database all the same; its next monitoring run reads it from there.
            workflow.logger.warning("monitoring of %s not signalled: %s", change.tenant_id, err)
        return tenant


class UpgradeFailed(Exception):
    """Ends the upgrade as failed; `rolled_back` when the tenant is back on its old plan
    after a payment that failed or never came, or after a compensation."""

    def __init__(self, detail: str, rolled_back: bool) -> None:
        super().__init__(detail)
        self.detail, self.rolled_back = detail, rolled_back


@workflow.defn(name=WORKFLOW)
class TenantUpgradeWorkflow:
    """Moves a tenant to a bigger plan, paid for.

    Validate the change (the tenant is active and on `from_plan`, `to_plan` is
    bigger); request the charge with `billing.charge_requested` (its
    `payment_request_id` is the billing system's idempotency key); wait for the
    payment signal, at most `payment_timeout_seconds`; apply the plan in a child
    workflow; emit `tenant.upgraded`.

    A failed payment or a timeout leaves the plan as it was; a failed child
    restores the old plan (another child) and requests a refund of the money taken.
    Each emits `tenant.upgrade_failed` with `rolled_back: true`. An invalid request
    emits it with `rolled_back: false`: nothing had happened to undo.

    Signals: `payment_result` (the first result for this upgrade decides; repeats
    and later results are ignored). Queries: `state`.
    """

    def __init__(self) -> None:
        self._state = UpgradeState()
        self._seen = SeenEvents()
        self._upgrade_id = ""

    @workflow.query
    def state(self) -> UpgradeState:
        return self._state

    @workflow.signal(name=PAYMENT_SIGNAL)
    def payment_result(self, result: PaymentResult) -> None:
        decided = self._state.payment is not None
        foreign = result.upgrade_id not in (None, self._upgrade_id)
        if not self._seen.first_time(result.event_id) or decided or foreign:
            self._state.ignored_signals += 1
            return
        self._state.payment = result

    def _enter(self, stage: str) -> None:
        self._state.stage = stage
        workflow.set_current_details(f"stage: {stage}")

    @workflow.run
    async def run(self, request: UpgradeRequest) -> UpgradeState:
        self._upgrade_id = request.upgrade_id
        policy = request.policy or TenantPolicy()
        try:
            self._enter("validating")
            await self._validate(request)
            if request.policy is None:
                policy = await tenant_policy()
            payment = await self._charge(request, policy)
            self._enter(f"applying the {request.to_plan} plan")
            await self._apply(request, payment)
        except UpgradeFailed as failed:
            self._state.outcome, self._state.detail = "failed", failed.detail
            self._state.rolled_back = failed.rolled_back
            await self._emit(request, TenantUpgradeFailed, failed.detail, failed.rolled_back)
            self._enter(f"failed: {failed.detail}")
            if self._state.payment_request_id is not None and self._state.payment is None:
                await self._refund_late_payment(request, policy)
            return self._state
        self._state.outcome = "upgraded"
        await self._emit(request, TenantUpgraded, None, False)
        self._enter("upgraded")
        return self._state

    async def _validate(self, request: UpgradeRequest) -> None:
        # The event's schema allows no other plan; a request that names one did not
        # come through Kafka, and no event could report on it.
        if not {request.from_plan, request.to_plan} <= set(TenantPlan):
            raise INVALID_REQUEST(f"unknown plan in {request.from_plan!r} → {request.to_plan!r}")
        lookup = await call_db(DatabaseActivities.get_tenant, TenantRef(request.tenant_id))
        tenant: TenantRecord | None = lookup.tenant
        if tenant is None:
            raise UpgradeFailed(f"unknown tenant {request.tenant_id!r}", rolled_back=False)
        if tenant.status != TenantStatus.ACTIVE:
            raise UpgradeFailed(f"the tenant is {tenant.status}", rolled_back=False)
        if tenant.plan != request.from_plan:
            raise UpgradeFailed(
                f"the tenant is on the {tenant.plan} plan, not {request.from_plan}",
                rolled_back=False,
            )
        if not is_upgrade(TenantPlan(request.from_plan), TenantPlan(request.to_plan)):
            raise UpgradeFailed(
                f"{request.to_plan} is not a bigger plan than {request.from_plan}",
                rolled_back=False,
            )

    async def _charge(self, request: UpgradeRequest, policy: TenantPolicy) -> PaymentResult:
        """Request the charge and wait for its result, or for the timeout."""
        state = self._state
        state.payment_request_id = _payment_request_id()
        from_plan, to_plan = TenantPlan(request.from_plan), TenantPlan(request.to_plan)
        state.amount_minor = upgrade_price(from_plan, to_plan)
        state.events.append(
            await self._publish(
                request,
                BillingChargeRequested(
                    payment_request_id=state.payment_request_id,
                    upgrade_id=request.upgrade_id,
                    amount_minor=state.amount_minor,
                    currency=state.currency,
                    description=f"Ferry: {request.from_plan} → {request.to_plan} plan",
                ),
            )
        )
        self._enter("awaiting payment")
        try:
            await workflow.wait_condition(
                lambda: state.payment is not None, timeout=policy.payment_timeout_seconds
            )
        except TimeoutError:
            raise UpgradeFailed(
                f"no payment result within {policy.payment_timeout_seconds:g} s; "
                "the plan stays as it was",
                rolled_back=True,
            ) from None
        payment = state.payment
        assert payment is not None
        if not payment.succeeded:
            raise UpgradeFailed(
                f"payment failed: {payment.reason or 'no reason given'}; the plan stays as it was",
                rolled_back=True,
            )
        return payment

    async def _apply(self, request: UpgradeRequest, payment: PaymentResult) -> None:
        """The new plan in a child; if it fails, the old plan back and the money refunded."""
        try:
            await self._change_plan(request, request.to_plan, "apply")
        except ChildWorkflowError as err:
            detail = f"applying the plan failed: {failure_detail(err)}"
            self._enter("restoring the old plan")
            try:
                await self._change_plan(request, request.from_plan, "restore")
            except ChildWorkflowError as restore:
                # The money goes back all the same; the plan needs an operator.
                await self._refund(request, payment, detail)
                raise UpgradeFailed(
                    f"{detail}; restoring the {request.from_plan} plan failed too "
                    f"({failure_detail(restore)}); refunded",
                    rolled_back=False,
                ) from restore
            await self._refund(request, payment, detail)
            raise UpgradeFailed(f"{detail}; the old plan is restored and refunded", True) from err

    async def _refund(self, request: UpgradeRequest, payment: PaymentResult, reason: str) -> None:
        self._state.events.append(
            await self._publish(
                request,
                BillingRefundRequested(
                    # Set when the charge was requested, before any payment can arrive.
                    payment_request_id=self._state.payment_request_id or _payment_request_id(),
                    payment_id=payment.payment_id,
                    upgrade_id=request.upgrade_id,
                    amount_minor=payment.amount_minor or self._state.amount_minor,
                    currency=payment.currency or self._state.currency,
                    reason=reason,
                ),
            )
        )

    async def _refund_late_payment(self, request: UpgradeRequest, policy: TenantPolicy) -> None:
        """After a timeout, a payment may still arrive: for as long again, one that succeeds
        is refunded (the upgrade has failed and the plan stayed as it was)."""
        self._enter("failed: refunding any late payment")
        try:
            await workflow.wait_condition(
                lambda: self._state.payment is not None, timeout=policy.payment_timeout_seconds
            )
        except TimeoutError:
            self._enter(f"failed: {self._state.detail}")
            return
        payment = self._state.payment
        assert payment is not None
        if payment.succeeded:
            await self._refund(request, payment, "the payment arrived after the upgrade timed out")
        self._enter(f"failed: {self._state.detail}")

    async def _change_plan(self, request: UpgradeRequest, plan: str, step: str) -> None:
        await workflow.execute_child_workflow(
            TenantPlanChangeWorkflow.run,
            PlanChangeInput(
                request.tenant_id,
                plan,
                event_id_for(workflow.info().workflow_id, f"plan-{step}"),
            ),
            id=f"{workflow.info().workflow_id}/{step}",
            search_attributes=search_attributes(request.tenant_id),
            static_summary=f"{step} the {plan} plan of tenant {request.tenant_id}",
            retry_policy=RetryPolicy(maximum_attempts=1, non_retryable_error_types=PERMANENT),
        )

    async def _emit(
        self,
        request: UpgradeRequest,
        outcome: type[PlanChangeOutcome],
        detail: str | None,
        rolled_back: bool,
    ) -> None:
        event = build(outcome, request, rolled_back=rolled_back, detail=detail)
        self._state.events.append(await self._publish(request, event))

    async def _publish(self, request: UpgradeRequest, event: Event) -> str:
        return await answer(request, event, source=SOURCE)


def _payment_request_id() -> str:
    """The billing system's idempotency key of this upgrade's charge: the same on every retry."""
    return event_id_for(workflow.info().workflow_id, "payment-request")
