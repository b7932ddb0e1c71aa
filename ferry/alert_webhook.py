"""Alertmanager's webhook receiver (`ferry alert-webhook`): each alert becomes a
`notification.requested` (channel `webhook`) on `ferry.notifications.v1`, so alerts
reach the same downstream notification system as everything else Ferry sends.

Alertmanager posts its webhook payload (version 4: `status`, `alerts` each with
`status`, `labels`, `annotations`, `startsAt`, `fingerprint`, ...). Each alert's
event ID is a UUIDv5 of its fingerprint, its start and its status: Alertmanager's
repeats and retries of one firing (or one resolution) are the same event, which
downstream consumers deduplicate. The answer is 200 once Kafka has every event; a
Kafka failure answers 503 and Alertmanager retries (its own retry, not one of ours).
Alerts belong to no tenant: their envelope names the operations tenant, `ferry-ops`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ferry.contracts.events import NotificationRequested
from ferry.contracts.ids import EVENT_NAMESPACE
from ferry.contracts.workflows import OPERATIONS_TENANT
from ferry.producers import EventPublisher

log = logging.getLogger(__name__)

SOURCE = "ferry.alerts"


class BadPayload(ValueError):
    """The body is not an Alertmanager webhook payload."""


def notifications(payload: Any, recipient: str) -> list[dict[str, Any]]:
    """One `notification.requested` (envelope and body) per alert of an Alertmanager
    webhook payload."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise BadPayload("not an Alertmanager webhook payload: no list of alerts")
    events = []
    for alert in payload["alerts"]:
        try:
            labels = {str(k): str(v) for k, v in alert["labels"].items()}
            annotations = {str(k): str(v) for k, v in alert.get("annotations", {}).items()}
            status, starts_at = str(alert["status"]), str(alert["startsAt"])
            fingerprint = str(alert.get("fingerprint") or json.dumps(labels, sort_keys=True))
            name = labels["alertname"]
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadPayload(f"an alert without {exc}") from exc
        if status not in ("firing", "resolved"):
            raise BadPayload(f"an alert whose status is {status!r}")
        event_id = uuid.uuid5(EVENT_NAMESPACE, f"alert/{fingerprint}/{starts_at}/{status}")
        params = {
            **{f"label_{k}": v for k, v in labels.items()},
            **annotations,
            "alertname": name,
            "status": status,
            "starts_at": starts_at,
            "fingerprint": fingerprint,
        }
        if status == "resolved" and alert.get("endsAt"):
            params["ends_at"] = str(alert["endsAt"])
        if alert.get("generatorURL"):
            params["generator_url"] = str(alert["generatorURL"])
        body = NotificationRequested(
            channel="webhook", recipient=recipient, template=f"alert-{status}", params=params
        )
        events.append(
            {
                "event_id": str(event_id),
                "event_type": body.EVENT_TYPE,
                "occurred_at": datetime.now(UTC),
                "tenant_id": OPERATIONS_TENANT,
                "correlation_id": fingerprint,
                "source": SOURCE,
                **body.fields(),
            }
        )
    return events


class Outbox:
    """The webhook's Kafka producer, started on first use: the webhook answers (503) while
    Kafka is away, at start-up too, rather than exit."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._publisher: EventPublisher | None = None

    async def publish(self, event: dict[str, Any]) -> None:
        if self._publisher is None:
            publisher = EventPublisher(self.bootstrap)
            try:
                await publisher.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await publisher.stop()
                raise
            self._publisher = publisher
        await self._publisher.publish(event)

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()


def webhook_app(publisher: Outbox, recipient: str) -> web.Application:
    async def receive(request: web.Request) -> web.StreamResponse:
        try:
            events = notifications(await request.json(), recipient)
        except (BadPayload, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        try:
            for event in events:
                await publisher.publish(event)
        except Exception as exc:  # Kafka away: Alertmanager retries the whole payload
            log.warning("alerts not published, Alertmanager will retry: %s", exc)
            return web.json_response({"error": f"not published: {exc}"}, status=503)
        return web.json_response({"published": [e["event_id"] for e in events]})

    async def health(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/alerts", receive)
    app.router.add_get("/health", health)
    return app


async def serve(bootstrap: str, host: str, port: int, recipient: str, stop: asyncio.Event) -> None:
    outbox = Outbox(bootstrap)
    runner = web.AppRunner(webhook_app(outbox, recipient), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await outbox.close()
