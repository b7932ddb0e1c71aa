"""Alertmanager (Debian's `prometheus-alertmanager`) with `deploy/alertmanager/`, and
Ferry's webhook that turns its alerts into `notification.requested` events."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ferry.devstack.services.base import Context, Service, http_status, reload, venv_bin

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "alertmanager"
BINARY = "prometheus-alertmanager"


class AlertWebhook(Service):
    """`ferry alert-webhook`: Alertmanager's receiver, publishing to the stack's Kafka."""

    def __init__(self) -> None:
        super().__init__("alert-webhook", ("alert_webhook",), stop_timeout=10.0)

    def command(self, ctx: Context) -> list[str]:
        return [
            venv_bin("ferry"),
            "alert-webhook",
            "--port",
            str(ctx.port("alert_webhook")),
            "--kafka-bootstrap",
            f"127.0.0.1:{ctx.port('kafka')}",
        ]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("alert_webhook"), "/health") == 200


class Alertmanager(Service):
    def __init__(self) -> None:
        super().__init__("alertmanager", ("alertmanager",))

    def missing(self) -> str | None:
        if shutil.which(BINARY) is None:
            return f"{BINARY} not installed (Debian's package of that name); run the set-up"
        return None

    def config(self, ctx: Context) -> dict[str, object]:
        """deploy/alertmanager/alertmanager.yml with the local webhook's URL."""
        config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
        url = f"http://127.0.0.1:{ctx.port('alert_webhook')}/alerts"
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = url
        return dict(config)

    def prepare(self, ctx: Context) -> None:
        home = ctx.data / "alertmanager"
        (home / "data").mkdir(parents=True, exist_ok=True)
        (home / "alertmanager.yml").write_text(yaml.safe_dump(self.config(ctx), sort_keys=False))

    def after_start(self, ctx: Context) -> None:
        """On every `up`: the configuration written afresh and reloaded."""
        self.prepare(ctx)
        reload(ctx.port("alertmanager"))

    def command(self, ctx: Context) -> list[str]:
        home = ctx.data / "alertmanager"
        return [
            shutil.which(BINARY) or BINARY,
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{ctx.port('alertmanager')}",
            "--cluster.listen-address=",  # one instance: no gossip port
            "--log.level=warn",
        ]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("alertmanager"), "/-/ready") == 200
