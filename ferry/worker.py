"""The worker: settings → clients → activity classes → `Worker`s. The one place that wires them."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from ferry.activities.database import DatabaseActivities
from ferry.activities.events import EventActivities
from ferry.activities.inspect import InspectActivities, worker_queue
from ferry.activities.media import MediaActivities
from ferry.activities.migration import MigrationActivities
from ferry.activities.reconciliation import ReconciliationActivities
from ferry.activities.rescan import RescanActivities, RescanStarter
from ferry.activities.scan import ScanActivities
from ferry.activities.spool import SpoolStore
from ferry.activities.storage import StorageActivities
from ferry.activities.tenants import TenantPolicyActivities
from ferry.config import Settings
from ferry.contracts.workflows import (
    OPERATIONS_TENANT,
    RECONCILIATION_ID,
    RECONCILIATION_SCHEDULE,
    RESCAN_ID,
    RESCAN_SCHEDULE,
    search_attributes,
)
from ferry.db import create_engine, create_sessionmaker
from ferry.db.verdicts import VerdictBook
from ferry.media.analysis import moderator
from ferry.processes import connect
from ferry.producers import EventPublisher
from ferry.storage import StorageProvider, providers_from_env
from ferry.telemetry import configure_tracing, metrics_runtime
from ferry.temporal.queues import limit_each_key
from ferry.workflows.file_migration import FileMigrationWorkflow
from ferry.workflows.file_quarantine import FileQuarantineWorkflow
from ferry.workflows.file_sharing import FileSharingWorkflow
from ferry.workflows.file_upload import FileUploadWorkflow
from ferry.workflows.reconciliation import ReconciliationWorkflow
from ferry.workflows.rescan import RescanWorkflow
from ferry.workflows.tenant_monitoring import TenantMonitoringWorkflow
from ferry.workflows.tenant_provisioning import TenantProvisioningWorkflow
from ferry.workflows.tenant_upgrade import TenantPlanChangeWorkflow, TenantUpgradeWorkflow

FILE_WORKFLOWS: list[type] = [FileUploadWorkflow, FileSharingWorkflow, FileMigrationWorkflow]
TENANT_WORKFLOWS: list[type] = [
    TenantProvisioningWorkflow,
    TenantMonitoringWorkflow,
    TenantUpgradeWorkflow,
    TenantPlanChangeWorkflow,
    ReconciliationWorkflow,
    RescanWorkflow,
    FileQuarantineWorkflow,
]
WORKFLOWS = FILE_WORKFLOWS + TENANT_WORKFLOWS

log = logging.getLogger(__name__)


def storage_providers(settings: Settings) -> dict[str, StorageProvider]:
    """Local storage, and each cloud provider whose usual variables are set."""
    return providers_from_env(settings.local_storage_root)


@contextlib.asynccontextmanager
async def ferry_worker(
    client: Client,
    settings: Settings,
    task_queue: str | None = None,
    providers: Mapping[str, StorageProvider] | None = None,
) -> AsyncIterator[list[Worker]]:
    """Running workers for Ferry's workflows and activities.

    By default one worker per task queue of the settings (file workflows on one,
    tenant workflows on the other); with `task_queue`, one worker that runs
    everything there. `providers` replaces the storage providers of the environment.
    """
    providers = dict(providers) if providers is not None else storage_providers(settings)
    host, port = settings.clamd_host_port
    # No ping before each checkout: a connection lost meanwhile fails one attempt of an
    # activity, which Temporal retries on fresh ones (`create_engine`).
    engine = create_engine(settings.database_url.get_secret_value(), pre_ping=False)
    async with EventPublisher(settings.kafka_bootstrap) as publisher:
        places = settings.places
        storage = StorageActivities(providers, places)
        verdicts = VerdictBook(engine)
        # A signature version this worker's clamd reports first: that version's rescan.
        rescans = settings.tenants_task_queue if task_queue is None else task_queue
        starter = (
            RescanStarter(client, rescans, settings.rescan_request())
            if settings.rescan_on_new_signatures
            else None
        )
        scan = ScanActivities(
            host, port, providers, places=places,
            version_interval=settings.clamd_version_interval_seconds,
            verdicts=verdicts, on_new_signatures=starter,
        )  # fmt: skip
        events = EventActivities(publisher)
        sessionmaker = create_sessionmaker(engine)
        database = DatabaseActivities(sessionmaker)
        rescan = RescanActivities(engine, sessionmaker, scan, providers)
        # Uploads' copies for the media steps, which this worker takes on a queue of its own.
        own_queue = worker_queue(task_queue or settings.files_task_queue)
        spool = SpoolStore(Path(tempfile.mkdtemp(prefix="ferry-spool-")), own_queue)
        media = MediaActivities(
            providers, places=places, spool=spool, moderator=moderator(settings.moderation_url)
        )
        inspect = InspectActivities(providers, spool, scan, media, places=places)
        tenants = TenantPolicyActivities(settings.tenant_policy(list(providers)))
        migration = MigrationActivities(providers)
        reconciliation = ReconciliationActivities(engine, client)
        activities: list[Any] = [
            storage.fingerprint, storage.move, storage.sign_url, storage.create_bucket,
            storage.delete_bucket, storage.measure, storage.delete_prefix, scan.scan,
            inspect.inspect_upload, inspect.holds_copy,
            events.publish, migration.list_objects, migration.copy_objects,
            migration.delete_objects, media.validate_upload, media.make_thumbnails,
            media.extract_metadata, media.analyse_content, tenants.policy,
            reconciliation.find_stuck_work, reconciliation.report, rescan.current_signatures,
            rescan.list_outdated, rescan.rescan_file, *database.activities(),
        ]  # fmt: skip
        queues = (
            {task_queue: WORKFLOWS}
            if task_queue
            else {
                settings.files_task_queue: FILE_WORKFLOWS,
                settings.tenants_task_queue: TENANT_WORKFLOWS,
            }
        )
        workers = [
            Worker(
                client,
                task_queue=queue,
                workflows=workflows,
                activities=activities,
                max_concurrent_activities=settings.worker_activity_slots,
            )
            for queue, workflows in queues.items()
        ]
        followers: list[Any] = [
            media.make_thumbnails,
            media.extract_metadata,
            media.analyse_content,
        ]
        # The steps of uploads this worker inspected: fairness ordered them then, and each
        # holds a copy (and maybe its decode) until it is done, so all three of an upload
        # may run at once: the copies drain as fast as the inspections fill them.
        workers.append(
            Worker(
                client,
                task_queue=own_queue,
                activities=followers,
                max_concurrent_activities=len(followers) * settings.worker_activity_slots,
            )
        )
        try:
            async with contextlib.AsyncExitStack() as running:
                for worker in workers:
                    await running.enter_async_context(worker)
                yield workers
        finally:
            shutil.rmtree(spool.root, ignore_errors=True)
            media.close()
            await engine.dispose()
            for provider in providers.values():
                await provider.close()


# mallopt(3)'s parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD, M_ARENA_MAX = -1, -8


def tune_allocator(arenas: int, trim_bytes: int) -> bool:
    """Bound glibc's arenas and trim its heaps (`MALLOC_ARENA_MAX`, `MALLOC_TRIM_THRESHOLD_`
    set from inside, so that the worker behaves the same however it is started); a
    parameter of 0 is left alone. False where the C library is not glibc, or refused."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    wanted = [(M_ARENA_MAX, arenas), (M_TRIM_THRESHOLD, trim_bytes)]
    return all(mallopt(param, value) == 1 for param, value in wanted if value)


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Run the workers until `stop` is set; Temporal's metrics on `worker_metrics_port`."""
    # Before the threads that decode images start (`make bench-upload`: the small files'
    # peak RSS 309-339 MB without, 276-286 MB with, at the same CPU per file).
    if not tune_allocator(settings.worker_malloc_arenas, settings.worker_malloc_trim_bytes):
        log.warning("the C library's allocator could not be tuned: glibc's defaults stay")
    configure_tracing("ferry-worker")
    client = await connect(settings, runtime=metrics_runtime(settings.worker_metrics_port))
    if settings.tenant_tasks_per_second is not None:
        await limit_each_key(
            client,
            settings.files_task_queue,
            settings.tenant_tasks_per_second,
            "FERRY_TENANT_TASKS_PER_SECOND",
        )
    async with ferry_worker(client, settings):
        for scheduled in (RECONCILIATIONS, RESCANS):
            await ensure_schedule(client, settings, scheduled)
        await stop.wait()


