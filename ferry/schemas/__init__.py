"""Ferry's event schemas (``avsc/*.avsc``) and the codec for them (CONTRACT §1)."""

from ferry.schemas.codec import (
    AVRO_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
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

__all__ = [
    "AVRO_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "EventDecodeError",
    "InvalidEvent",
    "MalformedEvent",
    "SchemaRegistry",
    "UnknownEventType",
    "UnknownSchema",
    "camel_case",
    "decode",
    "encode",
    "schema_fingerprint",
    "schema_for",
    "to_json",
]
