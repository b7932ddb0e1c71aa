"""Task queue settings held by Temporal's server: a rate limit per fairness key.

With task queue fairness, a tenant's waiting tasks are dispatched in proportion to its
weight; a rate limit per key also bounds how fast one tenant's tasks are dispatched at
all, scaled by that weight, so that a burst never fills every slot and a quiet tenant's
task finds one free (`make bench-fairness`).

Both calls go out with the client's retries (`retry=True`; a raw service call has none
unless asked). Among the failures those retries take is the one a frontend's connection
recycling causes: it closes each connection at its maximum age (five minutes by default)
with a GOAWAY, and a call caught in that moment fails CANCELLED, "operation was
canceled", without having reached the server. Reading the config is safe to repeat, and
so is setting it to a value.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import RateLimit, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    UpdateTaskQueueConfigRequest,
)
from temporalio.client import Client

ACTIVITIES = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


async def limit_each_key(
    client: Client, task_queue: str, per_second: float | None, reason: str
) -> None:
    """Each fairness key's activity tasks on `task_queue` at most `per_second` (times the
    key's weight); None lifts the limit."""
    update = UpdateTaskQueueConfigRequest.RateLimitUpdate(reason=reason)
    if per_second is not None:
        update.rate_limit.CopyFrom(RateLimit(requests_per_second=per_second))
    await client.workflow_service.update_task_queue_config(
        UpdateTaskQueueConfigRequest(
            namespace=client.namespace,
            identity=client.identity,
            task_queue=task_queue,
            task_queue_type=ACTIVITIES,
            update_fairness_key_rate_limit_default=update,
        ),
        retry=True,
    )


async def key_limit(client: Client, task_queue: str) -> float | None:
    """The rate limit per fairness key on `task_queue`'s activity tasks, if any."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=ACTIVITIES,
            report_config=True,
        ),
        retry=True,
    )
    config = described.config
    if not config.HasField("fairness_keys_rate_limit_default"):
        return None
    limit = config.fairness_keys_rate_limit_default
    return limit.rate_limit.requests_per_second if limit.HasField("rate_limit") else None
