"""What Ferry's workflows share: retry policies, database calls, events, search attributes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
)
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.events import EventActivities, OutboundEvent
    from ferry.activities.tenants import TenantPolicyActivities
    from ferry.contracts.errors import PERMANENT, root_cause
    from ferry.contracts.events import Event
    from ferry.contracts.ids import event_id_for
    from ferry.contracts.policy import TenantPolicy

STORAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT,
)
DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), non_retryable_error_types=PERMANENT)
# Publishing waits out a Kafka outage (Temporal is the outbox: the event must go out) with
# the storage back-off, at most 30 s between attempts; an event its schema refuses
# (`InvalidEvent`, permanent) fails the workflow at once.
EMIT_RETRY = STORAGE_RETRY


async def call_db(
    activity: Any, request: Any, retry: RetryPolicy = DB_RETRY, *, local: bool = False
) -> Any:
    """One database activity: a short transaction, retried until it is done.

    `local`: run it as a local activity, in the worker that runs the workflow
    task, recorded with the task's completion: no round trip through the server.
    """
    return await _execute(local)(
        activity, request, start_to_close_timeout=timedelta(seconds=30), retry_policy=retry
    )


def _execute(local: bool) -> Any:
    """`workflow.execute_local_activity_method` or `workflow.execute_activity_method`."""
    return workflow.execute_local_activity_method if local else workflow.execute_activity_method


async def tenant_policy() -> TenantPolicy:
    """The worker's tenant and storage settings, recorded in the history (a local activity)."""
    policy: TenantPolicy = await workflow.execute_local_activity_method(
        TenantPolicyActivities.policy, start_to_close_timeout=timedelta(seconds=10)
    )
    return policy


async def emit(
    event: Event,
    *,
    tenant_id: str,
    source: str,
    correlation_id: str | None,
    sequence: int = 0,
    local_activity: bool = False,
) -> str:
    """Publish one event with its deterministic ID (CONTRACT §2); returns the ID.

    `sequence` tells apart the events of one type that one workflow emits more
    than once; `local_activity` publishes from the workflow's own worker (see
    `call_db`).
    """
    event_id = event_id_for(workflow.info().workflow_id, event.EVENT_TYPE, sequence)
    envelope = {
        "event_id": event_id,
        "event_type": event.EVENT_TYPE,
        "occurred_at": int(workflow.now().timestamp() * 1000),
        "tenant_id": tenant_id,
        "correlation_id": correlation_id,
        "source": source,
    }
    await _execute(local_activity)(
        EventActivities.publish,
        OutboundEvent(fields={**envelope, **event.fields()}),
        start_to_close_timeout=timedelta(minutes=1),
        retry_policy=EMIT_RETRY,
    )
    return event_id


class Answered(Protocol):
    """A workflow input an event asked for: whose it is, and what its answers correlate to."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def event_id(self) -> str: ...

    @property
    def correlation_id(self) -> str | None: ...


async def answer(
    request: Answered, event: Event, *, source: str, local_activity: bool = False
) -> str:
    """`emit` an event that answers `request`: the request's tenant, correlated to the
    request's own correlation ID, else to the event that asked (CONTRACT §2)."""
    return await emit(
        event,
        tenant_id=request.tenant_id,
        source=source,
        correlation_id=request.correlation_id or request.event_id,
        local_activity=local_activity,
    )


class Staged:
    """A workflow that shows its stage: the `progress` query and the UI's current details."""

    _stage = "received"

    @workflow.query
    def progress(self) -> str:
        return self._stage

    def _enter(self, stage: str) -> None:
        self._stage = stage
        workflow.set_current_details(f"stage: {stage}")


def failure_detail(err: BaseException) -> str:
    """The readable reason at the bottom of an activity or child workflow failure."""
    err = root_cause(err)
    if isinstance(err, ApplicationError):
        return f"{err.type}: {err.message}" if err.type else err.message
    return str(err)
