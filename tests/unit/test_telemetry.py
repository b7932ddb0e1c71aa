"""Trace context through the bridge when no spans are exported (no tracer provider set).

A provider can be set only once per process, and the tracing integration test
sets one; these run in a fresh interpreter, as `ferry consume` runs without
`OTEL_EXPORTER_OTLP_ENDPOINT`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def test_a_record_s_traceparent_is_current_while_it_is_handled_and_only_then() -> None:
    out = run(f"""
        from opentelemetry import trace
        from ferry.telemetry import consuming, current_traceparent
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        with consuming("ferry.uploads.v1", [("traceparent", b"{UPSTREAM}")]):
            print(current_traceparent())
        print(current_traceparent())
    """)
    # Inside: the upstream span's context, which the Temporal interceptor and
    # the publisher carry on; after: none left behind for the next record.
    assert out.splitlines() == [UPSTREAM, "None"]


def test_a_record_without_a_traceparent_carries_none() -> None:
    out = run("""
        from ferry.telemetry import consuming, current_traceparent
        with consuming("ferry.uploads.v1", [("content-type", b"application/json")]):
            print(current_traceparent())
    """)
    assert out == "None"
