"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ferry.config import Settings, get_settings
from ferry.devstack import Stack

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("FERRY_HOME", str(REPO / ".ferry"))
# No reconciliation schedule while tests start and stop workers: its runs would start
# monitoring workflows for the tests' tenants on queues nobody polls afterwards.
# tests/integration/test_reconciliation.py runs a schedule of its own.
os.environ.setdefault("FERRY_RECONCILIATION_INTERVAL_SECONDS", "0")
# Nor a rescan schedule, nor a rescan started by a worker that sees clamd's signature
# version for the first time (the same reason); tests/integration/test_rescan.py does both.
os.environ.setdefault("FERRY_RESCAN_INTERVAL_SECONDS", "0")
os.environ.setdefault("FERRY_RESCAN_ON_NEW_SIGNATURES", "false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the stack run last, after everything that uses it."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_stack") is not None)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The local stack, started if it is not running (`make test` starts it first)."""
    stack = Stack()
    stack.up()
    yield stack


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    get_settings.cache_clear()
    return get_settings()


def venv_binary(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, from the installed binary (no download).

    One per test module: the server has one clock for everything on it, and a module's
    skipped years or unfinished activities must not hold up the next module's timers.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server")
    )
    yield env
    await env.shutdown()
