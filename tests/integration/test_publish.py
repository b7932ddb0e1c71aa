"""The publish activity on the real broker: a valid event goes out, an invalid one fails at once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from ferry.activities.events import EventActivities, OutboundEvent
from ferry.consumers.tail import TopicFollower
from ferry.contracts.errors import PERMANENT
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack


def rejected(tenant: str, **fields: Any) -> OutboundEvent:
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event_type": "file.rejected",
        "occurred_at": 1_795_000_000_000,
        "tenant_id": tenant,
        "correlation_id": None,
        "source": "tests.publish",
    }
    return OutboundEvent(fields={**envelope, **fields})


async def test_a_valid_event_reaches_its_topic(
    publisher: EventPublisher, file_events: TopicFollower
) -> None:
    file_id = str(uuid.uuid4())
    event = rejected("acme", file_id=file_id, reason="corrupt", detail="empty", signature=None)

    published = await ActivityEnvironment().run(EventActivities(publisher).publish, event)

    assert published.topic == "ferry.file-events.v1"
    [seen] = await file_events.wait_for(lambda e: e.get("file_id") == file_id)
    assert (seen["event_type"], seen["reason"]) == ("file.rejected", "corrupt")


@pytest.mark.parametrize(
    "fields",
    [
        {"file_id": "f", "reasn": "corrupt", "detail": "misspelt field", "signature": None},
        {"file_id": "f", "reason": "bored", "detail": "not a reason", "signature": None},
        {"file_id": "f", "reason": "corrupt"},  # `detail` missing
    ],
    ids=["misspelt-field", "unknown-enum-symbol", "missing-field"],
)
async def test_an_event_its_schema_refuses_fails_without_retry(
    publisher: EventPublisher, fields: dict[str, Any]
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            EventActivities(publisher).publish, rejected("acme", **fields)
        )

    assert (caught.value.type, caught.value.non_retryable) == ("InvalidEvent", True)
    assert "file.rejected" in caught.value.message
    assert "InvalidEvent" in PERMANENT  # and emit's retry policy never retries it
