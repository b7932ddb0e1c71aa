"""A rate limit per tenant on the files queue, held by the stack's Temporal: the worker sets
it from FERRY_TENANT_TASKS_PER_SECOND when it starts (`make bench-fairness` measures what
it does to a quiet tenant's upload behind another's burst)."""

from __future__ import annotations

import uuid

import pytest
from commands import running
from temporalio.client import Client
from waiting import eventually

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
