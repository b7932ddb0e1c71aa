"""Deterministic event IDs (CONTRACT §2): the same ID on every retry of a publish."""

from __future__ import annotations

import uuid

# Fixed namespace for Ferry's UUIDv5 event IDs; changing it would change every ID.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3d0e-4c55-9a55-0c7b3b6f7e21")


def event_id_for(workflow_id: str, event_type: str, sequence: int = 0) -> str:
    """The ID of an event a workflow emits: the same on every retry of the publish."""
    name = f"{workflow_id}/{event_type}" + (f"/{sequence}" if sequence else "")
    return str(uuid.uuid5(EVENT_NAMESPACE, name))
