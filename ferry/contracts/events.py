"""One dataclass per event type Ferry emits (CONTRACT §4): the body beside the envelope.

A workflow builds the event it emits as one of these, so a misspelt or missing
field is a type error, not a record Kafka never gets; `emit` adds the envelope
(CONTRACT §2). `tests/unit/test_event_types.py` checks every class against its
`.avsc` file. Timestamps are epoch milliseconds, as the Avro records carry them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ferry.contracts.storage import BucketRef, StorageRef


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every emitted event has: its type, and its body as the record's fields."""

    EVENT_TYPE: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        """The body as JSON-safe fields (records as mappings), the envelope not included."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class PublishedThumbnail:
    """A thumbnail as `file.processed` announces it (no size: the record has none)."""

    name: str
    key: str
    width: int
    height: int
    content_type: str


@dataclass(frozen=True, kw_only=True)
class BillingChargeRequested(Event):
    """billing.charge_requested: Ferry asks the billing system to charge a tenant."""

    EVENT_TYPE: ClassVar[str] = "billing.charge_requested"

    payment_request_id: str
    upgrade_id: str
    amount_minor: int
    currency: str
    description: str


@dataclass(frozen=True, kw_only=True)
class BillingRefundRequested(Event):
    """billing.refund_requested: Ferry asks for the refund of a charge it could not honour."""

    EVENT_TYPE: ClassVar[str] = "billing.refund_requested"

    payment_request_id: str
    payment_id: str
    upgrade_id: str
    amount_minor: int
    currency: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class FileMigrationCompleted(Event):
    """file.migration_completed: A migration finished."""

    EVENT_TYPE: ClassVar[str] = "file.migration_completed"

    migration_id: str
    files_moved: int
    bytes_moved: int
    files_failed: int
    rolled_back: bool
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class FileMigrationFailed(Event):
    """file.migration_failed: A migration failed."""

    EVENT_TYPE: ClassVar[str] = "file.migration_failed"

    migration_id: str
    files_moved: int
    bytes_moved: int
    files_failed: int
    rolled_back: bool
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class FileProcessed(Event):
    """file.processed: A file passed processing and is stored in the tenant's bucket."""

    EVENT_TYPE: ClassVar[str] = "file.processed"

    file_id: str
    sha256: str
    size_bytes: int
    content_type: str
    storage: StorageRef
    thumbnails: list[PublishedThumbnail]
    metadata: dict[str, str]
    analysis: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class FileRejected(Event):
    """file.rejected: A file was rejected and quarantined."""

    EVENT_TYPE: ClassVar[str] = "file.rejected"

    file_id: str
    reason: str
    detail: str
    signature: str | None = None


@dataclass(frozen=True, kw_only=True)
class FileShareExpired(Event):
    """file.share_expired: A share expired."""

    EVENT_TYPE: ClassVar[str] = "file.share_expired"

    share_id: str
    file_id: str
    grantee_type: str
    grantee: str | None = None
    permission: str
    url: str | None = None
    expires_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class FileShareRevoked(Event):
    """file.share_revoked: A share was revoked."""

    EVENT_TYPE: ClassVar[str] = "file.share_revoked"

    share_id: str
    file_id: str
    grantee_type: str
    grantee: str | None = None
    permission: str
    url: str | None = None
    expires_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class FileShared(Event):
    """file.shared: A file was shared."""

    EVENT_TYPE: ClassVar[str] = "file.shared"

    share_id: str
    file_id: str
    grantee_type: str
    grantee: str | None = None
    permission: str
    url: str | None = None
    expires_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class NotificationRequested(Event):
    """notification.requested: Ferry asks for a notification to be sent."""

    EVENT_TYPE: ClassVar[str] = "notification.requested"

    channel: str
    recipient: str
    template: str
    params: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class TenantDeleted(Event):
    """tenant.deleted: A tenant was deleted."""

    EVENT_TYPE: ClassVar[str] = "tenant.deleted"

    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantProvisioned(Event):
    """tenant.provisioned: A tenant was provisioned."""

    EVENT_TYPE: ClassVar[str] = "tenant.provisioned"

    plan: str
    storage: BucketRef
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantProvisioningFailed(Event):
    """tenant.provisioning_failed: Provisioning a tenant failed."""

    EVENT_TYPE: ClassVar[str] = "tenant.provisioning_failed"

    plan: str
    storage: BucketRef
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantQuotaExceeded(Event):
    """tenant.quota_exceeded: A tenant exceeded its storage quota."""

    EVENT_TYPE: ClassVar[str] = "tenant.quota_exceeded"

    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantReactivated(Event):
    """tenant.reactivated: A tenant was reactivated."""

    EVENT_TYPE: ClassVar[str] = "tenant.reactivated"

    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantSuspended(Event):
    """tenant.suspended: A tenant was suspended."""

    EVENT_TYPE: ClassVar[str] = "tenant.suspended"

    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantUpgradeFailed(Event):
    """tenant.upgrade_failed: A plan change failed."""

    EVENT_TYPE: ClassVar[str] = "tenant.upgrade_failed"

    upgrade_id: str
    from_plan: str
    to_plan: str
    rolled_back: bool
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantUpgraded(Event):
    """tenant.upgraded: A tenant changed plan."""

    EVENT_TYPE: ClassVar[str] = "tenant.upgraded"

    upgrade_id: str
    from_plan: str
    to_plan: str
    rolled_back: bool
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantUsageReported(Event):
    """tenant.usage_reported: A tenant's usage over a window."""

    EVENT_TYPE: ClassVar[str] = "tenant.usage_reported"

    files: int
    bytes: int
    quota_bytes: int
    plan: str
    window_start: int
    window_end: int
