"""The tenant and storage settings that workflows read once, through an activity.

Workflows cannot read the environment; they ask when they start, and the answer
is recorded in their history (so a replay sees the same values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
