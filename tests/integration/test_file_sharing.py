"""Sharing files on the local stack: public links on Azurite, expiry, revocation, refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from upstream import event, owner, provision, send

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.contracts.workflows import file_share_id
from ferry.demo import EICAR, stage_upload
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage

pytestmark = pytest.mark.stack


async def _tenant(client: Client, task_queue: str, provider: str = "local") -> str:
    """A tenant provisioned by its workflow, so that its owner is a member."""
    tenant = f"sh-{uuid.uuid4().hex[:12]}"
    result = await provision(client, task_queue, tenant, provider=provider)
    assert result.status == "provisioned"
    return tenant


async def _upload(
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    tenant: str,
    data: bytes,
    filename: str = "report.txt",
) -> dict[str, Any]:
    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, filename, "text/plain", data
    )
    await send(publisher, upload)
    [outcome] = await file_events.wait_for(
        lambda e: e.get("file_id") == upload["file_id"], timeout=120
    )
    return outcome


def _share(tenant: str, file_id: str, **fields: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "share_id": str(uuid.uuid4()),
        "file_id": file_id,
        "shared_by": owner(tenant),
        "grantee_type": "email",
        "grantee": "friend@elsewhere.example",
        "permission": "download",
        "expires_at": None,
        "notify": False,
        "message": None,
    }
    return event("file.share_requested", tenant, **{**defaults, **fields})


@pytest.fixture
async def notifications(settings: Settings) -> AsyncIterator[TopicFollower]:
    async with TopicFollower(settings.kafka_bootstrap, "ferry.notifications.v1") as follower:
        yield follower


async def test_a_public_link_downloads_the_file_until_it_expires(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    notifications: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    task_queue: str,
) -> None:
    tenant = await _tenant(client, task_queue, provider="azure")
    data = b"the board minutes\n" * 500
    processed = await _upload(publisher, file_events, local_storage, settings, tenant, data)
    assert processed["event_type"] == "file.processed"
    assert processed["storage"]["provider"] == "azure"
    expires_at = datetime.now(UTC) + timedelta(seconds=6)
    share = _share(
        tenant,
        processed["file_id"],
        grantee_type="public_link",
        grantee="partner@elsewhere.example",
        expires_at=expires_at,
        notify=True,
        message="for Thursday",
    )
    await send(publisher, share)

    [shared] = await file_events.wait_for(lambda e: e.get("share_id") == share["share_id"])
    assert shared["event_type"] == "file.shared"
    assert shared["grantee_type"] == "public_link"
    assert abs(shared["expires_at"] - expires_at) < timedelta(milliseconds=2)
    url = shared["url"]
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
        assert response.status_code == 200
        assert response.content == data
        [note] = await notifications.wait_for(
            lambda e: e["tenant_id"] == tenant and e["template"] == "file-shared"
        )
        assert note["recipient"] == "partner@elsewhere.example"
        assert (note["template"], note["params"]["url"]) == ("file-shared", url)
        assert note["params"]["message"] == "for Thursday"

        [expired] = await file_events.wait_for(
            lambda e: e.get("share_id") == share["share_id"], timeout=30
        )
        assert expired["event_type"] == "file.share_expired"
        assert expired["url"] is None
        assert datetime.now(UTC) >= expires_at
        assert (await http.get(url)).status_code == 403

    handle = client.get_workflow_handle(file_share_id(tenant, share["share_id"]))
    outcome = await handle.result()
    assert outcome["status"] == "expired"


async def test_a_revoked_share_ends_with_file_share_revoked(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    task_queue: str,
) -> None:
    tenant = await _tenant(client, task_queue)
    processed = await _upload(publisher, file_events, local_storage, settings, tenant, b"plans")
    share = _share(tenant, processed["file_id"], expires_at=datetime.now(UTC) + timedelta(days=30))
    await send(publisher, share)
    [shared] = await file_events.wait_for(lambda e: e.get("share_id") == share["share_id"])
    assert shared["event_type"] == "file.shared"
    assert shared["url"] is None

    revocation = event(
        "file.share_revocation_requested",
        tenant,
        share_id=share["share_id"],
        revoked_by=owner(tenant),
    )
    await send(publisher, revocation)
    await send(publisher, revocation)

    [revoked] = await file_events.wait_for(lambda e: e.get("share_id") == share["share_id"])
    assert revoked["event_type"] == "file.share_revoked"
    assert revoked["grantee"] == "friend@elsewhere.example"
    handle = client.get_workflow_handle(file_share_id(tenant, share["share_id"]))
    outcome = await handle.result()
    assert (outcome["status"], outcome["detail"]) == ("revoked", f"revoked by {owner(tenant)}")


async def _refused(
    client: Client, publisher: EventPublisher, file_events: TopicFollower, share: dict[str, Any]
) -> str:
    """Send the share; it must end refused with nothing on the topic; the reason."""
    await send(publisher, share)
    handle = client.get_workflow_handle(file_share_id(share["tenant_id"], share["share_id"]))
    async with asyncio.timeout(30):
        while True:
            try:
                outcome = await handle.result()
                break
            except RPCError as err:  # not started yet: the record is still on its way
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.1)
    assert outcome["status"] == "refused"
    with pytest.raises(TimeoutError):
        await file_events.wait_for(lambda e: e.get("share_id") == share["share_id"], timeout=2)
    return str(outcome["detail"])


async def test_sharing_another_tenants_or_an_infected_file_is_refused(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    task_queue: str,
) -> None:
    owner_tenant = await _tenant(client, task_queue)
    other_tenant = await _tenant(client, task_queue)
    processed = await _upload(
        publisher, file_events, local_storage, settings, owner_tenant, b"private"
    )
    infected = await _upload(
        publisher, file_events, local_storage, settings, owner_tenant, EICAR, "eicar.txt"
    )
    assert infected["event_type"] == "file.rejected"

    foreign = _share(other_tenant, processed["file_id"], grantee_type="public_link", grantee=None)
    assert "does not exist in this tenant" in await _refused(
        client, publisher, file_events, foreign
    )
    dirty = _share(owner_tenant, infected["file_id"], grantee_type="public_link", grantee=None)
    assert "rejected" in await _refused(client, publisher, file_events, dirty)
    stranger = _share(owner_tenant, processed["file_id"], shared_by="mallory@evil.example")
    assert "not a member" in await _refused(client, publisher, file_events, stranger)
