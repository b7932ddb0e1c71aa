"""The Temporal client as every Ferry process makes it.

Payloads are encrypted when keys are given (`ferry.temporal.codec`), and trace
context is carried into workflows and activities. The long-running processes
that must outlast an outage of the server (the bridge, the meter) connect with
`WAIT_FOR_TEMPORAL`.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from ferry.telemetry import interceptors
from ferry.temporal.codec import data_converter

# While Temporal is unreachable a client retries without end, at most 5 s apart:
# records wait in the bridge and the meter (backpressure) instead of failing.
WAIT_FOR_TEMPORAL = RetryConfig(
    initial_interval_millis=100,
    max_interval_millis=5_000,
    max_elapsed_time_millis=None,
    max_retries=2**31 - 1,
)


async def connect(
    address: str,
    *,
    namespace: str = "default",
    payload_keys: str | None = None,
    retry_config: RetryConfig | None = None,
    lazy: bool = False,
    runtime: Runtime | None = None,
) -> Client:
    """A client of `address`: payloads encrypted with `payload_keys` (`id:base64,...`)."""
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=data_converter(payload_keys),
        interceptors=interceptors(),
        retry_config=retry_config,
        lazy=lazy,
        runtime=runtime,
    )
