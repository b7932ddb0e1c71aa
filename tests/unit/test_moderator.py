"""`ferry moderator` served in this process (the stack's runs it as a process of its own:
tests/integration/test_moderation_service.py), with the real model."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image, ImageDraw

from ferry.media.analysis import Moderator, RemoteModerator, moderator
from ferry.moderator import serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def url() -> AsyncIterator[str]:
    port, stop = free_port(), asyncio.Event()
    served = asyncio.create_task(serve("127.0.0.1", port, 2, stop))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(600):  # the model loads before the service listens
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            await asyncio.sleep(0.05)
    yield base
    stop.set()
    await served


async def test_the_service_answers_what_the_model_answers_in_process(url: str) -> None:
    image = Image.effect_noise((640, 480), 40).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((200, 100, 440, 400), fill=(224, 172, 105))
    draw.ellipse((260, 200, 300, 240), fill="black")
    draw.ellipse((340, 200, 380, 240), fill="black")
    remote = RemoteModerator(url)

    # Two at once: the service labels them on its own threads.
    labels = await asyncio.gather(*(asyncio.to_thread(remote.labels, image) for _ in range(2)))

    assert labels[0] == labels[1] == Moderator().labels(image)
    assert labels[0]
    assert remote.model_name == "nudenet-3.4.2/320n.onnx"
    async with httpx.AsyncClient(base_url=url) as http:
        refused = await http.post("/labels", params={"width": 2, "height": 2}, content=b"rgb")
    assert (refused.status_code, refused.text) == (400, "3 bytes; an RGB image of 2x2 has 12")
    remote.close()


def page(lines: tuple[str, ...]) -> Image.Image:
    image = Image.new("L", (1400, 80 + 60 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((30, 30 + 60 * row), line, fill=0, font_size=36)
    return image


async def test_the_service_reads_what_tesseract_reads_in_process(url: str) -> None:
    lines = ("Quarterly report of the Ferry project", "Invoice number 4471 due in March")
    image = page(lines)
    remote = RemoteModerator(url)

    # Two at once, and an RGB image turned greyscale on the way.
    texts = await asyncio.gather(
        asyncio.to_thread(remote.text, image, "eng", 30),
        asyncio.to_thread(remote.text, image.convert("RGB"), "eng", 30),
    )

    assert texts[0] == texts[1] == Moderator().text(image, "eng", 30)
    assert texts[0] is not None and [t for t in texts[0].splitlines() if t] == list(lines)
    async with httpx.AsyncClient(base_url=url) as http:
        short = await http.post("/text", params={"width": 2, "height": 2}, content=b"abc")
        language = await http.post(
            "/text", params={"width": 1, "height": 1, "language": "../etc"}, content=b"a"
        )
        unknown = await http.post(
            "/text", params={"width": 1, "height": 1, "language": "xyz"}, content=b"a"
        )
        slow = await http.post(
            "/text", params={"width": 1, "height": 1, "timeout": "0"}, content=b"a"
        )
    assert (short.status_code, short.text) == (400, "3 bytes; a greyscale image of 2x2 has 4")
    assert (language.status_code, unknown.status_code, slow.status_code) == (400, 400, 400)
    assert "tesseract could not read 'xyz'" in unknown.text
    remote.close()


def test_a_url_names_the_service_and_none_keeps_the_model_in_process() -> None:
    assert isinstance(moderator(""), Moderator)
    remote = moderator("http://127.0.0.1:9468/")
    assert isinstance(remote, RemoteModerator) and remote.url == "http://127.0.0.1:9468"
