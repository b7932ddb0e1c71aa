"""The tenant and storage settings, handed to workflows by an activity.

Workflows cannot read the environment; they ask once, when they start, and
the answer is recorded in their history (so a replay sees the same values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from temporalio import activity

from ferry.config import Settings

# A monitoring workflow continues as new before its history passes this many events.
HISTORY_LIMIT = 2_000


@dataclass
class TenantPolicy:
    usage_interval_seconds: float = 3600.0
    deletion_grace_seconds: float = 7 * 24 * 3600.0
    payment_timeout_seconds: float = 24 * 3600.0
    # The providers a deleted tenant's quarantined and ingest objects are purged from.
    providers: list[str] = field(default_factory=lambda: ["local"])
    ingest_bucket: str = "ferry-ingest"
    quarantine_bucket: str = "ferry-quarantine"
    history_limit: int = HISTORY_LIMIT
    # Providers to fail over to, in order, when a tenant's own provider keeps failing.
    failover_order: list[str] = field(default_factory=list)

    def failover_for(self, primary: str) -> list[str]:
        return [p for p in self.failover_order if p != primary]


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
