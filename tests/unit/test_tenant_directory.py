"""The bridge's tenant directory: one lookup for the tenants of many records, remembered a while.

The lookup here is a function of the test (it stands in for the database's
`EventLedger.existing_tenants`, which `tests/integration/test_ledger.py` covers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from ferry.consumers.records import TenantDirectory


class Lookups:
    def __init__(self, existing: set[str], fail: Exception | None = None) -> None:
        self.existing = existing
        self.fail = fail
        self.asked: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, tenant_ids: Collection[str]) -> set[str]:
        self.asked.append(sorted(tenant_ids))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.existing & set(tenant_ids)


async def test_the_tenants_of_records_dispatched_together_are_looked_up_once() -> None:
    lookups = Lookups({"acme", "globex"})
    directory = TenantDirectory(lookups)
    tenants = ["acme", "globex", "acme", "initech", "globex"]
    answers = await asyncio.gather(*(directory.exists(t) for t in tenants))
    assert answers == [True, True, True, False, True]
    assert lookups.asked == [["acme", "globex", "initech"]]


async def test_a_known_tenant_is_remembered_and_a_missing_one_is_asked_again() -> None:
    lookups = Lookups({"acme"})
    directory = TenantDirectory(lookups)
    assert await directory.exists("acme") and not await directory.exists("initech")
    lookups.existing.add("initech")  # created since
    assert await directory.exists("acme") and await directory.exists("initech")
    assert lookups.asked == [["acme"], ["initech"], ["initech"]]


async def test_a_tenant_is_asked_again_after_the_remembered_time() -> None:
    lookups = Lookups({"acme"})
    directory = TenantDirectory(lookups, remember_seconds=0.0)
    assert await directory.exists("acme") and await directory.exists("acme")
    assert lookups.asked == [["acme"], ["acme"]]


async def test_a_failed_lookup_fails_every_record_waiting_for_it() -> None:
    lookups = Lookups(set(), fail=ConnectionError("database unreachable"))
    directory = TenantDirectory(lookups)
    results = await asyncio.gather(
        directory.exists("acme"), directory.exists("globex"), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    lookups.fail = None
    lookups.existing.add("acme")
    assert await directory.exists("acme")  # the next batch asks afresh


async def test_a_record_cancelled_while_waiting_leaves_the_others_their_answer() -> None:
    lookups = Lookups({"acme"})
    lookups.release.clear()
    directory = TenantDirectory(lookups)
    cancelled = asyncio.create_task(directory.exists("acme"))
    waiting = asyncio.create_task(directory.exists("acme"))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    lookups.release.set()
    assert await waiting
    with pytest.raises(asyncio.CancelledError):
        await cancelled
