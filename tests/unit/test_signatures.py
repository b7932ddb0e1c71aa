"""The test signature database the local clamd loads (`build_signatures`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from ferry.devstack.services import EICAR, build_signatures, clamd

# md5 and sha256 of the 68-byte EICAR test file, as published by eicar.org.
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
HDB_LINE = re.compile(r"^(?P<md5>[0-9a-f]{32}):(?P<size>[0-9]+):(?P<name>[^:\s]+)$")
REAL_TESTFILES = Path("/usr/share/clamav-testfiles")


def parse_hdb(path: Path) -> list[tuple[str, int, str]]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    rows = []
    for line in text.splitlines():
        match = HDB_LINE.match(line)
        assert match, f"not an md5:size:name line: {line!r}"
        rows.append((match["md5"], int(match["size"]), match["name"]))
    return rows


def test_eicar_constant_is_the_standard_test_string() -> None:
    assert len(EICAR) == 68
    assert hashlib.md5(EICAR).hexdigest() == EICAR_MD5
    assert hashlib.sha256(EICAR).hexdigest() == EICAR_SHA256


def test_ndb_holds_the_eicar_string_as_hex(tmp_path: Path) -> None:
    build_signatures(tmp_path)

    ndb = (tmp_path / "ferry-eicar.ndb").read_text()
    assert ndb.endswith("\n")
    lines = ndb.splitlines()
    assert len(lines) == 1
    # ClamAV .ndb: MalwareName:TargetType:Offset:HexSignature
    name, target, offset, signature = lines[0].split(":")
    assert name == "Eicar-Test-Signature"
    assert target == "0"  # any file
    assert offset == "*"  # anywhere in it
    assert re.fullmatch(r"[0-9a-f]+", signature)
    assert bytes.fromhex(signature) == EICAR


def test_only_the_two_database_files_are_written(tmp_path: Path) -> None:
    build_signatures(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "ferry-eicar.ndb",
        "ferry-testfiles.hdb",
    ]


def test_rebuilding_gives_the_same_database(tmp_path: Path) -> None:
    build_signatures(tmp_path)
    first = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    build_signatures(tmp_path)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == first


def test_hdb_matches_the_real_clamav_testfiles(tmp_path: Path) -> None:
    build_signatures(tmp_path)
    rows = parse_hdb(tmp_path / "ferry-testfiles.hdb")

    if not REAL_TESTFILES.is_dir():
        assert rows == []
        return
    files = sorted(path for path in REAL_TESTFILES.iterdir() if path.is_file())
    assert len(rows) == len(files)
    by_name = {name: (md5, size) for md5, size, name in rows}
    assert len(by_name) == len(rows)
    for path in files:
        data = path.read_bytes()
        md5, size = by_name[f"ClamAV-Test-File.{path.name}"]
        assert md5 == hashlib.md5(data).hexdigest()
        assert size == len(data) == path.stat().st_size


def test_hdb_lists_every_regular_file_of_the_testfiles_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    testfiles = tmp_path / "testfiles"
    testfiles.mkdir()
    (testfiles / "clam.exe").write_bytes(b"MZ" + bytes(range(256)))
    (testfiles / "clam.zip").write_bytes(b"PK\x03\x04zipped")
    (testfiles / "empty.bin").write_bytes(b"")
    (testfiles / "subdir").mkdir()
    (testfiles / "subdir" / "nested.exe").write_bytes(b"not listed")
    monkeypatch.setattr(clamd, "CLAMAV_TESTFILES", testfiles)
    database = tmp_path / "db"
    database.mkdir()

    build_signatures(database)

    rows = parse_hdb(database / "ferry-testfiles.hdb")
    assert rows == [
        (hashlib.md5(data).hexdigest(), len(data), f"ClamAV-Test-File.{name}")
        for name, data in [
            ("clam.exe", b"MZ" + bytes(range(256))),
            ("clam.zip", b"PK\x03\x04zipped"),
            ("empty.bin", b""),
        ]
    ]


def test_without_a_testfiles_dir_eicar_is_still_there_and_no_test_file_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clamd, "CLAMAV_TESTFILES", tmp_path / "does-not-exist")
    database = tmp_path / "db"
    database.mkdir()
    build_signatures(database)
    assert not (database / "ferry-testfiles.hdb").exists()
    signature = (database / "ferry-eicar.ndb").read_text().strip().split(":")[3]
    assert bytes.fromhex(signature) == EICAR


def test_no_empty_hdb_is_written_without_testfiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clamd, "CLAMAV_TESTFILES", tmp_path / "does-not-exist")
    database = tmp_path / "db"
    database.mkdir()
    build_signatures(database)
    hdb = database / "ferry-testfiles.hdb"
    assert not hdb.exists() or hdb.read_text().strip() != ""
