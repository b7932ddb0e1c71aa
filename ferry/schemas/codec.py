"""Encode and decode Ferry events: Avro single-object encoding, or JSON from upstream.

See CONTRACT §1. ``encode`` always writes Avro; ``decode`` reads Avro (found by the
writer schema's CRC-64-AVRO fingerprint and resolved to the current reader schema)
or JSON validated against the same schema, and returns the same dict for both.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import expand_schema, fingerprint, parse_schema, to_parsing_canonical_form

Event = dict[str, Any]

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
AVRO_CONTENT_TYPE = "application/vnd.ferry.avro"
JSON_CONTENT_TYPE = "application/json"
NAMESPACE = "ferry.events"
AVSC_DIR = Path(__file__).parent / "avsc"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# Epoch milliseconds that fastavro can turn into a datetime (years 1..9999).
_MIN_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MS
_MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _MS
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class EventDecodeError(Exception):
    """An event could not be encoded or decoded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class MalformedEvent(EventDecodeError):
    """The bytes are not a decodable event (bad magic, truncated, garbage)."""


class UnknownSchema(EventDecodeError):
    """The writer schema's fingerprint is not in the registry."""


class InvalidEvent(EventDecodeError):
    """The record does not match its schema."""


class UnknownEventType(EventDecodeError):
    """The event type is not in the registry."""


def camel_case(event_type: str) -> str:
    """``file.share_requested`` -> ``FileShareRequested``."""
    return "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a schema's canonical form."""
    canonical = to_parsing_canonical_form(dict(schema))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True)
class _Schema:
    event_type: str
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes


def _load(event_type: str, raw: dict[str, Any]) -> _Schema:
    return _Schema(event_type, raw, parse_schema(raw), schema_fingerprint(raw))


