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
class ShareEvent(Event):
    """A share's state, as every share event announces it."""

    share_id: str
    file_id: str
    grantee_type: str
    grantee: str | None = None
    permission: str
    url: str | None = None
    expires_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class MigrationOutcome(Event):
    """How a migration ended: what moved, and whether it was undone."""

    migration_id: str
    files_moved: int
    bytes_moved: int
    files_failed: int
    rolled_back: bool
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class ProvisioningOutcome(Event):
    """How a tenant's provisioning ended, and its bucket."""

    plan: str
    storage: BucketRef
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class PlanChangeOutcome(Event):
    """How a plan change ended."""

    upgrade_id: str
    from_plan: str
    to_plan: str
    rolled_back: bool
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class TenantNotice(Event):
    """A change of a tenant's state, with an optional reason."""

    detail: str | None = None


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


class FileMigrationCompleted(MigrationOutcome):
    """file.migration_completed: A migration finished."""

    EVENT_TYPE: ClassVar[str] = "file.migration_completed"


class FileMigrationFailed(MigrationOutcome):
    """file.migration_failed: A migration failed."""

    EVENT_TYPE: ClassVar[str] = "file.migration_failed"


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
class FileQuarantined(Event):
    """file.quarantined: A processed file was found infected by newer signatures and moved
    to quarantine; its shares end."""

    EVENT_TYPE: ClassVar[str] = "file.quarantined"

    file_id: str
    signature: str
    signature_version: int
    previous_verdict_at: int | None = None
    sha256: str | None = None
    shares_revoked: int = 0


@dataclass(frozen=True, kw_only=True)
class FileShareExpired(ShareEvent):
    """file.share_expired: A share expired."""

    EVENT_TYPE: ClassVar[str] = "file.share_expired"


class FileShareRevoked(ShareEvent):
    """file.share_revoked: A share was revoked."""

    EVENT_TYPE: ClassVar[str] = "file.share_revoked"


class FileShared(ShareEvent):
    """file.shared: A file was shared."""

    EVENT_TYPE: ClassVar[str] = "file.shared"


@dataclass(frozen=True, kw_only=True)
class NotificationRequested(Event):
    """notification.requested: Ferry asks for a notification to be sent."""

    EVENT_TYPE: ClassVar[str] = "notification.requested"

    channel: str
    recipient: str
    template: str
    params: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class TenantDeleted(TenantNotice):
    """tenant.deleted: A tenant was deleted (with its receipt, since `deletion-receipt`)."""

    EVENT_TYPE: ClassVar[str] = "tenant.deleted"

    rows_deleted: dict[str, int] | None = None
    objects_deleted: dict[str, int] | None = None
    bytes_deleted: int | None = None
    verified: bool | None = None


class TenantProvisioned(ProvisioningOutcome):
    """tenant.provisioned: A tenant was provisioned."""

    EVENT_TYPE: ClassVar[str] = "tenant.provisioned"


class TenantProvisioningFailed(ProvisioningOutcome):
    """tenant.provisioning_failed: Provisioning a tenant failed."""

    EVENT_TYPE: ClassVar[str] = "tenant.provisioning_failed"


class TenantQuotaExceeded(TenantNotice):
    """tenant.quota_exceeded: A tenant exceeded its storage quota."""

    EVENT_TYPE: ClassVar[str] = "tenant.quota_exceeded"


class TenantReactivated(TenantNotice):
    """tenant.reactivated: A tenant was reactivated."""

    EVENT_TYPE: ClassVar[str] = "tenant.reactivated"


class TenantSuspended(TenantNotice):
    """tenant.suspended: A tenant was suspended."""

    EVENT_TYPE: ClassVar[str] = "tenant.suspended"


class TenantUpgradeFailed(PlanChangeOutcome):
    """tenant.upgrade_failed: A plan change failed."""

    EVENT_TYPE: ClassVar[str] = "tenant.upgrade_failed"


class TenantUpgraded(PlanChangeOutcome):
    """tenant.upgraded: A tenant changed plan."""

    EVENT_TYPE: ClassVar[str] = "tenant.upgraded"


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
