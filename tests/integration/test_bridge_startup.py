"""The bridge's start-up call to Temporal (the namespace's retention) ends in bounded time.

A hung Temporal is played by a TCP proxy in front of the stack's: it forwards both ways
until it is frozen, then keeps every connection open and passes nothing on, as a server
that accepts and never answers does. The client connects through it while it forwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client

from ferry import temporal
from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.records import TemporalUnanswered, namespace_retention
from ferry.db.ledger import EventLedger
from ferry.processes import bridge_config
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack


class FreezingProxy:
    """Forwards TCP to `upstream` while thawed; frozen, it holds what it reads."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.thawed = asyncio.Event()
        self.thawed.set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FreezingProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def freeze(self, frozen: bool = True) -> None:
        (self.thawed.clear if frozen else self.thawed.set)()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self.thawed.wait()
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[FreezingProxy]:
    async with FreezingProxy(settings.temporal_address) as proxy:
        yield proxy


@pytest.fixture
async def proxied_client(proxy: FreezingProxy, settings: Settings) -> Client:
    """A client of the stack's Temporal through the proxy, retrying as the bridge's does."""
    return await temporal.connect(
        proxy.address,
        namespace=settings.temporal_namespace,
        retry_config=temporal.WAIT_FOR_TEMPORAL,
    )


async def test_a_bridge_whose_temporal_does_not_answer_stops_in_bounded_time(
    proxy: FreezingProxy,
    proxied_client: Client,
    publisher: EventPublisher,
    settings: Settings,
    ledger: EventLedger,
) -> None:
    config = bridge_config(settings, group_id=f"test-{uuid.uuid4().hex[:8]}")
    config.startup_call_timeout = 1.0
    config.startup_give_up_after = 3.0
    bridge = Bridge(proxied_client, publisher, settings.kafka_bootstrap, config, ledger=ledger)
    proxy.freeze()
    started = time.monotonic()
    with pytest.raises(TemporalUnanswered, match="did not answer describe_namespace"):
        # Bounded by the bridge itself: 3 s of tries, one more try (1 s) and one back-off.
        await asyncio.wait_for(bridge.run(asyncio.Event()), 30)
    assert 3.0 <= time.monotonic() - started < 8.0
    assert not bridge.ready.is_set()
    assert bridge.consumer is None  # it never joined the group


async def test_the_start_up_call_is_tried_again_until_temporal_answers(
    proxy: FreezingProxy, proxied_client: Client
) -> None:
    proxy.freeze()
    asked = asyncio.create_task(
        namespace_retention(proxied_client, call_timeout=1.0, give_up_after=20.0)
    )
    await asyncio.sleep(2.5)  # two tries unanswered
    assert not asked.done()
    proxy.freeze(False)
    retention = await asyncio.wait_for(asked, 10)
    assert retention is not None and retention > timedelta(0)
