"""The event catalogue (docs/events.md) is generated from the schemas and never drifts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.contracts.topics import INBOUND_TOPIC, OUTBOUND_TOPIC
from ferry.schemas import SchemaRegistry, camel_case
from ferry.schemas.catalogue import CATALOGUE_PATH, anchor, field_rows, main, render_catalogue

REGISTRY = SchemaRegistry.default()
REGENERATE = "docs/events.md is out of date: run `python -m ferry.schemas.catalogue`"


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_catalogue()


def test_the_committed_catalogue_is_what_the_schemas_generate(rendered: str) -> None:
    assert CATALOGUE_PATH.exists(), REGENERATE
    assert CATALOGUE_PATH.read_text(encoding="utf-8") == rendered, REGENERATE


def test_rendering_is_deterministic(rendered: str) -> None:
    assert render_catalogue() == rendered


@pytest.mark.parametrize("event_type", REGISTRY.event_types)
def test_every_event_type_appears_with_its_record_and_topic(rendered: str, event_type: str) -> None:
    assert f"\n#### {event_type}\n" in rendered
    assert f"`ferry.events.{camel_case(event_type)}`" in rendered
    assert f"(#{anchor(event_type)})" in rendered  # linked from the contents
    topic = INBOUND_TOPIC.get(event_type) or OUTBOUND_TOPIC[event_type]
    section = rendered.split(f"\n### {topic}\n", 1)[1].split("\n### ", 1)[0]
    assert f"\n#### {event_type}\n" in section


def test_every_routed_event_type_has_a_schema() -> None:
    assert set(INBOUND_TOPIC) | set(OUTBOUND_TOPIC) == set(REGISTRY.event_types)


def test_every_field_of_every_schema_has_a_row() -> None:
    for event_type in REGISTRY.event_types:
        names = {row.name for row in field_rows(REGISTRY.schema(event_type))}
        assert {f["name"] for f in REGISTRY.schema(event_type)["fields"]} <= names


def test_types_are_readable() -> None:
    schema = {
        "type": "record",
        "name": "Example",
        "namespace": "ferry.events",
        "doc": "An example.",
        "fields": [
            {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "until",
                "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
                "default": None,
                "doc": "A | pipe.",
            },
            {
                "name": "plan",
                "type": {"type": "enum", "name": "Plan", "symbols": ["free", "pro"]},
            },
            {"name": "next_plan", "type": "ferry.events.Plan"},
            {
                "name": "where",
                "type": {
                    "type": "record",
                    "name": "Place",
                    "fields": [{"name": "bucket", "type": "string"}],
                },
            },
            {"name": "also", "type": "Place"},
            {"name": "places", "type": {"type": "array", "items": "Place"}},
            {"name": "tags", "type": {"type": "map", "values": "string"}},
            {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 32}},
            {"name": "size", "type": "int", "default": 100},
            {"name": "next", "type": ["null", "Example"], "default": None},
        ],
    }
    rows = {row.name: row for row in field_rows(schema)}
    assert rows["when"].type == "timestamp-millis (long)"
    assert rows["until"].type == "null | timestamp-millis (long)"
    assert rows["until"].default == "null"
    assert rows["plan"].type == rows["next_plan"].type == "enum Plan {free, pro}"
    assert rows["where"].type == rows["also"].type == "record Place"
    assert rows["where.bucket"].type == rows["also.bucket"].type == "string"
    assert rows["places"].type == "array<record Place>"
    assert rows["places[].bucket"].type == "string"
    assert rows["tags"].type == "map<string>"
    assert rows["digest"].type == "fixed Digest (32 bytes)"
    assert rows["size"].default == "100"
    assert rows["next"].type == "null | record Example"
    assert not any(name.startswith("next.") for name in rows)  # a recursive record stops


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    output = tmp_path / "events.md"
    assert main(["--check", "--output", str(output)]) == 1
    assert main(["--output", str(output)]) == 0
    assert main(["--check", "--output", str(output)]) == 0
    output.write_text(output.read_text() + "edited by hand\n")
    assert main(["--check", "--output", str(output)]) == 1
