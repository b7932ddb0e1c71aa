"""Deterministic event IDs (CONTRACT §2) and the topic of each event type (CONTRACT §3-§4)."""

from __future__ import annotations

import uuid

# Fixed namespace for Ferry's UUIDv5 event IDs; changing it would change every ID.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3d0e-4c55-9a55-0c7b3b6f7e21")

FILE_EVENTS = "ferry.file-events.v1"
TENANT_EVENTS = "ferry.tenant-events.v1"

# What Ferry emits, and where (CONTRACT §4).
OUTBOUND_TOPIC = {
    **dict.fromkeys(
        (
            "file.processed", "file.rejected", "file.shared", "file.share_expired",
            "file.share_revoked", "file.migration_completed", "file.migration_failed",
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
    **dict.fromkeys(
        ("billing.charge_requested", "billing.refund_requested"), "ferry.billing-commands.v1"
    ),
    "notification.requested": "ferry.notifications.v1",
}  # fmt: skip

# What upstream services publish to Ferry, and where (CONTRACT §3).
INBOUND_TOPIC = {
    "file.uploaded": "ferry.uploads.v1",
    **dict.fromkeys(
        ("file.share_requested", "file.share_revocation_requested", "file.migration_requested"),
        "ferry.file-commands.v1",
    ),
    **dict.fromkeys(
        (
            "tenant.creation_requested", "tenant.upgrade_requested", "tenant.suspension_requested",
            "tenant.reactivation_requested", "tenant.deletion_requested",
        ),
        "ferry.tenants.v1",
    ),
    **dict.fromkeys(("billing.payment_succeeded", "billing.payment_failed"), "ferry.billing.v1"),
}  # fmt: skip


def event_id_for(workflow_id: str, event_type: str, sequence: int = 0) -> str:
    """The ID of an event a workflow emits: the same on every retry of the publish."""
    name = f"{workflow_id}/{event_type}" + (f"/{sequence}" if sequence else "")
    return str(uuid.uuid5(EVENT_NAMESPACE, name))


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
