"""`ferry demo`: the whole system on the local stack, with a few uploads to watch."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageDraw
from pypdf import PdfWriter
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.contracts.enums import StorageProvider, TenantPlan, TenantStatus
from ferry.contracts.topics import inbound_topic_for
from ferry.contracts.workflows import tenant_monitoring_id
from ferry.db import create_engine, create_sessionmaker, tenant_scope
from ferry.processes import bridge_config, connect, event_ledger, run_meter
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage
from ferry.worker import ferry_worker
from ferry.workflows.tenant_monitoring import MonitoringState

DEMO_TENANT = "demo"
# The EICAR test string, split so that no scanner flags this source file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _png() -> bytes:
    image = Image.new("RGB", (640, 400), "#1d4e89")
    ImageDraw.Draw(image).text((40, 180), "Ferry demo", fill="white")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


DEMO_FILES: list[tuple[str, str, bytes]] = [
    ("poster.png", "image/png", _png()),
    ("report.pdf", "application/pdf", _pdf()),
    ("notes.txt", "text/plain", b"Ferry carries files across.\n" * 20),
    ("invoice.pdf.exe", "application/octet-stream", EICAR),
]


async def ensure_tenant(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: str,
    plan: TenantPlan = TenantPlan.FREE,
    provider: StorageProvider = StorageProvider.LOCAL,
) -> str:
    """An active tenant, as provisioning leaves one (idempotent).

    The demo and the benchmarks write it directly; in the running system
    `tenant_provisioning_workflow` does this and more.
    """
    async with tenant_scope(sessionmaker, tenant_id) as db:
        await db.tenants.create(
            name=f"Tenant {tenant_id}",
            plan=plan,
            region="local",
            admin_email=f"admin@{tenant_id}.example",
            storage_provider=provider,
            storage_bucket=f"ferry-{tenant_id}",
        )
        await db.tenants.set_status(TenantStatus.ACTIVE)
    return tenant_id


async def stage_upload(
    storage: LocalStorage, bucket: str, tenant: str, filename: str, content_type: str, data: bytes
) -> dict[str, Any]:
    """Put a file where an upstream service would, and return its `file.uploaded` event."""
    file_id = str(uuid.uuid4())
    key = f"tenants/{tenant}/uploads/{file_id}/{filename}"

    async def chunks() -> Any:
        yield data

    await storage.create_bucket(bucket)
    await storage.write(bucket, key, chunks())
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "file.uploaded",
        "occurred_at": datetime.now(UTC),
        "tenant_id": tenant,
        "correlation_id": None,
        "source": "ferry.demo",
        "file_id": file_id,
        "filename": filename,
        "declared_content_type": content_type,
        "size_bytes": len(data),
        "storage": {"provider": "local", "bucket": bucket, "key": key},
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploaded_by": "demo-user",
    }


async def _provision_demo_tenant(
    sessionmaker: async_sessionmaker[AsyncSession],
    publisher: EventPublisher,
    tenant_events: TopicFollower,
    out: Console,
) -> None:
    """Provision the demo tenant through Kafka and its workflow, unless it exists."""
    async with tenant_scope(sessionmaker, DEMO_TENANT) as db:
        if await db.tenants.get() is not None:
            return
    request: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "tenant.creation_requested",
        "occurred_at": datetime.now(UTC),
        "tenant_id": DEMO_TENANT,
        "correlation_id": None,
        "source": "ferry.demo",
        "name": "Demo tenant",
        "plan": "free",
        "region": "local",
        "admin_email": "owner@demo.example",
        "storage_provider": "local",
    }
    started = time.perf_counter()
    await publisher.publish(request, topic=inbound_topic_for(request["event_type"]))
    [outcome] = await tenant_events.wait_for(
        lambda e: e["tenant_id"] == DEMO_TENANT and e["event_type"].startswith("tenant.provision"),
        timeout=60,
    )
    if outcome["event_type"] != "tenant.provisioned":
        raise RuntimeError(f"the demo tenant was not provisioned: {outcome['detail']}")
    out.print(f"provisioned tenant {DEMO_TENANT!r} in {time.perf_counter() - started:.2f} s")


async def _show_usage(client: Client, processed: int, out: Console) -> None:
    """The tenant's usage as its monitoring workflow sees it, once the meter has counted."""
    monitoring = client.get_workflow_handle(tenant_monitoring_id(DEMO_TENANT))
    try:
        async with asyncio.timeout(20):
            while True:
                state = await monitoring.query("state", result_type=MonitoringState)
                if state.files >= processed:
                    break
                await asyncio.sleep(0.2)
    except (TimeoutError, RPCError):
        out.print("the demo tenant's usage is not known yet (is its monitoring workflow running?)")
        return
    out.print(
        f"usage of tenant {DEMO_TENANT!r} (usage meter → {monitoring.id}): "
        f"{state.files} files, {state.bytes} bytes of {state.quota_bytes}, plan {state.plan}"
    )


async def run_demo(
    settings: Settings, stop: asyncio.Event, keep_running: bool, out: Console
) -> None:
    client = await connect(settings)
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=2)
    storage = LocalStorage(settings.local_storage_root)
    async with (
        ferry_worker(client, settings),
        EventPublisher(settings.kafka_bootstrap) as publisher,
        TopicFollower(settings.kafka_bootstrap, "ferry.file-events.v1") as results,
        TopicFollower(settings.kafka_bootstrap, "ferry.tenant-events.v1") as tenant_events,
    ):
        bridge = Bridge(
            client, publisher, settings.kafka_bootstrap, bridge_config(settings),
            ledger=event_ledger(settings),
        )  # fmt: skip
        bridge_task = asyncio.create_task(bridge.run(stop))
        meter_task = asyncio.create_task(run_meter(settings, stop))
        await _provision_demo_tenant(create_sessionmaker(engine), publisher, tenant_events, out)
        events = [
            await stage_upload(storage, settings.ingest_bucket, DEMO_TENANT, name, ctype, data)
            for name, ctype, data in DEMO_FILES
        ]
        for event in events:
            await publisher.publish(event, topic=inbound_topic_for(event["event_type"]))
        out.print(f"published {len(events)} uploads to ferry.uploads.v1; waiting for outcomes…")
        names = {e["file_id"]: e["filename"] for e in events}
        outcomes = await results.wait_for(lambda e: e.get("file_id") in names, len(events), 180)
        table = Table("file", "outcome", "detail", title="Outcomes on ferry.file-events.v1")
        for outcome in outcomes:
            if outcome["event_type"] == "file.processed":
                detail = (
                    f"{outcome['content_type']}, {outcome['size_bytes']} B,"
                    f" sha256 {outcome['sha256'][:12]}…"
                )
                table.add_row(names[outcome["file_id"]], "[green]processed", detail)
            else:
                table.add_row(
                    names[outcome["file_id"]],
                    f"[red]rejected ({outcome['reason']})",
                    outcome["detail"],
                )
        out.print(table)
        processed = sum(1 for o in outcomes if o["event_type"] == "file.processed")
        await _show_usage(client, processed, out)
        ui = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows"
        out.print(f"Temporal UI: {ui}")
        if keep_running:
            out.print(
                "worker, bridge and usage meter keep running; publish more with"
                " `ferry publish`. Ctrl-C stops."
            )
            await stop.wait()
        else:
            stop.set()
        await bridge_task
        await meter_task
    await engine.dispose()
