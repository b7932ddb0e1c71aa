"""A service the local stack starts is not measured by the coverage of the run that
started it (`make test` measures the Python processes its tests start)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ferry.devstack import Stack
from ferry.devstack.services import Context, Service


@dataclass
class EnvironmentShown(Service):
    """Writes the names of its coverage and Ferry variables to its log, then waits."""

    def command(self, ctx: Context) -> list[str]:
        # -S: no site, so no .pth file either, whatever the environment says.
        shown = "sorted(k for k in os.environ if k.startswith(('COVERAGE_', 'FERRY_TEST_')))"
        return [
            sys.executable,
            "-S",
            "-c",
            f"import os, sys, time; print({shown}, flush=True); time.sleep(60)",
        ]

    def healthy(self, ctx: Context) -> bool:
        log = ctx.logs / f"{self.name}.log"
        return log.exists() and "]" in log.read_text()


def test_a_service_started_from_a_measured_run_inherits_no_coverage_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", ":data:{}")
    monkeypatch.setenv("COVERAGE_PROCESS_START", "pyproject.toml")
    monkeypatch.setenv("FERRY_TEST_MARK", "1")
    service = EnvironmentShown("shown", ("shown",), stop_timeout=5)
    stack = Stack(home=tmp_path, services=(service,))
    assert stack.start_service("shown")
    try:
        shown = (tmp_path / "logs" / "shown.log").read_text().strip()
    finally:
        stack.down()
    assert shown == "['FERRY_TEST_MARK']"  # the rest of the environment is passed on
