"""Encrypted payloads: every input, result, signal and query of Ferry's workflows.

AES-256-GCM from `cryptography`. Each encrypted payload records the ID of its
key in its metadata; the first configured key encrypts and every configured key
decrypts, so a key is rotated by putting a new one first and keeping the old
ones while histories still hold payloads they encrypted. Keys come from
`FERRY_PAYLOAD_KEYS`: comma-separated `key_id:base64key` (32-byte keys).
Payloads that are not encrypted (written before encryption was turned on)
pass through unchanged.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Iterable, Sequence

import temporalio.converter
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """`FERRY_PAYLOAD_KEYS` is malformed, or a payload names a key Ferry does not have."""


def parse_keys(spec: str) -> dict[str, bytes]:
    """`id:base64key,id2:base64key2` → {id: key}, in order (the first one encrypts)."""
    keys: dict[str, bytes] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep or not key_id:
            raise PayloadKeyError("each payload key is written key_id:base64key")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise PayloadKeyError(f"payload key {key_id!r} is not valid base64") from None
        if len(key) != 32:
            raise PayloadKeyError(f"payload key {key_id!r} must be 32 bytes, not {len(key)}")
        keys[key_id] = key
    if not keys:
        raise PayloadKeyError("no payload key configured")
    return keys


def new_key_spec(key_id: str = "k1") -> str:
    """A fresh key, written as `FERRY_PAYLOAD_KEYS` expects it."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise PayloadKeyError("no payload key configured")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = next(iter(keys))

    @classmethod
    def from_spec(cls, spec: str) -> EncryptionCodec:
        return cls(parse_keys(spec))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._current.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"payload encrypted with unknown key {key_id!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        return Payload.FromString(cipher.decrypt(nonce, sealed, None))

    def key_ids(self) -> Iterable[str]:
        return self._ciphers.keys()


def data_converter(spec: str | None) -> DataConverter:
    """Temporal's default converter, with the encryption codec when keys are configured."""
    default = temporalio.converter.default()
    if not spec:
        return default
    return dataclasses.replace(default, payload_codec=EncryptionCodec.from_spec(spec))
