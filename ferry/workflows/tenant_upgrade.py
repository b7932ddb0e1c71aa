"""tenant_upgrade_workflow: its input and signals (the workflow itself is built on these)."""

from __future__ import annotations

from dataclasses import dataclass

WORKFLOW = "tenant_upgrade_workflow"
PAYMENT_SIGNAL = "payment_result"


def workflow_id(tenant_id: str, upgrade_id: str) -> str:
    return f"tenant-upgrade/{tenant_id}/{upgrade_id}"


@dataclass
class UpgradeRequest:
    """A `tenant.upgrade_requested` event."""

    event_id: str
    tenant_id: str
    upgrade_id: str
    from_plan: str
    to_plan: str
    requested_by: str
    correlation_id: str | None = None


@dataclass
class PaymentResult:
    """A `billing.payment_succeeded` or `billing.payment_failed` event, as a signal."""

    event_id: str
    payment_id: str
    succeeded: bool
    upgrade_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    reason: str | None = None
