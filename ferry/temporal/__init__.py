"""The Temporal client, in one place: connect, payload codec, interceptors, retry settings."""

from ferry.temporal.client import WAIT_FOR_TEMPORAL, connect
from ferry.temporal.codec import data_converter

__all__ = ["WAIT_FOR_TEMPORAL", "connect", "data_converter"]