@dataclass(frozen=True)
class Scheduled:
    """An operations workflow that a schedule runs, and what the settings say of it."""

    schedule_id: str
    workflow_id: str
    run: Any
    every: Callable[[Settings], int]
    request: Callable[[Settings], Any]
    summary: str
    note: str


RECONCILIATIONS = Scheduled(
    RECONCILIATION_SCHEDULE,
    RECONCILIATION_ID,
    ReconciliationWorkflow.run,
    lambda settings: settings.reconciliation_interval_seconds,
    lambda settings: settings.reconciliation_request(),
    "reconciliation: stuck uploads, shares, migrations, monitoring",
    "created by ferry worker (FERRY_RECONCILIATION_*)",
)
# Verdicts older than clamd's signatures, even when no worker saw the version change.
RESCANS = Scheduled(
    RESCAN_SCHEDULE,
    RESCAN_ID,
    RescanWorkflow.run,
    lambda settings: settings.rescan_interval_seconds,
    lambda settings: settings.rescan_request(),
    "rescan: verdicts older than clamd's signatures",
    "created by ferry worker (FERRY_RESCAN_*)",
)


async def ensure_schedule(
    client: Client,
    settings: Settings,
    scheduled: Scheduled,
    schedule_id: str | None = None,
    request: Any = None,
) -> None:
    """`scheduled`'s schedule as the settings say, created or updated (idempotent); with
    an interval of 0 it is deleted. `schedule_id` and `request` replace its own.

    Every worker does this as it starts, so the schedule follows the settings of the
    latest one. A run that is due while the previous one runs is skipped (a run lasts
    one interval at most), and a run missed while no worker listened is not made up
    (the next one looks at everything anyway).
    """
    schedule_id = schedule_id or scheduled.schedule_id
    every = scheduled.every(settings)
    handle = client.get_schedule_handle(schedule_id)
    if every <= 0:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            scheduled.run,
            request or scheduled.request(settings),
            id=scheduled.workflow_id,
            task_queue=settings.tenants_task_queue,
            typed_search_attributes=search_attributes(OPERATIONS_TENANT),
            static_summary=scheduled.summary,
            # A run that cannot finish (no worker polls its queue any more) ends by the
            # next one's time, and skips only the runs due while it lasts.
            execution_timeout=timedelta(seconds=every),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every))]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(seconds=every)
        ),
        state=ScheduleState(note=scheduled.note),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("created the schedule %s (every %d s)", schedule_id, every)
    except ScheduleAlreadyRunningError:
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
