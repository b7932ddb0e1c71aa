"""Key and bucket validation, and the local filesystem storage provider."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferry.storage.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    validate_bucket,
    validate_key,
)
from ferry.storage.local import LocalStorage

FILE_ID = "0b0f2a52-8a5e-4d4c-9a4e-2f1d3c4b5a69"
UPLOAD_KEY = f"tenants/acme/uploads/{FILE_ID}/My File (1).png"
BUCKET = "ferry-ingest"


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(storage: LocalStorage, bucket: str, key: str, chunk_size: int = 1024) -> bytes:
    return b"".join([chunk async for chunk in storage.read(bucket, key, chunk_size)])


def files_under(root: Path) -> list[Path]:
    """Every regular file below root, relative to it, hidden ones included."""
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def storage(root: Path) -> LocalStorage:
    return LocalStorage(root)


# --- validate_key ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        UPLOAD_KEY,
        f"files/{FILE_ID}/original",
        f"files/{FILE_ID}/thumbnails/small.webp",
        f"quarantine/acme/{FILE_ID}",
        "résumé — 2024 €.pdf",
        "a..b/c...d",
        "...",
        ".hidden",
        "with space/and 'quotes' & $ymbols!.txt",
        "k" * 1024,
    ],
)
def test_well_formed_keys_are_accepted_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        # climbing out
        "..",
        "../etc/passwd",
        "tenants/../../etc/passwd",
        "tenants/acme/..",
        "a/./b",
        ".",
        # absolute
        "/etc/passwd",
        "/",
        "//server/share",
        # NUL and other control characters
        "a\x00b",
        "file.png\x00.txt",
        "a\nb",
        "a\rb",
        "a\tb",
        "a\x1bb",
        "a\x1fb",
        "a\x7fb",
        # backslashes (Windows separators)
        "a\\b",
        "..\\..\\windows\\system32",
        "\\etc\\passwd",
        # empty segments
        "a//b",
        "a/",
        "tenants/acme/uploads//x.png",
        # length
        "",
        "k" * 1025,
    ],
)
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_invalid_key_is_a_value_error() -> None:
    # Callers that catch ValueError (e.g. request validation) also catch it.
    assert issubclass(InvalidKey, ValueError)


# --- validate_bucket -----------------------------------------------------------


@pytest.mark.parametrize(
    "bucket", ["ferry-acme", "ferry-quarantine", "abc", "a.b.c", "0ab", "b" * 63]
)
def test_well_formed_buckets_are_accepted(bucket: str) -> None:
    assert validate_bucket(bucket) == bucket


@pytest.mark.parametrize(
    "bucket",
    [
        "",
        "ab",
        "b" * 64,
        "Ferry-Acme",
        "-ferry",
        "ferry-",
        ".ferry",
        "ferry..acme",
        "..",
        "../ferry",
        "ferry/acme",
        "ferry\\acme",
        "ferry acme",
        "ferry\x00acme",
        "ferry_acme",
    ],
)
def test_malformed_buckets_are_refused(bucket: str) -> None:
    with pytest.raises(InvalidKey):
        validate_bucket(bucket)


# --- LocalStorage ----------------------------------------------------------------


async def test_write_then_read_round_trips_streamed_chunks(
    storage: LocalStorage, root: Path
) -> None:
    info = await storage.write(BUCKET, UPLOAD_KEY, stream(b"hello ", b"", b"wor", b"ld!"))

    assert info == ObjectInfo(BUCKET, UPLOAD_KEY, 12)
    assert (root / BUCKET / UPLOAD_KEY).read_bytes() == b"hello world!"
    chunks = [chunk async for chunk in storage.read(BUCKET, UPLOAD_KEY, chunk_size=5)]
    assert chunks == [b"hello", b" worl", b"d!"]


async def test_large_object_round_trips_with_default_chunk_size(storage: LocalStorage) -> None:
    data = random.Random(7).randbytes(3 * 1024 * 1024 + 17)
    parts = [data[i : i + 65536] for i in range(0, len(data), 65536)]

    info = await storage.write(BUCKET, "big/blob.bin", stream(*parts))

    assert info.size == len(data)
    chunks = [chunk async for chunk in storage.read(BUCKET, "big/blob.bin")]
    assert b"".join(chunks) == data
    assert len(chunks) == 4  # three full 1 MiB chunks and the rest


async def test_writing_the_same_bytes_twice_succeeds_and_leaves_one_object(
    storage: LocalStorage, root: Path
) -> None:
    first = await storage.write(BUCKET, UPLOAD_KEY, stream(b"same ", b"bytes"))
    second = await storage.write(BUCKET, UPLOAD_KEY, stream(b"same bytes"))

    assert first == second == ObjectInfo(BUCKET, UPLOAD_KEY, 10)
    assert files_under(root) == [Path(BUCKET) / UPLOAD_KEY]
    assert await read_all(storage, BUCKET, UPLOAD_KEY) == b"same bytes"


async def test_a_second_write_replaces_the_content(storage: LocalStorage) -> None:
    await storage.write(BUCKET, "k", stream(b"a much longer first version"))
    await storage.write(BUCKET, "k", stream(b"short"))

    assert await read_all(storage, BUCKET, "k") == b"short"
    assert await storage.head(BUCKET, "k") == ObjectInfo(BUCKET, "k", 5)


async def test_no_partial_files_remain_after_a_write(storage: LocalStorage, root: Path) -> None:
    await storage.write(BUCKET, UPLOAD_KEY, stream(b"x" * 10, b"y" * 10))
    await storage.write(BUCKET, f"files/{FILE_ID}/original", stream(b"z"))

    assert not [path for path in root.rglob("*") if "partial" in path.name]
    assert files_under(root) == sorted(
        [Path(BUCKET) / UPLOAD_KEY, Path(BUCKET) / f"files/{FILE_ID}/original"]
    )


async def test_a_failed_write_leaves_neither_object_nor_partial_file(
    storage: LocalStorage, root: Path
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"first chunk"
        raise ConnectionError("upstream went away")

    with pytest.raises(ConnectionError):
        await storage.write(BUCKET, UPLOAD_KEY, broken())

    assert files_under(root) == []
    assert await storage.head(BUCKET, UPLOAD_KEY) is None


async def test_a_failed_overwrite_keeps_the_previous_object(storage: LocalStorage) -> None:
    await storage.write(BUCKET, "k", stream(b"good"))

    async def broken() -> AsyncIterator[bytes]:
        yield b"bad"
        raise ConnectionError("upstream went away")

    with pytest.raises(ConnectionError):
        await storage.write(BUCKET, "k", broken())

    assert await read_all(storage, BUCKET, "k") == b"good"


async def test_head_of_a_missing_key_is_none(storage: LocalStorage) -> None:
    assert await storage.head(BUCKET, UPLOAD_KEY) is None
    await storage.write(BUCKET, "other", stream(b"x"))
    assert await storage.head(BUCKET, UPLOAD_KEY) is None


async def test_head_reports_size_of_an_existing_object(storage: LocalStorage) -> None:
    await storage.write(BUCKET, UPLOAD_KEY, stream(b"12345", b"678"))
    assert await storage.head(BUCKET, UPLOAD_KEY) == ObjectInfo(BUCKET, UPLOAD_KEY, 8)


async def test_empty_object_round_trips(storage: LocalStorage) -> None:
    info = await storage.write(BUCKET, "empty", stream())
    assert info.size == 0
    assert await storage.head(BUCKET, "empty") == ObjectInfo(BUCKET, "empty", 0)
    assert await read_all(storage, BUCKET, "empty") == b""


async def test_delete_of_a_missing_key_succeeds(storage: LocalStorage) -> None:
    await storage.delete(BUCKET, UPLOAD_KEY)  # bucket does not even exist
    await storage.write(BUCKET, "other", stream(b"x"))
    await storage.delete(BUCKET, UPLOAD_KEY)
    assert await storage.head(BUCKET, "other") is not None


async def test_delete_removes_the_object_and_is_repeatable(storage: LocalStorage) -> None:
    await storage.write(BUCKET, UPLOAD_KEY, stream(b"x"))
    await storage.delete(BUCKET, UPLOAD_KEY)
    await storage.delete(BUCKET, UPLOAD_KEY)
    assert await storage.head(BUCKET, UPLOAD_KEY) is None


async def test_reading_a_missing_object_raises_object_not_found(storage: LocalStorage) -> None:
    with pytest.raises(ObjectNotFound):
        await read_all(storage, BUCKET, UPLOAD_KEY)


async def test_copy_then_delete_source(storage: LocalStorage, root: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    await storage.write(BUCKET, UPLOAD_KEY, stream(data))
    dst_key = f"files/{FILE_ID}/original"

    info = await storage.copy(BUCKET, UPLOAD_KEY, "ferry-acme", dst_key)
    assert info == ObjectInfo("ferry-acme", dst_key, len(data))
    assert await read_all(storage, "ferry-acme", dst_key) == data
    assert await read_all(storage, BUCKET, UPLOAD_KEY) == data  # copy leaves the source

    await storage.delete(BUCKET, UPLOAD_KEY)
    assert await storage.head(BUCKET, UPLOAD_KEY) is None
    assert await storage.head("ferry-acme", dst_key) == info
    assert await read_all(storage, "ferry-acme", dst_key) == data
    assert files_under(root) == [Path("ferry-acme") / dst_key]


async def test_copy_twice_is_idempotent(storage: LocalStorage, root: Path) -> None:
    await storage.write(BUCKET, "src", stream(b"payload"))
    first = await storage.copy(BUCKET, "src", "ferry-acme", "dst")
    second = await storage.copy(BUCKET, "src", "ferry-acme", "dst")
    assert first == second == ObjectInfo("ferry-acme", "dst", 7)
    assert files_under(root) == sorted([Path(BUCKET) / "src", Path("ferry-acme") / "dst"])


async def test_copy_of_a_missing_source_raises_and_creates_nothing(
    storage: LocalStorage, root: Path
) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.copy(BUCKET, "missing", "ferry-acme", "dst")
    assert not root.exists() or files_under(root) == []
    assert not (root / "ferry-acme").exists()


async def test_create_bucket_makes_the_directory_and_is_repeatable(
    storage: LocalStorage, root: Path
) -> None:
    await storage.create_bucket("ferry-acme")
    await storage.create_bucket("ferry-acme")
    assert (root / "ferry-acme").is_dir()
    with pytest.raises(InvalidKey):
        await storage.create_bucket("../escape")
    assert sorted(path.name for path in root.iterdir()) == ["ferry-acme"]


ESCAPING_KEYS = ["../ferry-other/secret", "../../outside.txt", "/etc/passwd", "a/../../b"]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
async def test_an_escaping_key_is_refused_before_touching_the_disk(
    tmp_path: Path, storage: LocalStorage, root: Path, key: str
) -> None:
    before = sorted(tmp_path.rglob("*"))

    with pytest.raises(InvalidKey):
        await storage.write(BUCKET, key, stream(b"evil"))
    with pytest.raises(InvalidKey):
        await storage.head(BUCKET, key)
    with pytest.raises(InvalidKey):
        await storage.delete(BUCKET, key)
    with pytest.raises(InvalidKey):
        await read_all(storage, BUCKET, key)
    with pytest.raises(InvalidKey):
        await storage.copy(BUCKET, key, BUCKET, "dst")
    with pytest.raises(InvalidKey):
        await storage.copy(BUCKET, "src", BUCKET, key)

    assert sorted(tmp_path.rglob("*")) == before
    assert not root.exists()


@pytest.mark.parametrize("bucket", ["..", "../x", "a/b", "Upper"])
async def test_an_invalid_bucket_is_refused_before_touching_the_disk(
    tmp_path: Path, storage: LocalStorage, bucket: str
) -> None:
    with pytest.raises(InvalidKey):
        await storage.write(bucket, "k", stream(b"evil"))
    with pytest.raises(InvalidKey):
        await storage.head(bucket, "k")
    assert list(tmp_path.iterdir()) == []


async def test_a_symlink_out_of_the_bucket_is_not_followed(
    tmp_path: Path, storage: LocalStorage, root: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / BUCKET).mkdir(parents=True)
    os.symlink(outside, root / BUCKET / "link")

    with pytest.raises((InvalidKey, ObjectNotFound)):
        await storage.write(BUCKET, "link/stolen.txt", stream(b"evil"))
    assert list(outside.iterdir()) == []


async def test_head_of_a_key_prefix_is_none(storage: LocalStorage) -> None:
    await storage.write(BUCKET, UPLOAD_KEY, stream(b"x"))
    assert await storage.head(BUCKET, f"tenants/acme/uploads/{FILE_ID}") is None


async def test_reading_a_key_prefix_raises_object_not_found(storage: LocalStorage) -> None:
    await storage.write(BUCKET, UPLOAD_KEY, stream(b"x"))
    with pytest.raises(ObjectNotFound):
        await read_all(storage, BUCKET, f"tenants/acme/uploads/{FILE_ID}")
