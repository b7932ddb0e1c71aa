"""OCR through tesseract's engines kept in the process (`ferry.media.analysis.Tesseract`),
with the real engine and the stack's English data."""

from __future__ import annotations

import threading

import pytest
from PIL import Image, ImageDraw

from ferry.media import analysis
from ferry.media.analysis import Tesseract
from ferry.media.errors import ModelMissing

LINES = ("Quarterly report of the Ferry project", "Invoice number 4471 due in March")


def page(lines: tuple[str, ...] = LINES, repeat: int = 1) -> Image.Image:
    image = Image.new("L", (1400, 80 + 60 * len(lines) * repeat), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines * repeat):
        draw.text((30, 30 + 60 * row), line, fill=0, font_size=36)
    return image


def test_an_engine_reads_the_page_and_is_kept_for_the_next() -> None:
    tesseract = Tesseract(limit=2)

    first = tesseract.read(page(), "eng", 30)
    second = tesseract.read(page(), "eng", 30)

    assert first is not None and [line for line in first.splitlines() if line] == list(LINES)
    assert second == first
    assert len(tesseract._idle["eng"]) == 1  # one engine loaded, used twice


def test_threads_at_once_share_at_most_the_limit_of_engines() -> None:
    tesseract = Tesseract(limit=2)
    texts: list[str | None] = []

    def read() -> None:
        texts.append(tesseract.read(page(), "eng", 30))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(texts) == 4 and len(set(texts)) == 1 and texts[0]
    assert 1 <= len(tesseract._idle["eng"]) <= 2


def test_a_page_not_read_within_the_timeout_gives_none() -> None:
    long_page = page(repeat=40)  # about 80 lines: far more than a millisecond's work

    assert Tesseract(limit=1).read(long_page, "eng", 0.001) is None


def test_no_language_data_is_a_missing_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESSDATA_PREFIX", raising=False)
    monkeypatch.setattr(analysis, "TESSDATA_DIRS", ("/nonexistent/tessdata",))

    with pytest.raises(ModelMissing, match="TESSDATA_PREFIX"):
        Tesseract(limit=1).read(page(), "eng", 30)


def test_closing_ends_the_engines_and_a_later_read_loads_one_again() -> None:
    tesseract = Tesseract(limit=1)
    first = tesseract.read(page(), "eng", 30)

    tesseract.close()

    assert tesseract._idle == {}
    assert tesseract.read(page(), "eng", 30) == first
