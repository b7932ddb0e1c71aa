"""Record the histories that tests/replay replays: `python tests/replay/record_histories.py`.

Runs each scenario on the local stack with the real worker and activities
(the stack must be up), then writes the workflow's history as JSON next to
this file. Re-record when a workflow changes on purpose, in the same commit.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from replay_keys import REPLAY_KEYS

# The tests' own helpers (tests/), when run as a script from the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqlalchemy import text
from temporalio.client import Client, WorkflowHandle
from waiting import eventually

from ferry.config import Settings, get_settings
from ferry.consumers.routes import from_event
from ferry.contracts.policy import TenantPolicy
from ferry.contracts.storage import BucketRef, StorageRef
from ferry.contracts.workflows import (
    LIFECYCLE_SIGNAL,
    PAYMENT_SIGNAL,
    RECONCILIATION_ID,
    RESCAN_ID,
    SHARE_REVOKE_SIGNAL,
    USAGE_SIGNAL,
    ReconciliationRequest,
    RescanRequest,
    file_migration_id,
    file_quarantine_id,
    file_share_id,
    file_upload_id,
    tenant_monitoring_id,
    tenant_upgrade_id,
)
from ferry.db import create_engine, create_sessionmaker
from ferry.demo import DEMO_FILES, EICAR, ensure_tenant, stage_upload
from ferry.devstack import Stack
from ferry.devstack.services import add_test_signature
from ferry.processes import connect
from ferry.storage import LocalStorage
from ferry.worker import ferry_worker
from ferry.workflows.file_migration import FileMigrationWorkflow, MigrationRequest
from ferry.workflows.file_sharing import FileSharingWorkflow, ShareRequest, ShareRevocation
from ferry.workflows.file_upload import FileUploadInput, FileUploadWorkflow
from ferry.workflows.reconciliation import ReconciliationWorkflow
from ferry.workflows.rescan import RescanWorkflow
from ferry.workflows.tenant_monitoring import LifecycleRequest, UsageUpdate
from ferry.workflows.tenant_provisioning import TenantCreation, TenantProvisioningWorkflow
from ferry.workflows.tenant_upgrade import PaymentResult, TenantUpgradeWorkflow, UpgradeRequest

# Recorded with a key every machine has, so that the histories replay anywhere.
os.environ["FERRY_PAYLOAD_KEYS"] = REPLAY_KEYS
HISTORIES = Path(__file__).parent / "histories"
IDS = HISTORIES / "ids.json"
TENANT = "replay"


async def record_upload(
    name: str,
    filename: str,
    content_type: str,
    data: bytes,
    elsewhere: StorageRef | None = None,
) -> None:
    """One upload; with `elsewhere`, one whose event names that object instead of its own."""
    settings = get_settings()
    client = await connect(settings)
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    await ensure_tenant(create_sessionmaker(engine), TENANT)
    await engine.dispose()
    storage = LocalStorage(settings.local_storage_root)
    event = await stage_upload(
        storage, settings.ingest_bucket, TENANT, filename, content_type, data
    )
    queue = f"record-{uuid.uuid4().hex[:8]}"
    upload = FileUploadInput(
        event_id=event["event_id"],
        tenant_id=TENANT,
        file_id=event["file_id"],
        filename=filename,
        declared_content_type=content_type,
        size_bytes=len(data),
        storage=elsewhere or StorageRef(**event["storage"]),
        uploaded_by="recorder",
        sha256=event["sha256"],
    )
    async with ferry_worker(client, settings, queue):
        handle = await client.start_workflow(
            FileUploadWorkflow.run,
            upload,
            id=f"file-upload/{TENANT}/{upload.file_id}",
            task_queue=queue,
        )
        await handle.result()
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """The history as JSON, and its workflow ID in `ids.json` (a replay needs the same ID)."""
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    ids = json.loads(IDS.read_text()) if IDS.exists() else {}
    ids[name] = handle.id
    IDS.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")
    print(f"recorded {name}: {len(history.events)} events")


def creation(tenant: str, policy: TenantPolicy) -> TenantCreation:
    return TenantCreation(
        event_id=str(uuid.uuid4()),
        tenant_id=tenant,
        name=f"Tenant {tenant}",
        plan="free",
        region="local",
        admin_email=f"owner@{tenant}.example",
        storage_provider="local",
        policy=policy,
    )


async def provision(client: Client, queue: str, tenant: str, policy: TenantPolicy) -> Any:
    return await client.start_workflow(
        TenantProvisioningWorkflow.run,
        creation(tenant, policy),
        id=f"tenant-provisioning/{tenant}",
        task_queue=queue,
    )


async def stage_is(handle: WorkflowHandle[Any, Any], stage: str) -> bool:
    return bool((await handle.query("state"))["stage"] == stage)


async def record_tenant_life(client: Client, settings: Settings, queue: str) -> None:
    """A tenant's whole life: provisioned, measured, over quota, suspended, deleted."""
    tenant = f"replay-{uuid.uuid4().hex[:8]}"
    policy = TenantPolicy(
        usage_interval_seconds=1,
        deletion_grace_seconds=2,
        providers=["local"],
        ingest_bucket=settings.ingest_bucket,
        quarantine_bucket=settings.quarantine_bucket,
        history_limit=60,
    )
    provisioning = await provision(client, queue, tenant, policy)
    await provisioning.result()
    await save(provisioning, "tenant_provisioning_provisioned")
    monitoring = client.get_workflow_handle(tenant_monitoring_id(tenant))
    first_run = (await monitoring.describe()).run_id
    await monitoring.signal(USAGE_SIGNAL, UsageUpdate("usage-1", 1, 10**13))
    while (await monitoring.describe()).run_id == first_run:
        await asyncio.sleep(0.5)
    await save(client.get_workflow_handle(monitoring.id, run_id=first_run), "tenant_monitoring_run")
    for action in ("suspend", "reactivate", "delete"):
        await monitoring.signal(LIFECYCLE_SIGNAL, LifecycleRequest(action, action, "recorder"))
    await monitoring.result()
    await save(monitoring, "tenant_monitoring_deleted")


