"""The `ferry` command."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ferry.cli_events import dlq_app, publish, tail
from ferry.cli_support import console, process_logging, run_until_signalled
from ferry.db.cli import db_app
from ferry.devstack import Stack
from ferry.devstack.cli import stack_app

app = typer.Typer(help="Ferry: the file and tenant platform.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(dlq_app, name="dlq")
migration_app = typer.Typer(
    help="File migrations between buckets and providers.", no_args_is_help=True
)
app.add_typer(migration_app, name="migration")
app.add_typer(db_app, name="db", help="Database migrations (Alembic), run as the owner role.")


@app.command()
def worker() -> None:
    """Run the Temporal worker for Ferry's workflows and activities."""
    process_logging()
    from ferry.config import get_settings
    from ferry.worker import run_worker

    settings = get_settings()
    queues = f"{settings.files_task_queue} and {settings.tenants_task_queue}"
    console.print(f"worker on {settings.temporal_address}, queues {queues}")
    run_until_signalled(lambda stop: run_worker(settings, stop))


@app.command()
def consume() -> None:
    """Run the Kafka → Temporal bridge on Ferry's inbound topics."""
    process_logging()
    from ferry.config import get_settings
    from ferry.processes import run_bridge

    settings = get_settings()
    console.print(f"consuming from {settings.kafka_bootstrap} as group {settings.consumer_group}")
    run_until_signalled(lambda stop: run_bridge(settings, stop))


@app.command()
def meter() -> None:
    """Run the usage meter: per-tenant totals from the file events, sent to monitoring."""
    process_logging()
    from ferry.config import get_settings
    from ferry.processes import run_meter

    settings = get_settings()
    console.print(f"metering from {settings.kafka_bootstrap} as app {settings.meter_app_id}")
    run_until_signalled(lambda stop: run_meter(settings, stop))


@app.command("codec-server")
def codec_server(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    origin: Annotated[
        list[str] | None, typer.Option(help="An origin allowed by CORS (the UI's); repeatable.")
    ] = None,
    keys_file: Annotated[
        Path | None, typer.Option(help="Read FERRY_PAYLOAD_KEYS from this file instead.")
    ] = None,
) -> None:
    """Serve /encode and /decode for the Temporal UI (payloads shown decrypted)."""
    process_logging()
    from ferry.codec_server import serve
    from ferry.config import get_settings
    from ferry.temporal.codec import EncryptionCodec

    settings = get_settings()
    if keys_file is not None:
        spec = keys_file.read_text().strip()
    elif settings.payload_keys is not None:
        spec = settings.payload_keys.get_secret_value()
    else:
        console.print("[red]no payload keys: set FERRY_PAYLOAD_KEYS or pass --keys-file[/red]")
        raise typer.Exit(1)
    origins = origin or [settings.temporal_ui_url]
    codec = EncryptionCodec.from_spec(spec)
    console.print(f"codec endpoint on http://{host}:{port} for {', '.join(origins)}")
    run_until_signalled(lambda stop: serve(codec, host, port, origins, stop))


@app.command()
def status(
    once: Annotated[bool, typer.Option(help="Print one view and exit.")] = False,
    every: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """The running system, live: services, lag and rates, workflows, DLQ, alerts firing."""
    from rich.console import Group
    from rich.live import Live
    from temporalio.client import Client

    from ferry.config import get_settings
    from ferry.processes import connect
    from ferry.status import render, snapshot

    settings = get_settings()
    stack = Stack()

    async def view(client: Client) -> Group:
        found = await snapshot(
            stack.status, client, settings.prometheus_url, settings.kafka_bootstrap
        )
        return render(found)

    async def main(stop: asyncio.Event) -> None:
        client = await connect(settings, lazy=True)
        if once:
            console.print(await view(client))
            return
        with Live(await view(client), console=console, refresh_per_second=4) as live:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), every)
                except TimeoutError:
                    live.update(await view(client))

    run_until_signalled(main)


@app.command()
def reconcile(
    tenant: Annotated[
        list[str] | None, typer.Option(help="Only this tenant (repeat for more); all by default.")
    ] = None,
    repair: Annotated[
        bool, typer.Option(help="Start the monitoring workflow of a tenant that has none.")
    ] = True,
) -> None:
    """Run one reconciliation now, as its schedule does, and print what it found."""
    import dataclasses

    from ferry.activities.reconciliation import KINDS
    from ferry.config import get_settings
    from ferry.contracts.workflows import RECONCILIATION_ID
    from ferry.workflows.reconciliation import ReconciliationWorkflow

    settings = get_settings()
    request = dataclasses.replace(
        settings.reconciliation_request(), repair=repair, tenant_ids=tenant or None
    )

    def show(report: Any) -> None:
        table = Table("kind", "found", "left", "oldest", title="Reconciliation")
        for kind in KINDS:
            oldest = report.found.oldest.get(kind) or []
            first = f"{oldest[0].tenant_id}/{oldest[0].object_id}" if oldest else ""
            table.add_row(kind, str(report.found.counts[kind]), str(report.left(kind)), first)
        console.print(table)
        if report.repaired:
            console.print(f"started monitoring of: {', '.join(report.repaired)}")

    _by_hand(settings, ReconciliationWorkflow.run, request, RECONCILIATION_ID, show)


