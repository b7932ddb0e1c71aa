"""A short seeded chaos run (`bench/chaos.py`): every kind of fault once, under mixed
traffic, and the outside checker's verdict. A guarantee broken under faults fails
the build; nothing here is retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferry.devstack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.restarts_stack, pytest.mark.timeout(900)]

BENCH = Path(__file__).parents[2] / "bench"


# --faults 8: one fault of each kind.
def test_a_short_chaos_run_loses_nothing_and_duplicates_nothing(stack: Stack) -> None:
    """The stack is up (the fixture); the run starts its own bridges, workers and meter."""
    args = "--duration 75 --faults 8 --outage 10 --rate 2 --seed 11 --quiet 300"
    run = subprocess.run(
        [sys.executable, str(BENCH / "chaos.py"), *args.split()],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=840,
    )
    written = [line for line in run.stdout.splitlines() if line.startswith("written: ")]
    assert written, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(Path(written[-1].removeprefix("written: ")).read_text())
    assert sorted(result["faults_by_kind"]) == sorted(
        [
            "kill-bridge",
            "kill-worker",
            "kill-meter",
            "kill-kafka",
            "kill-temporal",
            "stop-postgres-immediate",
            "stop-clamd",
            "stop-emulator",
        ]
    )
    assert result["problems"] == [], run.stdout[-3000:]
    assert (result["lost"], result["duplicated"], result["stuck"]) == (0, 0, 0)
    assert result["counts"]["dead_letters_unexpected"] == 0
    assert result["counts"]["dead_letters_expected"] > 0
    assert result["unexpected_exits"] == {}
    assert result["worst_recovery_s"] is not None and result["worst_recovery_s"] < 60
    assert run.returncode == 0
