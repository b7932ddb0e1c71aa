"""clamd's VERSION answer, parsed: engine, signature database version, build time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ferry.activities.clamd_version import ClamdVersion, parse_clamd_version


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "ClamAV 1.4.3/27476/Mon Dec  1 09:25:02 2026",
            ClamdVersion("1.4.3", 27476, datetime(2026, 12, 1, 9, 25, 2, tzinfo=UTC)),
        ),
        (
            "ClamAV 0.103.8/26827/Wed Feb 22 08:22:04 2023\n",
            ClamdVersion("0.103.8", 26827, datetime(2023, 2, 22, 8, 22, 4, tzinfo=UTC)),
        ),
        # A `z`-prefixed command is answered with a NUL at the end.
        (
            "ClamAV 1.4.6/27830/Sun Nov 16 23:59:59 2025\x00",
            ClamdVersion("1.4.6", 27830, datetime(2025, 11, 16, 23, 59, 59, tzinfo=UTC)),
        ),
        # A database with no daily build: a version and no date, or the engine alone.
        ("ClamAV 1.0.7/1", ClamdVersion("1.0.7", 1, None)),
        ("ClamAV 1.4.3", ClamdVersion("1.4.3", None, None)),
        ("ClamAV 1.4.6\n", ClamdVersion("1.4.6", None, None)),
        # A build time that does not read as ctime() is left unknown, not guessed.
        ("ClamAV 1.4.3/27476/yesterday", ClamdVersion("1.4.3", 27476, None)),
        ("ClamAV 1.4.3/27476/Mon Feb 30 09:25:02 2026", ClamdVersion("1.4.3", 27476, None)),
    ],
)
def test_answers_as_clamd_gives_them(answer: str, expected: ClamdVersion) -> None:
    assert parse_clamd_version(answer, zone=UTC) == expected


@pytest.mark.parametrize("answer", ["", "UNKNOWN COMMAND", "PONG", "1.4.3/27476", "ClamAV"])
def test_an_answer_that_is_not_clamds_is_refused(answer: str) -> None:
    with pytest.raises(ValueError, match="not clamd's VERSION answer"):
        parse_clamd_version(answer)


def test_the_build_time_is_read_in_the_zone_given() -> None:
    cet = timezone(timedelta(hours=1))
    parsed = parse_clamd_version("ClamAV 1.4.3/27476/Mon Dec  1 09:25:02 2026", zone=cet)
    assert parsed.built_at == datetime(2026, 12, 1, 8, 25, 2, tzinfo=UTC)


def test_without_a_zone_the_build_time_is_this_hosts_local_time_as_ctime_writes_it() -> None:
    built = int(time.time()) - 3 * 86400
    parsed = parse_clamd_version(f"ClamAV 1.4.3/27476/{time.ctime(built)}")
    assert parsed.built_at is not None and parsed.built_at.tzinfo is not None
    assert parsed.built_at.timestamp() == built


def test_the_age_is_from_the_build_time() -> None:
    parsed = parse_clamd_version("ClamAV 1.4.3/27476/Mon Dec  1 09:25:02 2026", zone=UTC)
    now = datetime(2026, 12, 2, 10, 25, 2, tzinfo=UTC)
    assert parsed.age_seconds(now) == 86400 + 3600
    assert parse_clamd_version("ClamAV 1.4.3").age_seconds(now) is None
