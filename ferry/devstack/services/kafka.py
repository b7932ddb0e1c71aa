"""Apache Kafka: one KRaft node (broker and controller) on the machine's Java."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

from ferry.devstack.services.base import (
    Context,
    Service,
    cache_dir,
)

KAFKA_VERSION = "4.1.1"


class Kafka(Service):
    def __init__(self) -> None:
        super().__init__("kafka", ("kafka", "kafka_controller"))

    @property
    def libs(self) -> Path:
        return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"

    def missing(self) -> str | None:
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            return f"Kafka jars not in {self.libs}; run the set-up (make setup)"
        if shutil.which("java") is None:
            return "java not found; run the set-up (make setup)"
        return None

    def _config(self, ctx: Context) -> Path:
        return ctx.data / "kafka" / "server.properties"

    def prepare(self, ctx: Context) -> None:
        home = ctx.data / "kafka"
        home.mkdir(parents=True, exist_ok=True)
        port, controller = ctx.port("kafka"), ctx.port("kafka_controller")
        self._config(ctx).write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={home / 'data'}",
                    "num.partitions=6",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        (home / "log4j2.properties").write_text(
            "\n".join(
                [
                    "rootLogger.level=WARN",
                    "rootLogger.appenderRef.stdout.ref=STDOUT",
                    "appender.stdout.type=Console",
                    "appender.stdout.name=STDOUT",
                    "appender.stdout.layout.type=PatternLayout",
                    "appender.stdout.layout.pattern=[%d] %p %m (%c)%n",
                    "logger.kafka.name=kafka.server.KafkaServer",
                    "logger.kafka.level=INFO",
                    "",
                ]
            )
        )
        if (home / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        subprocess.run(
            [
                *self._java(ctx),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self._config(ctx)),
            ],
            check=True,
            capture_output=True,
        )

    def _java(self, ctx: Context) -> list[str]:
        log4j = ctx.data / "kafka" / "log4j2.properties"
        return [
            "java",
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs}/*",
        ]

    def command(self, ctx: Context) -> list[str]:
        return [*self._java(ctx), "kafka.Kafka", str(self._config(ctx))]

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {"FERRY_KAFKA_BOOTSTRAP": self.address(ctx)}


# Temporal's dynamic configuration (compose.yaml mounts the same values from
# deploy/temporal/dynamicconfig.yaml). Eager activity execution: a worker that
