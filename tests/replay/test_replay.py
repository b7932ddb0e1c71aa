"""Every recorded history replays against today's workflow code (determinism guard)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_keys import REPLAY_KEYS
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

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


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = _history(path)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(REPLAY_KEYS))
    await replayer.replay_workflow(history)
