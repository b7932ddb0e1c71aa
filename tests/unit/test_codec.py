"""The event codec: Avro single-object encoding, JSON input, schema evolution, bad input."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import expand_schema, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.schemas import (
    EventDecodeError,
    InvalidEvent,
    MalformedEvent,
    SchemaRegistry,
    UnknownEventType,
    UnknownSchema,
    camel_case,
    decode,
    encode,
    schema_fingerprint,
    schema_for,
    to_json,
)

REGISTRY = SchemaRegistry.default()
PREVIOUS = Path(decode.__code__.co_filename).parent / "avsc" / "previous"
EVENT_TYPES = REGISTRY.event_types
WHEN = datetime(2024, 5, 17, 12, 30, 45, 123000, tzinfo=UTC)
JSON = "application/json"

EXPECTED_TYPES = {
    *"file.uploaded file.share_requested file.share_revocation_requested".split(),
    *"file.migration_requested tenant.creation_requested tenant.upgrade_requested".split(),
    *"tenant.suspension_requested tenant.reactivation_requested tenant.deletion_requested".split(),
    *"billing.payment_succeeded billing.payment_failed file.processed file.rejected".split(),
    *"file.shared file.share_expired file.share_revoked file.migration_completed".split(),
    *"file.migration_failed tenant.provisioned tenant.provisioning_failed".split(),
    *"tenant.upgraded tenant.upgrade_failed tenant.usage_reported tenant.quota_exceeded".split(),
    *"tenant.suspended tenant.reactivated tenant.deleted billing.charge_requested".split(),
    "notification.requested",
    # An addition to CONTRACT §4: the compensation of a charge for an upgrade that failed.
    "billing.refund_requested",
    # An addition: a processed file that newer signatures find infected (the rescan).
    "file.quarantined",
}
ENVELOPE = ["event_id", "event_type", "occurred_at", "tenant_id", "correlation_id", "source"]


def sample_value(schema: Any, name: str = "value") -> Any:
    """A valid value for an expanded Avro schema."""
    if isinstance(schema, list):
        return sample_value(next(b for b in schema if b != "null"), name)
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        return WHEN
    if kind == "record":
        return {f["name"]: sample_value(f["type"], f["name"]) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "array":
        return [sample_value(schema["items"], name)]
    if kind == "map":
        return {"k": sample_value(schema["values"], name)}
    primitives = {"string": f"{name}-1", "int": 7, "long": 2**40, "boolean": True, "null": None}
    return primitives[kind]


def sample_event(event_type: str) -> dict[str, Any]:
    event = sample_value(expand_schema(schema_for(event_type)))
    return {**event, "event_type": event_type, "tenant_id": "acme"}


def single_object(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return b"\xc3\x01" + schema_fingerprint(schema) + body.getvalue()


def test_registry_holds_every_contract_event_type() -> None:
    assert set(EVENT_TYPES) == EXPECTED_TYPES
    for event_type in EVENT_TYPES:
        schema = schema_for(event_type)
        assert schema["namespace"] == "ferry.events"
        assert schema["name"] == camel_case(event_type)
        assert [f["name"] for f in schema["fields"][:6]] == ENVELOPE


def test_camel_case() -> None:
    assert camel_case("file.uploaded") == "FileUploaded"
    assert camel_case("billing.charge_requested") == "BillingChargeRequested"
    assert camel_case("file.share_revocation_requested") == "FileShareRevocationRequested"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_avro_round_trip(event_type: str) -> None:
    event = sample_event(event_type)
    assert decode(encode(event)) == event
    assert decode(encode(event), "application/vnd.ferry.avro") == event


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_json_decodes_like_avro(event_type: str) -> None:
    event = sample_event(event_type)
    assert decode(to_json(event), JSON) == decode(encode(event))


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_single_object_header(event_type: str) -> None:
    encoded = encode(sample_event(event_type))
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:10] == REGISTRY.fingerprint(event_type)
    assert encoded[2:10] == schema_fingerprint(schema_for(event_type))


def crc64_avro(data: bytes) -> int:
    """The reference fingerprint64 from the Avro specification."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_fingerprint_is_little_endian_crc64_of_canonical_form() -> None:
    schema = schema_for("file.uploaded")
    canonical = to_parsing_canonical_form(schema).encode()
    assert REGISTRY.fingerprint("file.uploaded") == crc64_avro(canonical).to_bytes(8, "little")


