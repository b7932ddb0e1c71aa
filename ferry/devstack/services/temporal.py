"""Temporal's dev server (`temporal server start-dev`), SQLite with WAL, UI on."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping

from ferry.devstack.services.base import (
    Context,
    Service,
    http_status,
    tcp_open,
    venv_bin,
)

# The dev server's dynamic configuration (deploy/temporal/dynamicconfig.yaml says the same
# for compose). Eager activity execution: a worker that schedules activities on its own
# task queue receives them in the reply to its workflow task, without a trip through
# matching. Task queue fairness: tasks that wait are dispatched in proportion to the
# weights of their fairness keys (each tenant's), not first come, first served.
TEMPORAL_DYNAMIC_CONFIG: dict[str, object] = {
    "system.enableActivityEagerExecution": True,
    "matching.useNewMatcher": True,
    "matching.enableFairness": True,
    # One partition per task queue: fairness orders the tasks within a partition, and one
    # node needs no more.
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
}


class Temporal(Service):
    def __init__(self) -> None:
        super().__init__(
            "temporal", ("temporal", "temporal_ui", "temporal_http", "temporal_metrics")
        )

    def missing(self) -> str | None:
        return None if shutil.which(venv_bin("temporal")) else "temporal CLI not installed"

    def prepare(self, ctx: Context) -> None:
        (ctx.data / "temporal").mkdir(parents=True, exist_ok=True)

    def command(self, ctx: Context) -> list[str]:
        return [
            venv_bin("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(ctx.port("temporal")),
            "--ui-port",
            str(ctx.port("temporal_ui")),
            "--http-port",
            str(ctx.port("temporal_http")),
            "--metrics-port",
            str(ctx.port("temporal_metrics")),
            "--db-filename",
            str(ctx.data / "temporal" / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            *(
                arg
                for key, value in TEMPORAL_DYNAMIC_CONFIG.items()
                for arg in ("--dynamic-config-value", f"{key}={json.dumps(value)}")
            ),
            "--search-attribute",
            "TenantId=Keyword",
            "--search-attribute",
            "FileId=Keyword",
            # The UI shows payloads decrypted through the stack's codec endpoint.
            "--ui-codec-endpoint",
            f"http://127.0.0.1:{ctx.port('codec')}",
            "--log-level",
            "warn",
        ]

    def healthy(self, ctx: Context) -> bool:
        return tcp_open(ctx.port("temporal")) and http_status(ctx.port("temporal_ui")) == 200

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {
            "FERRY_TEMPORAL_ADDRESS": self.address(ctx),
            "FERRY_TEMPORAL_UI_URL": f"http://127.0.0.1:{ctx.port('temporal_ui')}",
        }
