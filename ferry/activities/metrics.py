"""What the worker's activities decide and see, as metrics: uploads by outcome, scans by
verdict (counters), clamd's signature database (gauges). Temporal's runtime exports them
beside its own metrics (FERRY_WORKER_METRICS_PORT), under the names given here."""

from __future__ import annotations

from temporalio import activity


def count(name: str, description: str, **attributes: str) -> None:
    """Add one to counter `name`, with the activity's own attributes (its type, task
    queue, namespace) and `attributes`. Outside an activity (a unit test calling the
    method directly) nothing is counted."""
    if activity.in_activity():
        activity.metric_meter().create_counter(name, description).add(1, attributes)


def gauge(name: str, description: str, value: float, **attributes: str) -> None:
    """Set gauge `name` to `value`, with the activity's attributes and `attributes`;
    outside an activity, nothing."""
    if activity.in_activity():
        activity.metric_meter().create_gauge_float(name, description).set(value, attributes)
