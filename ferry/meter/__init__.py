"""Usage metering: per-tenant totals from `ferry.file-events.v1`, sent to monitoring workflows."""

from ferry.meter.app import UsageMeter, create_app
from ferry.meter.usage import RECENT_EVENT_IDS, TenantUsage

__all__ = ["RECENT_EVENT_IDS", "TenantUsage", "UsageMeter", "create_app"]
