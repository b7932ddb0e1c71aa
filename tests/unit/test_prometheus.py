"""deploy/prometheus: Prometheus accepts the configuration and the rules, every alert's
unit tests pass (`promtool test rules`), every alert has tests and a runbook line, and
the local stack's configuration is the same jobs and rules with local targets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ferry.devstack.services import Context
from ferry.devstack.services.alerting import Alertmanager
from ferry.devstack.services.prometheus import Prometheus

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "prometheus"
RULES = sorted((DEPLOY / "rules").glob("*.yml"))
TESTS = sorted((DEPLOY / "tests").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool not installed (Debian's prometheus): run scripts/setup.sh"
    return subprocess.run([tool, *args], capture_output=True, text=True, check=False)


def alerts() -> list[str]:
    return [
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_promtool_accepts_the_configuration() -> None:
    checked = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", *map(str, RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerts_unit_tests_pass() -> None:
    tested = promtool("test", "rules", *map(str, TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_both_ways_and_has_a_runbook_line() -> None:
    tested: dict[str, list[bool]] = {}
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                tested.setdefault(check["alertname"], []).append(bool(check["exp_alerts"]))
    runbook = (REPO / "docs" / "operations.md").read_text()
    section = runbook[runbook.index("## Alerts") :]
    for alert in alerts():
        assert True in tested.get(alert, []), f"{alert}: no test in which it fires"
        assert False in tested.get(alert, []), f"{alert}: no test in which it stays quiet"
        assert re.search(rf"^\| `{alert}` \|", section, re.MULTILINE), f"{alert}: no runbook line"


def test_a_broken_rule_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m]\n"
    )
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_the_local_stack_runs_the_same_jobs_and_rules(tmp_path: Path) -> None:
    ctx = Context(
        data=tmp_path,
        logs=tmp_path,
        ports={
            "prometheus": 19090,
            "temporal_metrics": 17253,
            "alertmanager": 19093,
            "clamd": 13310,
            "moderator": 19468,
            "blackbox": 19115,
        },
    )
    local = Prometheus().config(ctx)
    deployed = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert [j["job_name"] for j in local["scrape_configs"]] == [  # type: ignore[index]
        j["job_name"] for j in deployed["scrape_configs"]
    ]
    assert local["rule_files"] == [str(DEPLOY / "rules/*.yml")]
    assert local["global"] == deployed["global"]
    assert local["alerting"] == {  # type: ignore[comparison-overlap]
        "alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:19093"]}]}]
    }
    [clamd] = [j for j in local["scrape_configs"] if j["job_name"] == "clamd"]  # type: ignore[attr-defined]
    assert clamd["static_configs"] == [{"targets": ["127.0.0.1:13310"]}]
    assert clamd["relabel_configs"][-1]["replacement"] == "127.0.0.1:19115"
    [moderator] = [j for j in local["scrape_configs"] if j["job_name"] == "moderator"]  # type: ignore[attr-defined]
    assert moderator["static_configs"] == [{"targets": ["http://127.0.0.1:19468/health"]}]
    assert moderator["relabel_configs"][-1]["replacement"] == "127.0.0.1:19115"
    written = tmp_path / "prometheus.yml"
    written.write_text(yaml.safe_dump(local))
    checked = promtool("check", "config", str(written))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("alert", alerts())
def test_every_alert_has_a_severity_and_a_summary(alert: str) -> None:
    [rule] = [
        r
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for r in group["rules"]
        if r.get("alert") == alert
    ]
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["runbook"] == "docs/operations.md#alerts"


def test_alertmanager_accepts_its_configuration_and_the_local_one(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool not installed (Debian's prometheus-alertmanager): run the set-up"
    deployed = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    ctx = Context(data=tmp_path, logs=tmp_path, ports={"alert_webhook": 19466})
    local = tmp_path / "alertmanager.yml"
    local.write_text(yaml.safe_dump(Alertmanager().config(ctx)))
    for path in (deployed, local):
        checked = subprocess.run(
            [amtool, "check-config", str(path)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    [receiver] = yaml.safe_load(local.read_text())["receivers"]
    assert receiver["webhook_configs"][0]["url"] == "http://127.0.0.1:19466/alerts"
