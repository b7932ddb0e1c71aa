"""Deterministic event IDs (CONTRACT §2) and topic routing (CONTRACT §3-§4)."""

from __future__ import annotations

import uuid

import pytest

from ferry.contracts.ids import event_id_for
from ferry.contracts.topics import inbound_topic_for, topic_for
from ferry.schemas import SchemaRegistry

WORKFLOW_ID = "file-upload/acme/0b0f2a52-8a5e-4d4c-9a4e-2f1d3c4b5a69"
# The namespace documented in ferry/contracts/ids.py; IDs already published
# downstream depend on it, so it is written out here rather than imported.
NAMESPACE = uuid.UUID("6f1c1a52-3d0e-4c55-9a55-0c7b3b6f7e21")

# CONTRACT §4: what Ferry emits, and where.
OUTBOUND = {
    "file.processed": "ferry.file-events.v1",
    "file.rejected": "ferry.file-events.v1",
    "file.shared": "ferry.file-events.v1",
    "file.share_expired": "ferry.file-events.v1",
    "file.share_revoked": "ferry.file-events.v1",
    "file.migration_completed": "ferry.file-events.v1",
    "file.migration_failed": "ferry.file-events.v1",
    "tenant.provisioned": "ferry.tenant-events.v1",
    "tenant.provisioning_failed": "ferry.tenant-events.v1",
    "tenant.upgraded": "ferry.tenant-events.v1",
    "tenant.upgrade_failed": "ferry.tenant-events.v1",
    "tenant.usage_reported": "ferry.tenant-events.v1",
    "tenant.quota_exceeded": "ferry.tenant-events.v1",
    "tenant.suspended": "ferry.tenant-events.v1",
    "tenant.reactivated": "ferry.tenant-events.v1",
    "tenant.deleted": "ferry.tenant-events.v1",
    "billing.charge_requested": "ferry.billing-commands.v1",
    "notification.requested": "ferry.notifications.v1",
    # Added to the contract: the refund that compensates a failed upgrade.
    "billing.refund_requested": "ferry.billing-commands.v1",
    # Added to the contract: a processed file that newer signatures find infected.
    "file.quarantined": "ferry.file-events.v1",
}

# CONTRACT §3: what upstream services publish to Ferry, and where.
INBOUND = {
    "file.uploaded": "ferry.uploads.v1",
    "file.share_requested": "ferry.file-commands.v1",
    "file.share_revocation_requested": "ferry.file-commands.v1",
    "file.migration_requested": "ferry.file-commands.v1",
    "tenant.creation_requested": "ferry.tenants.v1",
    "tenant.upgrade_requested": "ferry.tenants.v1",
    "tenant.suspension_requested": "ferry.tenants.v1",
    "tenant.reactivation_requested": "ferry.tenants.v1",
    "tenant.deletion_requested": "ferry.tenants.v1",
    "billing.payment_succeeded": "ferry.billing.v1",
    "billing.payment_failed": "ferry.billing.v1",
}

REGISTRY_TYPES = set(SchemaRegistry.default().event_types)


# --- event IDs ---------------------------------------------------------------------


def test_event_id_is_deterministic() -> None:
    assert event_id_for(WORKFLOW_ID, "file.processed") == event_id_for(
        WORKFLOW_ID, "file.processed"
    )
    assert event_id_for(WORKFLOW_ID, "file.processed", 3) == event_id_for(
        WORKFLOW_ID, "file.processed", 3
    )


def test_event_id_is_a_canonical_uuid_v5() -> None:
    event_id = event_id_for(WORKFLOW_ID, "file.processed")
    parsed = uuid.UUID(event_id)
    assert parsed.version == 5
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == event_id  # lower-case, hyphenated, 36 characters


def test_event_id_is_uuid5_of_workflow_id_and_event_type() -> None:
    assert event_id_for(WORKFLOW_ID, "file.processed") == str(
        uuid.uuid5(NAMESPACE, f"{WORKFLOW_ID}/file.processed")
    )


def test_event_id_is_stable_across_releases() -> None:
    # Pinned: consumers deduplicate on these; a change here re-delivers history.
    assert event_id_for(WORKFLOW_ID, "file.processed") == "17cf7e2d-4c5c-568b-9262-12abd870e0fc"
    assert event_id_for(WORKFLOW_ID, "file.processed", 2) == "af3cac18-1494-58d3-bea7-de2ce2acce44"


def test_event_id_differs_by_workflow_id() -> None:
    other = "file-upload/acme/11111111-2222-4333-8444-555555555555"
    assert event_id_for(WORKFLOW_ID, "file.processed") != event_id_for(other, "file.processed")
    assert event_id_for("file-upload/acme/x", "file.processed") != event_id_for(
        "file-upload/globex/x", "file.processed"
    )


def test_event_id_differs_by_event_type() -> None:
    ids = {event_id_for(WORKFLOW_ID, event_type) for event_type in REGISTRY_TYPES}
    assert len(ids) == len(REGISTRY_TYPES)


def test_event_id_differs_by_sequence() -> None:
    ids = [event_id_for(WORKFLOW_ID, "notification.requested", n) for n in range(50)]
    assert len(set(ids)) == 50


def test_sequence_zero_is_the_default() -> None:
    assert event_id_for(WORKFLOW_ID, "file.processed", 0) == event_id_for(
        WORKFLOW_ID, "file.processed"
    )


# --- topics ------------------------------------------------------------------------


def test_contract_tables_cover_the_registry() -> None:
    # Every schema shipped is either consumed or emitted, never both: a new
    # schema has to be added to one table above (and to the CONTRACT).
    assert set(OUTBOUND) | set(INBOUND) == REGISTRY_TYPES
    assert not set(OUTBOUND) & set(INBOUND)


@pytest.mark.parametrize(("event_type", "topic"), sorted(OUTBOUND.items()))
def test_outbound_type_maps_to_its_contract_topic(event_type: str, topic: str) -> None:
    assert topic_for(event_type) == topic


@pytest.mark.parametrize(("event_type", "topic"), sorted(INBOUND.items()))
def test_inbound_type_maps_to_its_contract_topic(event_type: str, topic: str) -> None:
    assert inbound_topic_for(event_type) == topic


@pytest.mark.parametrize(
    "event_type",
    ["", "unknown.event", "files.processed", "File.processed", "fileprocessed", "user.created"],
)
def test_topic_for_an_unknown_type_raises(event_type: str) -> None:
    with pytest.raises(ValueError):
        topic_for(event_type)


@pytest.mark.parametrize(
    "event_type",
    [
        "",
        "unknown.event",
        "files.uploaded",
        "tenants.creation_requested",
        "billing.charge_requested",
        "billing.refund_requested",
        "notification.requested",
    ],
)
def test_inbound_topic_for_an_unknown_type_raises(event_type: str) -> None:
    with pytest.raises(ValueError):
        inbound_topic_for(event_type)


@pytest.mark.parametrize(
    "event_type",
    ["file.uploaded", "tenant.creation_requested", "billing.payment_succeeded", "file.bogus"],
)
def test_topic_for_refuses_types_ferry_does_not_emit(event_type: str) -> None:
    with pytest.raises(ValueError):
        topic_for(event_type)


@pytest.mark.parametrize("event_type", ["file.processed", "tenant.provisioned", "file.bogus"])
def test_inbound_topic_for_refuses_types_ferry_does_not_consume(event_type: str) -> None:
    with pytest.raises(ValueError):
        inbound_topic_for(event_type)