def test_decoded_timestamps_are_utc_datetimes() -> None:
    decoded = decode(encode({**sample_event("file.uploaded"), "occurred_at": 1_700_000_000_123}))
    assert decoded["occurred_at"] == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


def test_older_writer_without_a_field_decodes_with_its_default() -> None:
    registry = SchemaRegistry()
    old = schema_for("file.uploaded")
    old["fields"] = [f for f in old["fields"] if f["name"] != "sha256"]
    assert registry.register_writer(old) == schema_fingerprint(old)
    event = sample_event("file.uploaded")
    old_record = {k: v for k, v in event.items() if k != "sha256"}

    decoded = decode(single_object(old, old_record), registry=registry)

    assert decoded == {**event, "sha256": None}
    with pytest.raises(UnknownSchema):
        decode(single_object(old, old_record))  # the default registry does not know it


def test_newer_writer_with_an_extra_field_decodes() -> None:
    registry = SchemaRegistry()
    new = schema_for("file.uploaded")
    extra = {"name": "crc32c", "type": ["null", "string"], "default": None}
    new["fields"] = [*new["fields"], extra]
    registry.register_writer(new, "file.uploaded")
    event = sample_event("file.uploaded")

    assert decode(single_object(new, {**event, "crc32c": "abc"}), registry=registry) == event


def test_register_writer_rejects_an_unknown_record_name() -> None:
    schema = {**schema_for("file.uploaded"), "name": "Nope"}
    with pytest.raises(UnknownEventType):
        SchemaRegistry().register_writer(schema)


def test_json_fills_defaults_ignores_unknown_fields_and_accepts_charset() -> None:
    event = sample_event("file.migration_requested")
    del event["batch_size"], event["delete_source"], event["prefix"], event["correlation_id"]
    event["added_later"] = {"x": 1}

    decoded = decode(to_json(event), "Application/JSON; charset=utf-8")

    assert decoded["batch_size"] == 100
    assert decoded["delete_source"] is False
    assert decoded["prefix"] is None and decoded["correlation_id"] is None
    assert "added_later" not in decoded
    assert decoded["occurred_at"] == WHEN


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"size_bytes": "12"}, "size_bytes"),
        ({"size_bytes": 1.5}, "size_bytes"),
        ({"size_bytes": True}, "size_bytes"),
        ({"size_bytes": 2**64}, "size_bytes"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"sha256": 5}, "sha256"),
        ({"storage": {"provider": "s4", "bucket": "b", "key": "k"}}, "storage.provider"),
        ({"storage": {"provider": "s3", "bucket": "b"}}, "storage.key"),
        ({"storage": "s3://b/k"}, "storage"),
    ],
)
def test_json_with_a_wrong_type_is_invalid(patch: dict[str, Any], field: str) -> None:
    event = {**sample_event("file.uploaded"), **patch}
    with pytest.raises(InvalidEvent) as info:
        decode(to_json(event), JSON)
    assert field in info.value.reason
    assert str(info.value) == info.value.reason


def test_json_missing_a_required_field_is_invalid() -> None:
    event = sample_event("file.uploaded")
    del event["file_id"]
    with pytest.raises(InvalidEvent, match="file_id: missing required field"):
        decode(to_json(event), JSON)


@pytest.mark.parametrize("value", [b"[1, 2]", b'"file.uploaded"', b'{"file_id": "f"}'])
def test_json_that_is_not_an_event_is_invalid(value: bytes) -> None:
    with pytest.raises(InvalidEvent):
        decode(value, JSON)


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe", b""])
def test_unparseable_json_is_malformed(value: bytes) -> None:
    with pytest.raises(MalformedEvent):
        decode(value, JSON)


def test_unknown_event_type() -> None:
    event = {**sample_event("file.uploaded"), "event_type": "file.teleported"}
    with pytest.raises(UnknownEventType, match=r"file\.teleported"):
        decode(to_json(event), JSON)
    with pytest.raises(UnknownEventType):
        encode(event)


