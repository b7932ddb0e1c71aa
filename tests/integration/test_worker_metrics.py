"""The worker's Temporal runtime metrics, served for Prometheus."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import httpx
import pytest
from upstream import provision

from ferry.activities.reconciliation import KINDS
from ferry.config import Settings
from ferry.contracts.workflows import ReconciliationRequest, tenant_monitoring_id
from ferry.processes import connect
from ferry.telemetry import metrics_runtime
from ferry.worker import ferry_worker
from ferry.workflows.reconciliation import ReconciliationWorkflow

pytestmark = pytest.mark.stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_worker_serves_temporals_metrics_for_prometheus(settings: Settings) -> None:
    port = _free_port()
    client = await connect(settings, runtime=metrics_runtime(port))
    queue = f"ferry-metrics-{uuid.uuid4().hex[:8]}"
    tenant = f"mx-{uuid.uuid4().hex[:10]}"
    async with ferry_worker(client, settings, queue):
        await provision(client, queue, tenant)
        async with httpx.AsyncClient() as http:
            for _ in range(50):
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                if "temporal_activity_execution_latency" in text:
                    break
                await asyncio.sleep(0.2)
    assert "temporal_workflow_completed" in text
    assert f'task_queue="{queue}"' in text
    assert 'activity_type="create_tenant"' in text


async def test_a_reconciliation_reports_its_counts_as_the_workers_gauges(
    settings: Settings,
) -> None:
    port = _free_port()
    client = await connect(settings, runtime=metrics_runtime(port))
    queue = f"ferry-metrics-{uuid.uuid4().hex[:8]}"
    tenant = f"mx-{uuid.uuid4().hex[:10]}"
    async with ferry_worker(client, settings, queue):
        await provision(client, queue, tenant)  # monitored from the start: nothing to repair
        report = await client.execute_workflow(
            ReconciliationWorkflow.run,
            ReconciliationRequest(tenant_ids=[tenant]),
            id=f"reconciliation-metrics-{tenant}",
            task_queue=queue,
        )
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        await client.get_workflow_handle(tenant_monitoring_id(tenant)).terminate("test over")
    assert report.repaired == []
    found = {
        line.split('kind="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ferry_reconciliation_found{")
    }
    assert found == dict.fromkeys(KINDS, 0.0)
    [stamp] = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ferry_reconciliation_timestamp_seconds")
    ]
    assert abs(stamp - time.time()) < 120
