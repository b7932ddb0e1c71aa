"""compose.yaml: a Compose parser accepts it, and it runs what the local stack runs.

No Docker engine is needed: `docker-compose config` (Debian's docker-compose, installed by
the set-up) parses, validates and resolves the file without contacting one. The resolved
file is what these tests read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry.config import Settings
from ferry.devstack import DLQ_TOPIC, INBOUND_TOPICS, OUTBOUND_TOPICS, Stack
from ferry.devstack.services import AZURITE_VERSION, KAFKA_VERSION, TEMPORAL_DYNAMIC_CONFIG
from ferry.storage.azure import AzureStorage
from ferry.storage.gcs import GCSStorage
from ferry.storage.s3 import S3Storage
from ferry.temporal.codec import parse_keys

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"

# Each service of the local stack → the Compose service that plays its part.
STACK_TO_COMPOSE = {
    "kafka": "kafka",
    "codec": "codec",
    "temporal": "temporal",
    "postgres": "postgres-ferry",
    "clamd": "clamav",
    "s3": "minio",
    "gcs": "fake-gcs",
    "azurite": "azurite",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "alert-webhook": "alert-webhook",
    "moderator": "moderator",
    "blackbox": "blackbox",
}
# Ferry's own processes, built from ./Dockerfile (whose entrypoint is `ferry`).
FERRY_COMMANDS = {
    "worker": ["worker"],
    "consumers": ["consume"],
    "meter": ["meter"],
    "ferry-migrate": ["db", "upgrade"],
    "alert-webhook": ["alert-webhook", "--host", "0.0.0.0", "--port", "9466"],
    "moderator": ["moderator", "--host", "0.0.0.0", "--port", "9468"],
}
FERRY_PROCESSES = ("worker", "consumers", "meter")


def compose_command() -> list[str]:
    """Debian's docker-compose, or the Compose plugin of a docker client that has one."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.fail("no Compose parser: install Debian's docker-compose (make setup does)")


