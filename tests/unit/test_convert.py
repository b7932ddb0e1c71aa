"""`build`: one dataclass from another value's fields of the same names.

The router builds workflow inputs from decoded events with it, the database
activities their records from rows, and the workflows one payload from another.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from ferry.activities.database.shares import ShareInput
from ferry.contracts.convert import build
from ferry.contracts.enums import GranteeType, SharePermission
from ferry.contracts.storage import StorageRef
from ferry.contracts.workflows import FileUploadInput, ShareRequest


def uploaded_event() -> dict[str, object]:
    """A decoded `file.uploaded` record, the envelope included (CONTRACT §4)."""
    return {
        "event_id": "7a0c5f2e-0d7b-4c55-9f4e-6d9b1f0c2a11",
        "event_type": "file.uploaded",
        "occurred_at": 1764547200000,
        "tenant_id": "acme",
        "correlation_id": None,
        "source": "upload-api",
        "file_id": "f-1",
        "filename": "report.pdf",
        "declared_content_type": "application/pdf",
        "size_bytes": 5120,
        "storage": {"provider": "s3", "bucket": "ferry-ingest", "key": "tenants/acme/x"},
        "uploaded_by": "u-9",
        "sha256": None,
    }


def test_an_event_record_becomes_the_workflow_input_with_its_nested_reference() -> None:
    upload = build(FileUploadInput, uploaded_event())

    assert upload.storage == StorageRef("s3", "ferry-ingest", "tenants/acme/x")
    assert (upload.tenant_id, upload.file_id, upload.size_bytes) == ("acme", "f-1", 5120)
    # Fields the event does not carry keep the input's defaults.
    assert upload.analysis_deadline_seconds == 60.0


def test_given_fields_win_over_the_source() -> None:
    upload = build(FileUploadInput, uploaded_event(), uploaded_by="reconciliation")

    assert upload.uploaded_by == "reconciliation"


def test_an_object_source_gives_its_attributes_and_given_names_the_rest() -> None:
    row = SimpleNamespace(id="s-1", tenant_id="acme", file_id="f-1", shared_by="u-1")
    request = ShareRequest(
        event_id="e-1",
        tenant_id="acme",
        share_id="s-1",
        file_id="f-1",
        shared_by="u-1",
        grantee_type="email",
        permission="view",
        grantee="bob@example.com",
        message="for you",
    )

    share = build(
        ShareInput,
        request,
        grantee_type=GranteeType(request.grantee_type),
        permission=SharePermission(request.permission),
    )

    assert share == ShareInput(
        tenant_id="acme",
        share_id="s-1",
        file_id="f-1",
        shared_by="u-1",
        grantee_type=GranteeType.EMAIL,
        permission=SharePermission.VIEW,
        grantee="bob@example.com",
        notify=False,
        message="for you",
    )
    # An attribute named otherwise comes in by `given`; a row's extra attributes stay out.
    assert build(ShareRef, row, share_id=row.id) == ShareRef("acme", "s-1")


@dataclass
class ShareRef:
    tenant_id: str
    share_id: str


def test_a_field_given_that_the_type_does_not_have_is_refused() -> None:
    with pytest.raises(TypeError, match="ShareRef has no field sharer_id"):
        build(ShareRef, {"tenant_id": "acme", "share_id": "s-1"}, sharer_id="s-2")


def test_a_required_field_neither_source_nor_given_has_is_refused() -> None:
    with pytest.raises(TypeError, match="share_id"):
        build(ShareRef, SimpleNamespace(tenant_id="acme"))
