"""Structured logs: JSON lines with context, and no secret or personal data in them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from ferry.config import Settings
from ferry.logs import bind, configure_logging
from ferry.schemas import EventDecodeError, decode
from ferry.temporal.codec import new_key_spec

DB_PASSWORD = "Sup3r-S3cret-pw"
PAYLOAD_KEYS = new_key_spec("k1")
EMAIL = "jane.doe@example.com"
SIGNED_URL = (
    "http://127.0.0.1:10000/devstoreaccount1/ferry-acme/files/f-1/original"
    "?se=2026-12-01T00%3A00%3A00Z&sp=r&sv=2024-08-04&sr=b&sig=AbCdEf0123456789%2B%3D"
)


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    settings = Settings(
        database_url=SecretStr(f"postgresql+asyncpg://ferry_app:{DB_PASSWORD}@db:5432/ferry"),
        payload_keys=SecretStr(PAYLOAD_KEYS),
    )
    configure_logging(settings, stream=stream)
    yield stream
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_secret_of_the_settings_and_an_email_of_an_event_never_reach_the_log(
    output: io.StringIO,
) -> None:
    # The reason the bridge logs for an invalid event, as the codec words it.
    event = {
        "event_id": "e-1", "event_type": "tenant.creation_requested", "occurred_at": 1,
        "tenant_id": "acme", "source": "upstream", "name": "Acme", "plan": "free",
        "region": "eu", "admin_email": [EMAIL], "storage_provider": "local",
    }  # fmt: skip
    with pytest.raises(EventDecodeError) as invalid:
        decode(json.dumps(event).encode(), "application/json")
    assert EMAIL in str(invalid.value)  # the raw reason does carry it
    bridge = logging.getLogger("ferry.consumers.bridge")
    bridge.warning("dead-lettering %s: %s", "ferry.tenants.v1/0@7", invalid.value)
    # A library that logs a connection URL, and code that logs what it should not.
    logging.getLogger("sqlalchemy.pool").error(
        "cannot connect to postgresql+asyncpg://ferry_app:%s@db:5432/ferry", DB_PASSWORD
    )
    structlog.get_logger("ferry.test").info(
        "share created", url=SIGNED_URL, payload_keys=PAYLOAD_KEYS, grantee=EMAIL
    )

    text = output.getvalue()
    for secret in (DB_PASSWORD, PAYLOAD_KEYS, PAYLOAD_KEYS.partition(":")[2], EMAIL, "sig=Ab"):
        assert secret not in text
    records = lines(output)
    assert [r["level"] for r in records] == ["warning", "error", "info"]
    assert "[email]" in records[0]["event"]
    assert records[2]["url"].startswith("http://127.0.0.1:10000/devstoreaccount1/ferry-acme/")
    assert records[2]["payload_keys"] == "[redacted]"


async def test_log_lines_carry_the_context_bound_for_the_record(output: io.StringIO) -> None:
    bind(tenant_id="acme", event_id="e-42", workflow_id="file-upload/acme/f-1")
    logging.getLogger("ferry.consumers.bridge").warning("dead-lettering %s", "somewhere")
    structlog.get_logger("ferry.worker").info("started", task_queue="ferry-files")

    first, second = lines(output)
    for record in (first, second):
        assert (record["tenant_id"], record["event_id"]) == ("acme", "e-42")
        assert record["workflow_id"] == "file-upload/acme/f-1"
        assert record["timestamp"].endswith("Z")
    assert (first["logger"], first["event"]) == (
        "ferry.consumers.bridge",
        "dead-lettering somewhere",
    )
    assert second["task_queue"] == "ferry-files"
