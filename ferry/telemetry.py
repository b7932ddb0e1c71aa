"""Traces and Temporal's runtime metrics.

One trace follows an upload: the bridge continues the trace of the Kafka
record's `traceparent` header, Temporal's tracing interceptor carries it into
the workflow and its activities, and the publisher writes it on the events the
workflow emits. Spans are exported over OTLP/HTTP when the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise only the context travels.

Temporal's own metrics (workflow and activity task latencies, schedule-to-start,
failures, ...) are served for Prometheus by the SDK's runtime.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

TRACER = trace.get_tracer("ferry")
_configured = False


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> None:
    """The process's tracer provider (once); spans go to `exporter`, or to OTLP if configured.

    With nowhere to send spans, none are recorded: the API's non-recording
    spans still carry the incoming trace context through the process (records,
    workflows, emitted events), at no cost per record.
    """
    global _configured
    if _configured:
        return
    if exporter is None and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is None:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def interceptors() -> list[TracingInterceptor]:
    """What every Temporal client Ferry makes carries: trace context in and out of workflows."""
    return [TracingInterceptor()]


def metrics_runtime(port: int) -> Runtime | None:
    """A Temporal runtime serving its metrics on `port` for Prometheus (None: no endpoint)."""
    if not port:
        return None
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"0.0.0.0:{port}"))
    )


def _carrier(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {
        k: v.decode(errors="replace")
        for k, v in headers or ()
        if k in ("traceparent", "tracestate")
    }


@contextmanager
def consuming(topic: str, headers: Iterable[tuple[str, bytes]] | None) -> Iterator[None]:
    """A consumer span for one Kafka record, continuing the trace of its headers.

    With no tracer provider set, no span would be recorded: the incoming
    context is made current as it is, which carries the trace on just as a
    non-recording span would, at a fraction of the cost per record.
    """
    carrier = _carrier(headers)
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        token = context.attach(propagate.extract(carrier)) if carrier else None
        try:
            yield
        finally:
            if token is not None:
                context.detach(token)
        return
    with TRACER.start_as_current_span(
        f"{topic} process", context=propagate.extract(carrier), kind=trace.SpanKind.CONSUMER
    ):
        yield


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the active span, for the headers of an emitted record."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context.get_current())
    return carrier.get("traceparent")
