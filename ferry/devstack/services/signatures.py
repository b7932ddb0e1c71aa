"""The local clamd's signature database as one versioned container, `daily.cud`.

clamd tells which signature database it scans with (`VERSION`:
`ClamAV 1.4.6/<version>/<build time>`) only for a container whose name starts
with `daily.`: a CVD file (signed by Cisco Talos), a CLD (freshclam's
incremental copy) or a CUD, the same container unsigned (what `sigtool
--unsigned` builds). The local stack cannot download the official database, so
it packs its own test signatures into a CUD:

- a 512-byte header, padded with spaces,
  `ClamAV-VDB:<time>:<version>:<signatures>:<level>:<md5>:<dsig>:<builder>:<stime>`,
  where the MD5 is of the archive that follows;
- a gzipped tar of `daily.info` (the same header line, then `name:size:sha256` of
  every database file) and the database files themselves (`.ndb`, `.hdb`).

The version goes up by one whenever the signatures change, and stays across
restarts while they do not, so a verdict recorded under a version means the same
signatures after `ferry stack up`. `add_signature` adds the MD5 signature of some
bytes (a file that was clean yesterday and is "known malware" today) and
`reload` makes clamd load the new container without a restart, as freshclam's
`NotifyClamd` does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CONTAINER = "daily.cud"
# The functionality level the signatures need: plain hash and body signatures are
# older than every engine that reads a CUD.
LEVEL = 90
BUILDER = "ferry-stack"
ADDED = "ferry-added.hdb"
_STATE = "version"
# Body and hash signatures only. A logical one (`.ldb`) may match an image's fuzzy hash,
# which the stack's clamd does not compute (clamd.py: `ScanImageFuzzyHash no`).
SOURCES = (".ndb", ".hdb")


@dataclass(frozen=True)
class Packed:
    """What `pack` wrote: the container's version and how many signatures it holds."""

    version: int
    signatures: int
    changed: bool


def pack(sources: Path, database: Path, now: float | None = None) -> Packed:
    """Pack the database files of `sources` into `database/daily.cud`.

    The version is kept in `sources/version` with a digest of what it was given
    for; it goes up by one (from 1) only when the files differ from that digest.
    The container is built now (its build time is `now`) either way. Anything else
    in `database` is removed, so clamd loads the container alone.
    """
    files = {
        path.name: path.read_bytes()
        for path in sorted(sources.iterdir())
        if path.is_file() and path.suffix in SOURCES
    }
    digest = hashlib.sha256(
        b"".join(name.encode() + b"\0" + data + b"\0" for name, data in files.items())
    ).hexdigest()
    state = sources / _STATE
    version, known = 0, ""
    if state.exists():
        saved, _, known = state.read_text().strip().partition(" ")
        version = int(saved)
    changed = known != digest
    if changed:
        version += 1
        state.write_text(f"{version} {digest}\n")
    signatures = sum(
        1 for data in files.values() for line in data.decode().splitlines() if line.strip()
    )
    # Built now, whatever changed: as freshclam keeps the database young, so the stack's
    # clamd never reports signatures days old (the version says what they are).
    stime = int(now if now is not None else time.time())
    database.mkdir(parents=True, exist_ok=True)
    (database / CONTAINER).write_bytes(_container(files, version, signatures, stime))
    for path in database.iterdir():
        if path.name != CONTAINER and path.is_file():
            path.unlink()
    return Packed(version, signatures, changed)


def _container(files: Mapping[str, bytes], version: int, signatures: int, stime: int) -> bytes:
    built = time.strftime("%d %b %Y %H-%M %z", time.localtime(stime))

    def header(md5: str) -> str:
        return f"ClamAV-VDB:{built}:{version}:{signatures}:{LEVEL}:{md5}:-:{BUILDER}:{stime}"

    # daily.info's header is checked against the container's, all but the MD5.
    info = header("-") + "\n"
    info += "".join(f"{name}:{len(data)}:{hashlib.sha256(data).hexdigest()}\n"
                    for name, data in files.items())  # fmt: skip
    members = {"daily.info": info.encode(), **files}
    archive = io.BytesIO()
    # mtime 0 in the gzip header, members sorted: the same signatures give the same bytes.
    with gzip.GzipFile(fileobj=archive, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members.items():
                member = tarfile.TarInfo(name)
                member.size, member.mtime, member.mode = len(data), stime, 0o644
                tar.addfile(member, io.BytesIO(data))
    body = archive.getvalue()
    head = header(hashlib.md5(body, usedforsecurity=False).hexdigest()).encode()
    return head.ljust(512, b" ") + body


def add_signature(sources: Path, database: Path, name: str, data: bytes) -> Packed:
    """Add an MD5 signature named `name` for exactly `data`, and pack a new version.

    ClamAV's `.hdb` lines are `md5:size:name`; the MD5 identifies the file, it is
    no security control. Adding a signature that is already there changes nothing.
    """
    if not name or any(c in name for c in ":\n\r") or not data:
        raise ValueError("a signature needs a name without ':' and some bytes")
    line = f"{hashlib.md5(data, usedforsecurity=False).hexdigest()}:{len(data)}:{name}\n"
    added = sources / ADDED
    lines = added.read_text() if added.exists() else ""
    if line not in lines.splitlines(keepends=True):
        added.write_text(lines + line)
    return pack(sources, database)


def ask(port: int, command: str, timeout: float = 10.0) -> str:
    """One clamd command over TCP (`zVERSION`, `zRELOAD`), its answer as text."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"z{command}\0".encode())
        answer = b""
        while not answer.endswith(b"\0") and (chunk := sock.recv(4096)):
            answer += chunk
    return answer.rstrip(b"\0").decode()


def reload(port: int, version: int, timeout: float = 60.0) -> None:
    """Make clamd load its database again, and wait until it scans with `version`."""
    answer = ask(port, "RELOAD")
    if answer != "RELOADING":
        raise RuntimeError(f"clamd answered {answer!r} to RELOAD")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if f"/{version}/" in ask(port, "VERSION", timeout=5):
                return
        except OSError:
            pass  # busy reloading
        time.sleep(0.2)
    raise TimeoutError(f"clamd did not load signature version {version} in {timeout:.0f} s")
