"""The event catalogue (`docs/events.md`), generated from the `.avsc` files.

`python -m ferry.schemas.catalogue` writes it; `--check` only compares. The
unit test `tests/unit/test_catalogue.py` fails when the committed file is not
what `render_catalogue()` produces, so the catalogue cannot drift from the
schemas.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.contracts.topics import INBOUND_TOPIC, OUTBOUND_TOPIC, STORAGE_NOTIFICATIONS
from ferry.schemas.codec import NAMESPACE, SchemaRegistry

CATALOGUE_PATH = Path(__file__).resolve().parents[2] / "docs" / "events.md"
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

Schema = Any  # an Avro schema as parsed JSON: a name, a list (union) or an object


@dataclass(frozen=True)
class FieldRow:
    """One row of an event's field table; nested record fields have dotted names."""

    name: str
    type: str
    default: str
    doc: str


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name else f"{namespace}.{name}"


def _short_name(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Names:
    """The named types (records, enums, fixed) defined so far in one schema file."""

    def __init__(self) -> None:
        self._types: dict[str, dict[str, Any]] = {}

    def define(self, schema: Mapping[str, Any], namespace: str) -> str:
        namespace = str(schema.get("namespace", namespace))
        full = _full_name(str(schema["name"]), namespace)
        self._types.setdefault(full, dict(schema))
        return namespace

    def resolve(self, name: str, namespace: str) -> dict[str, Any] | None:
        return self._types.get(_full_name(name, namespace)) or self._types.get(name)


def _is_record(schema: Schema, names: _Names, namespace: str) -> dict[str, Any] | None:
    """The record definition behind `schema` (inline or a reference to a named one)."""
    if isinstance(schema, str) and schema not in PRIMITIVES:
        schema = names.resolve(schema, namespace)
    if isinstance(schema, Mapping) and schema.get("type") == "record":
        return dict(schema)
    return None


def render_type(schema: Schema, names: _Names, namespace: str = NAMESPACE) -> str:
    """An Avro type in readable form, e.g. `null | timestamp-millis (long)`."""
    if isinstance(schema, list):
        return " | ".join(render_type(branch, names, namespace) for branch in schema)
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        named = names.resolve(schema, namespace)
        if named is None:
            return _short_name(schema)
        if named["type"] == "record":
            # Its fields are listed where it was defined; a record may also refer to itself.
            return f"record {_short_name(str(named['name']))}"
        return render_type(named, names, namespace)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "decimal":
        return f"decimal({schema.get('precision')}, {schema.get('scale', 0)}) ({kind})"
    if logical is not None:
        return f"{logical} ({render_type(kind, names, namespace)})"
    if kind in ("record", "enum", "fixed"):
        inner = names.define(schema, namespace)
        name = str(schema["name"])
        if kind == "enum":
            return f"enum {_short_name(name)} {{{', '.join(schema['symbols'])}}}"
        if kind == "fixed":
            return f"fixed {_short_name(name)} ({schema['size']} bytes)"
        for field in schema["fields"]:
            render_type(field["type"], names, inner)  # defines the nested named types
        return f"record {_short_name(name)}"
    if kind == "array":
        return f"array<{render_type(schema['items'], names, namespace)}>"
    if kind == "map":
        return f"map<{render_type(schema['values'], names, namespace)}>"
    return render_type(kind, names, namespace)


def _nested_record(schema: Schema, names: _Names, namespace: str) -> tuple[str, dict[str, Any]]:
    """The suffix and record whose fields are listed under a field of this type, if any."""
    record = _is_record(schema, names, namespace)
    if record is not None:
        return "", record
    if isinstance(schema, Mapping):
        if schema.get("type") == "array":
            suffix, record_ = _nested_record(schema["items"], names, namespace)
            return ("[]" + suffix, record_) if record_ else ("", {})
        if schema.get("type") == "map":
            suffix, record_ = _nested_record(schema["values"], names, namespace)
            return ("{}" + suffix, record_) if record_ else ("", {})
    if isinstance(schema, list):
        records = [r for r in (_is_record(b, names, namespace) for b in schema) if r is not None]
        if len(records) == 1:
            return "", records[0]
    return "", {}


def _rows(
    record: Mapping[str, Any],
    names: _Names,
    namespace: str,
    prefix: str = "",
    parents: frozenset[str] = frozenset(),
) -> list[FieldRow]:
    namespace = str(record.get("namespace", namespace))
    parents = parents | {_full_name(str(record["name"]), namespace)}
    rows: list[FieldRow] = []
    for field in record["fields"]:
        name = prefix + str(field["name"])
        rendered = render_type(field["type"], names, namespace)
        default = json.dumps(field["default"]) if "default" in field else ""
        rows.append(FieldRow(name, rendered, default, str(field.get("doc", ""))))
        suffix, nested = _nested_record(field["type"], names, namespace)
        if nested and _full_name(str(nested["name"]), namespace) not in parents:
            rows += _rows(nested, names, namespace, f"{name}{suffix}.", parents)
    return rows


def field_rows(schema: Mapping[str, Any]) -> list[FieldRow]:
    """Every field of an event's record, nested record fields as `parent.child` rows."""
    names = _Names()
    namespace = names.define(schema, NAMESPACE)
    return _rows(schema, names, namespace)


def _cell(text: str) -> str:
    """Text for a table cell: a pipe would end the cell (GitHub unescapes it in code too)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading (lower case, punctuation dropped, spaces to hyphens)."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _event_section(registry: SchemaRegistry, event_type: str) -> list[str]:
    schema = registry.schema(event_type)
    lines = [
        f"#### {event_type}",
        "",
        f"Record `{schema.get('namespace', NAMESPACE)}.{schema['name']}`, "
        f"fingerprint `{registry.fingerprint(event_type).hex()}` (the 8 bytes after `C3 01`).",
        "",
    ]
    if schema.get("doc"):
        lines += [str(schema["doc"]), ""]
    lines += ["| field | type | default | doc |", "|---|---|---|---|"]
    for row in field_rows(schema):
        lines.append(
            f"| {_code(row.name)} | {_code(row.type)} | {_code(row.default)} | {_cell(row.doc)} |"
        )
    return [*lines, ""]


def _by_topic(event_types: Sequence[str], topics: Mapping[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for event_type in event_types:
        if event_type in topics:
            grouped.setdefault(topics[event_type], []).append(event_type)
    return dict(sorted(grouped.items()))


def render_catalogue(registry: SchemaRegistry | None = None) -> str:
    """The whole catalogue as Markdown: every event type, grouped by direction and topic."""
    registry = registry or SchemaRegistry.default()
    event_types = registry.event_types
    sections = [
        ("Inbound topics (Ferry consumes)", _by_topic(event_types, INBOUND_TOPIC)),
        ("Outbound topics (Ferry emits)", _by_topic(event_types, OUTBOUND_TOPIC)),
    ]
    unrouted = [t for t in event_types if t not in INBOUND_TOPIC and t not in OUTBOUND_TOPIC]
    lines = [
        "# Event catalogue",
        "",
        "<!-- Generated from ferry/schemas/avsc/*.avsc by `python -m ferry.schemas.catalogue`;",
        "     do not edit by hand. tests/unit/test_catalogue.py fails when it is out of date. -->",
        "",
        f"Every event is an Avro record in the namespace `{NAMESPACE}`, named after its event",
        "type in CamelCase. On Kafka a value is Avro's single-object encoding: `C3 01`, the",
        "8-byte fingerprint of the writer schema, then the binary body; upstream services may",
        "publish the same record as JSON with `content-type: application/json`. Timestamps",
        "(`timestamp-millis`) are epoch milliseconds in UTC. Every record is keyed by its",
        "`tenant_id` and starts with the same six envelope fields (`event_id` to `source`).",
        "",
        f"`{STORAGE_NOTIFICATIONS}` is not listed: it carries the storage providers' own JSON",
        "bucket notifications, which the bridge turns into `file.uploaded` events.",
        "",
        "Nested record fields are listed as `parent.child`, the items of an array of records",
        "as `parent[].child`.",
        "",
    ]
    for title, grouped in sections:
        lines.append(f"- [{title}](#{anchor(title)})")
        for topic, types in grouped.items():
            links = ", ".join(f"[{t}](#{anchor(t)})" for t in types)
            lines.append(f"  - [{topic}](#{anchor(topic)}): {links}")
    if unrouted:
        lines.append(f"- [Not on any topic](#{anchor('Not on any topic')})")
    lines.append("")
    for title, grouped in sections:
        lines += [f"## {title}", ""]
        for topic, types in grouped.items():
            lines += [f"### {topic}", ""]
            for event_type in types:
                lines += _event_section(registry, event_type)
    if unrouted:
        lines += ["## Not on any topic", ""]
        for event_type in unrouted:
            lines += _event_section(registry, event_type)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferry.schemas.catalogue",
        description="Write the event catalogue generated from the .avsc files.",
    )
    parser.add_argument("--output", type=Path, default=CATALOGUE_PATH, help="the Markdown file")
    parser.add_argument(
        "--check", action="store_true", help="only check that the file is up to date"
    )
    args = parser.parse_args(argv)
    rendered = render_catalogue()
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != rendered:
            print(f"{output} is out of date: run python -m ferry.schemas.catalogue")
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered, encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
