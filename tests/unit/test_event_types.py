"""Every event type Ferry emits has one dataclass, and it matches its `.avsc` file."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
import uuid
from pathlib import Path
from typing import Any

import pytest

from ferry.contracts import events
from ferry.contracts.storage import BucketRef, StorageRef
from ferry.contracts.topics import OUTBOUND_TOPIC
from ferry.schemas import decode, encode

AVSC = Path(events.__file__).resolve().parents[1] / "schemas" / "avsc"
ENVELOPE = {"event_id", "event_type", "occurred_at", "tenant_id", "correlation_id", "source"}
CLASSES = {
    cls.EVENT_TYPE: cls
    for cls in vars(events).values()
    if isinstance(cls, type) and issubclass(cls, events.Event) and "EVENT_TYPE" in vars(cls)
}


def schema(event_type: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((AVSC / f"{event_type}.avsc").read_text())
    return loaded


def test_every_emitted_event_type_has_exactly_one_class() -> None:
    assert set(CLASSES) == set(OUTBOUND_TOPIC)


@pytest.mark.parametrize("event_type", sorted(OUTBOUND_TOPIC))
def test_the_class_has_the_schemas_fields_and_their_optionality(event_type: str) -> None:
    cls = CLASSES[event_type]
    hints = typing.get_type_hints(cls)
    body = [f for f in schema(event_type)["fields"] if f["name"] not in ENVELOPE]
    assert [f.name for f in dataclasses.fields(cls)] == [f["name"] for f in body]
    for field in body:
        nullable = isinstance(field["type"], list) and "null" in field["type"]
        hint = hints[field["name"]]
        optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
        assert optional == nullable, f"{event_type}.{field['name']}"


def sample(hint: Any) -> Any:
    """A value of the annotated type, for a round trip through the codec."""
    if isinstance(hint, types.UnionType):
        return sample(next(a for a in typing.get_args(hint) if a is not type(None)))
    origin = typing.get_origin(hint)
    if origin is list:
        return [sample(typing.get_args(hint)[0])]
    if origin is dict:
        return {"k": sample(typing.get_args(hint)[1])}
    if hint is StorageRef:
        return StorageRef("s3", "ferry-acme", "files/f/original")
    if hint is BucketRef:
        return BucketRef("s3", "ferry-acme")
    if dataclasses.is_dataclass(hint):
        return hint(**{f.name: sample(t) for f, t in zip(
            dataclasses.fields(hint), typing.get_type_hints(hint).values(), strict=True
        )})  # fmt: skip
    return {str: "x", int: 1, bool: True}[hint]


ENUM_VALUES = {"reason": "corrupt", "plan": "pro", "from_plan": "free", "to_plan": "pro",
               "grantee_type": "email", "permission": "view", "channel": "email"}  # fmt: skip


@pytest.mark.parametrize("event_type", sorted(OUTBOUND_TOPIC))
def test_an_instance_encodes_as_its_schema_wants(event_type: str) -> None:
    cls = CLASSES[event_type]
    hints = typing.get_type_hints(cls)
    values = {
        f.name: ENUM_VALUES.get(f.name, sample(hints[f.name])) for f in dataclasses.fields(cls)
    }
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": 1_795_000_000_000,
        "tenant_id": "acme",
        "correlation_id": None,
        "source": "tests",
    }
    event = {**envelope, **cls(**values).fields()}

    assert decode(encode(event))["event_type"] == event_type
