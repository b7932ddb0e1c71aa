"""Deterministic event IDs (CONTRACT §2) and where each outbound event goes."""

from __future__ import annotations

import uuid

# Fixed namespace for Ferry's UUIDv5 event IDs; changing it would change every ID.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3d0e-4c55-9a55-0c7b3b6f7e21")

OUTBOUND_TOPICS = {
    "file": "ferry.file-events.v1",
    "tenant": "ferry.tenant-events.v1",
    "billing": "ferry.billing-commands.v1",
    "notification": "ferry.notifications.v1",
}


def event_id_for(workflow_id: str, event_type: str, sequence: int = 0) -> str:
    """The ID of an event a workflow emits: the same on every retry of the publish."""
    name = f"{workflow_id}/{event_type}" + (f"/{sequence}" if sequence else "")
    return str(uuid.uuid5(EVENT_NAMESPACE, name))


def topic_for(event_type: str) -> str:
    """The outbound topic of an event type Ferry emits."""
    prefix = event_type.split(".", 1)[0]
    try:
        return OUTBOUND_TOPICS[prefix]
    except KeyError:
        raise ValueError(f"Ferry does not emit {event_type!r}") from None


def inbound_topic_for(event_type: str) -> str:
    """The topic an upstream service publishes an event type to (CONTRACT §3)."""
    if event_type == "file.uploaded":
        return "ferry.uploads.v1"
    if event_type.startswith("file."):
        return "ferry.file-commands.v1"
    if event_type.startswith("tenant."):
        return "ferry.tenants.v1"
    if event_type.startswith("billing.payment_"):
        return "ferry.billing.v1"
    raise ValueError(f"Ferry does not consume {event_type!r}")
