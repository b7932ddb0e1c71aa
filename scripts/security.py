#!/usr/bin/env python3
"""Judge the reports of bandit and osv-scanner against security/allowlist.toml (`make security`).

Fails (exit 1) on what the allow-list does not explain:
- bandit: an issue of severity HIGH in ferry/ (bandit has no "critical"), or a file not scanned;
- osv-scanner: a known vulnerability of an installed dependency of severity MEDIUM or above, or
  of UNKNOWN severity (many PyPA advisories carry no score: someone must read those);
- a dependency of the requirements file that osv-scanner did not audit;
- an allow-list entry whose review date has passed (explained or not, it must be looked at again).
LOW vulnerabilities are listed and pass. Exit 2: a report, the requirements file or the advisory
database is missing or unreadable, osv-scanner failed (exit code other than 0 or 1: with a broken
database it still writes a report, one without vulnerabilities), or the allow-list is malformed.

    python scripts/security.py --bandit bandit.json --osv-scanner osv-scanner.json \
        --osv-exit-code N --requirements requirements.txt --vulndb ../shared/vulndb \
        --allowlist security/allowlist.toml
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tomllib
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # without packaging, every fixed version of an advisory is listed
    Version = None  # type: ignore[assignment,misc]

REPO = Path(__file__).resolve().parent.parent
LEVELS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
FAILING = {"MEDIUM", "HIGH", "CRITICAL", "UNKNOWN"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#]+)")


class ReportError(Exception):
    """A report, the database or the allow-list cannot be used."""


@dataclass(frozen=True)
class Finding:
    tool: str  # "bandit" or "osv"
    id: str
    where: str  # file:line for bandit, the package for osv
    text: str
    aliases: tuple[str, ...] = ()
    package: str = ""
    file: str = ""
    severity: str = "HIGH"


@dataclass(frozen=True)
class Entry:
    kind: str  # "bandit" or "vulnerability"
    id: str
    reason: str
    file: str = ""
    package: str = ""
    review: dt.date | None = None

    def explains(self, finding: Finding) -> bool:
        if self.kind == "bandit":
            return finding.tool == "bandit" and (finding.id, finding.file) == (self.id, self.file)
        if finding.tool != "osv" or self.id not in (finding.id, *finding.aliases):
            return False
        return not self.package or canonical(self.package) == finding.package

    def describe(self) -> str:
        return f"{self.id} in {self.file or self.package or 'any package'}"


@dataclass(frozen=True)
class Snapshot:
    date: str  # YYYY-MM-DD
    source: str  # where the date comes from
    advisories: int
    newest_modified: str
    # advisory package names osv-scanner cannot match (it matches normalised names only)
    unmatchable: frozenset[str]


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


def review_date(raw: Any, where: str) -> dt.date | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        return raw
    try:
        return dt.date.fromisoformat(str(raw).strip())
    except ValueError as exc:
        raise ReportError(f"{where}: review {raw!r} is not a date YYYY-MM-DD") from exc


def load_allowlist(path: Path) -> list[Entry]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReportError(f"allow-list {path}: {exc}") from exc
    unknown = set(data) - {"bandit", "vulnerability"}
    if unknown:
        raise ReportError(f"allow-list {path}: unknown sections {sorted(unknown)}")
    entries = []
    needed = {"bandit": ("id", "file", "reason"), "vulnerability": ("id", "reason", "review")}
    for kind, needs in needed.items():
        for number, raw in enumerate(data.get(kind, []), start=1):
            where = f"allow-list {path}: [[{kind}]] #{number}"
            missing = [key for key in needs if not str(raw.get(key, "")).strip()]
            if missing:
                raise ReportError(f"{where} lacks {missing}")
            entries.append(
                Entry(
                    kind=kind,
                    id=str(raw["id"]).strip(),
                    reason=" ".join(str(raw["reason"]).split()),
                    file=relative(str(raw.get("file", ""))) if kind == "bandit" else "",
                    package=str(raw.get("package", "")).strip() if kind != "bandit" else "",
                    review=review_date(raw.get("review"), where),
                )
            )
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


# ---- the dependencies and the advisory database -------------------------------------------


def load_requirements(path: Path) -> list[tuple[str, str, str]]:
    """(line, normalised name, version) per requirement; version "" when it is not pinned."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ReportError(f"no readable requirements file at {path}: {exc}") from exc
    requirements = []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith(("#", "-")):
            continue
        match = PIN.match(line)
        if match:
            requirements.append((line, canonical(match[1]), match[2]))
        else:
            requirements.append((line, canonical(re.split(r"[\s@;<>=!~\[]", line)[0]), ""))
    if not requirements:
        raise ReportError(f"requirements file {path} lists no package")
    return requirements


