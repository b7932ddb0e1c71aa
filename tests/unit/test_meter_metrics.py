"""The meter's metrics: their names as Prometheus reads them, what each record and signal
adds, the lag from offsets, and the endpoint. The records a table write counts
(`counted`, `duplicate`) need a running faust agent: tests/integration/test_meter_monitoring.py."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import generate_latest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ferry.meter.app import UsageMeter, create_app
from ferry.meter.metrics import MeterMetrics, Progress, partition_lag
from ferry.meter.usage import TenantUsage
from ferry.schemas import encode


def exposition(metrics: MeterMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def sample(metrics: MeterMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class Handle:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.signalled: list[Any] = []

    async def signal(self, name: str, arg: Any) -> None:
        if self.error is not None:
            raise self.error
        self.signalled.append((name, arg))


class FakeClient:
    """Answers every signal the same way: delivered, or with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.handle = Handle(error)

    def get_workflow_handle(self, workflow_id: str) -> Handle:
        return self.handle


def meter(tmp_path: Path, client: FakeClient | None = None) -> UsageMeter:
    """A meter on an app that is never started (no broker is contacted)."""
    app = create_app(f"unit-meter-{uuid.uuid4().hex[:8]}", "127.0.0.1:1", 1, tmp_path)
    return UsageMeter(app, cast(Client, client or FakeClient()), metrics=MeterMetrics())


def test_every_series_exists_from_the_start_under_the_names_prometheus_stores() -> None:
    text = exposition(MeterMetrics())
    for outcome in ("counted", "duplicate", "other-event", "undecodable"):
        assert f'ferry_meter_records_total{{outcome="{outcome}"}} 0.0' in text
    for outcome in ("sent", "no-workflow", "failed"):
        assert f'ferry_meter_signals_total{{outcome="{outcome}"}} 0.0' in text
    assert "ferry_meter_last_counted_timestamp_seconds 0.0" in text
    assert "# TYPE ferry_meter_consumer_lag gauge" in text


async def test_records_the_meter_does_not_count_are_counted_as_skipped(tmp_path: Path) -> None:
    usage = meter(tmp_path)
    rejected = {
        "event_id": str(uuid.uuid4()),
        "event_type": "file.rejected",
        "occurred_at": 1,
        "tenant_id": "acme",
        "correlation_id": None,
        "source": "ferry.test",
        "file_id": str(uuid.uuid4()),
        "reason": "infected",
        "detail": "Eicar-Test-Signature",
        "signature": "Eicar-Test-Signature",
    }
    assert await usage.handle(b"not avro", None) is None
    assert await usage.handle(encode(rejected), None) is None
    assert await usage.handle(encode(rejected), None) is None
    records = "ferry_meter_records_total"
    assert sample(usage.metrics, records, outcome="undecodable") == 1
    assert sample(usage.metrics, records, outcome="other-event") == 2
    assert sample(usage.metrics, records, outcome="counted") == 0
    assert sample(usage.metrics, "ferry_meter_last_counted_timestamp_seconds") == 0


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "sent"),
        (RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b""), "no-workflow"),
        (RPCError("denied", RPCStatusCode.PERMISSION_DENIED, b""), "failed"),
    ],
)
async def test_each_signal_is_counted_by_outcome(
    tmp_path: Path, error: RPCError | None, outcome: str
) -> None:
    client = FakeClient(error)
    usage = meter(tmp_path, client)
    totals = TenantUsage().count("e-1", 100)
    assert totals is not None
    if outcome == "failed":
        with pytest.raises(RPCError):
            await usage.signal("acme", totals, "e-1")
    else:
        await usage.signal("acme", totals, "e-1")
    for each in ("sent", "no-workflow", "failed"):
        expected = 1 if each == outcome else 0
        assert sample(usage.metrics, "ferry_meter_signals_total", outcome=each) == expected
    assert len(client.handle.signalled) == (1 if outcome == "sent" else 0)


@pytest.mark.parametrize(
    ("ends", "committed", "firsts", "lag"),
    [
        # Committed up to the end: nothing to count.
        ({0: 10, 1: 5}, {0: 10, 1: 5}, {0: 0, 1: 0}, {0: 0, 1: 0}),
        ({0: 10, 1: 5}, {0: 4, 1: 5}, {0: 0, 1: 0}, {0: 6, 1: 0}),
        # Nothing committed: the group starts at the earliest record still there.
        ({0: 10, 1: 5}, {0: 4}, {0: 0, 1: 2}, {0: 6, 1: 3}),
        # A committed offset beyond the end (the partition was recreated) is no lag.
        ({0: 3}, {0: 9}, {0: 0}, {0: 0}),
    ],
)
def test_the_lag_is_the_end_offset_less_the_committed_one(
    ends: dict[int, int], committed: dict[int, int], firsts: dict[int, int], lag: dict[int, int]
) -> None:
    assert partition_lag(ends, committed, firsts) == lag


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_endpoint_serves_the_metrics_until_closed() -> None:
    metrics = MeterMetrics()
    metrics.lag.labels("ferry.file-events.v1", "3").set(42)
    port = free_port()
    metrics.serve(port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        metrics.close()
    assert 'ferry_meter_consumer_lag{partition="3",topic="ferry.file-events.v1"} 42.0' in text
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    metrics.close()  # twice: nothing more to do


def test_a_group_that_commits_nothing_with_records_left_stalls_after_its_patience() -> None:
    progress = Progress(patience=60)
    assert not progress.see({0: 5}, {0: 3}, now=0)
    assert not progress.see({0: 5}, {0: 3}, now=59)
    assert progress.see({0: 5}, {0: 3}, now=60)


def test_a_group_that_commits_or_has_nothing_left_never_stalls() -> None:
    progress = Progress(patience=60)
    for second in range(0, 600, 10):  # a commit every 10 s
        assert not progress.see({0: second}, {0: 3}, now=second)
    idle = Progress(patience=60)
    for second in range(0, 600, 10):  # caught up: nothing to commit
        assert not idle.see({0: 5}, {0: 0}, now=second)


def test_after_a_restart_the_patience_starts_again() -> None:
    progress = Progress(patience=60)
    progress.see({0: 5}, {0: 3}, now=0)
    assert progress.see({0: 5}, {0: 3}, now=70)
    progress.restart(now=70)
    assert not progress.see({0: 5}, {0: 3}, now=80)
    assert not progress.see({0: 5}, {0: 3}, now=139)
    assert progress.see({0: 5}, {0: 3}, now=140)
