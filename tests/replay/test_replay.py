"""Every recorded history replays against today's workflow code (determinism guard)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from clock_reader import ClockReader
from replay_keys import REPLAY_KEYS
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ferry.temporal.codec import data_converter
from ferry.worker import WORKFLOWS

HISTORY_DIR = Path(__file__).parent / "histories"
# Each history's workflow ID (child workflow IDs derive from it); the file's name otherwise.
IDS: dict[str, str] = json.loads((HISTORY_DIR / "ids.json").read_text())
HISTORIES = sorted(p for p in HISTORY_DIR.glob("*.json") if p.name != "ids.json")


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(IDS.get(path.stem, path.stem), path.read_text())


def test_every_workflow_has_a_recorded_history() -> None:
    recorded = {
        _history(p).events[0].workflow_execution_started_event_attributes.workflow_type.name
        for p in HISTORIES
    }
    registered = {wf.__temporal_workflow_definition.name for wf in WORKFLOWS}  # type: ignore[attr-defined]
    assert registered <= recorded


def strict_replayer(workflows: Sequence[type]) -> Replayer:
    """A replayer that runs every workflow inside the sandbox, also those that run outside
    it in production (`sandboxed=False`, for speed), so that a non-deterministic call in
    any of them still fails here."""
    return Replayer(
        workflows=workflows,
        data_converter=data_converter(REPLAY_KEYS),
        unsandboxed_workflow_runner=SandboxedWorkflowRunner(),
    )


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    await strict_replayer(WORKFLOWS).replay_workflow(_history(path))


async def test_unsandboxed_workflows_replay_inside_the_sandbox(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    queue = f"clock-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[ClockReader]):
        handle = await client.start_workflow(ClockReader.run, id=queue, task_queue=queue)
        await handle.result()  # outside the sandbox, it runs
    history = await handle.fetch_history()
    # the sandbox refuses the clock read, and the replay fails the workflow task
    with pytest.raises(RuntimeError, match=r"Cannot access datetime\.datetime\.now"):
        await strict_replayer([ClockReader]).replay_workflow(history)
