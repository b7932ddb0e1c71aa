"""The local stack of real services that Ferry's tests and demo run against."""

from ferry.devstack.stack import (
    DLQ_TOPIC,
    INBOUND_TOPICS,
    OUTBOUND_TOPICS,
    ServiceStatus,
    Stack,
    StackError,
    stack_home,
)

__all__ = [
    "DLQ_TOPIC",
    "INBOUND_TOPICS",
    "OUTBOUND_TOPICS",
    "ServiceStatus",
    "Stack",
    "StackError",
    "stack_home",
]
