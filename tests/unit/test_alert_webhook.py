"""Alertmanager's webhook payload → `notification.requested` events (the payload shaped
after Alertmanager's documented webhook_config body, version 4)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ferry.alert_webhook import OPERATIONS_TENANT, BadPayload, notifications
from ferry.schemas import decode, encode

# As Alertmanager 0.25 posts it (docs: configuration, <webhook_config>).
PAYLOAD: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="FerryRecordsDeadLettered"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "ferry",
    "groupLabels": {"alertname": "FerryRecordsDeadLettered"},
    "commonLabels": {"alertname": "FerryRecordsDeadLettered", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:19093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "FerryRecordsDeadLettered",
                "severity": "warning",
                "topic": "ferry.uploads.v1",
            },
            "annotations": {
                "summary": "Records from ferry.uploads.v1 went to ferry.dlq.v1",
                "runbook": "docs/operations.md#alerts",
            },
            "startsAt": "2026-12-01T11:50:05.123Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:19090/graph?g0.expr=...",
            "fingerprint": "a3c1f2b4d5e6f708",
        }
    ],
}


def test_each_alert_becomes_a_notification_that_the_schema_accepts() -> None:
    [event] = notifications(PAYLOAD, "operations")
    assert event["event_type"] == "notification.requested"
    assert (event["channel"], event["recipient"]) == ("webhook", "operations")
    assert event["template"] == "alert-firing"
    assert event["tenant_id"] == OPERATIONS_TENANT
    params = event["params"]
    assert params["alertname"] == "FerryRecordsDeadLettered"
    assert params["label_topic"] == "ferry.uploads.v1"
    assert params["summary"].startswith("Records from ferry.uploads.v1")
    assert params["status"] == "firing"
    assert "ends_at" not in params  # a firing alert has not ended
    assert decode(encode(event))["params"] == params  # a valid notification.requested


def test_a_repeat_is_the_same_event_and_a_resolution_another() -> None:
    [first] = notifications(PAYLOAD, "operations")
    [again] = notifications(copy.deepcopy(PAYLOAD), "operations")
    assert first["event_id"] == again["event_id"]
    resolved = copy.deepcopy(PAYLOAD)
    resolved["alerts"][0].update(status="resolved", endsAt="2026-12-01T11:58:00Z")
    [end] = notifications(resolved, "operations")
    assert end["event_id"] != first["event_id"]
    assert (end["template"], end["params"]["ends_at"]) == ("alert-resolved", "2026-12-01T11:58:00Z")


@pytest.mark.parametrize(
    "body",
    [
        {"status": "firing"},
        {"alerts": [{"status": "firing", "startsAt": "2026-12-01T00:00:00Z"}]},
        {"alerts": [{**PAYLOAD["alerts"][0], "status": "pending"}]},
        ["not", "a", "payload"],
    ],
    ids=["no-alerts", "no-labels", "unknown-status", "a-list"],
)
def test_a_body_that_is_not_an_alertmanager_payload_is_refused(body: Any) -> None:
    with pytest.raises(BadPayload):
        notifications(body, "operations")
