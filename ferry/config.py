"""Ferry's settings: read once, from `FERRY_*` variables and the stack's env file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from dotenv import load_dotenv
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry.contracts.layout import Places
from ferry.contracts.policy import TenantPolicy
from ferry.contracts.workflows import ReconciliationRequest, RescanRequest


def _env_file() -> Path:
    home = Path(os.environ.get("FERRY_HOME", Path.cwd() / ".ferry"))
    return Path(os.environ.get("FERRY_ENV_FILE", home / "stack.env"))


class Settings(BaseSettings):
    """Configuration of every Ferry process (CONTRACT §7)."""

    model_config = SettingsConfigDict(env_prefix="FERRY_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    # The Prometheus that scrapes Ferry (its rules: deploy/prometheus/).
    prometheus_url: str = "http://127.0.0.1:9090"
    alertmanager_url: str = "http://127.0.0.1:9093"
    # The application's role (no table ownership, subject to row-level security)
    # and the owner's, for migrations only.
    database_url: SecretStr = SecretStr("postgresql+asyncpg://ferry_app@127.0.0.1:5432/ferry")
    database_admin_url: SecretStr = SecretStr("postgresql+asyncpg://ferry@127.0.0.1:5432/ferry")
    clamd_address: str = "127.0.0.1:3310"
    # The moderation service (`ferry moderator`) the analysis asks for labels; empty: the
    # worker loads the model itself (about 130 MB more of its memory).
    moderation_url: str = ""
    # Payload encryption keys, `key_id:base64key,...`; the first encrypts (ferry/temporal/codec.py).
    payload_keys: SecretStr | None = None
    local_storage_root: Path = Path(".ferry/storage")

    files_task_queue: str = "ferry-files"
    tenants_task_queue: str = "ferry-tenants"
    consumer_group: str = "ferry-bridge"
    ingest_bucket: str = "ferry-ingest"
    quarantine_bucket: str = "ferry-quarantine"
    max_in_flight: int = Field(default=256, ge=1)
    # Each start names its tenant as its fairness key (Temporal's task queue fairness).
    fairness: bool = True
    # Each tenant's activities on the files task queue dispatched at most this many a
    # second, times its plan's fairness weight (Temporal's rate limit per fairness key),
    # set by the worker when it starts; None leaves the queue's limit as it is. About 70%
    # of what the queue dispatches at full load keeps a slot free for a quiet tenant
    # behind another's burst (`make bench-fairness`; README, Benchmarks).
    tenant_tasks_per_second: float | None = Field(default=None, gt=0)
    # How often the bridge commits its offsets (and records handled events) while running.
    commit_interval: float = Field(default=0.2, gt=0)
    bridge_metrics_port: int = 9464  # 0: no metrics endpoint
    bridge_metrics_address: str = "127.0.0.1"  # 0.0.0.0 where Prometheus scrapes from elsewhere
    worker_metrics_port: int = 9465  # Temporal's runtime metrics of the worker; 0: none
    # Activities a worker runs at once, per task queue: one per core. Media work is
    # CPU-bound, so more slots than cores buy little throughput; what waits had better
    # wait in Temporal's queue, where fairness orders it, than beside the burst's running
    # tasks for a share of the cores (`make bench-fairness`; the README has its figures).
    worker_activity_slots: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # glibc's allocator in the worker: at most this many arenas, and free memory at the top
    # of a heap above this many bytes given back to the system (0: glibc's own default).
    # Images decoded in several threads otherwise leave each thread's arena at its peak.
    worker_malloc_arenas: int = Field(default=2, ge=0)
    worker_malloc_trim_bytes: int = Field(default=128 * 1024, ge=0)
    log_format: str = "json"  # json | console
    log_level: str = "INFO"
    # The usage meter's faust app: its consumer group and the prefix of its changelog topics.
    meter_app_id: str = "ferry-meter"
    # 9466 is `ferry alert-webhook`'s port.
    meter_metrics_port: int = 9467  # 0: no metrics endpoint (and no lag measured)
    meter_metrics_address: str = "127.0.0.1"  # 0.0.0.0 where Prometheus scrapes from elsewhere
    # The meter starts its consumer anew when its group has had records left and committed
    # nothing for this long (0: never); see ferry.processes.run_meter.
    meter_stall_seconds: float = Field(default=60.0, ge=0)

    # The tenant workflows' clocks, read by the `tenant_policy` activity as a workflow starts.
    tenant_usage_interval_seconds: float = Field(default=3600.0, gt=0)
    tenant_deletion_grace_seconds: float = Field(default=7 * 24 * 3600.0, ge=0)
    payment_timeout_seconds: float = Field(default=24 * 3600.0, gt=0)
    # Where a file goes when its tenant's provider keeps failing: the first configured
    # provider of this list other than the tenant's own (comma-separated).
    storage_failover_order: str = "s3,gcs,azure,local"

    # The reconciliation (ferry/workflows/reconciliation.py): how often its schedule runs
    # (0: no schedule; a worker started so deletes it), and what counts as stuck.
    reconciliation_interval_seconds: int = Field(default=300, ge=0)
    reconciliation_repair: bool = True  # false: count and report, start nothing
    upload_deadline_seconds: int = Field(default=900, gt=0)
    share_expiry_grace_seconds: int = Field(default=300, ge=0)
    migration_idle_seconds: int = Field(default=1800, gt=0)

    # The rescan (ferry/workflows/rescan.py): how often its schedule runs (0: no schedule;
    # a worker started so deletes it), whether a worker starts one when its clamd first
    # reports a signature version, and how many files a second it may rescan.
    rescan_interval_seconds: int = Field(default=24 * 3600, ge=0)
    rescan_on_new_signatures: bool = True
    rescan_rate_per_second: float = Field(default=2.0, gt=0)
    # How often a worker asks clamd which signatures it has (the verdicts recorded and
    # reused in between name the version of the last answer).
    clamd_version_interval_seconds: float = Field(default=60.0, gt=0)

    def rescan_request(self) -> RescanRequest:
        """What each scheduled or started rescan does."""
        return RescanRequest(rate_per_second=self.rescan_rate_per_second)

    def reconciliation_request(self) -> ReconciliationRequest:
        """What each scheduled reconciliation looks for."""
        return ReconciliationRequest(
            upload_deadline_seconds=self.upload_deadline_seconds,
            share_grace_seconds=self.share_expiry_grace_seconds,
            migration_idle_seconds=self.migration_idle_seconds,
            repair=self.reconciliation_repair,
        )

    @property
    def places(self) -> Places:
        """The buckets tenants share a part of (the ingest and quarantine buckets)."""
        return Places(self.ingest_bucket, self.quarantine_bucket)

    def tenant_policy(self, providers: Sequence[str]) -> TenantPolicy:
        """What tenant workflows read of these settings, for a worker with `providers`."""
        return TenantPolicy(
            usage_interval_seconds=self.tenant_usage_interval_seconds,
            deletion_grace_seconds=self.tenant_deletion_grace_seconds,
            payment_timeout_seconds=self.payment_timeout_seconds,
            providers=sorted(providers),
            ingest_bucket=self.ingest_bucket,
            quarantine_bucket=self.quarantine_bucket,
            failover_order=[
                name
                for name in (p.strip() for p in self.storage_failover_order.split(","))
                if name in providers
            ],
        )

    @property
    def clamd_host_port(self) -> tuple[str, int]:
        host, _, port = self.clamd_address.rpartition(":")
        return host, int(port)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; the env file fills what the environment lacks.

    The env file is loaded into the process environment (never overriding it)
    because storage clients read their own variables (`AWS_*`,
    `AZURE_STORAGE_CONNECTION_STRING`, `STORAGE_EMULATOR_HOST`).
    """
    load_dotenv(_env_file(), override=False)
    return Settings()
