"""The running system on the local stack: a worker and a bridge on their own queue and group."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from bridges import running
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.db import create_engine, create_sessionmaker
from ferry.db.ledger import EventLedger
from ferry.db.migrate import alembic_config, upgrade
from ferry.demo import ensure_tenant
from ferry.processes import bridge_config, connect
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage
from ferry.worker import ferry_worker

pytestmark = pytest.mark.stack


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"ferry-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def client(settings: Settings) -> Client:
    return await connect(settings)


@pytest.fixture(scope="session")
async def publisher(settings: Settings) -> AsyncIterator[EventPublisher]:
    async with EventPublisher(settings.kafka_bootstrap) as publisher:
        yield publisher


@pytest.fixture(scope="session")
async def worker(client: Client, settings: Settings, task_queue: str) -> AsyncIterator[None]:
    async with ferry_worker(client, settings, task_queue):
        yield


@pytest.fixture(scope="module")
async def bridge(
    client: Client,
    publisher: EventPublisher,
    settings: Settings,
    task_queue: str,
    worker: None,
    ledger: EventLedger,
) -> AsyncIterator[Bridge]:
    """The bridge in its own consumer group, starting at the end of each topic."""
    config = bridge_config(
        settings, group_id=f"ferry-test-{uuid.uuid4().hex[:8]}", auto_offset_reset="latest"
    )
    config.task_queues = dict.fromkeys(config.task_queues, task_queue)
    bridge = Bridge(client, publisher, settings.kafka_bootstrap, config, ledger=ledger)
    async with running(bridge):
        yield bridge


@pytest.fixture
async def file_events(settings: Settings) -> AsyncIterator[TopicFollower]:
    async with TopicFollower(settings.kafka_bootstrap, "ferry.file-events.v1") as follower:
        yield follower


@pytest.fixture
async def dlq(settings: Settings) -> AsyncIterator[TopicFollower]:
    async with TopicFollower(settings.kafka_bootstrap, "ferry.dlq.v1") as follower:
        yield follower


@pytest.fixture(scope="session")
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The application's sessions, on the shared database migrated to head."""
    config = alembic_config(
        url=settings.database_admin_url.get_secret_value(), configure_logging=False
    )
    await asyncio.to_thread(upgrade, config, "head")
    engine = create_engine(settings.database_url.get_secret_value())
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def ledger(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[EventLedger]:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=4)
    yield EventLedger(engine)
    await engine.dispose()


@pytest.fixture
async def tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """A tenant of its own for each test, so tests never see each other's data."""
    return await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def local_storage(settings: Settings) -> LocalStorage:
    return LocalStorage(settings.local_storage_root)