async def record_upgrades(client: Client, settings: Settings, queue: str) -> None:
    tenant = f"replay-{uuid.uuid4().hex[:8]}"
    policy = TenantPolicy(payment_timeout_seconds=2, providers=["local"])
    await (await provision(client, queue, tenant, policy)).result()

    async def upgrade(upgrade_id: str, to_plan: str, payment: PaymentResult | None) -> Any:
        handle = await client.start_workflow(
            TenantUpgradeWorkflow.run,
            UpgradeRequest(
                event_id=str(uuid.uuid4()),
                tenant_id=tenant,
                upgrade_id=upgrade_id,
                from_plan="free",
                to_plan=to_plan,
                requested_by="recorder",
                policy=policy,
            ),
            id=tenant_upgrade_id(tenant, upgrade_id),
            task_queue=queue,
        )
        await eventually(
            lambda: stage_is(handle, "awaiting payment"), "the payment wait", timeout=60
        )
        if payment is not None:
            await handle.signal(PAYMENT_SIGNAL, payment)
            await handle.signal(PAYMENT_SIGNAL, payment)
        await handle.result()
        return handle

    failed = PaymentResult("pay-failed", "p-1", succeeded=False, reason="card declined")
    await save(await upgrade("declined", "pro", failed), "tenant_upgrade_payment_failed")
    await save(await upgrade("unanswered", "pro", None), "tenant_upgrade_timed_out")
    paid = PaymentResult("pay-ok", "p-2", succeeded=True, amount_minor=2900, currency="EUR")
    upgraded = await upgrade("paid", "pro", paid)
    await save(upgraded, "tenant_upgrade_upgraded")
    await save(client.get_workflow_handle(f"{upgraded.id}/apply"), "tenant_plan_change_applied")


async def record_failed_provisioning(client: Client, settings: Settings) -> None:
    """Provisioning on a worker whose local storage cannot create directories."""
    with tempfile.TemporaryDirectory() as scratch:
        blocker = Path(scratch) / "not-a-directory"
        blocker.write_text("")
        queue = f"record-{uuid.uuid4().hex[:8]}"
        providers: dict[str, Any] = {"local": LocalStorage(blocker / "storage")}
        async with ferry_worker(client, settings, queue, providers=providers):
            tenant = f"replay-{uuid.uuid4().hex[:8]}"
            handle = await provision(client, queue, tenant, TenantPolicy())
            await handle.result()
    await save(handle, "tenant_provisioning_failed")