def _by_hand(
    settings: Any, run: Any, request: Any, workflow_id: str, show: Callable[[Any], None]
) -> None:
    """Run one operations workflow now, as its schedule would, and `show` its result."""
    import uuid

    from ferry.contracts.workflows import OPERATIONS_TENANT, search_attributes
    from ferry.processes import connect

    async def main(_stop: asyncio.Event) -> None:
        client = await connect(settings)
        result = await client.execute_workflow(
            run,
            request,
            id=f"{workflow_id}-by-hand-{uuid.uuid4().hex[:8]}",
            task_queue=settings.tenants_task_queue,
            search_attributes=search_attributes(OPERATIONS_TENANT),
        )
        show(result)

    run_until_signalled(main)


@app.command()
def rescan(
    tenant: Annotated[
        list[str] | None, typer.Option(help="Only this tenant (repeat for more); all by default.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Files a second at most (default: FERRY_RESCAN_RATE_*).")
    ] = None,
) -> None:
    """Rescan now, as the schedule does, the processed files whose verdict came from older
    signatures than clamd's, and print what was found."""
    from ferry.config import get_settings
    from ferry.contracts.workflows import RESCAN_ID
    from ferry.workflows.rescan import RescanWorkflow

    settings = get_settings()
    request = settings.rescan_request()
    request.tenant_ids = tenant or None
    if rate is not None:
        request.rate_per_second = rate

    def show(found: Any) -> None:
        if found.signature_version is None:
            console.print("clamd names no signature version: nothing to compare")
            return
        console.print(
            f"signature version {found.signature_version}: listed {found.listed}, "
            f"rescanned {found.rescanned}, current {found.current}, "
            f"quarantined {found.quarantined}, gone {found.gone}, "
            f"unscannable {found.unscannable}"
        )
        for name in found.quarantined_files:
            console.print(f"quarantined: {name}")
        for name in found.quarantine_failed:
            console.print(
                f"[red]quarantine failed[/red]: {name} (its file-quarantine run says why)"
            )
        if found.superseded_by is not None:
            console.print(f"superseded by signature version {found.superseded_by}")

    _by_hand(settings, RescanWorkflow.run, request, RESCAN_ID, show)


@app.command("alert-webhook")
def alert_webhook(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9466,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    recipient: Annotated[
        str, typer.Option(help="Where the notification system sends alerts (its recipient).")
    ] = "operations",
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Kafka's address (default: FERRY_KAFKA_BOOTSTRAP).")
    ] = None,
) -> None:
    """Receive Alertmanager's webhook on /alerts: each alert a `notification.requested`."""
    process_logging()
    from ferry.alert_webhook import serve
    from ferry.config import get_settings

    bootstrap = kafka_bootstrap or get_settings().kafka_bootstrap
    console.print(f"alert webhook on http://{host}:{port}/alerts, publishing to {bootstrap}")
    run_until_signalled(lambda stop: serve(bootstrap, host, port, recipient, stop))


@app.command()
def moderator(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9468,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Images labelled at once (default: one per core).")
    ] = None,
) -> None:
    """Serve the moderation model on /labels, so workers hold none of it (FERRY_MODERATION_URL)."""
    process_logging()
    from ferry.moderator import serve

    threads = concurrency or os.cpu_count() or 1
    console.print(f"moderation service on http://{host}:{port}/labels, {threads} at once")
    run_until_signalled(lambda stop: serve(host, port, threads, stop))


# Events in and out of Kafka by hand (ferry/cli_events.py).
app.command()(publish)
app.command()(tail)


@migration_app.command("watch")
def migration_watch(
    migration: Annotated[
        str,
        typer.Argument(
            help="The workflow ID, file-migration/TENANT/MIGRATION, or TENANT/MIGRATION."
        ),
    ],
) -> None:
    """Show a running migration's progress (files and bytes) as a live progress bar."""
    from ferry.config import get_settings
    from ferry.processes import connect
    from ferry.watch import describe, migration_workflow_id, watch_migration

    async def main() -> None:
        client = await connect(get_settings())
        workflow_id = migration_workflow_id(migration)
        status, progress = await watch_migration(client, workflow_id, console)
        name = status.name.lower() if status else "unknown"
        console.print(f"{workflow_id}: {progress.phase} ({name}); {describe(progress)}")

    asyncio.run(main())


@app.command()
def demo(
    keep_running: Annotated[bool, typer.Option(help="Keep running until Ctrl-C.")] = True,
) -> None:
    """Run the worker and the bridge, publish demo uploads and show their outcomes.

    Only the demo's own lines reach the terminal; the processes' logs (the worker's,
    the bridge's, the meter's and their libraries') go to a file of the stack's home.
    """
    import logging

    from ferry.config import get_settings
    from ferry.demo import run_demo
    from ferry.logs import configure_logging

    settings = get_settings()
    log_file = Stack().home / "logs" / "demo.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    stream = log_file.open("a", encoding="utf-8")
    level = logging.getLevelName(settings.log_level.upper())
    configure_logging(settings, json=True, level=level, stream=stream)
    logging.captureWarnings(True)  # libraries' warnings too
    console.print(f"the worker's, the bridge's and the meter's logs: {log_file}")

    async def main(stop: asyncio.Event) -> None:
        await run_demo(settings, stop, keep_running=keep_running, out=console)

    run_until_signalled(main)


if __name__ == "__main__":
    app()
