"""One trace follows an upload: Kafka record → bridge → workflow → activities → emitted event."""

from __future__ import annotations

import secrets

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.contracts.workflows import file_upload_id
from ferry.demo import stage_upload
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage
from ferry.telemetry import configure_tracing

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The spans this process records (the worker and the bridge run in it)."""
    exporter = InMemorySpanExporter()
    configure_tracing("ferry-tests", exporter=exporter)
    return exporter


async def test_one_trace_id_follows_an_upload_from_its_record_to_file_processed(
    spans: InMemorySpanExporter,
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    client: Client,
    local_storage: LocalStorage,
    settings: Settings,
    tenant: str,
) -> None:
    trace_id = secrets.token_hex(16)
    upstream = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "traced.txt", "text/plain", b"traced\n"
    )

    await publisher.publish(upload, topic="ferry.uploads.v1", traceparent=upstream)
    [processed] = await file_events.wait_for(lambda e: e.get("file_id") == upload["file_id"])

    assert processed["event_type"] == "file.processed"
    emitted = processed["headers"]["traceparent"]
    assert emitted.split("-")[1] == trace_id
    assert emitted != upstream  # a span of the workflow's activity, not the upstream one
    # The event is on the topic a moment before the activity that sent it returns and its span
    # ends; the workflow's own completion comes after that.
    await client.get_workflow_handle(file_upload_id(tenant, upload["file_id"])).result()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.force_flush()
    names = {
        span.name
        for span in spans.get_finished_spans()
        if span.context is not None and format(span.context.trace_id, "032x") == trace_id
    }
    assert {
        "ferry.uploads.v1 process",
        "StartWorkflow:file_upload_workflow",
        "RunWorkflow:file_upload_workflow",
        "RunActivity:inspect_upload",
        "RunActivity:publish_event",
    } <= names
