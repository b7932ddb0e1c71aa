"""Which failures the bridge waits out, and how it waits (no dependency needed: the
failures are raised by the test, as asyncpg, SQLAlchemy and aiokafka raise them)."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotCoordinatorForGroupError,
    RecordTooLargeError,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from ferry.consumers.metrics import BridgeMetrics
from ferry.consumers.patience import Patience, kafka_unavailable
from ferry.db.errors import unavailable


def wrapped(error: BaseException, *, invalidated: bool = False) -> DBAPIError:
    """As SQLAlchemy raises a driver error: the driver's error as `orig`."""
    return DBAPIError("SELECT 1", {}, error, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 15432)"),
        TimeoutError(),
        wrapped(asyncpg.CannotConnectNowError("the database system is starting up")),
        wrapped(asyncpg.AdminShutdownError("terminating connection: administrator command")),
        wrapped(
            asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        ),
        wrapped(RuntimeError("the connection is gone"), invalidated=True),
    ],
    ids=[
        "refused",
        "timeout",
        "starting-up",
        "admin-shutdown",
        "closed-mid-operation",
        "invalidated",
    ],
)
def test_a_database_that_is_away_is_waited_for(failure: BaseException) -> None:
    assert unavailable(failure)


@pytest.mark.parametrize(
    "failure",
    [
        IntegrityError("INSERT", {}, asyncpg.UniqueViolationError("duplicate key")),
        wrapped(asyncpg.QueryCanceledError("canceling statement due to statement timeout")),
        wrapped(asyncpg.UndefinedTableError('relation "processed_events" does not exist')),
        ValueError("not a tenant ID: 'X'"),
    ],
    ids=["integrity", "statement-timeout", "schema-missing", "bad-input"],
)
def test_a_failure_of_the_request_is_not_waited_for(failure: BaseException) -> None:
    assert not unavailable(failure)


def test_kafka_failures_that_pass_with_an_outage_are_waited_for() -> None:
    assert kafka_unavailable(
        KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 19092)]")
    )
    assert kafka_unavailable(KafkaTimeoutError())
    assert kafka_unavailable(NotCoordinatorForGroupError())
    assert not kafka_unavailable(RecordTooLargeError())
    assert not kafka_unavailable(CommitFailedError())


async def test_patience_retries_until_the_call_goes_through_and_says_so() -> None:
    metrics = BridgeMetrics()
    patience = Patience("postgres", unavailable, metrics, max_backoff=0.01)
    attempts: list[bool] = []
    down_while_failing: list[float] = []

    async def flaky() -> str:
        attempts.append(True)
        down_while_failing.append(metrics.dependency_up.labels("postgres")._value.get())
        if len(attempts) < 4:
            raise ConnectionRefusedError(111, "Connect call failed")
        return "answer"

    assert await patience.call(flaky) == "answer"
    assert len(attempts) == 4
    assert down_while_failing == [1, 0, 0, 0]  # down from the first failure on
    assert metrics.dependency_up.labels("postgres")._value.get() == 1
    assert metrics.dependency_retries.labels("postgres")._value.get() == 3


async def test_patience_does_not_retry_a_failure_of_the_request() -> None:
    patience = Patience("postgres", unavailable, BridgeMetrics(), max_backoff=0.01)
    attempts: list[bool] = []

    async def wrong() -> None:
        attempts.append(True)
        raise ValueError("not a tenant ID")

    with pytest.raises(ValueError, match="not a tenant ID"):
        await patience.call(wrong)
    assert len(attempts) == 1
