"""Content sniffing from leading bytes: real file headers, text, and binary."""

from __future__ import annotations

import inspect
import io
import random
import zipfile

import pytest
from PIL import Image

from ferry.media.sniff import sniff_content_type

SAMPLE = 4096  # what the fingerprint activity passes: the first 4 KiB


def image_bytes(fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (32, 24), (200, 30, 90) if mode == "RGB" else 0).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "expected"),
    [
        ("PNG", "RGB", "image/png"),
        ("PNG", "RGBA", "image/png"),
        ("JPEG", "RGB", "image/jpeg"),
        ("JPEG", "L", "image/jpeg"),
        ("GIF", "RGB", "image/gif"),
        ("WEBP", "RGB", "image/webp"),
        ("TIFF", "RGB", "image/tiff"),
    ],
)
def test_images_made_by_pillow(fmt: str, mode: str, expected: str) -> None:
    data = image_bytes(fmt, mode)
    assert sniff_content_type(data) == expected
    assert sniff_content_type(data[:SAMPLE]) == expected
    assert sniff_content_type(data[:16]) == expected


def test_gif87a_and_gif89a() -> None:
    assert sniff_content_type(b"GIF87a\x01\x00\x01\x00\x80\x00\x00") == "image/gif"
    assert sniff_content_type(b"GIF89a\x01\x00\x01\x00\x80\x00\x00") == "image/gif"


def test_big_endian_tiff() -> None:
    assert sniff_content_type(b"MM\x00*\x00\x00\x00\x08\x00\x01") == "image/tiff"


def test_minimal_pdf() -> None:
    pdf = (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
        b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )
    assert sniff_content_type(pdf) == "application/pdf"


def test_zip_made_with_zipfile() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.txt", "hello " * 100)
        archive.writestr("data/blob.bin", bytes(range(256)))
    data = buffer.getvalue()
    assert sniff_content_type(data) == "application/zip"
    assert sniff_content_type(data[:SAMPLE]) == "application/zip"


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!\n",
        "line one\r\nline two\ttabbed\n",
        "Grüße aus Köln — naïve café ✓ 日本語 🚀\n",
        '{"json": true, "n": 1}\n',
    ],
)
def test_utf8_text(text: str) -> None:
    assert sniff_content_type(text.encode("utf-8")) == "text/plain"


@pytest.mark.parametrize(
    ("char", "cut"),
    [("é", 1), ("€", 1), ("€", 2), ("🚀", 1), ("🚀", 2), ("🚀", 3)],
)
def test_multibyte_char_cut_at_end_of_sample_is_still_text(char: str, cut: int) -> None:
    encoded = char.encode("utf-8")
    text = ("ascii and ünïcödé text " * 200).encode("utf-8")
    sample = (text + encoded)[:-cut]
    with pytest.raises(UnicodeDecodeError):
        sample.decode("utf-8")  # the sample really is cut mid-character
    assert sniff_content_type(sample) == "text/plain"


def test_long_text_cut_at_the_sample_size_is_text() -> None:
    text = ("€uro " * 2000).encode("utf-8")
    sample = text[:SAMPLE]
    assert sample[-1] >= 0x80  # 4096 falls inside a multi-byte character
    assert sniff_content_type(sample) == "text/plain"


@pytest.mark.parametrize("seed", range(10))
def test_random_binary_is_octet_stream(seed: int) -> None:
    data = random.Random(seed).randbytes(SAMPLE)
    assert sniff_content_type(data) == "application/octet-stream"


@pytest.mark.parametrize(
    "data",
    [
        b"plain ascii\x00with a NUL",
        b"\x00\x00\x00\x00",
        b"h\x00e\x00l\x00l\x00o\x00",  # UTF-16-LE
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but not WEBP
        b"\xff\xfe\x00\x00invalid \xc3\x28 early",
    ],
)
def test_binary_data_is_octet_stream(data: bytes) -> None:
    assert sniff_content_type(data) == "application/octet-stream"


def test_magic_must_be_at_the_start() -> None:
    assert sniff_content_type(b"x" + image_bytes("PNG")) == "application/octet-stream"
    assert sniff_content_type(b"x%PDF-1.4") == "text/plain"
    assert sniff_content_type(b" GIF89a") == "text/plain"


def test_sniffing_takes_only_the_bytes_never_a_name() -> None:
    assert list(inspect.signature(sniff_content_type).parameters) == ["head"]
    png = image_bytes("PNG")
    # Whatever the upload would be called (report.pdf, notes.txt, x.exe), the
    # bytes decide; the only input is the bytes.
    assert sniff_content_type(png) == "image/png"
    # And a text that merely talks about PNG is text.
    assert sniff_content_type(b"PNG image, honest") == "text/plain"


@pytest.mark.parametrize(
    "data",
    [
        b"ascii text then a byte that never occurs in UTF-8 \xff",
        b"\x80\x81\x82",
        b"\xfe\xff",
        b"abc\xe2\x28\xa1",  # invalid continuation byte
    ],
)
def test_invalid_utf8_at_the_end_is_not_text(data: bytes) -> None:
    assert sniff_content_type(data) == "application/octet-stream"
