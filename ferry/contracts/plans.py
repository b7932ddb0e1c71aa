"""The quotas and limits each plan gives a tenant."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.contracts.enums import TenantPlan

GiB = 1024**3
TiB = 1024**4


@dataclass(frozen=True)
class PlanLimits:
    quota_bytes: int
    quota_files: int
    max_file_bytes: int


PLAN_LIMITS: dict[TenantPlan, PlanLimits] = {
    TenantPlan.FREE: PlanLimits(quota_bytes=5 * GiB, quota_files=10_000, max_file_bytes=1 * GiB),
    TenantPlan.PRO: PlanLimits(quota_bytes=1 * TiB, quota_files=1_000_000, max_file_bytes=5 * GiB),
    TenantPlan.ENTERPRISE: PlanLimits(
        quota_bytes=100 * TiB, quota_files=100_000_000, max_file_bytes=50 * GiB
    ),
}

PLAN_ORDER: tuple[TenantPlan, ...] = (TenantPlan.FREE, TenantPlan.PRO, TenantPlan.ENTERPRISE)


# Each plan's share of the workers when tenants' tasks wait together on a task queue
# (Temporal's task queue fairness: tasks are dispatched in proportion to these weights,
# the key being the tenant).
FAIRNESS_WEIGHT: dict[TenantPlan, float] = {
    TenantPlan.FREE: 1.0,
    TenantPlan.PRO: 2.0,
    TenantPlan.ENTERPRISE: 4.0,
}


def limits_for(plan: TenantPlan) -> PlanLimits:
    return PLAN_LIMITS[TenantPlan(plan)]


def is_upgrade(from_plan: TenantPlan, to_plan: TenantPlan) -> bool:
    """True when `to_plan` is a bigger plan than `from_plan`."""
    return PLAN_ORDER.index(TenantPlan(to_plan)) > PLAN_ORDER.index(TenantPlan(from_plan))


# What each plan costs a month, in minor units of `CURRENCY`; an upgrade is charged the difference.
CURRENCY = "EUR"
PLAN_PRICE_MINOR: dict[TenantPlan, int] = {
    TenantPlan.FREE: 0,
    TenantPlan.PRO: 29_00,
    TenantPlan.ENTERPRISE: 499_00,
}


def upgrade_price(from_plan: TenantPlan, to_plan: TenantPlan) -> int:
    """The charge for moving from one plan to a bigger one, in minor units."""
    return PLAN_PRICE_MINOR[TenantPlan(to_plan)] - PLAN_PRICE_MINOR[TenantPlan(from_plan)]