def load_snapshot(vulndb: Path, now: dt.datetime) -> Snapshot:
    """The date and size of the offline database, from its README and its advisories."""
    archive = vulndb / "osv-scanner" / "PyPI" / "all.zip"
    newest = ""
    names: set[str] = set()
    count = 0
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                if not member.endswith(".json"):
                    continue
                advisory = json.loads(zipped.read(member))
                count += 1
                modified = str(advisory.get("modified", ""))
                # A few advisories carry a modified date in the future; they say nothing of when
                # the snapshot was taken.
                if newest < modified <= now.strftime("%Y-%m-%dT%H:%M:%SZ"):
                    newest = modified
                for affected in advisory.get("affected") or []:
                    names.add(str((affected.get("package") or {}).get("name", "")))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ReportError(f"no readable advisory database at {archive}: {exc}") from exc
    if not count:
        raise ReportError(f"the advisory database {archive} holds no advisory")
    try:
        readme = (vulndb / "README.md").read_text()
    except OSError:
        readme = ""
    stated = re.search(r"snapshot\s+of\s+(\d{4}-\d{2}-\d{2})", readme)
    if stated:
        date, source = stated[1], f"{vulndb / 'README.md'}"
    elif newest:
        date, source = newest[:10], "its newest advisory"
    else:
        raise ReportError(f"cannot tell the date of the advisory database in {vulndb}")
    return Snapshot(
        date=date,
        source=source,
        advisories=count,
        newest_modified=newest[:10],
        unmatchable=frozenset(name for name in names if name and canonical(name) != name),
    )


def score_level(score: float) -> str:
    if score >= 9:
        return "CRITICAL"
    if score >= 7:
        return "HIGH"
    return "MEDIUM" if score >= 4 else "LOW"


def cvss_scores(vuln: dict[str, Any]) -> list[float]:
    """Base scores of the advisory's CVSS vectors, when the `cvss` package is installed."""
    try:
        import cvss  # optional: not a dependency of Ferry
    except ImportError:
        return []
    scores = []
    for severity in vuln.get("severity") or []:
        vector = str(severity.get("score", ""))
        try:
            if severity.get("type") == "CVSS_V3":
                scores.append(float(cvss.CVSS3(vector).scores()[0]))
            elif severity.get("type") == "CVSS_V4":
                scores.append(float(cvss.CVSS4(vector).base_score))
        except Exception:  # a malformed vector is no score, not a crash
            continue
    return scores


def labelled_severities(vuln: dict[str, Any]) -> list[str]:
    """Severity words an advisory may carry (GHSA style: LOW, MODERATE, HIGH, CRITICAL)."""
    places = [vuln.get("database_specific")]
    for affected in vuln.get("affected") or []:
        places += [affected.get("database_specific"), affected.get("ecosystem_specific")]
    labels = []
    for place in places:
        if isinstance(place, dict):
            word = str(place.get("severity", "")).upper().replace("MODERATE", "MEDIUM")
            if word in LEVELS:
                labels.append(word)
    return labels


def severity_of(group: dict[str, Any], vulns: list[dict[str, Any]]) -> tuple[str, str]:
    """(LOW|MEDIUM|HIGH|CRITICAL|UNKNOWN, what it is based on)."""
    try:
        score = float(str(group.get("max_severity") or "").strip())
    except ValueError:
        scores = [score for vuln in vulns for score in cvss_scores(vuln)]
        if scores:
            return score_level(max(scores)), f"CVSS {max(scores):g}"
        labels = [label for vuln in vulns for label in labelled_severities(vuln)]
        if labels:
            return max(labels, key=LEVELS.index), "the advisory's label"
        return "UNKNOWN", "the advisory gives no score"
    return score_level(score), f"CVSS {score:g}"


