"""Structured logs: one JSON object per line, with context, and nothing secret or personal.

Every Ferry process calls `configure_logging` once. Ferry's own loggers and
the libraries' (temporalio, aiokafka, faust) go through the same structlog
processors: context bound with `structlog.contextvars` (tenant, event and
workflow IDs), a timestamp, then redaction:

- the values of the settings' secrets (database passwords, payload keys) and
  of the storage credentials in the environment;
- e-mail addresses;
- the query of signed URLs (S3, GCS and Azure signatures);
- `user:password@` in URLs, and any field whose name says it is a secret.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, WrappedLogger

REDACTED = "[redacted]"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# A URL whose query carries a signature: everything after `?` goes.
SIGNED_QUERY = re.compile(
    r"(https?://[^\s?\"']+)\?[^\s\"']*(?:signature|sig=|x-amz-|x-goog-|sv=|se=)[^\s\"']*",
    re.IGNORECASE,
)
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@", re.IGNORECASE)
SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|credential|authorization|connection_string"
    r"|(api|access|account|private)_?key|payload_keys"
)
# Storage credentials read from their providers' usual variables (CONTRACT §7).
SECRET_ENVIRONMENT = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
)


def secret_values(settings: BaseModel) -> list[str]:
    """Strings that must never be logged: the settings' secrets and their parts."""
    values: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            values.append(str(value.get_secret_value()))
    for name in SECRET_ENVIRONMENT:
        if os.environ.get(name):
            values.append(os.environ[name])
    parts: list[str] = []
    for value in values:
        # A database URL's password; a key list's keys; a connection string's account key.
        parts.extend(m.group(0)[1:-1] for m in re.finditer(r":[^:/@\s]+@", value))
        parts.extend(p.partition(":")[2] for p in value.split(","))
        parts.extend(re.findall(r"AccountKey=([^;]+)", value))
    return sorted({v for v in values + parts if len(v) >= 6}, key=len, reverse=True)


class Redactor:
    """A structlog processor that scrubs every string of the event dict, recursively."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s]

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = SIGNED_QUERY.sub(rf"\1?{REDACTED}", value)
        value = URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
        return EMAIL.sub("[email]", value)

    def value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            return REDACTED if SECRET_KEYS.search(key.lower()) else self.text(value)
        if isinstance(value, dict):
            return {k: self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(key, v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(str(value))

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        return {
            k: self.value(k, v) if k != "event" else self.text(str(v)) for k, v in event.items()
        }


def configure_logging(
    settings: BaseModel,
    *,
    json: bool = True,
    level: int = logging.INFO,
    stream: TextIO | None = None,
) -> None:
    """Route every logger of the process through structlog, as JSON lines (or for a console)."""
    redact = Redactor(secret_values(settings))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def bind(**context: Any) -> None:
    """Add context (tenant, event, workflow IDs) to every log line of this task."""
    structlog.contextvars.bind_contextvars(**context)
