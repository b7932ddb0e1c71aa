"""The worker's Temporal runtime metrics, served for Prometheus."""

from __future__ import annotations

import asyncio
import socket
import uuid

import httpx
import pytest
from upstream import provision

from ferry.config import Settings
from ferry.processes import connect
from ferry.telemetry import metrics_runtime
from ferry.worker import ferry_worker

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
