"""Verdicts by content and signature version, and the rescan, on the local stack.

Clean files are uploaded and one is shared, through Kafka and the bridge as an
upstream service would; then a signature that matches one of them is added to
the stack's clamd database and clamd reloads it (a new signature version, as
freshclam's daily update gives). The next upload makes the worker see the new
version and start that version's rescan: the matching file is quarantined, its
share revoked and `file.quarantined` emitted, and the other files stay as they
are; the file uploaded under the new signatures is not read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from bridges import running
from commands import ferry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.client import WorkflowExecutionStatus as Status
from temporalio.service import RPCError
from upstream import event, owner, provision, send
from waiting import eventually

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.contracts.enums import FileState, ShareStatus
from ferry.contracts.workflows import RescanProgress, file_share_id, rescan_id
from ferry.db.ledger import EventLedger
from ferry.db.verdicts import VerdictBook
from ferry.demo import stage_upload
from ferry.devstack import Stack
from ferry.devstack.services import add_test_signature
from ferry.devstack.services.signatures import ask
from ferry.processes import bridge_config
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage
from ferry.worker import ferry_worker
from ferry.workflows.rescan import RescanWorkflow

pytest_plugins = ["db_fixtures"]
pytestmark = pytest.mark.stack


def _text(lines: int) -> bytes:
    """A plain text file of its own."""
    return "".join(f"line {n}: {uuid.uuid4()}\n" for n in range(lines)).encode()


def _version(stack: Stack) -> int:
    """The signature version the stack's clamd scans with now."""
    answer = ask(stack.context().port("clamd"), "VERSION")  # ClamAV 1.4.6/<version>/<built>
    return int(answer.split("/")[1])


@pytest.fixture
async def system(
    client: Client, settings: Settings, publisher: EventPublisher, ledger: EventLedger
) -> AsyncIterator[str]:
    """A worker that starts a rescan when its clamd reports a new signature version, asking
    clamd every half second, and a bridge, both on a queue of their own."""
    queue = f"ferry-test-{uuid.uuid4().hex[:8]}"
    rescanning = settings.model_copy(
        update={
            "rescan_on_new_signatures": True,
            "rescan_rate_per_second": 50.0,
            "clamd_version_interval_seconds": 0.5,
            "tenants_task_queue": queue,
            "files_task_queue": queue,
        }
    )
    config = bridge_config(
        settings, group_id=f"ferry-test-{uuid.uuid4().hex[:8]}", auto_offset_reset="latest"
    )
    config.task_queues = dict.fromkeys(config.task_queues, queue)
    bridge = Bridge(client, publisher, settings.kafka_bootstrap, config, ledger=ledger)
    async with ferry_worker(client, rescanning, queue), running(bridge):
        yield queue


@pytest.fixture
async def rescans(client: Client, stack: Stack) -> AsyncIterator[list[WorkflowHandle[Any, Any]]]:
    """The rescans of the versions before and after the test's signature, ended afterwards
    (they go on over every tenant's files, and their worker stops with the test)."""
    before = _version(stack)
    handles = [client.get_workflow_handle(rescan_id(v)) for v in (before, before + 1)]
    yield handles
    for handle in handles:
        with contextlib.suppress(RPCError):
            await handle.terminate("test over")


async def _upload(
    publisher: EventPublisher,
    file_events: TopicFollower,
    storage: LocalStorage,
    settings: Settings,
    tenant: str,
    name: str,
    data: bytes,
) -> dict[str, Any]:
    upload = await stage_upload(storage, settings.ingest_bucket, tenant, name, "text/plain", data)
    await send(publisher, upload)
    [outcome] = await file_events.wait_for(
        lambda e: e.get("file_id") == upload["file_id"], timeout=120
    )
    assert outcome["event_type"] == "file.processed", outcome
    return outcome


async def _file(admin_engine: AsyncEngine, tenant: str, file_id: str) -> Any:
    async with admin_engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT state, signature, storage_bucket, storage_key, processed_at"
                    " FROM files WHERE tenant_id = :t AND id = :f"
                ),
                {"t": tenant, "f": file_id},
            )
        ).one()


async def _past(handle: WorkflowHandle[Any, Any], oldest: datetime) -> bool:
    """Whether the rescan has looked at everything processed since `oldest`."""
    try:
        progress: RescanProgress = await handle.query(RescanWorkflow.progress)
    except RPCError:
        return False  # not started yet
    if (await handle.describe()).status == Status.COMPLETED:
        return True
    return progress.cursor is not None and progress.cursor.processed_at < oldest


