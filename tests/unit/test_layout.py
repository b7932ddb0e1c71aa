"""Which objects an upload, and a tenant's work, may name (CONTRACT §6)."""

from __future__ import annotations

import pytest

from ferry.contracts.layout import (
    REASON_INVALID_KEY,
    REASON_OUTSIDE_TENANT,
    REASON_OUTSIDE_UPLOAD_PREFIX,
    Places,
    upload_key_refusal,
)

PLACES = Places(ingest_bucket="ferry-ingest", quarantine_bucket="ferry-quarantine")
FILE = "0b0f2a52-8a5e-4d4c-9a4e-2f1d3c4b5a69"


@pytest.mark.parametrize(
    "key",
    [
        f"tenants/acme/uploads/{FILE}/report.pdf",
        f"tenants/acme/uploads/{FILE}/My File (1) é.png",
        f"tenants/acme/uploads/{FILE}/nested/part.bin",
    ],
)
def test_an_upload_may_take_its_own_object(key: str) -> None:
    assert PLACES.upload_refusal("acme", FILE, "ferry-ingest", key) is None


@pytest.mark.parametrize(
    ("bucket", "key", "reason"),
    [
        # Another tenant's upload in the ingest bucket.
        ("ferry-ingest", f"tenants/other/uploads/{FILE}/private.txt", REASON_OUTSIDE_UPLOAD_PREFIX),
        # Another tenant's stored original, in its own bucket.
        ("ferry-other", f"files/{FILE}/original", REASON_OUTSIDE_UPLOAD_PREFIX),
        # The tenant's own stored file: an upload takes only what was uploaded for it.
        ("ferry-acme", f"files/{FILE}/original", REASON_OUTSIDE_UPLOAD_PREFIX),
        # Another file's upload of the same tenant.
        ("ferry-ingest", "tenants/acme/uploads/another-file/a.txt", REASON_OUTSIDE_UPLOAD_PREFIX),
        # A tenant whose name starts like this one's.
        ("ferry-ingest", f"tenants/acme-corp/uploads/{FILE}/a.txt", REASON_OUTSIDE_UPLOAD_PREFIX),
        # Quarantine, the right prefix in the wrong bucket.
        ("ferry-quarantine", f"tenants/acme/uploads/{FILE}/a.txt", REASON_OUTSIDE_UPLOAD_PREFIX),
        # The prefix alone names no object.
        ("ferry-ingest", f"tenants/acme/uploads/{FILE}/", REASON_INVALID_KEY),
        (
            "ferry-ingest",
            f"tenants/acme/uploads/{FILE}/../../../../canary/secret.txt",
            REASON_INVALID_KEY,
        ),
        ("ferry-ingest", f"tenants/acme/uploads/{FILE}/./a.txt", REASON_INVALID_KEY),
        ("ferry-ingest", f"/tenants/acme/uploads/{FILE}/a.txt", REASON_INVALID_KEY),
        ("ferry-ingest", f"tenants/acme/uploads/{FILE}/a\x00.txt", REASON_INVALID_KEY),
        ("ferry-ingest", f"tenants/acme/uploads/{FILE}\\..\\x", REASON_INVALID_KEY),
    ],
)
def test_an_upload_may_not_take_another_object(bucket: str, key: str, reason: str) -> None:
    refusal = PLACES.upload_refusal("acme", FILE, bucket, key)
    assert refusal is not None and refusal.startswith(reason), refusal


@pytest.mark.parametrize("file_id", ["", ".", "..", "a/b", "a\\b", "a\nb"])
def test_a_file_id_is_one_segment(file_id: str) -> None:
    key = f"tenants/acme/uploads/{file_id}/a.txt"
    refusal = upload_key_refusal("acme", file_id, key)
    assert refusal is not None and refusal.startswith(REASON_INVALID_KEY)


def test_the_readable_reason_names_the_prefix() -> None:
    refusal = PLACES.upload_refusal("acme", FILE, "ferry-ingest", "tenants/b/uploads/x/p.txt")
    assert refusal == (
        "storage key outside the tenant's upload prefix: 'tenants/b/uploads/x/p.txt' "
        f"is not under 'tenants/acme/uploads/{FILE}/'"
    )


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("ferry-acme", f"files/{FILE}/original"),
        ("ferry-acme", f"files/{FILE}/thumbnails/small.webp"),
        ("ferry-ingest", f"tenants/acme/uploads/{FILE}/a.txt"),
        ("ferry-quarantine", f"quarantine/acme/{FILE}"),
    ],
)
def test_a_tenant_works_in_its_own_places(bucket: str, key: str) -> None:
    assert PLACES.tenant_refusal("acme", bucket, key) is None


@pytest.mark.parametrize(
    ("bucket", "key", "reason"),
    [
        ("ferry-other", f"files/{FILE}/original", REASON_OUTSIDE_TENANT),
        ("ferry-acme-corp", f"files/{FILE}/original", REASON_OUTSIDE_TENANT),
        ("ferry-ingest", f"tenants/acme-corp/uploads/{FILE}/a.txt", REASON_OUTSIDE_TENANT),
        ("ferry-quarantine", f"quarantine/acme-corp/{FILE}", REASON_OUTSIDE_TENANT),
        ("ferry-quarantine", f"quarantine/other/{FILE}", REASON_OUTSIDE_TENANT),
        ("ferry-acme", "files/../../ferry-other/files/x/original", REASON_INVALID_KEY),
    ],
)
def test_a_tenant_works_nowhere_else(bucket: str, key: str, reason: str) -> None:
    refusal = PLACES.tenant_refusal("acme", bucket, key)
    assert refusal is not None and refusal.startswith(reason), refusal


def test_the_ingest_bucket_is_the_configured_one() -> None:
    places = Places(ingest_bucket="acme-uploads-eu", quarantine_bucket="ferry-quarantine")
    key = f"tenants/acme/uploads/{FILE}/a.txt"
    assert places.upload_refusal("acme", FILE, "acme-uploads-eu", key) is None
    assert places.upload_refusal("acme", FILE, "ferry-ingest", key) is not None
