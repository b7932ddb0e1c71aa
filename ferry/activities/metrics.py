"""Counters of what the worker's activities decide (uploads by outcome, scans by verdict),
exported by Temporal's runtime beside its own metrics (FERRY_WORKER_METRICS_PORT)."""

from __future__ import annotations

from temporalio import activity


def count(name: str, description: str, **attributes: str) -> None:
    """Add one to counter `name`, with the activity's own attributes (its type, task
    queue, namespace) and `attributes`. Outside an activity (a unit test calling the
    method directly) nothing is counted."""
    if activity.in_activity():
        activity.metric_meter().create_counter(name, description).add(1, attributes)
