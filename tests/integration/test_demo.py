"""`ferry demo` (what `make run` runs) shows a newcomer its own lines and the outcomes,
and no log line of a library: those go to the stack's log file."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest

from ferry.config import Settings
from ferry.consumers.offsets import start_group_at_end
from ferry.contracts.topics import FILE_EVENTS, INBOUND_TOPICS
from ferry.devstack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.timeout(400)]

LIBRARIES = ("aiokafka", "faust", "temporalio", "mode.", "sqlalchemy", "asyncio")


async def test_the_demo_prints_its_outcomes_and_no_library_log(
    stack: Stack, settings: Settings
) -> None:
    # A group and queues of its own: the default group would read every record earlier
    # tests left on the inbound topics.
    run = f"test-demo-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, run, INBOUND_TOPICS)
    await start_group_at_end(settings.kafka_bootstrap, f"{run}-meter", [FILE_EVENTS])
    env = {
        **os.environ,
        "FERRY_CONSUMER_GROUP": run,
        "FERRY_FILES_TASK_QUEUE": f"{run}-files",
        "FERRY_TENANTS_TASK_QUEUE": f"{run}-tenants",
        "FERRY_METER_APP_ID": f"{run}-meter",
        "FERRY_BRIDGE_METRICS_PORT": "0",
        "FERRY_WORKER_METRICS_PORT": "0",
    }
    log_file = stack.home / "logs" / "demo.log"
    before = log_file.stat().st_size if log_file.exists() else 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ferry.cli", "demo", "--no-keep-running",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 360)
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert "Outcomes on ferry.file-events.v1" in stdout
    assert "rejected (infected)" in stdout and "processed" in stdout
    assert str(log_file) in stdout  # where the logs went
    shown = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert not [line for line in shown if line.lstrip().startswith('{"')], shown
    assert not [line for line in shown if any(lib in line for lib in LIBRARIES)], shown
    assert log_file.stat().st_size > before  # the processes did log, to the file