async def record_files(client: Client, settings: Settings, queue: str) -> None:
    """Shares (expired, revoked, refused) and migrations (completed, rolled back)."""
    tenant = f"replay-{uuid.uuid4().hex[:8]}"
    await (await provision(client, queue, tenant, TenantPolicy(providers=["local"]))).result()
    storage = LocalStorage(settings.local_storage_root)
    event = await stage_upload(
        storage, settings.ingest_bucket, tenant, "poster.png", "image/png", DEMO_FILES[0][2]
    )
    upload = FileUploadInput(
        event_id=event["event_id"],
        tenant_id=tenant,
        file_id=event["file_id"],
        filename="poster.png",
        declared_content_type="image/png",
        size_bytes=event["size_bytes"],
        storage=StorageRef(**event["storage"]),
        uploaded_by="recorder",
    )
    await client.execute_workflow(
        FileUploadWorkflow.run,
        upload,
        id=f"file-upload/{tenant}/{upload.file_id}",
        task_queue=queue,
    )

    async def share(
        name: str, revoke: bool = False, shared_by: str = f"owner@{tenant}.example", **fields: Any
    ) -> None:
        request = ShareRequest(
            event_id=str(uuid.uuid4()),
            tenant_id=tenant,
            share_id=name,
            file_id=upload.file_id,
            shared_by=shared_by,
            grantee_type="public_link",
            permission="download",
            expires_at=datetime.now(UTC) + timedelta(seconds=2),
            **fields,
        )
        handle = await client.start_workflow(
            FileSharingWorkflow.run,
            request,
            id=file_share_id(tenant, name),
            task_queue=queue,
        )
        if revoke:
            while (await handle.query("status")).startswith(("checking", "recording", "signing")):
                await asyncio.sleep(0.05)
            await handle.signal(SHARE_REVOKE_SIGNAL, ShareRevocation("revoke-1", name, "recorder"))
        await handle.result()
        await save(handle, f"file_sharing_{name}")

    await share("expired", notify=True, grantee="partner@example.com")
    await share("revoked", revoke=True)
    await share("refused", shared_by="stranger@example.com")

    async def migrate(name: str, target: str, target_bucket: str, source: str = "local") -> None:
        request = MigrationRequest(
            event_id=str(uuid.uuid4()),
            tenant_id=tenant,
            migration_id=name,
            source=BucketRef(source, f"ferry-{tenant}"),
            target=BucketRef(target, target_bucket),
            batch_size=2,
            history_limit=30,
        )
        handle = await client.start_workflow(
            FileMigrationWorkflow.run,
            request,
            id=file_migration_id(tenant, name),
            task_queue=queue,
        )
        await handle.result()
        await save(handle, f"file_migration_{name}")

    await migrate("completed", "s3", f"ferry-{tenant}")
    # Back from S3, the local volume refuses the file's directory (a file sits where it
    # must go): the migration rolls back.
    files = Path(settings.local_storage_root) / f"ferry-{tenant}" / "files"
    shutil.rmtree(files / upload.file_id)
    (files / upload.file_id).write_text("in the way")
    await migrate("rolled_back", "local", f"ferry-{tenant}", source="s3")
    # `ferry-{tenant}-archive` is the bucket of the tenant `{tenant}-archive`.
    await migrate("refused", "s3", f"ferry-{tenant}-archive")


async def record_tenants() -> None:
    settings = get_settings()
    client = await connect(settings)
    queue = f"record-{uuid.uuid4().hex[:8]}"
    async with ferry_worker(client, settings, queue):
        await record_tenant_life(client, settings, queue)
        await record_upgrades(client, settings, queue)
        await record_files(client, settings, queue)
    await record_failed_provisioning(client, settings)


async def record_reconciliation() -> None:
    """A reconciliation of one tenant without monitoring: found, repaired, reported."""
    settings = get_settings()
    client = await connect(settings)
    tenant = f"{TENANT}-{uuid.uuid4().hex[:8]}"
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    await ensure_tenant(create_sessionmaker(engine), tenant)
    await engine.dispose()
    admin = create_engine(settings.database_admin_url.get_secret_value(), pool_size=1)
    async with admin.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET created_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": tenant},
        )
    await admin.dispose()
    queue = f"record-{uuid.uuid4().hex[:8]}"
    async with ferry_worker(client, settings, queue):
        handle = await client.start_workflow(
            ReconciliationWorkflow.run,
            ReconciliationRequest(tenant_ids=[tenant]),
            id=f"{RECONCILIATION_ID}-{tenant}",
            task_queue=queue,
        )
        report = await handle.result()
        assert report.repaired == [tenant], report
        await save(handle, "reconciliation_repaired")
        await client.get_workflow_handle(tenant_monitoring_id(tenant)).terminate("recorded")


