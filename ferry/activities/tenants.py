"""The tenant and storage settings (`TenantPolicy`), handed to workflows by an activity."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import activity

from ferry.config import Settings
from ferry.contracts.policy import TenantPolicy


class TenantPolicyActivities:
    def __init__(self, settings: Settings, providers: Sequence[str]) -> None:
        self._policy = TenantPolicy(
            usage_interval_seconds=settings.tenant_usage_interval_seconds,
            deletion_grace_seconds=settings.tenant_deletion_grace_seconds,
            payment_timeout_seconds=settings.payment_timeout_seconds,
            providers=sorted(providers),
            ingest_bucket=settings.ingest_bucket,
            quarantine_bucket=settings.quarantine_bucket,
            failover_order=[
                name
                for name in (p.strip() for p in settings.storage_failover_order.split(","))
                if name in providers
            ],
        )

    @activity.defn(name="tenant_policy")
    async def policy(self) -> TenantPolicy:
        return self._policy