class SchemaRegistry:
    """Reader schemas by event type, and writer schemas by fingerprint."""

    _default: ClassVar[SchemaRegistry | None] = None

    def __init__(self, directory: Path | str = AVSC_DIR) -> None:
        self._readers: dict[str, _Schema] = {}
        self._expanded: dict[str, Any] = {}
        self._writers: dict[bytes, _Schema] = {}
        self._by_name: dict[str, str] = {}
        for path in sorted(Path(directory).glob("*.avsc")):
            event_type = path.name.removesuffix(".avsc")
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("name") != camel_case(event_type) or raw.get("namespace") != NAMESPACE:
                raise ValueError(f"{path}: record must be {NAMESPACE}.{camel_case(event_type)}")
            schema = _load(event_type, raw)
            self._readers[event_type] = self._writers[schema.fingerprint] = schema
            self._expanded[event_type] = expand_schema(raw)
            self._by_name[f"{NAMESPACE}.{raw['name']}"] = event_type
        # Earlier versions of a schema (`previous/{event_type}.{n}.avsc`): records written
        # with them before a field was added still decode, into the current reader.
        for path in sorted(Path(directory).glob("previous/*.avsc")):
            event_type = path.name.split(".avsc")[0].rsplit(".", 1)[0]
            self.register_writer(json.loads(path.read_text(encoding="utf-8")), event_type)

    @classmethod
    def default(cls) -> SchemaRegistry:
        """The registry of the schemas shipped with Ferry (built once)."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(sorted(self._readers))

    def schema(self, event_type: str) -> dict[str, Any]:
        """A copy of the current (reader) schema of an event type, as in its ``.avsc``."""
        return copy.deepcopy(self._reader(event_type).raw)

    def fingerprint(self, event_type: str) -> bytes:
        """The fingerprint that ``encode`` writes for an event type."""
        return self._reader(event_type).fingerprint

    def register_writer(self, schema: Mapping[str, Any], event_type: str | None = None) -> bytes:
        """Accept records written with another (older or newer) version of a schema.

        The event type defaults to the one whose record has the same full name.
        Returns the schema's fingerprint.
        """
        raw = copy.deepcopy(dict(schema))
        if event_type is None:
            name = raw.get("name", "")
            full = name if "." in name else f"{raw.get('namespace', NAMESPACE)}.{name}"
            event_type = self._by_name.get(full)
            if event_type is None:
                raise UnknownEventType(f"no event type has a record named {full!r}")
        self._reader(event_type)
        writer = _load(event_type, raw)
        self._writers[writer.fingerprint] = writer
        return writer.fingerprint

    def _reader(self, event_type: str) -> _Schema:
        try:
            return self._readers[event_type]
        except KeyError:
            raise UnknownEventType(f"unknown event type {event_type!r}") from None

    def _writer(self, fp: bytes) -> _Schema:
        try:
            return self._writers[fp]
        except KeyError:
            raise UnknownSchema(f"unknown writer schema fingerprint {fp.hex()}") from None


def schema_for(event_type: str) -> dict[str, Any]:
    """The current schema of an event type from the default registry."""
    return SchemaRegistry.default().schema(event_type)


def encode(event: Mapping[str, Any], registry: SchemaRegistry | None = None) -> bytes:
    """Avro single-object encoding of an event; ``event["event_type"]`` picks the schema.

    Unknown fields are rejected (they would be silently lost). Timestamps must be
    timezone-aware datetimes or epoch milliseconds.
    """
    registry = registry or SchemaRegistry.default()
    schema = _validated_schema(event, registry, strict=True)
    return MAGIC + schema.fingerprint + _write(schema, event)


def decode(
    value: bytes,
    content_type: str | bytes | None = None,
    registry: SchemaRegistry | None = None,
) -> Event:
    """Decode an event from Avro (default) or JSON (``application/json``).

    Raises only ``EventDecodeError`` subclasses, whatever the input.
    """
    registry = registry or SchemaRegistry.default()
    kind = _media_type(content_type)
    try:
        data = bytes(value)
    except Exception:
        raise MalformedEvent(f"value must be bytes, not {type(value).__name__}") from None
    if kind == JSON_CONTENT_TYPE:
        return _decode_json(data, registry)
    if kind in ("", AVRO_CONTENT_TYPE):
        return _decode_avro(data, registry)
    raise MalformedEvent(f"unsupported content type {kind!r}")


def to_json(event: Mapping[str, Any]) -> bytes:
    """The JSON form of an event (CONTRACT §1): datetimes become epoch milliseconds."""

    def default(value: object) -> object:
        if isinstance(value, datetime):
            return _epoch_millis(value)
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    return json.dumps(event, default=default, ensure_ascii=False).encode("utf-8")


def _media_type(content_type: str | bytes | None) -> str:
    if content_type is None:
        return ""
    if isinstance(content_type, bytes | bytearray):
        content_type = bytes(content_type).decode("latin-1")
    if not isinstance(content_type, str):
        raise MalformedEvent(f"content type must be a string, not {type(content_type).__name__}")
    return content_type.split(";", 1)[0].strip().lower()


def _decode_avro(data: bytes, registry: SchemaRegistry) -> Event:
    if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
        raise MalformedEvent("not an Avro single-object encoding (bad magic or too short)")
    writer = registry._writer(data[len(MAGIC) : HEADER_SIZE])
    reader = registry._reader(writer.event_type)
    # BytesIO.read never allocates more than is left, so a huge declared length is harmless.
    body = io.BytesIO(data[HEADER_SIZE:])
    try:
        record = schemaless_reader(body, writer.parsed, reader.parsed)
    except SchemaResolutionError as exc:
        raise InvalidEvent(f"cannot resolve {writer.event_type} writer schema: {exc}") from None
    except Exception as exc:
        raise MalformedEvent(f"undecodable {writer.event_type} body: {_describe(exc)}") from None
    if body.tell() != len(data) - HEADER_SIZE:
        raise MalformedEvent(f"trailing bytes after the {writer.event_type} record")
    if not isinstance(record, dict) or record.get("event_type") != writer.event_type:
        found = record.get("event_type") if isinstance(record, dict) else None
        raise InvalidEvent(f"event_type {found!r} does not match its schema {writer.event_type}")
    return record


def _decode_json(data: bytes, registry: SchemaRegistry) -> Event:
    try:
        event = json.loads(data.decode("utf-8"))
    except Exception as exc:
        raise MalformedEvent(f"invalid JSON: {_describe(exc)}") from None
    if not isinstance(event, dict):
        raise InvalidEvent("a JSON event must be an object")
    schema = _validated_schema(event, registry, strict=False)
    # Round-trip through Avro so JSON and Avro yield identical dicts (defaults, datetimes).
    try:
        body = io.BytesIO(_write(schema, event))
        return cast(Event, schemaless_reader(body, schema.parsed, None))
    except EventDecodeError:
        raise
    except Exception as exc:
        raise InvalidEvent(f"invalid {schema.event_type} event: {_describe(exc)}") from None


def _validated_schema(event: Mapping[str, Any], registry: SchemaRegistry, strict: bool) -> _Schema:
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"an event must be a mapping, not {type(event).__name__}")
    event_type = event.get("event_type")
    if not isinstance(event_type, str):
        raise InvalidEvent("event_type: missing or not a string")
    schema = registry._reader(event_type)
    problem = _check(event, registry._expanded[event_type], "", strict)
    if problem:
        raise InvalidEvent(f"invalid {event_type} event: {problem}")
    return schema


def _write(schema: _Schema, event: Mapping[str, Any]) -> bytes:
    out = io.BytesIO()
    try:
        schemaless_writer(out, schema.parsed, event)
    except Exception as exc:
        raise InvalidEvent(f"cannot encode {schema.event_type}: {_describe(exc)}") from None
    return out.getvalue()


def _check(value: Any, schema: Any, path: str, strict: bool) -> str | None:
    """Why ``value`` does not match the (expanded) schema, or None if it does."""
    where = path or "event"
    if isinstance(schema, list):
        if any(_check(value, branch, path, strict) is None for branch in schema):
            return None
        branches = [b for b in schema if b != "null"]
        if value is not None and len(branches) == 1:
            return _check(value, branches[0], path, strict)
        return f"{where}: {_short(value)} matches none of {_type_names(schema)}"
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "record":
        if not isinstance(value, Mapping):
            return f"{where}: expected a record, got {_short(value)}"
        names = {field["name"] for field in schema["fields"]}
        extra = sorted(str(key) for key in value if key not in names)
        if strict and extra:
            return f"{path + '.' if path else ''}{extra[0]}: unknown field"
        for field in schema["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] not in value:
                if "default" in field:
                    continue
                return f"{sub}: missing required field"
            problem = _check(value[field["name"]], field["type"], sub, strict)
            if problem:
                return problem
        return None
    if kind == "enum":
        if isinstance(value, str) and value in schema["symbols"]:
            return None
        return f"{where}: {_short(value)} is not one of {', '.join(schema['symbols'])}"
    if kind == "array":
        if not isinstance(value, list | tuple):
            return f"{where}: expected an array, got {_short(value)}"
        for i, item in enumerate(value):
            problem = _check(item, schema["items"], f"{path}[{i}]", strict)
            if problem:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, Mapping):
            return f"{where}: expected a map, got {_short(value)}"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}: map key {_short(key)} is not a string"
            problem = _check(item, schema["values"], f"{path}[{key!r}]", strict)
            if problem:
                return problem
        return None
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return f"{where}: naive datetime (use a timezone-aware one)"
            return None
        if isinstance(value, int) and not isinstance(value, bool) and _MIN_MS <= value <= _MAX_MS:
            return None
        return f"{where}: expected a timestamp (epoch milliseconds), got {_short(value)}"
    return _check_primitive(value, kind, where)


def _check_primitive(value: Any, kind: str, where: str) -> str | None:
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif kind in ("float", "double"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        expected = {"null": type(None), "boolean": bool, "string": str, "bytes": bytes}
        ok = kind in expected and isinstance(value, expected[kind])
    return None if ok else f"{where}: expected {kind}, got {_short(value)}"


def _type_names(schema: list[Any]) -> str:
    names = [b if isinstance(b, str) else b.get("logicalType") or b["type"] for b in schema]
    return "|".join(names)


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # e.g. an int too large to print
        text = "..."
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _describe(exc: BaseException) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _epoch_millis(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetime (use a timezone-aware one)")
    return (value - _EPOCH) // _MS
