"""ClamAV's clamd on TCP, with the test signature database the stack builds.

The signatures are packed into one versioned container (`signatures.py`), so
clamd's `VERSION` names a signature version, as it does with freshclam's daily
database, and `add_test_signature` can change it while clamd runs.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from ferry.devstack.services.base import (
    Context,
    Service,
)
from ferry.devstack.services.signatures import add_signature, pack, reload

# The EICAR test string, split so that no scanner flags this source file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMAV_TESTFILES = Path("/usr/share/clamav-testfiles")


class Clamd(Service):
    """clamd on TCP with a signature database built from test signatures.

    The official database cannot be downloaded on an offline machine; the
    database here holds the EICAR string and the hashes of Debian's
    clamav-testfiles. Production runs `freshclam` instead (see the README).
    """

    def __init__(self) -> None:
        super().__init__("clamd", ("clamd",))

    def missing(self) -> str | None:
        if not Path("/usr/sbin/clamd").exists() and shutil.which("clamd") is None:
            return "clamd not installed (Debian's clamav-daemon); run the set-up"
        return None

    def prepare(self, ctx: Context) -> None:
        home = ctx.data / "clamd"
        sources, database = signature_dirs(ctx)
        sources.mkdir(parents=True, exist_ok=True)
        database.mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        build_signatures(sources)
        pack(sources, database)
        (home / "clamd.conf").write_text(
            "\n".join(
                [
                    "Foreground yes",
                    "LogTime yes",
                    "LogVerbose no",
                    f"TCPSocket {ctx.port('clamd')}",
                    "TCPAddr 127.0.0.1",
                    f"DatabaseDirectory {database}",
                    f"TemporaryDirectory {home / 'tmp'}",
                    "MaxThreads 4",
                    "MaxQueue 64",
                    "ReadTimeout 300",
                    "CommandReadTimeout 30",
                    "SelfCheck 0",
                    # Scan files up to 1 GiB instead of skipping them, and report
                    # any file over a limit rather than passing it.
                    "StreamMaxLength 1100M",
                    "MaxFileSize 1100M",
                    "MaxScanSize 1100M",
                    "AlertExceedsMax yes",
                    # No image fuzzy hashes: only a logical signature's `fuzzy_img`
                    # subsignature can match one, and the stack's database holds hash and
                    # body signatures alone (signatures.SOURCES). ClamAV decodes every
                    # image to hash it: about three quarters of clamd's CPU for a photo
                    # of the upload benchmark (110 -> 27 ms for 1.2 MB of JPEG). With
                    # the official database (compose.yaml), which may hold such
                    # signatures, clamd keeps its default and hashes them.
                    "ScanImageFuzzyHash no",
                    "",
                ]
            )
        )

    def command(self, ctx: Context) -> list[str]:
        clamd = shutil.which("clamd") or "/usr/sbin/clamd"
        return [clamd, "--foreground", f"--config-file={ctx.data / 'clamd' / 'clamd.conf'}"]

    def healthy(self, ctx: Context) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", ctx.port("clamd")), timeout=2) as sock:
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {"FERRY_CLAMD_ADDRESS": self.address(ctx)}


def signature_dirs(ctx: Context) -> tuple[Path, Path]:
    """Where the stack's signatures are written, and where clamd loads them from."""
    home = ctx.data / "clamd"
    return home / "signatures", home / "db"


def add_test_signature(ctx: Context, name: str, data: bytes) -> int:
    """A signature for exactly `data` in the running clamd's database: packed as a new
    version and reloaded (clamd goes on scanning meanwhile). Returns the version."""
    sources, database = signature_dirs(ctx)
    packed = add_signature(sources, database, name, data)
    reload(ctx.port("clamd"), packed.version)
    return packed.version


def build_signatures(database: Path) -> None:
    """Write the test signature database: EICAR by content, test files by MD5."""
    (database / "ferry-eicar.ndb").write_text(f"Eicar-Test-Signature:0:*:{EICAR.hex()}\n")
    lines = []
    if CLAMAV_TESTFILES.is_dir():
        for path in sorted(CLAMAV_TESTFILES.iterdir()):
            if path.is_file():
                # ClamAV's .hdb format is keyed by MD5: a file identifier, not a security control.
                digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
                lines.append(f"{digest}:{path.stat().st_size}:ClamAV-Test-File.{path.name}")
    hdb = database / "ferry-testfiles.hdb"
    if lines:
        hdb.write_text("".join(f"{line}\n" for line in lines))
    else:
        hdb.unlink(missing_ok=True)  # clamd refuses an empty database file
