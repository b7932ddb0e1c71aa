"""Encrypted payloads: the Temporal server stores ciphertext; the stack's codec endpoint decrypts.

A canary (a fake e-mail address) travels in a `tenant.creation_requested` event
through the bridge into the provisioning workflow, its monitoring child and the
welcome notification's activity. The raw histories, read with a client that has
no codec, must not hold it anywhere; the codec endpoint, called as the UI calls
it, must give it back.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack


@pytest.fixture
async def tenant_events(settings: Settings) -> AsyncIterator[TopicFollower]:
    async with TopicFollower(settings.kafka_bootstrap, "ferry.tenant-events.v1") as follower:
        yield follower


async def test_histories_hold_no_plaintext_and_the_codec_endpoint_decrypts(
    bridge: Bridge,
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    client: Client,
    settings: Settings,
) -> None:
    assert settings.payload_keys is not None, "the stack configures a payload key"
    tenant = f"enc-{uuid.uuid4().hex[:10]}"
    canary = f"canary-{uuid.uuid4().hex}@example.com"
    await publisher.publish(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "tenant.creation_requested",
            "occurred_at": datetime.now(UTC),
            "tenant_id": tenant,
            "correlation_id": None,
            "source": "tests.upstream",
            "name": "Encrypted Ltd",
            "plan": "free",
            "region": "eu-west",
            "admin_email": canary,
            "storage_provider": "local",
        },
        topic="ferry.tenants.v1",
    )
    [provisioned] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == tenant and e["event_type"] == "tenant.provisioned"
    )
    assert provisioned["event_type"] == "tenant.provisioned"

    # What the server stores, read by a client without the codec.
    raw = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    histories = [
        await raw.get_workflow_handle(f"tenant-provisioning/{tenant}").fetch_history(),
        await raw.get_workflow_handle(f"tenant-monitoring/{tenant}").fetch_history(),
    ]
    stored = b"".join(e.SerializeToString() for h in histories for e in h.events)
    assert canary.encode() not in stored
    assert base64.b64encode(canary.encode())[:20] not in stored
    started = histories[0].events[0].workflow_execution_started_event_attributes
    [payload] = started.input.payloads
    assert payload.metadata["encoding"] == b"binary/encrypted"
    assert payload.metadata["encryption-key-id"] == b"k1"

    # The UI's view: its origin calls the codec endpoint and gets the input back.
    endpoint = os.environ["FERRY_CODEC_ENDPOINT"]
    ui_origin = settings.temporal_ui_url
    body = json_format.MessageToJson(Payloads(payloads=[payload]))
    async with httpx.AsyncClient() as http:
        preflight = await http.options(
            f"{endpoint}/decode",
            headers={"Origin": ui_origin, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == ui_origin
        assert "X-Namespace" in preflight.headers["access-control-allow-headers"]
        decoded = await http.post(
            f"{endpoint}/decode",
            content=body,
            headers={
                "Origin": ui_origin,
                "Content-Type": "application/json",
                "X-Namespace": "default",
            },
        )
        assert decoded.status_code == 200
        assert decoded.headers["access-control-allow-origin"] == ui_origin
        [plain] = json_format.Parse(decoded.text, Payloads()).payloads
        assert json.loads(plain.data)["admin_email"] == canary
        # Another origin gets no CORS grant: a browser there cannot read the answer.
        foreign = await http.post(
            f"{endpoint}/decode",
            content=body,
            headers={"Origin": "https://evil.example", "Content-Type": "application/json"},
        )
        assert "access-control-allow-origin" not in foreign.headers
