"""Every recorded history replays against today's workflow code (determinism guard)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from ferry.worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_workflow_has_a_recorded_history() -> None:
    recorded = {
        WorkflowHistory.from_json(p.stem, p.read_text())
        .events[0]
        .workflow_execution_started_event_attributes.workflow_type.name
        for p in HISTORIES
    }
    registered = {wf.__temporal_workflow_definition.name for wf in WORKFLOWS}  # type: ignore[attr-defined]
    assert registered <= recorded


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=WORKFLOWS).replay_workflow(history)
