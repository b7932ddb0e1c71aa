"""scripts/security.py, the judge of `make security`, on small inputs.

The dependency audit is tested with the real osv-scanner (built into Ferry's cache by `make setup`)
and the real offline advisory database (FERRY_VULNDB, `../shared/vulndb` or `/work/shared/vulndb`):
a missing scanner or database fails these tests, it does not skip them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "security.py"
# As `make security` looks for it: FERRY_VULNDB, the repository's sibling, the workplace's copy.
VULNDB = next(
    (
        path
        for path in (
            Path(os.environ.get("FERRY_VULNDB") or REPO.parent / "shared" / "vulndb"),
            Path("/work/shared/vulndb"),
        )
        if (path / "osv-scanner" / "PyPI" / "all.zip").is_file()
    ),
    REPO.parent / "shared" / "vulndb",
)
CACHE = Path(os.environ.get("FERRY_CACHE_DIR") or Path.home() / ".cache" / "ferry")
OSV_SCANNER = CACHE / "osv-scanner-2.3.0" / "bin" / "osv-scanner"

OLD_REQUESTS = "requests==2.19.0"  # PYSEC-2018-28 (no score) and more
# Clean in the snapshot of 2026-07-23 (2.32.5 is not: PYSEC-2026-2275, fixed in 2.33.0).
CLEAN_REQUESTS = "requests==2.34.2"


def load_judge() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ferry_security_judge", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


judge_module = load_judge()


def scan(directory: Path, *requirements: str, vulndb: Path = VULNDB) -> tuple[Path, Path, int]:
    """osv-scanner on requirements, as `make security` runs it: (requirements, report, rc)."""
    if not OSV_SCANNER.is_file():
        pytest.fail(f"osv-scanner 2.3.0 is not at {OSV_SCANNER}: run `make setup` to build it")
    if vulndb == VULNDB and not (VULNDB / "osv-scanner" / "PyPI" / "all.zip").is_file():
        pytest.fail(f"no offline advisory database at {VULNDB} (set FERRY_VULNDB to its directory)")
    directory.mkdir(parents=True, exist_ok=True)
    wanted = directory / "requirements.txt"
    wanted.write_text("".join(f"{line}\n" for line in requirements))
    report = directory / "osv-scanner.json"
    done = subprocess.run(
        [str(OSV_SCANNER), "scan", "--offline", "--local-db-path", str(vulndb), "--all-packages",
         "-L", f"requirements.txt:{wanted}", "--format", "json", "--output", str(report)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return wanted, report, done.returncode


def bandit_report(directory: Path, *issues: dict[str, Any]) -> Path:
    path = directory / "bandit.json"
    path.write_text(json.dumps({"results": list(issues), "errors": []}))
    return path


def judge(
    directory: Path,
    requirements: Path,
    report: Path,
    exit_code: int | None,
    allowlist: str = "",
    today: str | None = None,
    bandit: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    allow = directory / "allowlist.toml"
    allow.write_text(allowlist)
    command = [
        sys.executable, str(SCRIPT), "--allowlist", str(allow),
        "--bandit", str(bandit or bandit_report(directory)), "--osv-scanner", str(report),
        "--requirements", str(requirements), "--vulndb", str(VULNDB),
    ]  # fmt: skip
    if exit_code is not None:
        command += ["--osv-exit-code", str(exit_code)]
    if today:
        command += ["--today", today]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def old_requests(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    return scan(tmp_path_factory.mktemp("old-requests"), OLD_REQUESTS)


def groups(report: Path) -> list[dict[str, Any]]:
    data = json.loads(report.read_text())
    return [g for r in data["results"] for p in r["packages"] for g in p.get("groups", [])]


def allow_all(report: Path, review: str = "2027-03-01") -> str:
    """Allow-list entries for every finding: PYSEC-2018-28 by an alias, the others by ID."""
    ids = [g["ids"][0] for g in groups(report) if g["ids"][0] != "PYSEC-2018-28"]
    return "".join(
        f'[[vulnerability]]\nid = "{i}"\npackage = "requests"\nreason = "test"\nreview = {review}\n'
        for i in ["CVE-2018-18074", *ids]
    )


def test_an_old_requests_fails_with_its_advisories(old_requests: tuple[Path, Path, int]) -> None:
    requirements, report, code = old_requests
    assert code == 1, "osv-scanner exits 1 when it finds vulnerabilities"
    done = judge(requirements.parent, requirements, report, code)
    assert done.returncode == 1, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "PYSEC-2018-28" in x)
    assert "FINDING" in line and "requests" in line
    assert "installed 2.19.0" in line and "fixed in 2.20.0" in line
    assert "severity UNKNOWN" in line  # the PyPA advisory has no score: it fails all the same
    assert "CVE-2018-18074" in line
    assert "severity MEDIUM (CVSS 5.3)" in done.stdout  # PYSEC-2026-1872, scored by osv-scanner
    assert "packages audited: 1 of 1" in done.stdout
    assert "snapshot of 20" in done.stdout
    assert "security: FAILED" in done.stdout


def test_a_clean_requests_passes(tmp_path: Path) -> None:
    requirements, report, code = scan(tmp_path, CLEAN_REQUESTS)
    assert code == 0
    done = judge(tmp_path, requirements, report, code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "packages audited: 1 of 1" in done.stdout
    assert "security: passed" in done.stdout


def test_allow_listed_findings_pass(old_requests: tuple[Path, Path, int], tmp_path: Path) -> None:
    requirements, report, code = old_requests
    done = judge(tmp_path, requirements, report, code, allow_all(report), today="2027-03-01")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "PYSEC-2018-28" in x)
    assert line.split()[0] == "explained"
    assert "reason: test (review by 2027-03-01)" in done.stdout
    assert "FINDING" not in done.stdout


def test_an_expired_review_fails(old_requests: tuple[Path, Path, int], tmp_path: Path) -> None:
    requirements, report, code = old_requests
    done = judge(tmp_path, requirements, report, code, allow_all(report), today="2027-03-02")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "EXPIRED allow-list entry CVE-2018-18074 in requests" in done.stdout
    assert "FINDING" not in done.stdout


def test_an_entry_for_another_package_explains_nothing(
    old_requests: tuple[Path, Path, int], tmp_path: Path
) -> None:
    requirements, report, code = old_requests
    allowlist = '[[vulnerability]]\nid = "PYSEC-2018-28"\npackage = "urllib3"\nreason = "x"\n'
    done = judge(tmp_path, requirements, report, code, allowlist + "review = 2027-03-01\n")
    assert done.returncode == 1
    assert "allow-list entry PYSEC-2018-28 in urllib3 matches nothing" in done.stdout


def test_a_missing_report_exits_2(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{CLEAN_REQUESTS}\n")
    done = judge(tmp_path, requirements, tmp_path / "absent.json", 0)
    assert done.returncode == 2
    assert "osv-scanner produced no readable report" in done.stderr
    (tmp_path / "garbled.json").write_text("{")
    assert judge(tmp_path, requirements, tmp_path / "garbled.json", 0).returncode == 2


def test_a_scanner_without_database_exits_2(tmp_path: Path) -> None:
    """With no database osv-scanner still writes a report, one without vulnerabilities."""
    empty = tmp_path / "no-db"
    empty.mkdir()
    requirements, report, code = scan(tmp_path, OLD_REQUESTS, vulndb=empty)
    assert code not in (0, 1)
    done = judge(tmp_path, requirements, report, code)
    assert done.returncode == 2
    assert f"osv-scanner failed (exit code {code}" in done.stderr


def test_a_package_the_scanner_skips_fails(tmp_path: Path) -> None:
    """osv-scanner drops a name with a dot; `make security` normalises the names for it."""
    requirements, report, code = scan(tmp_path / "raw", "boolean.py==5.0", CLEAN_REQUESTS)
    done = judge(tmp_path, requirements, report, code)
    assert done.returncode == 1
    assert "NOT AUDITED boolean.py==5.0: osv-scanner skipped it" in done.stdout
    requirements, report, code = scan(tmp_path / "normalised", "boolean-py==5.0", CLEAN_REQUESTS)
    done = judge(tmp_path, requirements, report, code)
    assert done.returncode == 0, done.stdout
    assert "packages audited: 2 of 2" in done.stdout


def synthetic_report(directory: Path, max_severity: str, vuln: dict[str, Any]) -> Path:
    report = directory / "osv-scanner.json"
    package = {"name": "example", "version": "1.0", "ecosystem": "PyPI"}
    group = {"ids": [vuln["id"]], "aliases": [vuln["id"]], "max_severity": max_severity}
    result = {"packages": [{"package": package, "groups": [group], "vulnerabilities": [vuln]}]}
    report.write_text(json.dumps({"results": [result]}))
    return report


def test_a_low_finding_is_listed_and_passes(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("example==1.0\n")
    vuln = {"id": "PYSEC-0000-1", "affected": [], "summary": "minor"}
    done = judge(tmp_path, requirements, synthetic_report(tmp_path, "3.9", vuln), 1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "low       osv PYSEC-0000-1 example: installed 1.0" in done.stdout
    assert "severity LOW (CVSS 3.9)" in done.stdout


def test_bandit_high_fails_unless_allow_listed(tmp_path: Path) -> None:
    requirements, report, code = scan(tmp_path, CLEAN_REQUESTS)
    issue = {"test_id": "B602", "filename": "ferry/x.py", "line_number": 3, "issue_text": "shell",
             "issue_severity": "HIGH", "issue_confidence": "HIGH"}  # fmt: skip
    bandit = bandit_report(tmp_path, issue)
    assert judge(tmp_path, requirements, report, code, bandit=bandit).returncode == 1
    allowlist = '[[bandit]]\nid = "B602"\nfile = "ferry/x.py"\nreason = "fixed input"\n'
    assert judge(tmp_path, requirements, report, code, allowlist, bandit=bandit).returncode == 0


def test_a_vulnerability_entry_needs_a_review_date(tmp_path: Path) -> None:
    requirements, report, code = scan(tmp_path, CLEAN_REQUESTS)
    allowlist = '[[vulnerability]]\nid = "PYSEC-2018-28"\nreason = "x"\n'
    done = judge(tmp_path, requirements, report, code, allowlist)
    assert done.returncode == 2
    assert "lacks ['review']" in done.stderr


@pytest.mark.parametrize(
    ("score", "level"),
    [(0.0, "LOW"), (3.9, "LOW"), (4.0, "MEDIUM"), (6.9, "MEDIUM"), (7.0, "HIGH"), (8.9, "HIGH"),
     (9.0, "CRITICAL"), (10.0, "CRITICAL")],
)  # fmt: skip
def test_score_levels(score: float, level: str) -> None:
    assert judge_module.score_level(score) == level


def test_severity_without_a_score() -> None:
    severity_of = judge_module.severity_of
    labelled = {"id": "GHSA-x", "database_specific": {"severity": "MODERATE"}}
    assert severity_of({"max_severity": ""}, [labelled])[0] == "MEDIUM"
    assert severity_of({"max_severity": ""}, [{"id": "PYSEC-x"}]) == (
        "UNKNOWN",
        "the advisory gives no score",
    )
    assert severity_of({"max_severity": "9.8"}, [{"id": "PYSEC-x"}])[0] == "CRITICAL"


def test_fixed_versions_of_the_installed_range() -> None:
    ranges = [
        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.5"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.1.3"}]},
        {"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]},
    ]
    vuln = {"affected": [{"package": {"name": "Example_Pkg"}, "ranges": ranges}]}
    assert judge_module.fixed_versions([vuln], "example-pkg", "2.0.4") == ["2.1.3"]
    assert judge_module.fixed_versions([vuln], "example-pkg", "1.0") == ["1.2.5"]