def run_compose_config() -> subprocess.CompletedProcess[str]:
    # A bare environment: the file's defaults are what is checked, not the caller's variables
    # (other tests load the local stack's FERRY_* settings into os.environ).
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return subprocess.run(
        [*compose_command(), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@cache
def resolved() -> dict[str, Any]:
    done = run_compose_config()
    assert done.returncode == 0, f"the Compose parser rejects compose.yaml:\n{done.stderr}"
    config = yaml.safe_load(done.stdout)
    assert isinstance(config, dict)
    return config


def services() -> dict[str, dict[str, Any]]:
    found = resolved()["services"]
    assert isinstance(found, dict)
    return found


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE entries
        env = dict(entry.split("=", 1) for entry in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def script(service: str) -> str:
    """The shell script an init service runs (`sh -c SCRIPT`), with Compose's `$$` undone."""
    definition = services()[service]
    assert definition["entrypoint"] == ["/bin/sh", "-c"], service
    command = definition["command"]
    assert isinstance(command, list) and len(command) == 1, service
    return str(command[0]).replace("$$", "$")


def depends_on(service: str) -> dict[str, str]:
    deps = services()[service].get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def host_of(address: str) -> str:
    """`kafka:9092`, `http://minio:9000`, `postgresql+asyncpg://u:p@host:5432/db` → the host."""
    without_scheme = address.split("://", 1)[-1]
    return without_scheme.rsplit("@", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]


def test_the_compose_parser_accepts_the_file() -> None:
    done = run_compose_config()
    assert done.returncode == 0, done.stderr
    assert services()


def test_the_parser_would_reject_a_broken_file(tmp_path: Path) -> None:
    """The check has teeth: an unknown key fails `config` without an engine."""
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  one:\n    image: busybox\n    no_such_option: 1\n")
    done = subprocess.run(
        [*compose_command(), "-f", str(broken), "config", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "no_such_option" in done.stderr


def test_every_service_of_the_local_stack_has_its_counterpart() -> None:
    stack_services = {service.name for service in Stack().services}
    # A service added to the local stack must be added here (and to compose.yaml) too.
    assert stack_services == set(STACK_TO_COMPOSE)
    missing = {name for name in STACK_TO_COMPOSE.values() if name not in services()}
    assert not missing, f"compose.yaml lacks {sorted(missing)}"


def test_images_are_the_official_ones_and_versions_match_the_stack() -> None:
    images = {name: str(spec.get("image", "")) for name, spec in services().items()}
    assert images["kafka"] == f"apache/kafka:{KAFKA_VERSION}"
    assert images["azurite"] == f"mcr.microsoft.com/azure-storage/azurite:{AZURITE_VERSION}"
    assert images["temporal"].startswith("temporalio/auto-setup:")
    assert images["temporal-ui"].startswith("temporalio/ui:")
    assert images["temporal-init"].startswith("temporalio/admin-tools:")
    assert images["clamav"].startswith("clamav/clamav:")
    assert images["minio"].startswith("minio/minio:")
    assert images["minio-init"].startswith("minio/mc:")
    assert images["fake-gcs"].startswith("fsouza/fake-gcs-server:")
    # The version of Debian's prometheus that the local stack runs.
    assert images["prometheus"] == "prom/prometheus:v2.42.0"
    assert images["alertmanager"] == "prom/alertmanager:v0.25.0"
    assert images["blackbox"] == "prom/blackbox-exporter:v0.23.0"
    for name, image in images.items():
        assert image and not image.endswith(":latest") and ":" in image, name


@pytest.mark.parametrize("service", sorted(FERRY_COMMANDS))
def test_ferry_services_are_built_from_the_dockerfile_with_their_command(service: str) -> None:
    definition = services()[service]
    build = definition["build"]
    assert Path(build["context"]).resolve() == REPO
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert definition["command"] == FERRY_COMMANDS[service]
    assert "entrypoint" not in definition  # the image's: `ferry`


def test_the_dockerfile_runs_ferry_as_a_user_with_tesseract() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    instructions = [line.strip() for line in dockerfile.splitlines() if line.strip()]
    assert [line for line in instructions if line.startswith("FROM ")] == ["FROM python:3.11-slim"]
    assert re.search(r"apt-get install .*tesseract-ocr tesseract-ocr-eng", dockerfile)
    assert re.search(r"pip install \.(\s|$)", dockerfile, re.MULTILINE)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert 'ENTRYPOINT ["ferry"]' in instructions
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", ".ferry"} <= set(ignored)


@pytest.mark.parametrize("service", FERRY_PROCESSES)
def test_ferry_processes_read_every_endpoint_from_their_environment(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(service)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.temporal_address == "temporal:7233"
    assert settings.clamd_address == "clamav:3310"
    assert settings.moderation_url == "http://moderator:9468"
    app_url = settings.database_url.get_secret_value()
    admin_url = settings.database_admin_url.get_secret_value()
    assert re.fullmatch(r"postgresql\+asyncpg://ferry_app:[^@]+@postgres-ferry:5432/ferry", app_url)
    assert re.fullmatch(r"postgresql\+asyncpg://ferry:[^@]+@postgres-ferry:5432/ferry", admin_url)
    assert settings.payload_keys is not None
    assert parse_keys(settings.payload_keys.get_secret_value())
    # Every cloud provider is configured (ferry.storage.providers_from_env builds these).
    assert S3Storage.configured(env)
    assert GCSStorage.configured(env)
    assert AzureStorage.configured(env)
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert env["STORAGE_EMULATOR_HOST"] == "http://fake-gcs:4443"
    assert "BlobEndpoint=http://azurite:10000/" in env["AZURE_STORAGE_CONNECTION_STRING"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        assert env[key], key
    assert env["AWS_ACCESS_KEY_ID"] == environment("minio")["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == environment("minio")["MINIO_ROOT_PASSWORD"]


@pytest.mark.parametrize("service", FERRY_PROCESSES)
def test_ferry_processes_start_after_the_set_up_is_done(service: str) -> None:
    deps = depends_on(service)
    for init in ("kafka-init", "temporal-init", "ferry-migrate", "minio-init"):
        assert deps.get(init) == "service_completed_successfully", init
    addresses = [
        value
        for key, value in environment(service).items()
        if key in {"FERRY_KAFKA_BOOTSTRAP", "FERRY_TEMPORAL_ADDRESS", "FERRY_CLAMD_ADDRESS"}
        or key in {"AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST", "FERRY_DATABASE_URL"}
    ]
    for address in addresses:
        assert host_of(address) in services(), address


def test_every_dependency_condition_can_be_met() -> None:
    for name in services():
        for dependency, condition in depends_on(name).items():
            assert dependency in services(), (name, dependency)
            target = services()[dependency]
            if condition == "service_healthy":
                assert target.get("healthcheck", {}).get("test"), (name, dependency)
            if condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", (name, dependency)


def test_kafka_init_creates_every_topic_of_the_contract() -> None:
    text = script("kafka-init")
    for topic in (*INBOUND_TOPICS, *OUTBOUND_TOPICS, DLQ_TOPIC):
        assert re.search(rf"(?<![\w.-]){re.escape(topic)}(?![\w.-])", text), topic
    assert "kafka-topics.sh" in text and "--if-not-exists" in text
    assert depends_on("kafka-init") == {"kafka": "service_healthy"}
    kafka = environment("kafka")
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_temporal_init_registers_the_search_attributes() -> None:
    text = script("temporal-init")
    assert "temporal operator search-attribute create" in text
    assert re.search(r"for attribute in TenantId FileId;", text)
    assert "--type Keyword" in text
    assert environment("temporal-init")["TEMPORAL_ADDRESS"] == "temporal:7233"
    temporal = environment("temporal")
    assert temporal["POSTGRES_SEEDS"] == "postgres"
    assert depends_on("temporal") == {"postgres": "service_healthy"}
    assert environment("temporal-ui")["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_temporal_runs_with_the_dynamic_config_of_the_local_stack() -> None:
    path = environment("temporal")["DYNAMIC_CONFIG_FILE_PATH"]
    # Compose v1 resolves a volume to `SOURCE:TARGET:MODE`; v2 to a mapping.
    mounts = [
        v
        if isinstance(v, dict)
        else dict(zip(("source", "target", "mode"), v.split(":"), strict=True))
        for v in services()["temporal"]["volumes"]
    ]
    [mount] = [m for m in mounts if m["target"] == path]
    assert mount.get("read_only") is True or mount.get("mode") == "ro"
    values = yaml.safe_load(Path(mount["source"]).read_text())
    assert {key: entries[0]["value"] for key, entries in values.items()} == TEMPORAL_DYNAMIC_CONFIG
    assert all(len(entries) == 1 and "constraints" not in entries[0] for entries in values.values())


def test_postgres_has_the_owner_and_the_application_role() -> None:
    postgres = environment("postgres-ferry")
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("ferry", "ferry")
    text = script("postgres-ferry-init")
    assert "CREATE ROLE ferry_app LOGIN" in text and "NOBYPASSRLS" in text
    assert "GRANT CONNECT, TEMPORARY ON DATABASE ferry TO ferry_app" in text
    init_env = environment("postgres-ferry-init")
    app_url = environment("worker")["FERRY_DATABASE_URL"]
    assert f"ferry_app:{init_env['APP_PASSWORD']}@" in app_url
    assert depends_on("ferry-migrate") == {"postgres-ferry-init": "service_completed_successfully"}


def test_minio_notifies_kafka_of_every_put_into_the_ingest_bucket() -> None:
    minio = environment("minio")
    assert minio["MINIO_NOTIFY_KAFKA_ENABLE_PRIMARY"] == "on"
    assert minio["MINIO_NOTIFY_KAFKA_BROKERS_PRIMARY"] == "kafka:9092"
    assert minio["MINIO_NOTIFY_KAFKA_TOPIC_PRIMARY"] == "ferry.storage-notifications.v1"
    assert "ferry.storage-notifications.v1" in INBOUND_TOPICS
    text = script("minio-init")
    assert "mc mb --ignore-existing ferry/ferry-ingest" in text
    assert "mc event add ferry/ferry-ingest arn:minio:sqs::primary:kafka --event put" in text


def test_clamav_keeps_the_stack_limits() -> None:
    clamav = environment("clamav")
    for option in ("StreamMaxLength", "MaxFileSize", "MaxScanSize"):
        assert clamav[f"CLAMD_CONF_{option}"] == "1100M"
    assert clamav["CLAMD_CONF_AlertExceedsMax"] == "yes"


INIT_SERVICES = ("kafka-init", "temporal-init", "postgres-ferry-init", "minio-init")


@pytest.mark.parametrize("service", INIT_SERVICES)
def test_init_scripts_are_valid_shell(service: str) -> None:
    done = subprocess.run(
        ["sh", "-n", "-c", script(service)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
