"""The services of the local stack: how each is prepared, started and checked.

Every service is a real program started as a local process on loopback. A
service's ports are chosen once, on the first `up`, and kept in the stack's
state so that data written under them (Kafka's quorum, Postgres, the Temporal
SQLite file) stays valid across `down` and `up`.
"""

from __future__ import annotations

from ferry.devstack.services.alerting import Alertmanager, AlertWebhook
from ferry.devstack.services.base import (
    Context,
    Service,
    cache_dir,
    http_status,
    tcp_open,
    venv_bin,
)
from ferry.devstack.services.clamd import (
    CLAMAV_TESTFILES,
    EICAR,
    Clamd,
    add_test_signature,
    build_signatures,
)
from ferry.devstack.services.codec import Codec
from ferry.devstack.services.emulators import AZURITE_VERSION, GCS, S3, Azurite
from ferry.devstack.services.kafka import KAFKA_VERSION, Kafka
from ferry.devstack.services.moderation import ModerationService
from ferry.devstack.services.postgres import Postgres
from ferry.devstack.services.prometheus import Blackbox, Prometheus
from ferry.devstack.services.temporal import TEMPORAL_DYNAMIC_CONFIG, Temporal

__all__ = [
    "AZURITE_VERSION",
    "CLAMAV_TESTFILES",
    "EICAR",
    "KAFKA_VERSION",
    "PREFERRED_PORTS",
    "SERVICES",
    "TEMPORAL_DYNAMIC_CONFIG",
    "Context",
    "Service",
    "add_test_signature",
    "build_signatures",
    "cache_dir",
    "http_status",
    "tcp_open",
    "venv_bin",
]

SERVICES: tuple[Service, ...] = (
    Kafka(), Codec(), Temporal(), Postgres(), Clamd(), ModerationService(), S3(), GCS(),
    Azurite(), AlertWebhook(), Alertmanager(), Blackbox(), Prometheus(),
)  # fmt: skip

PREFERRED_PORTS = {
    "kafka": 19092,
    "kafka_controller": 19093,
    "temporal": 17233,
    "temporal_ui": 18233,
    "temporal_http": 17243,
    "temporal_metrics": 17253,
    "codec": 18234,
    "postgres": 15432,
    "clamd": 13310,
    "s3": 15000,
    "gcs": 14443,
    "azurite": 10000,
    "prometheus": 19090,
    "alertmanager": 19095,
    "alert_webhook": 19466,
    "moderator": 19468,
    "blackbox": 19115,
}