def fixed_versions(vulns: list[dict[str, Any]], package: str, installed: str) -> list[str]:
    """The versions that fix the ranges the installed version is in (all fixes if unsure)."""

    def inside(introduced: str, fixed: str) -> bool:
        if Version is None:
            return True
        try:
            low = Version("0") if introduced in ("", "0") else Version(introduced)
            return bool(low <= Version(installed) < Version(fixed))
        except InvalidVersion:
            return True

    every, relevant = [], []
    for vuln in vulns:
        for affected in vuln.get("affected") or []:
            if canonical(str((affected.get("package") or {}).get("name", ""))) != package:
                continue
            for span in affected.get("ranges") or []:
                if span.get("type") != "ECOSYSTEM":
                    continue
                introduced = "0"
                for event in span.get("events") or []:
                    if "introduced" in event:
                        introduced = str(event["introduced"])
                    elif "fixed" in event:
                        fixed = str(event["fixed"])
                        every.append(fixed)
                        if inside(introduced, fixed):
                            relevant.append(fixed)
    return list(dict.fromkeys(relevant or every))


def osv_findings(
    report: dict[str, Any],
) -> tuple[list[Finding], set[tuple[str, str]]]:
    """The vulnerabilities osv-scanner found, one per group of aliases, and what it scanned."""
    findings = []
    scanned = set()
    results = report.get("results")
    if not isinstance(results, list):
        raise ReportError("osv-scanner's report has no list of results")
    for result in results:
        for entry in result.get("packages") or []:
            package = entry.get("package") or {}
            name, version = canonical(str(package.get("name", ""))), str(package.get("version", ""))
            scanned.add((name, version))
            vulns = {str(v.get("id")): v for v in entry.get("vulnerabilities") or []}
            for group in entry.get("groups") or []:
                ids = [str(i) for i in group.get("ids") or []]
                members = [vulns[i] for i in ids if i in vulns]
                if not ids:
                    continue
                level, basis = severity_of(group, members)
                fixes = ", ".join(fixed_versions(members, name, version)) or "none published"
                summary = next((str(v["summary"]) for v in members if v.get("summary")), "")
                if not summary:
                    details = next((str(v["details"]) for v in members if v.get("details")), "")
                    summary = " ".join(details.split())[:120]
                aliases = [str(a) for a in group.get("aliases") or [] if str(a) != ids[0]]
                findings.append(
                    Finding(
                        tool="osv",
                        id=ids[0],
                        where=name,
                        text=f"installed {version}, fixed in {fixes}; severity {level} ({basis})"
                        + (f"; {summary}" if summary else ""),
                        aliases=tuple(dict.fromkeys(aliases)),
                        package=name,
                        severity=level,
                    )
                )
    return findings, scanned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandit", type=Path, required=True, help="bandit's JSON report")
    parser.add_argument(
        "--osv-scanner", type=Path, required=True, help="osv-scanner's JSON report (--all-packages)"
    )
    parser.add_argument(
        "--osv-exit-code", type=int, help="osv-scanner's exit code (0: none found, 1: found)"
    )
    parser.add_argument(
        "--requirements", type=Path, required=True, help="the dependencies osv-scanner read"
    )
    parser.add_argument("--vulndb", type=Path, required=True, help="the offline database")
    parser.add_argument("--allowlist", type=Path, default=REPO / "security" / "allowlist.toml")
    parser.add_argument("--today", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    today = args.today or dt.date.today()

    try:
        entries = load_allowlist(args.allowlist)
        high, severities, scan_errors = bandit_findings(load_json(args.bandit, "bandit"))
        snapshot = load_snapshot(args.vulndb, dt.datetime.now(dt.UTC))
        if args.osv_exit_code not in (None, 0, 1):
            raise ReportError(
                f"osv-scanner failed (exit code {args.osv_exit_code}; see its log next to "
                f"{args.osv_scanner}): its report cannot be trusted"
            )
        requirements = load_requirements(args.requirements)
        vulns, scanned = osv_findings(load_json(args.osv_scanner, "osv-scanner"))
        if args.osv_exit_code == 1 and not vulns:
            raise ReportError("osv-scanner exited 1 (found something) but reports nothing")
    except ReportError as exc:
        print(f"security: {exc}", file=sys.stderr)
        return 2

    scanned_names = {name for name, _ in scanned}
    unaudited: list[tuple[str, str]] = []  # (requirement, why)
    for line, name, version in requirements:
        if not version:
            unaudited.append((line, "not pinned to a version"))
        elif (name, version) not in scanned:
            why = "read another version" if name in scanned_names else "skipped it"
            unaudited.append((line, f"osv-scanner {why}"))
        for advisory_name in sorted(snapshot.unmatchable):
            if canonical(advisory_name) == name:
                why = f"advisories name it {advisory_name!r}, which osv-scanner never matches"
                unaudited.append((line, why))
    audited = len(requirements) - len({line for line, _ in unaudited})

    used: set[Entry] = set()
    unexplained = []
    explained = 0
    print("== bandit (ferry/): severity HIGH fails ==")
    counts = ", ".join(f"{severities[s]} {s.lower()}" for s in ("HIGH", "MEDIUM", "LOW"))
    print(f"   issues: {counts}")
    for error in scan_errors:
        print(f"   NOT SCANNED {error}")
    age = (today - dt.date.fromisoformat(snapshot.date)).days
    print("== osv-scanner (installed dependencies): severity MEDIUM or above, or UNKNOWN, fails ==")
    print(
        f"   database: PyPA advisories, snapshot of {snapshot.date} ({age} days old; from "
        f"{snapshot.source}), {snapshot.advisories} advisories, newest modified "
        f"{snapshot.newest_modified or '?'}"
    )
    print(f"   advisories published after {snapshot.date} are not known to this run")
    print(f"   packages audited: {audited} of {len(requirements)} in {args.requirements}")
    for line, why in unaudited:
        print(f"   NOT AUDITED {line}: {why}")
    levels = Counter(f.severity for f in vulns)
    print(
        "   vulnerabilities: "
        + ", ".join(f"{levels[s]} {s.lower()}" for s in (*reversed(LEVELS), "UNKNOWN"))
    )
    for finding in [*high, *vulns]:
        entry = next((e for e in entries if e.explains(finding)), None)
        if entry is not None:
            used.add(entry)
            explained += 1
            label = "explained"
        elif finding.tool == "bandit" or finding.severity in FAILING:
            unexplained.append(finding)
            label = "FINDING  "
        else:
            label = "low      "
        aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
        print(f"   {label} {finding.tool} {finding.id}{aliases} {finding.where}: {finding.text}")
        if entry is not None:
            review = f" (review by {entry.review})" if entry.review else ""
            print(f"             reason: {entry.reason}{review}")
    if any(f.severity == "UNKNOWN" for f in unexplained):
        print(
            "   a finding of UNKNOWN severity fails like a high one: read the advisory, then "
            "upgrade or allow-list it"
        )
    expired = [e for e in entries if e.review is not None and e.review < today]
    for entry in expired:
        print(
            f"   EXPIRED allow-list entry {entry.describe()}: its review date {entry.review} has "
            "passed; look at it again and set a new date, or remove it"
        )
    for entry in entries:
        if entry not in used:
            print(f"   note: allow-list entry {entry.describe()} matches nothing; remove it")

    failed = bool(unexplained or scan_errors or unaudited or expired)
    verdict = "FAILED" if failed else "passed"
    not_audited = len(requirements) - audited
    print(
        f"security: {verdict}: {len(unexplained)} unexplained finding(s), {explained} explained, "
        f"{len(expired)} expired allow-list entr{'y' if len(expired) == 1 else 'ies'}, "
        f"{audited} packages audited, {not_audited} not audited, advisories of {snapshot.date}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
