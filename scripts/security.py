#!/usr/bin/env python3
"""Judge the reports of bandit and pip-audit against security/allowlist.toml (`make security`).

Fails (exit 1) on a finding that the allow-list does not explain:
- bandit: an issue of severity HIGH (bandit has no "critical");
- pip-audit: any known vulnerability (pip-audit gives no severity).

A dependency that pip-audit could not audit is not a finding, but it is never passed over in
silence: the summary lists it, and `--require-audit` makes it fail too. Exit 2: a report is
missing or unreadable, or the allow-list is malformed.

    python scripts/security.py --bandit bandit.json --pip-audit pip-audit.json \
        --allowlist security/allowlist.toml [--require-audit]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# pip-audit's reason for the project itself, installed in development mode: not a dependency.
EDITABLE = "distribution marked as editable"


class ReportError(Exception):
    """A report or the allow-list cannot be used."""


@dataclass(frozen=True)
class Finding:
    tool: str
    id: str
    where: str  # file:line for bandit, package==version for pip-audit
    text: str
    aliases: tuple[str, ...] = ()
    package: str = ""
    file: str = ""


@dataclass(frozen=True)
class Entry:
    kind: str  # "bandit" or "vulnerability"
    id: str
    reason: str
    file: str = ""
    package: str = ""

    def explains(self, finding: Finding) -> bool:
        if self.kind == "bandit":
            return finding.tool == "bandit" and (finding.id, finding.file) == (self.id, self.file)
        if finding.tool != "pip-audit" or self.id not in (finding.id, *finding.aliases):
            return False
        return not self.package or canonical(self.package) == finding.package

    def describe(self) -> str:
        return f"{self.id} in {self.file or self.package or 'any package'}"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def relative(path: str) -> str:
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return candidate.resolve().relative_to(REPO).as_posix()
        except ValueError:
            return candidate.as_posix()
    return candidate.as_posix().removeprefix("./")


def load_json(path: Path, tool: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{tool} produced no readable report at {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{tool}'s report at {path} is not a JSON object")
    return data


def load_allowlist(path: Path) -> list[Entry]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReportError(f"allow-list {path}: {exc}") from exc
    entries = []
    for kind, needs in (("bandit", ("id", "file", "reason")), ("vulnerability", ("id", "reason"))):
        for number, raw in enumerate(data.get(kind, []), start=1):
            missing = [key for key in needs if not str(raw.get(key, "")).strip()]
            if missing:
                raise ReportError(f"allow-list {path}: [[{kind}]] #{number} lacks {missing}")
            entries.append(
                Entry(
                    kind=kind,
                    id=str(raw["id"]).strip(),
                    reason=str(raw["reason"]).strip(),
                    file=relative(str(raw.get("file", ""))) if kind == "bandit" else "",
                    package=str(raw.get("package", "")).strip(),
                )
            )
    unknown = set(data) - {"bandit", "vulnerability"}
    if unknown:
        raise ReportError(f"allow-list {path}: unknown sections {sorted(unknown)}")
    return entries


def bandit_findings(report: dict[str, Any]) -> tuple[list[Finding], Counter[str], list[str]]:
    """HIGH issues, the count of issues per severity, and the files bandit could not scan."""
    severities: Counter[str] = Counter()
    high = []
    for issue in report.get("results", []):
        severity = str(issue.get("issue_severity", "")).upper()
        severities[severity] += 1
        if severity == "HIGH":
            file = relative(str(issue.get("filename", "")))
            high.append(
                Finding(
                    tool="bandit",
                    id=str(issue.get("test_id", "")),
                    where=f"{file}:{issue.get('line_number', '?')}",
                    text=f"{issue.get('issue_text')} (confidence {issue.get('issue_confidence')})",
                    file=file,
                )
            )
    errors = [
        f"{relative(str(e.get('filename', '')))}: {e.get('reason', '')}"
        for e in report.get("errors", [])
    ]
    return high, severities, errors


def audit_findings(report: dict[str, Any]) -> tuple[list[Finding], int, list[str]]:
    """Known vulnerabilities, the number of dependencies audited, and those not audited."""
    findings = []
    audited = 0
    unaudited = []
    for dependency in report.get("dependencies", []):
        name = str(dependency.get("name", ""))
        reason = dependency.get("skip_reason")
        if reason:
            if EDITABLE not in str(reason):
                unaudited.append(str(reason))
            continue
        audited += 1
        version = str(dependency.get("version", ""))
        for vuln in dependency.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none published"
            summary = " ".join(str(vuln.get("description", "")).split())[:160]
            findings.append(
                Finding(
                    tool="pip-audit",
                    id=str(vuln.get("id", "")),
                    where=f"{name}=={version}",
                    text=f"{summary} (fixed in: {fixes})",
                    aliases=tuple(str(alias) for alias in vuln.get("aliases") or []),
                    package=canonical(name),
                )
            )
    return findings, audited, unaudited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandit", type=Path, required=True, help="bandit's JSON report")
    parser.add_argument("--pip-audit", type=Path, required=True, help="pip-audit's JSON report")
    parser.add_argument("--allowlist", type=Path, default=REPO / "security" / "allowlist.toml")
    parser.add_argument(
        "--require-audit", action="store_true", help="fail when a dependency was not audited"
    )
    args = parser.parse_args(argv)

    try:
        entries = load_allowlist(args.allowlist)
        high, severities, scan_errors = bandit_findings(load_json(args.bandit, "bandit"))
        vulns, audited, unaudited = audit_findings(load_json(args.pip_audit, "pip-audit"))
    except ReportError as exc:
        print(f"security: {exc}", file=sys.stderr)
        return 2

    used: set[Entry] = set()
    unexplained = []
    print("== bandit (ferry/): severity HIGH fails ==")
    counts = ", ".join(f"{severities[s]} {s.lower()}" for s in ("HIGH", "MEDIUM", "LOW"))
    print(f"   issues: {counts}")
    for error in scan_errors:
        print(f"   NOT SCANNED {error}")
    print("== pip-audit (installed dependencies, PyPI): any vulnerability fails ==")
    print(f"   dependencies audited: {audited}, not audited: {len(unaudited)}")
    for finding in [*high, *vulns]:
        entry = next((e for e in entries if e.explains(finding)), None)
        if entry is None:
            unexplained.append(finding)
            label = "FINDING  "
        else:
            used.add(entry)
            label = "explained"
        aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
        print(f"   {label} {finding.tool} {finding.id}{aliases} {finding.where}: {finding.text}")
        if entry is not None:
            print(f"             reason: {entry.reason}")
    if unaudited:
        # pip-audit exits 0 and says "No known vulnerabilities found" even when it audited nothing.
        print(f"   NOT AUDITED ({len(unaudited)}): no vulnerability data was had for these")
        print("   (pip-audit's PyPI service did not answer for them); pip-audit's reasons:")
        for reason in unaudited[:10]:
            print(f"     - {reason}")
        if len(unaudited) > 10:
            print(f"     - ... and {len(unaudited) - 10} more")
    for entry in entries:
        if entry not in used:
            print(f"   note: allow-list entry {entry.describe()} matches nothing; remove it")

    failed_audit = bool(unaudited) and args.require_audit
    verdict = "FAILED" if unexplained or failed_audit or scan_errors else "passed"
    print(
        f"security: {verdict}: {len(unexplained)} unexplained finding(s), "
        f"{len(high) + len(vulns) - len(unexplained)} explained, "
        f"{audited} dependencies audited, {len(unaudited)} not audited"
        + (" (--require-audit)" if failed_audit else "")
    )
    if unaudited and not audited:
        print("security: WARNING: no dependency was audited; only bandit's verdict counts")
    return 1 if verdict == "FAILED" else 0


if __name__ == "__main__":
    sys.exit(main())
