"""Which failures the bridge waits out, and how it waits (no dependency needed: the
failures are raised by the test, as asyncpg, SQLAlchemy and aiokafka raise them)."""

from __future__ import annotations

import time

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
from temporalio.service import RPCError, RPCStatusCode

from ferry.consumers.metrics import BridgeMetrics
from ferry.consumers.patience import Patience, bounded, kafka_unavailable
from ferry.consumers.records import unanswered
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


def test_a_temporal_call_unanswered_in_time_is_tried_again_and_a_refused_one_is_not() -> None:
    # The client's own call timeout, as temporalio reports it.
    assert unanswered(RPCError("Timeout expired", RPCStatusCode.CANCELLED, b""))
    assert unanswered(RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b""))
    assert unanswered(RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""))
    assert not unanswered(RPCError("namespace not found", RPCStatusCode.NOT_FOUND, b""))
    assert not unanswered(TimeoutError())


async def test_a_bounded_call_gives_up_after_its_time_with_the_last_failure() -> None:
    attempts: list[float] = []

    async def unanswered_call() -> None:
        attempts.append(time.monotonic())
        raise RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")

    started = time.monotonic()
    with pytest.raises(RPCError, match="Timeout expired"):
        await bounded("describe_namespace", unanswered_call, unanswered, give_up_after=0.5)
    assert 0.5 <= time.monotonic() - started < 1.5  # the time given, and one back-off
    assert len(attempts) > 1


async def test_a_bounded_call_returns_once_it_is_answered_and_does_not_retry_a_refusal() -> None:
    attempts: list[bool] = []

    async def answered_third() -> str:
        attempts.append(True)
        if len(attempts) < 3:
            raise RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")
        return "answer"

    assert await bounded("call", answered_third, unanswered, give_up_after=10) == "answer"
    assert len(attempts) == 3

    async def refused() -> None:
        attempts.append(True)
        raise RPCError("namespace not found", RPCStatusCode.NOT_FOUND, b"")

    attempts.clear()
    with pytest.raises(RPCError, match="not found"):
        await bounded("call", refused, unanswered, give_up_after=10)
    assert len(attempts) == 1
