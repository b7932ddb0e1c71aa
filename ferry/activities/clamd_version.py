"""clamd's answer to `VERSION`: the engine, the signature database's version and build time.

clamd answers `ClamAV <engine>/<database version>/<database build time>`, e.g.
`ClamAV 1.4.3/27476/Mon Dec  1 09:25:02 2026`. With a database that has no daily
build it says less: `ClamAV 1.0.7/1`, or only `ClamAV 1.4.3` (a clamd that loads
loose signature files and no `daily.` container). The local stack's clamd loads its
test signatures as a versioned `daily.cud` (ferry/devstack/services/signatures.py),
so it answers in full.

The build time is C's `ctime()` of the database's build, in clamd's own time zone
and always in English, whatever the locale.
"""

# No `from __future__ import annotations`: the rescan workflow decodes `ClamdVersion`
# inside the Temporal sandbox (see ferry/activities/database/tenants.py).

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

_ANSWER = re.compile(r"ClamAV (?P<engine>[^/\s]+)(?:/(?P<version>\d+)(?:/(?P<built>.*))?)?")
_CTIME = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2})"
    r" +(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2}) +(?P<year>\d{4})"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class ClamdVersion:
    """What clamd says of itself: its engine, and which signature database it scans with."""

    engine: str
    signature_version: int | None = None
    built_at: datetime | None = None  # aware

    def age_seconds(self, now: datetime) -> float | None:
        """How old the signature database is at `now` (aware); None if its build is unknown."""
        if self.built_at is None:
            return None
        return (now - self.built_at).total_seconds()


def parse_clamd_version(answer: str, zone: tzinfo | None = None) -> ClamdVersion:
    """Parse clamd's `VERSION` answer; its build time is read in `zone` (None: this host's).

    An answer that is not ClamAV's raises `ValueError`; a build time that does not
    read as `ctime()` is left unknown rather than guessed.
    """
    text = answer.strip().rstrip("\x00").strip()
    match = _ANSWER.fullmatch(text)
    if match is None:
        raise ValueError(f"not clamd's VERSION answer: {answer!r}")
    version = match["version"]
    return ClamdVersion(
        engine=match["engine"],
        signature_version=int(version) if version is not None else None,
        built_at=_ctime(match["built"], zone) if match["built"] else None,
    )


def _ctime(text: str, zone: tzinfo | None) -> datetime | None:
    match = _CTIME.fullmatch(text.strip())
    if match is None or match["month"] not in _MONTHS:
        return None
    try:
        naive = datetime(
            int(match["year"]),
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
        )
    except ValueError:  # Feb 30 and the like
        return None
    return naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()
