"""A rate limit per tenant on the files queue, held by the stack's Temporal: the worker sets
it from FERRY_TENANT_TASKS_PER_SECOND when it starts (`make bench-fairness` measures what
it does to a quiet tenant's upload behind another's burst)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from commands import running
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from waiting import eventually

from ferry.devstack.services.base import venv_bin
from ferry.temporal.queues import key_limit, limit_each_key

pytestmark = pytest.mark.stack


async def test_a_limit_per_fairness_key_is_set_read_back_and_lifted(client: Client) -> None:
    queue = f"limit-{uuid.uuid4().hex[:8]}"
    assert await key_limit(client, queue) is None

    await limit_each_key(client, queue, 6.0, "test")
    assert await key_limit(client, queue) == 6.0

    await limit_each_key(client, queue, None, "test")
    assert await key_limit(client, queue) is None


async def test_the_worker_sets_each_tenants_limit_on_its_files_queue(client: Client) -> None:
    queue = f"limit-{uuid.uuid4().hex[:8]}"
    env = {
        "FERRY_FILES_TASK_QUEUE": queue,
        "FERRY_TENANT_TASKS_PER_SECOND": "4.5",
        "FERRY_RECONCILIATION_INTERVAL_SECONDS": "0",
        "FERRY_RESCAN_INTERVAL_SECONDS": "0",
        "FERRY_RESCAN_ON_NEW_SIGNATURES": "false",
    }
    async with running("worker", env=env):

        async def limited() -> bool:
            return await key_limit(client, queue) == 4.5

        await eventually(limited, "the worker's limit on its queue", timeout=60, interval=0.5)


@pytest.fixture
async def recycling_temporal() -> AsyncIterator[Client]:
    """A dev server of its own whose frontend closes each connection 200 ms after it opened
    (a GOAWAY), where a frontend's default is every five minutes; with fairness on, as the
    stack's. Against it, eight callers without the client's retries see several calls fail
    CANCELLED ("operation was canceled") in a few seconds."""
    recycling = {
        "frontend.keepAliveMaxConnectionAge": '"200ms"',
        "frontend.keepAliveMaxConnectionAgeGrace": '"1s"',
        "matching.useNewMatcher": "true",
        "matching.enableFairness": "true",
    }
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_bin("temporal"),
        dev_server_extra_args=[
            arg
            for key, value in recycling.items()
            for arg in ("--dynamic-config-value", f"{key}={value}")
        ],
    )
    async with env:
        yield env.client


async def test_limits_are_set_and_read_while_the_server_recycles_its_connections(
    recycling_temporal: Client,
) -> None:
    """The worker sets the limit once at start-up, over a connection the server may be
    closing just then; that call must not fail the worker's start."""
    client = recycling_temporal
    loop = asyncio.get_running_loop()
    until = loop.time() + 3  # some fifteen connection lifetimes
    rounds = 0

    async def set_and_read(per_second: float) -> None:
        nonlocal rounds
        queue = f"recycled-{uuid.uuid4().hex[:8]}"
        while loop.time() < until:
            await limit_each_key(client, queue, per_second, "test")
            assert await key_limit(client, queue) == per_second
            rounds += 1

    await asyncio.gather(*(set_and_read(float(n)) for n in range(1, 9)))
    assert rounds > 100
