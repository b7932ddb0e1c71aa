"""`ferry status`: the live view's figures, from the running stack."""

from __future__ import annotations

import pytest
from commands import ferry

from ferry.devstack import Stack

pytestmark = pytest.mark.stack


async def test_status_shows_the_services_the_workflows_the_dlq_and_the_alerts(
    stack: Stack,
) -> None:
    shown = await ferry("status", "--once")
    for service in stack.status():
        assert service.name in shown
    assert "answering" in shown
    assert "file_upload_workflow" in shown and "tenant_monitoring_workflow" in shown
    assert "records in ferry.dlq.v1" in shown
    assert "alerts firing" in shown
    assert "stuck (last reconciliation)" in shown
    assert "not answering" not in shown  # every source answered
