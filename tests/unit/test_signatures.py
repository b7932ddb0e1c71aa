"""The test signature database the local clamd loads (`build_signatures`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from ferry.devstack.services import EICAR, build_signatures, clamd, signatures

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


# --- the versioned container clamd loads (signatures.py) -----------------------------


def _unpack(container: Path) -> tuple[list[str], dict[str, bytes]]:
    """The header's fields and the archive's members, read as clamd reads them."""
    import gzip
    import io
    import tarfile

    raw = container.read_bytes()
    header, body = raw[:512].decode().rstrip(" "), raw[512:]
    fields = header.split(":")
    assert fields[5] == hashlib.md5(body).hexdigest()  # the archive's MD5
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    return fields, members


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    sources, database = tmp_path / "signatures", tmp_path / "db"
    sources.mkdir()
    build_signatures(sources)
    return sources, database


def test_the_container_holds_the_signatures_and_an_info_that_vouches_for_each(
    tmp_path: Path,
) -> None:
    sources, database = _sources(tmp_path)
    packed = signatures.pack(sources, database, now=1_764_000_000)
    assert (packed.version, packed.changed) == (1, True)
    assert [p.name for p in database.iterdir()] == ["daily.cud"]  # clamd loads it alone
    fields, members = _unpack(database / "daily.cud")
    # ClamAV-VDB:time:version:signatures:level:md5:dsig:builder:stime
    assert fields[0] == "ClamAV-VDB"
    assert (fields[2], fields[3], fields[8]) == ("1", str(packed.signatures), "1764000000")
    assert next(iter(members)) == "daily.info"  # read first: it vouches for the others
    info = members.pop("daily.info").decode().splitlines()
    # The info's header is the container's but for the MD5 (clamd compares the rest).
    info_fields = info[0].split(":")
    assert info_fields[:5] + info_fields[6:] == fields[:5] + fields[6:]
    listed = {name: (int(size), sha) for name, size, sha in (line.split(":") for line in info[1:])}
    assert listed == {
        name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in members.items()
    }
    assert members["ferry-eicar.ndb"] == (sources / "ferry-eicar.ndb").read_bytes()


def test_the_version_goes_up_only_when_the_signatures_change(tmp_path: Path) -> None:
    sources, database = _sources(tmp_path)
    assert signatures.pack(sources, database).version == 1
    again = signatures.pack(sources, database)  # a restart of the stack
    assert (again.version, again.changed) == (1, False)
    added = signatures.add_signature(sources, database, "Ferry-Test-Late", b"clean on Monday")
    assert (added.version, added.changed, added.signatures) == (2, True, again.signatures + 1)
    line = f"{hashlib.md5(b'clean on Monday').hexdigest()}:15:Ferry-Test-Late"
    assert (sources / "ferry-added.hdb").read_text() == line + "\n"
    _, members = _unpack(database / "daily.cud")
    assert members["ferry-added.hdb"].decode() == line + "\n"
    same = signatures.add_signature(sources, database, "Ferry-Test-Late", b"clean on Monday")
    assert (same.version, same.changed) == (2, False)


def test_a_signature_needs_a_name_clamd_can_read_and_some_bytes(tmp_path: Path) -> None:
    sources, database = _sources(tmp_path)
    for name, data in (("", b"x"), ("a:b", b"x"), ("a\nb", b"x"), ("Name", b"")):
        with pytest.raises(ValueError):
            signatures.add_signature(sources, database, name, data)
