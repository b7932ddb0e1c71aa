"""The payload codec: AES-GCM round trips, key rotation, and clear errors."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload

from ferry.temporal.codec import (
    ENCODING,
    EncryptionCodec,
    PayloadKeyError,
    new_key_spec,
    parse_keys,
)


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_a_payload_round_trips_and_is_ciphertext_in_between() -> None:
    codec = EncryptionCodec.from_spec(new_key_spec("k1"))
    original = _payload('{"admin_email": "someone@example.com"}')

    [sealed] = await codec.encode([original])
    [opened] = await codec.decode([sealed])

    assert b"someone@example.com" not in sealed.data
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert opened == original


async def test_two_encryptions_of_the_same_payload_differ() -> None:
    codec = EncryptionCodec.from_spec(new_key_spec())
    first, second = await codec.encode([_payload("same"), _payload("same")])
    assert first.data != second.data


async def test_rotation_new_key_first_old_payloads_still_decrypt() -> None:
    old = new_key_spec("k1")
    [sealed_with_old] = await EncryptionCodec.from_spec(old).encode([_payload("kept")])
    rotated = EncryptionCodec.from_spec(f"{new_key_spec('k2')},{old}")

    [fresh] = await rotated.encode([_payload("new")])
    assert fresh.metadata["encryption-key-id"] == b"k2"
    assert [p.data for p in await rotated.decode([sealed_with_old, fresh])] == [b"kept", b"new"]


async def test_a_payload_of_a_dropped_key_is_a_clear_error() -> None:
    [sealed] = await EncryptionCodec.from_spec(new_key_spec("gone")).encode([_payload("x")])
    with pytest.raises(PayloadKeyError, match="unknown key 'gone'"):
        await EncryptionCodec.from_spec(new_key_spec("k9")).decode([sealed])


async def test_plain_payloads_pass_through_decoding() -> None:
    plain = _payload("written before encryption was on")
    assert await EncryptionCodec.from_spec(new_key_spec()).decode([plain]) == [plain]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no payload key"),
        ("k1", "key_id:base64key"),
        ("k1:not base64!", "not valid base64"),
        ("k1:c2hvcnQ=", "must be 32 bytes"),
    ],
)
def test_malformed_key_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        parse_keys(spec)
