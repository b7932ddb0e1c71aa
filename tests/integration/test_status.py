"""`ferry status`: the live view's figures, from the running stack."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from ferry.devstack import Stack

pytestmark = pytest.mark.stack


async def test_status_shows_the_services_the_workflows_the_dlq_and_the_alerts(
    stack: Stack,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ferry.cli", "status", "--once",
        env={**os.environ, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    shown = out.decode()
    assert proc.returncode == 0, shown + err.decode()
    for service in stack.status():
        assert service.name in shown
    assert "answering" in shown
    assert "file_upload_workflow" in shown and "tenant_monitoring_workflow" in shown
    assert "records in ferry.dlq.v1" in shown
    assert "alerts firing" in shown
    assert "stuck (last reconciliation)" in shown
    assert "not answering" not in shown  # every source answered
