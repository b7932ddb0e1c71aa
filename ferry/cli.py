"""The `ferry` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from ferry.db.cli import db_app
from ferry.devstack import Stack
from ferry.devstack.cli import stack_app

app = typer.Typer(help="Ferry: the file and tenant platform.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
dlq_app = typer.Typer(help="The dead-letter topic, ferry.dlq.v1.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
migration_app = typer.Typer(
    help="File migrations between buckets and providers.", no_args_is_help=True
)
app.add_typer(migration_app, name="migration")
app.add_typer(db_app, name="db", help="Database migrations (Alembic), run as the owner role.")
console = Console()


def _logging(console_format: bool = False) -> None:
    """Structured, redacted logs for a long-running command (ferry/logs.py)."""
    import logging

    from ferry.config import get_settings
    from ferry.logs import configure_logging

    settings = get_settings()
    json = settings.log_format == "json" and not console_format
    configure_logging(settings, json=json, level=logging.getLevelName(settings.log_level.upper()))


def _run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` on uvloop; SIGINT or SIGTERM sets `stop` so it can finish cleanly.

    uvloop's event loop does the same work as asyncio's with less CPU: the
    bridge handles about a fifth more records per CPU second on it.
    """

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    uvloop.run(runner())


@app.command()
def worker() -> None:
    """Run the Temporal worker for Ferry's workflows and activities."""
    _logging()
    from ferry.config import get_settings
    from ferry.worker import run_worker

    settings = get_settings()
    queues = f"{settings.files_task_queue} and {settings.tenants_task_queue}"
    console.print(f"worker on {settings.temporal_address}, queues {queues}")
    _run_until_signalled(lambda stop: run_worker(settings, stop))


@app.command()
def consume() -> None:
    """Run the Kafka → Temporal bridge on Ferry's inbound topics."""
    _logging()
    from ferry.config import get_settings
    from ferry.processes import run_bridge

    settings = get_settings()
    console.print(f"consuming from {settings.kafka_bootstrap} as group {settings.consumer_group}")
    _run_until_signalled(lambda stop: run_bridge(settings, stop))


@app.command()
def meter() -> None:
    """Run the usage meter: per-tenant totals from the file events, sent to monitoring."""
    _logging()
    from ferry.config import get_settings
    from ferry.processes import run_meter

    settings = get_settings()
    console.print(f"metering from {settings.kafka_bootstrap} as app {settings.meter_app_id}")
    _run_until_signalled(lambda stop: run_meter(settings, stop))


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
    _logging()
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
    _run_until_signalled(lambda stop: serve(codec, host, port, origins, stop))


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

    _run_until_signalled(main)


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

    _run_until_signalled(main)


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
    _logging()
    from ferry.alert_webhook import serve
    from ferry.config import get_settings

    bootstrap = kafka_bootstrap or get_settings().kafka_bootstrap
    console.print(f"alert webhook on http://{host}:{port}/alerts, publishing to {bootstrap}")
    _run_until_signalled(lambda stop: serve(bootstrap, host, port, recipient, stop))


@app.command()
def moderator(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9468,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Images labelled at once (default: one per core).")
    ] = None,
) -> None:
    """Serve the moderation model on /labels, so workers hold none of it (FERRY_MODERATION_URL)."""
    _logging()
    from ferry.moderator import serve

    threads = concurrency or os.cpu_count() or 1
    console.print(f"moderation service on http://{host}:{port}/labels, {threads} at once")
    _run_until_signalled(lambda stop: serve(host, port, threads, stop))


@app.command()
def publish(
    file: Annotated[Path, typer.Argument(help="A JSON file with one event, or a list of events.")],
    topic: Annotated[str | None, typer.Option(help="Override the event's inbound topic.")] = None,
) -> None:
    """Publish events from a JSON file (validated against their schemas, sent as Avro)."""
    from ferry.config import get_settings
    from ferry.contracts.topics import inbound_topic_for
    from ferry.producers import EventPublisher
    from ferry.schemas import EventDecodeError, decode

    raw = json.loads(file.read_text())
    events = raw if isinstance(raw, list) else [raw]

    async def send() -> None:
        async with EventPublisher(get_settings().kafka_bootstrap) as publisher:
            for item in events:
                try:
                    event = decode(json.dumps(item).encode(), "application/json")
                except EventDecodeError as exc:
                    console.print(f"[red]invalid event:[/red] {exc}")
                    raise typer.Exit(1) from exc
                target = topic or inbound_topic_for(event["event_type"])
                sent = await publisher.publish(event, topic=target)
                where = f"{target}[{sent.partition}]@{sent.offset}"
                console.print(f"{event['event_type']} {event['event_id']} → {where}")

    asyncio.run(send())


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="The topic to follow, e.g. ferry.file-events.v1.")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
) -> None:
    """Print the records of a topic, decoded, as they arrive."""
    from ferry.config import get_settings
    from ferry.consumers.tail import follow

    async def main(stop: asyncio.Event) -> None:
        async for record in follow(get_settings().kafka_bootstrap, topic, from_beginning, stop):
            console.print_json(json.dumps(record, default=str))

    _run_until_signalled(main)


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


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(help="Show the last N dead letters.")] = 50,
    full: Annotated[bool, typer.Option("--full", help="Print each record decoded.")] = False,
) -> None:
    """Dead letters with their reasons, source and time."""
    from ferry.config import get_settings
    from ferry.consumers.dlq import read_dead_letters

    letters = asyncio.run(read_dead_letters(get_settings().kafka_bootstrap, limit=limit))
    table = Table("offset", "source", "failed at", "event type", "reason")
    for d in letters:
        partition, offset = d.header("ferry-source-partition"), d.header("ferry-source-offset")
        source = f"{d.source_topic}[{partition}]@{offset}"
        table.add_row(
            str(d.offset),
            source,
            d.header("ferry-failed-at") or "-",
            d.header("event-type") or "-",
            d.reason,
        )
    console.print(table)
    if full:
        for d in letters:
            console.print(f"[bold]offset {d.offset}[/bold]")
            console.print_json(json.dumps(d.decoded(), default=str))


@dlq_app.command("replay")
def dlq_replay(
    offsets: Annotated[list[int], typer.Argument(help="DLQ offsets to re-publish.")],
) -> None:
    """Re-publish dead letters to their source topics (after the cause was fixed)."""
    from ferry.config import get_settings
    from ferry.consumers.dlq import replay

    try:
        replayed = asyncio.run(replay(get_settings().kafka_bootstrap, set(offsets)))
    except (LookupError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    for letter, topic in replayed:
        console.print(f"dead letter {letter.offset} → {topic}")


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

    _run_until_signalled(main)


if __name__ == "__main__":
    app()