async def test_a_new_signature_quarantines_a_processed_file_and_ends_its_share(
    client: Client,
    settings: Settings,
    stack: Stack,
    system: str,
    rescans: list[WorkflowHandle[Any, Any]],
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    admin_engine: AsyncEngine,
) -> None:
    tenant = f"rs-{uuid.uuid4().hex[:12]}"
    assert (await provision(client, system, tenant)).status == "provisioned"
    book = VerdictBook(admin_engine)
    old = _version(stack)
    # Bytes no scanner has seen: clean today.
    doomed, spared = _text(60), _text(40)
    bad = await _upload(publisher, file_events, local_storage, settings, tenant, "a.txt", doomed)
    good = await _upload(publisher, file_events, local_storage, settings, tenant, "b.txt", spared)
    for outcome in (bad, good):
        verdict = await book.get(outcome["sha256"])
        assert verdict is not None, "no verdict recorded for a processed file"
        assert (verdict.clean, verdict.signature_version) == (True, old)

    share = event(
        "file.share_requested",
        tenant,
        share_id=str(uuid.uuid4()),
        file_id=bad["file_id"],
        shared_by=owner(tenant),
        grantee_type="email",
        grantee="friend@elsewhere.example",
        permission="download",
        expires_at=None,
        notify=False,
        message=None,
    )
    await send(publisher, share)
    [shared] = await file_events.wait_for(lambda e: e.get("share_id") == share["share_id"])
    assert shared["event_type"] == "file.shared"

    # Tuesday's signatures know Monday's clean file.
    new = await asyncio.to_thread(
        add_test_signature, stack.context(), f"Ferry-Test-Rescan-{tenant}", doomed
    )
    assert new == old + 1 == _version(stack)

    # The next upload's scan sees the new version, and starts its rescan: the upload's
    # own outcome and the rescan's events come in either order.
    late_upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "c.txt", "text/plain", _text(50)
    )
    await send(publisher, late_upload)
    events = await file_events.wait_for(lambda e: e["tenant_id"] == tenant, count=3, timeout=120)
    [late] = [e for e in events if e.get("file_id") == late_upload["file_id"]]
    assert late["event_type"] == "file.processed", late
    late_verdict = await book.get(late["sha256"])
    assert late_verdict is not None and late_verdict.signature_version == new

    by_type = {e["event_type"]: e for e in events}
    quarantined, revoked = by_type["file.quarantined"], by_type["file.share_revoked"]
    signature = f"Ferry-Test-Rescan-{tenant}.UNOFFICIAL"
    assert quarantined["file_id"] == bad["file_id"]
    assert quarantined["signature"] == signature
    assert quarantined["signature_version"] == new
    assert quarantined["sha256"] == bad["sha256"]
    assert quarantined["shares_revoked"] == 1
    assert quarantined["previous_verdict_at"] is not None
    assert quarantined["correlation_id"] == rescan_id(new)
    assert revoked["share_id"] == share["share_id"]

    row = await _file(admin_engine, tenant, bad["file_id"])
    assert (row.state, row.signature) == (FileState.QUARANTINED, signature)
    assert (row.storage_bucket, row.storage_key) == (
        settings.quarantine_bucket,
        f"quarantine/{tenant}/{bad['file_id']}",
    )
    assert await local_storage.head(settings.quarantine_bucket, row.storage_key) is not None
    share_outcome = await client.get_workflow_handle(
        file_share_id(tenant, share["share_id"])
    ).result()
    assert share_outcome["status"] == "revoked"
    async with admin_engine.connect() as conn:
        share_row = (
            await conn.execute(
                text("SELECT status, revoked_by FROM shares WHERE tenant_id = :t AND id = :s"),
                {"t": tenant, "s": share["share_id"]},
            )
        ).one()
    assert (share_row.status, share_row.revoked_by) == (ShareStatus.REVOKED, "ferry:quarantine")
    infected = await book.get(bad["sha256"])
    assert infected is not None
    assert (infected.clean, infected.signature, infected.signature_version) == (
        False,
        signature,
        new,
    )

    # The other files: the one judged under old signatures is judged again, and stays;
    # the one uploaded under the new signatures is not read again.
    oldest = (await _file(admin_engine, tenant, bad["file_id"])).processed_at
    spared_row = await _file(admin_engine, tenant, good["file_id"])
    await eventually(lambda: _past(rescans[1], spared_row.processed_at), "the rescan past ours")
    assert oldest is not None
    assert spared_row.state == FileState.PROCESSED
    spared_verdict = await book.get(good["sha256"])
    assert spared_verdict is not None
    assert (spared_verdict.clean, spared_verdict.signature_version) == (True, new)
    assert await book.get(late["sha256"]) == late_verdict  # not scanned again
    assert (await _file(admin_engine, tenant, late["file_id"])).state == FileState.PROCESSED

    # By hand, for this tenant alone: everything is current, nothing is read.
    printed = await ferry("rescan", "--tenant", tenant, env={"FERRY_TENANTS_TASK_QUEUE": system})
    assert "listed 0" in printed, printed
    assert await book.get(good["sha256"]) == spared_verdict
