"""The reconciliation on the local stack, started by its own Temporal Schedule.

An upload stuck for real (its worker's clamd address answers nothing, so the scan
fails closed and Temporal retries it) is counted past its deadline; a tenant
without a monitoring workflow gets one; a second run finds nothing to repair.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from commands import ferry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    WorkflowHandle,
)
from temporalio.client import WorkflowExecutionStatus as Status
from temporalio.service import RPCError
from waiting import eventually

from ferry.activities.reconciliation import (
    MIGRATION_IDLE,
    SHARE_OVERDUE,
    TENANT_OVER_QUOTA,
    TENANT_UNMONITORED,
    UPLOAD_OVERDUE,
    ReconciliationReport,
)
from ferry.config import Settings
from ferry.consumers.routes import from_event
from ferry.contracts.workflows import (
    FileUploadInput,
    ReconciliationRequest,
    file_upload_id,
    tenant_monitoring_id,
)
from ferry.demo import ensure_tenant, stage_upload
from ferry.storage import LocalStorage
from ferry.worker import RECONCILIATIONS, ensure_schedule, ferry_worker
from ferry.workflows.file_upload import FileUploadWorkflow

pytest_plugins = ["db_fixtures"]
pytestmark = pytest.mark.stack


@pytest.fixture
async def tenant(
    app_sessionmaker: async_sessionmaker[AsyncSession], admin_engine: AsyncEngine
) -> str:
    """An active tenant with no monitoring workflow, created an hour ago."""
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    await ensure_tenant(app_sessionmaker, tenant_id)
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET created_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": tenant_id},
        )
    return tenant_id


@pytest.fixture
async def schedule(client: Client) -> AsyncIterator[ScheduleHandle]:
    handle = client.get_schedule_handle(f"ferry-test-reconciliation-{uuid.uuid4().hex[:8]}")
    yield handle
    with contextlib.suppress(RPCError):  # not created if the test failed before
        await handle.delete()


async def _scheduled_run(client: Client, schedule: ScheduleHandle) -> ReconciliationReport:
    """Trigger the schedule once and wait for that run's report."""
    before = len((await schedule.describe()).info.recent_actions)
    await schedule.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)  # now, whatever runs
    started: list[str] = []

    async def ran() -> bool:
        actions = (await schedule.describe()).info.recent_actions
        if len(actions) > before:
            action = actions[-1].action
            assert isinstance(action, ScheduleActionExecutionStartWorkflow)
            started.append(action.workflow_id)
        return bool(started)

    await eventually(ran, "the schedule's run to start", timeout=30)
    handle = client.get_workflow_handle(started[0], result_type=ReconciliationReport)
    return await handle.result()


async def _is_inspecting(upload: WorkflowHandle[Any, Any]) -> bool:
    return await upload.query(FileUploadWorkflow.progress) == "inspecting"


async def _monitoring_is_visible(client: Client, tenant: str) -> bool:
    query = f"WorkflowId = '{tenant_monitoring_id(tenant)}' AND ExecutionStatus = 'Running'"
    return [w async for w in client.list_workflows(query)] != []


async def test_a_scheduled_run_counts_an_upload_past_its_deadline_and_starts_missing_monitoring(
    client: Client, settings: Settings, tenant: str, schedule: ScheduleHandle
) -> None:
    queue = f"ferry-test-{uuid.uuid4().hex[:8]}"
    # Nothing listens on port 1: every scan finds clamd unavailable and is retried.
    no_clamd = settings.model_copy(
        update={
            "clamd_address": "127.0.0.1:1",
            "tenants_task_queue": queue,
            "reconciliation_interval_seconds": 3600,  # triggered by hand below
        }
    )
    storage = LocalStorage(settings.local_storage_root)
    event = await stage_upload(
        storage, settings.ingest_bucket, tenant, "notes.txt", "text/plain", b"stuck\n"
    )
    upload = from_event(FileUploadInput, event, uploaded_by="reconciliation-test")
    async with ferry_worker(client, no_clamd, queue):
        stuck = await client.start_workflow(
            FileUploadWorkflow.run,
            upload,
            id=file_upload_id(tenant, upload.file_id),
            task_queue=queue,
        )
        monitoring = client.get_workflow_handle(tenant_monitoring_id(tenant))
        try:
            await eventually(lambda: _is_inspecting(stuck), "the upload to wait on its scan")
            look_at_ours = ReconciliationRequest(upload_deadline_seconds=1, tenant_ids=[tenant])
            await asyncio.sleep(1.5)  # the upload was recorded before its scan: now past 1 s
            await ensure_schedule(client, no_clamd, RECONCILIATIONS, schedule.id, look_at_ours)

            first = await _scheduled_run(client, schedule)
            assert first.found.counts[UPLOAD_OVERDUE] == 1
            assert [item.object_id for item in first.found.oldest[UPLOAD_OVERDUE]] == [
                upload.file_id
            ]
            assert first.found.counts[TENANT_UNMONITORED] == 1
            assert first.repaired == [tenant]
            for kind in (SHARE_OVERDUE, MIGRATION_IDLE, TENANT_OVER_QUOTA):
                assert first.found.counts[kind] == 0, kind
            assert (await monitoring.describe()).status == Status.RUNNING

            await eventually(
                lambda: _monitoring_is_visible(client, tenant),
                "the monitoring workflow in Temporal's visibility",
            )
            second = await _scheduled_run(client, schedule)
            assert second.found.counts[TENANT_UNMONITORED] == 0
            assert second.repaired == []
            assert second.found.counts[UPLOAD_OVERDUE] == 1  # still stuck: counted, not touched
            assert (await stuck.describe()).status == Status.RUNNING
        finally:
            await stuck.terminate("test over")
            with contextlib.suppress(RPCError):  # not started if the test failed before
                await monitoring.terminate("test over")


async def test_ferry_reconcile_reports_and_repairs_only_when_asked(
    client: Client, settings: Settings, tenant: str
) -> None:
    queue = f"ferry-test-{uuid.uuid4().hex[:8]}"
    monitoring = client.get_workflow_handle(tenant_monitoring_id(tenant))
    on_queue = {"FERRY_TENANTS_TASK_QUEUE": queue}
    async with ferry_worker(client, settings, queue):
        try:
            counted = await ferry("reconcile", "--tenant", tenant, "--no-repair", env=on_queue)
            [row] = [line for line in counted.splitlines() if TENANT_UNMONITORED in line]
            kind, found, left, oldest = [cell.strip() for cell in row.split("│")[1:5]]
            assert (kind, found, left, oldest) == (
                TENANT_UNMONITORED,
                "1",
                "1",
                f"{tenant}/{tenant}",
            )
            with pytest.raises(RPCError):
                await monitoring.describe()  # counted, not started

            repaired = await ferry("reconcile", "--tenant", tenant, env=on_queue)
            assert f"started monitoring of: {tenant}" in repaired
            assert (await monitoring.describe()).status == Status.RUNNING
        finally:
            with contextlib.suppress(RPCError):
                await monitoring.terminate("test over")
