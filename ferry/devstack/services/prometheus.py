"""Prometheus (Debian's `prometheus`), scraping Ferry's processes and the Temporal server,
with the rules of `deploy/prometheus/`: the jobs and rule files compose.yaml mounts,
each job's targets replaced by the local processes' addresses."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import yaml

from ferry.devstack.services.base import Context, Service, http_status, reload

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
# Where Ferry's processes serve their metrics when run on this machine (their defaults:
# FERRY_BRIDGE_METRICS_PORT, FERRY_WORKER_METRICS_PORT, FERRY_METER_METRICS_PORT).
LOCAL_TARGETS = {
    "ferry-bridge": "127.0.0.1:9464",
    "ferry-worker": "127.0.0.1:9465",
    "ferry-meter": "127.0.0.1:9467",
}


class Blackbox(Service):
    """Debian's prometheus-blackbox-exporter with deploy/prometheus/blackbox.yml: it
    probes clamd (PING, PONG) and the moderation service (/health) for Prometheus."""

    binary = "prometheus-blackbox-exporter"

    def __init__(self) -> None:
        super().__init__("blackbox", ("blackbox",))

    def missing(self) -> str | None:
        if shutil.which(self.binary) is None:
            return f"{self.binary} not installed (Debian's package of that name); run the set-up"
        return None

    def command(self, ctx: Context) -> list[str]:
        return [
            shutil.which(self.binary) or self.binary,
            f"--config.file={DEPLOY / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{ctx.port('blackbox')}",
            "--log.level=warn",
        ]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("blackbox"), "/-/healthy") == 200


class Prometheus(Service):
    def __init__(self) -> None:
        super().__init__("prometheus", ("prometheus",))

    def missing(self) -> str | None:
        if shutil.which("prometheus") is None:
            return "prometheus not installed (Debian's prometheus); run the set-up"
        if not (DEPLOY / "prometheus.yml").exists():
            return f"no configuration at {DEPLOY}"
        return None

    def targets(self, ctx: Context) -> dict[str, str]:
        return {
            **LOCAL_TARGETS,
            "temporal": f"127.0.0.1:{ctx.port('temporal_metrics')}",
            "clamd": f"127.0.0.1:{ctx.port('clamd')}",
            "moderator": f"http://127.0.0.1:{ctx.port('moderator')}/health",
            "prometheus": f"127.0.0.1:{ctx.port('prometheus')}",
        }

    def config(self, ctx: Context) -> dict[str, object]:
        """deploy/prometheus/prometheus.yml with local targets and absolute rule paths."""
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        config["rule_files"] = [str(DEPLOY / pattern) for pattern in config["rule_files"]]
        targets = self.targets(ctx)
        blackbox = f"127.0.0.1:{ctx.port('blackbox')}"
        for job in config["scrape_configs"]:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
            for relabel in job.get("relabel_configs", []):
                if relabel.get("target_label") == "__address__":
                    relabel["replacement"] = blackbox  # a probed job: ask the local exporter
        alertmanager = f"127.0.0.1:{ctx.port('alertmanager')}"
        for manager in config.get("alerting", {}).get("alertmanagers", []):
            manager["static_configs"] = [{"targets": [alertmanager]}]
        return dict(config)

    def prepare(self, ctx: Context) -> None:
        home = ctx.data / "prometheus"
        (home / "tsdb").mkdir(parents=True, exist_ok=True)
        (home / "prometheus.yml").write_text(yaml.safe_dump(self.config(ctx), sort_keys=False))

    def after_start(self, ctx: Context) -> None:
        """On every `up`: the configuration written afresh and reloaded, so a change to
        deploy/prometheus takes effect without a restart."""
        self.prepare(ctx)
        reload(ctx.port("prometheus"))

    def command(self, ctx: Context) -> list[str]:
        home = ctx.data / "prometheus"
        return [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'tsdb'}",
            "--storage.tsdb.retention.time=3d",
            f"--web.listen-address=127.0.0.1:{ctx.port('prometheus')}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("prometheus"), "/-/ready") == 200

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {
            "FERRY_PROMETHEUS_URL": f"http://127.0.0.1:{ctx.port('prometheus')}",
            "FERRY_ALERTMANAGER_URL": f"http://127.0.0.1:{ctx.port('alertmanager')}",
        }