async def record_rescan() -> None:
    """A shared file that a new signature finds infected: the rescan quarantines it (its
    child), and the share is revoked. Adds a signature to the stack's clamd."""
    # No rescan of its own from the worker when it sees the new version: the one recorded
    # here is to find the file.
    settings = get_settings().model_copy(update={"rescan_on_new_signatures": False})
    client = await connect(settings)
    queue = f"record-{uuid.uuid4().hex[:8]}"
    tenant = f"replay-{uuid.uuid4().hex[:8]}"
    data = f"clean until today: {uuid.uuid4()}\n".encode() * 20
    storage = LocalStorage(settings.local_storage_root)
    async with ferry_worker(client, settings, queue):
        await (await provision(client, queue, tenant, TenantPolicy(providers=["local"]))).result()
        event = await stage_upload(
            storage, settings.ingest_bucket, tenant, "notes.txt", "text/plain", data
        )
        upload = from_event(FileUploadInput, event, uploaded_by="recorder")
        await client.execute_workflow(
            FileUploadWorkflow.run, upload, id=file_upload_id(tenant, upload.file_id),
            task_queue=queue,
        )  # fmt: skip
        share = await client.start_workflow(
            FileSharingWorkflow.run,
            ShareRequest(
                event_id=str(uuid.uuid4()),
                tenant_id=tenant,
                share_id="shared",
                file_id=upload.file_id,
                shared_by=f"owner@{tenant}.example",
                grantee_type="email",
                grantee="friend@example.com",
                permission="download",
            ),
            id=file_share_id(tenant, "shared"),
            task_queue=queue,
        )
        await eventually(lambda: _status_is(share, "active"), "the share to be active")
        await asyncio.to_thread(
            add_test_signature, Stack().context(), f"Ferry-Replay-{tenant}", data
        )
        handle = await client.start_workflow(
            RescanWorkflow.run,
            RescanRequest(rate_per_second=100, tenant_ids=[tenant]),
            id=f"{RESCAN_ID}-{tenant}",
            task_queue=queue,
        )
        progress = await handle.result()
        assert progress.quarantined == 1, progress
        await share.result()
        await save(handle, "rescan_quarantined")
        await save(
            client.get_workflow_handle(file_quarantine_id(tenant, upload.file_id)),
            "file_quarantine_share_revoked",
        )
        await client.get_workflow_handle(tenant_monitoring_id(tenant)).terminate("recorded")


async def _status_is(handle: WorkflowHandle[Any, Any], prefix: str) -> bool:
    return bool((await handle.query("status")).startswith(prefix))


async def record_uploads() -> None:
    await record_upload("file_upload_processed", "poster.png", "image/png", DEMO_FILES[0][2])
    await record_upload("file_upload_infected", "notes.txt", "text/plain", EICAR)
    await record_upload(
        "file_upload_invalid_type", "poster.pdf", "application/pdf", DEMO_FILES[0][2]
    )
    # Refused by the workflow itself: the key is another tenant's upload.
    await record_upload(
        "file_upload_refused_key",
        "notes.txt",
        "text/plain",
        b"mine\n",
        elsewhere=StorageRef("local", "ferry-ingest", "tenants/other/uploads/f-1/private.txt"),
    )
    # Refused by the fingerprint activity: the right key in another tenant's bucket.
    await record_upload(
        "file_upload_refused_bucket",
        "notes.txt",
        "text/plain",
        b"mine\n",
        elsewhere=StorageRef("local", "ferry-other", f"tenants/{TENANT}/uploads/f-2/notes.txt"),
    )


async def main(groups: list[str]) -> None:
    """Record the groups named (`uploads`, `tenants`, `reconciliation`, `rescan`), or all."""
    HISTORIES.mkdir(exist_ok=True)
    # Not recorded here, and kept so that runs from before each patch still replay:
    # `file_upload_*_before_local_steps` (before `short-steps-as-local-activities`),
    # `file_upload_*_before_location_check` (before `upload-location-checked`),
    # `file_upload_*_before_one_pass` (before `one-pass-inspection`),
    # `file_upload_processed_before_patches_merged` (before `upload-patches-merged`, which
    # stands for the three before it: the same steps under three markers),
    # `file_upload_*_before_small_moves_local` (before `small-moves-local`, which stands
    # for all of them and moves a small original as a local activity),
    # `file_upload_*_before_deadline_on_activity` (before `analysis-deadline-on-activity`,
    # which stands for all of them and races the analysis with no timer),
    # `file_upload_*_before_media_steps_here` (before `media-steps-local-on-the-copys-
    # worker`, which stands for all of them and runs the media steps as local activities
    # on the workflow's own worker when it holds the copy),
    # `tenant_monitoring_deleted_before_receipt` (before `deletion-receipt`) and
    # `file_migration_*_before_own_bucket_only` (before `own-bucket-only`).
    if not groups or "uploads" in groups:
        await record_uploads()
    if not groups or "tenants" in groups:
        await record_tenants()
    if not groups or "reconciliation" in groups:
        await record_reconciliation()
    if not groups or "rescan" in groups:
        await record_rescan()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
