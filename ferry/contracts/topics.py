"""Ferry's Kafka topics and the topic of each event type (CONTRACT §3-§4)."""

from __future__ import annotations

UPLOADS = "ferry.uploads.v1"
FILE_COMMANDS = "ferry.file-commands.v1"
TENANTS = "ferry.tenants.v1"
BILLING = "ferry.billing.v1"
STORAGE_NOTIFICATIONS = "ferry.storage-notifications.v1"

FILE_EVENTS = "ferry.file-events.v1"
TENANT_EVENTS = "ferry.tenant-events.v1"
BILLING_COMMANDS = "ferry.billing-commands.v1"
NOTIFICATIONS = "ferry.notifications.v1"

DLQ = "ferry.dlq.v1"

# What Ferry emits, and where (CONTRACT §4).
OUTBOUND_TOPIC = {
    **dict.fromkeys(
        (
            "file.processed", "file.rejected", "file.shared", "file.share_expired",
            "file.share_revoked", "file.migration_completed", "file.migration_failed",
            "file.quarantined",
        ),
        FILE_EVENTS,
    ),
    **dict.fromkeys(
        (
            "tenant.provisioned", "tenant.provisioning_failed", "tenant.upgraded",
            "tenant.upgrade_failed", "tenant.usage_reported", "tenant.quota_exceeded",
            "tenant.suspended", "tenant.reactivated", "tenant.deleted",
        ),
        TENANT_EVENTS,
    ),
    **dict.fromkeys(("billing.charge_requested", "billing.refund_requested"), BILLING_COMMANDS),
    "notification.requested": NOTIFICATIONS,
}  # fmt: skip

# What upstream services publish to Ferry, and where (CONTRACT §3).
INBOUND_TOPIC = {
    "file.uploaded": UPLOADS,
    **dict.fromkeys(
        ("file.share_requested", "file.share_revocation_requested", "file.migration_requested"),
        FILE_COMMANDS,
    ),
    **dict.fromkeys(
        (
            "tenant.creation_requested", "tenant.upgrade_requested", "tenant.suspension_requested",
            "tenant.reactivation_requested", "tenant.deletion_requested",
        ),
        TENANTS,
    ),
    **dict.fromkeys(("billing.payment_succeeded", "billing.payment_failed"), BILLING),
}  # fmt: skip

# Every topic the bridge reads: the upstream services' and the bucket notifications.
INBOUND_TOPICS = (*dict.fromkeys(INBOUND_TOPIC.values()), STORAGE_NOTIFICATIONS)


def topic_for(event_type: str) -> str:
    """The outbound topic of an event type Ferry emits."""
    try:
        return OUTBOUND_TOPIC[event_type]
    except KeyError:
        raise ValueError(f"Ferry does not emit {event_type!r}") from None


def inbound_topic_for(event_type: str) -> str:
    """The topic an upstream service publishes an event type to."""
    try:
        return INBOUND_TOPIC[event_type]
    except KeyError:
        raise ValueError(f"Ferry does not consume {event_type!r}") from None
