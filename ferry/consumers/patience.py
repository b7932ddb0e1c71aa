"""Waiting out a dependency that is away: Postgres (the event ledger) or Kafka (the DLQ,
the offset commits).

The bridge does not give up on a dependency, as it does not give up on Temporal
(whose client retries by itself): a call that fails because the dependency is
unreachable is tried again, with capped exponential back-off, for as long as the
outage lasts. Meanwhile the records waiting on it fill the bridge, which pauses its
partitions (backpressure) and resumes them when the calls go through again; nothing
is committed past what is recorded. Any other failure is not waited out.

A start-up call is the exception: before the bridge takes its first record nothing
waits on it but the bridge itself, and a server that accepts and never answers would
hold it there without end. `bounded` tries such a call again for a while, then raises.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, TypeVar

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from ferry.consumers.metrics import BridgeMetrics

if TYPE_CHECKING:
    from ferry.consumers.records import Ledger

log = logging.getLogger(__name__)

T = TypeVar("T")
Transient = Callable[[BaseException], bool]

# The longest pause between two attempts (and up to 0.1 s of jitter): a dependency back
# from an outage is used again within this long.
MAX_BACKOFF_SECONDS = 2.0


def backoff(max_backoff: float = MAX_BACKOFF_SECONDS) -> wait_base:
    """Capped exponential back-off from 0.1 s, with up to 0.1 s of jitter."""
    return wait_exponential(multiplier=0.1, max=max_backoff) + wait_random(0, 0.1)


def kafka_unavailable(exc: BaseException) -> bool:
    """A Kafka failure that goes away with the outage: the broker unreachable, a
    request timed out, no leader or coordinator yet (aiokafka's `retriable` errors)."""
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | OSError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


class Patience:
    """Calls to one dependency, retried while it is unreachable (`transient` says which
    failures are that), with its state in `ferry_bridge_dependency_up`."""

    def __init__(
        self,
        dependency: str,
        transient: Transient,
        metrics: BridgeMetrics,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self.dependency = dependency
        self.transient = transient
        self.metrics = metrics
        self.max_backoff = max_backoff
        metrics.dependency_up.labels(dependency).set(1)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(self.transient),
            wait=backoff(self.max_backoff),
            before_sleep=self._waiting,
            reraise=True,
        )
        result: T = await retrying(fn, *args)
        self.metrics.dependency_up.labels(self.dependency).set(1)
        return result

    def _waiting(self, state: RetryCallState) -> None:
        self.metrics.dependency_up.labels(self.dependency).set(0)
        self.metrics.dependency_retries.labels(self.dependency).inc()
        failure = state.outcome.exception() if state.outcome is not None else None
        # Once at the start of an outage, then every tenth attempt: not a line per record.
        if state.attempt_number == 1 or state.attempt_number % 10 == 0:
            log.warning(
                "%s unavailable (%s: %s); attempt %d, waiting",
                self.dependency,
                type(failure).__name__,
                failure,
                state.attempt_number,
            )


async def bounded(
    what: str, fn: Callable[[], Awaitable[T]], transient: Transient, give_up_after: float
) -> T:
    """`fn()`, tried again while it fails `transient`ly, with `Patience`'s back-off, until
    `give_up_after` seconds have passed since the first try; then its last failure is
    raised. Each try must be bounded itself (a call timeout): an attempt begun just before
    the end runs to its own, so the whole lasts at most `give_up_after`, one try and one
    back-off."""

    def waiting(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "%s: no answer (%s: %s); attempt %d, trying again for up to %.0fs in all",
            what,
            type(failure).__name__,
            failure,
            state.attempt_number,
            give_up_after,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(transient),
        stop=stop_after_delay(give_up_after),
        wait=backoff(),
        before_sleep=waiting,
        reraise=True,
    )
    result: T = await retrying(fn)
    return result


class PatientLedger:
    """The event ledger, waiting out a database outage (see `Patience`)."""

    def __init__(self, ledger: Ledger, patience: Patience) -> None:
        self._ledger = ledger
        self._patience = patience

    async def existing_tenants(self, tenant_ids: Collection[str]) -> set[str]:
        return await self._patience.call(self._ledger.existing_tenants, tenant_ids)

    async def processed(self, tenant_id: str, consumer: str, event_id: str) -> bool:
        return await self._patience.call(self._ledger.processed, tenant_id, consumer, event_id)

    async def mark_many(self, consumer: str, events: Sequence[tuple[str, str, str]]) -> None:
        await self._patience.call(self._ledger.mark_many, consumer, events)