def test_encode_rejects_invalid_events() -> None:
    event = sample_event("file.uploaded")
    with pytest.raises(InvalidEvent, match="size_bytes"):
        encode({**event, "size_bytes": "big"})
    with pytest.raises(InvalidEvent, match="sha265: unknown field"):
        encode({**event, "sha265": "typo"})
    with pytest.raises(InvalidEvent, match="naive"):
        encode({**event, "occurred_at": datetime(2024, 1, 1)})


def test_unknown_fingerprint() -> None:
    body = encode(sample_event("file.uploaded"))[10:]
    with pytest.raises(UnknownSchema):
        decode(b"\xc3\x01" + b"\x00" * 8 + body)


def test_event_type_must_match_the_schema() -> None:
    schema = schema_for("file.uploaded")
    record = {**sample_event("file.uploaded"), "event_type": "file.processed"}
    with pytest.raises(InvalidEvent, match="event_type"):
        decode(single_object(schema, record))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1],
        lambda b: b[:12],
        lambda b: b[:10],
        lambda b: b[:5],
        lambda b: b + b"\x00",
        lambda b: b"\x00\x01" + b[2:],
        lambda b: b"hello world, this is not avro",
        lambda b: b"",
        # a string length of 2**62: must fail fast, without allocating it
        lambda b: b[:10] + b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
    ],
)
def test_truncated_or_garbage_bytes_are_malformed(mangle: Any) -> None:
    with pytest.raises(MalformedEvent):
        decode(mangle(encode(sample_event("file.processed"))))


def test_unsupported_content_type_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="text/plain"):
        decode(encode(sample_event("file.uploaded")), "text/plain")


@settings(max_examples=500)
@given(
    st.binary(max_size=2048),
    st.sampled_from([None, JSON, "application/vnd.ferry.avro", "text/plain"]),
)
def test_decode_raises_only_event_decode_errors(value: bytes, content_type: str | None) -> None:
    try:
        decode(value, content_type)
    except EventDecodeError:
        pass


mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate"]),
    st.integers(min_value=0, max_value=4096),
    st.integers(min_value=0, max_value=255),
)


@settings(max_examples=500)
@given(st.sampled_from(EVENT_TYPES), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_encodings_decode_or_fail_cleanly(
    event_type: str, mutations: list[tuple[str, int, int]]
) -> None:
    encoded = encode(sample_event(event_type))
    header, body = encoded[:10], bytearray(encoded[10:])
    for op, position, byte in mutations:
        i = position % (len(body) + 1)
        if op == "flip" and i < len(body):
            body[i] ^= byte or 0xFF
        elif op == "insert":
            body.insert(i, byte)
        elif op == "delete" and i < len(body):
            del body[i]
        elif op == "truncate":
            del body[i:]
    try:
        assert isinstance(decode(header + bytes(body)), dict)
    except EventDecodeError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.sampled_from(EVENT_TYPES), st.data())
def test_json_with_arbitrary_field_values_fails_cleanly(event_type: str, data: Any) -> None:
    event = json.loads(to_json(sample_event(event_type)))
    field = data.draw(st.sampled_from(sorted(event)))
    event[field] = data.draw(json_values)
    try:
        decode(json.dumps(event).encode(), JSON)
    except EventDecodeError:
        pass


def test_a_record_written_with_an_earlier_schema_decodes_into_the_current_one() -> None:
    """tenant.deleted gained its receipt's fields; records from before still decode."""
    earlier = json.loads((PREVIOUS / "tenant.deleted.1.avsc").read_text())
    writer = fastavro.parse_schema(earlier)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, writer, {
        "event_id": "e-1", "event_type": "tenant.deleted", "occurred_at": 1_795_000_000_000,
        "tenant_id": "acme", "correlation_id": None, "source": "ferry.tenant-monitoring",
        "detail": None,
    })  # fmt: skip
    record = b"\xc3\x01" + schema_fingerprint(earlier) + body.getvalue()

    event = decode(record)

    assert (event["event_type"], event["tenant_id"]) == ("tenant.deleted", "acme")
    receipt = ("rows_deleted", "objects_deleted", "bytes_deleted", "verified")
    assert [event[name] for name in receipt] == [None] * len(receipt)
