"""The moderation service (`ferry moderator`): nudenet's model and tesseract behind HTTP
on loopback, so that the worker holds neither the model nor ONNX Runtime, OpenCV or an
OCR engine (about 150 MB of a worker's memory). It is to the analysis what clamd is to
the scan.

`POST /labels?width=W&height=H` takes an image's RGB pixels (`W * H * 3` bytes,
row by row, no header: the worker has decoded and bounded the image already) and
answers `{"model": ..., "labels": [[class, best score], ...]}`, highest score first:
what `Moderator.labels` answers in process, from the same code. A body of another
size, or an image over `MAX_SIDE`, is 400.

`POST /text?width=W&height=H&language=eng&timeout=S` takes a greyscale image's
pixels (`W * H` bytes) and answers `{"text": ...}`: what tesseract reads in it, or
null when it did not finish within `S` seconds (`Moderator.text`; the engine stays
loaded between requests). `GET /health` is 200 once the model and the engine are
loaded (both load at start), with the model's name.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from PIL import Image

from ferry.media.analysis import Moderator

log = logging.getLogger(__name__)

# The worker sends images bounded by `moderation_max_side` (320; 640 before); this is the refusal
# of a body no worker sends, not a tuning knob.
MAX_SIDE = 4096
# tesseract's language codes, joined by `+` (`eng`, `chi_sim+eng`).
LANGUAGE = re.compile(r"[a-z][a-z_]*(\+[a-z][a-z_]*)*")
MAX_OCR_SECONDS = 120.0

MODERATOR = web.AppKey("moderator", Moderator)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)


def _side(request: web.Request, name: str) -> int:
    try:
        value = int(request.query[name])
    except (KeyError, ValueError):
        raise web.HTTPBadRequest(text=f"`{name}` must be a whole number of pixels") from None
    if not 0 < value <= MAX_SIDE:
        raise web.HTTPBadRequest(text=f"`{name}` must be between 1 and {MAX_SIDE}")
    return value


async def labels(request: web.Request) -> web.Response:
    width, height = _side(request, "width"), _side(request, "height")
    body = await request.read()
    if len(body) != width * height * 3:
        raise web.HTTPBadRequest(
            text=f"{len(body)} bytes; an RGB image of {width}x{height} has {width * height * 3}"
        )
    moderator = request.app[MODERATOR]
    image = Image.frombytes("RGB", (width, height), body)
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(request.app[EXECUTOR], moderator.labels, image)
    return web.json_response({"model": moderator.model_name, "labels": found})


async def text(request: web.Request) -> web.Response:
    width, height = _side(request, "width"), _side(request, "height")
    language = request.query.get("language", "eng")
    if not LANGUAGE.fullmatch(language):
        raise web.HTTPBadRequest(text="`language` must name tesseract languages, as eng+deu")
    try:
        timeout = float(request.query.get("timeout", "30"))
    except ValueError:
        raise web.HTTPBadRequest(text="`timeout` must be a number of seconds") from None
    if not 0 < timeout <= MAX_OCR_SECONDS:
        raise web.HTTPBadRequest(text=f"`timeout` must be above 0 and at most {MAX_OCR_SECONDS}")
    body = await request.read()
    if len(body) != width * height:
        raise web.HTTPBadRequest(
            text=f"{len(body)} bytes; a greyscale image of {width}x{height} has {width * height}"
        )
    image = Image.frombytes("L", (width, height), body)
    loop = asyncio.get_running_loop()
    read = functools.partial(request.app[MODERATOR].text, image, language, timeout)
    try:
        found = await loop.run_in_executor(request.app[EXECUTOR], read)
    except RuntimeError as exc:  # tesseract has no data for that language
        raise web.HTTPBadRequest(text=f"tesseract could not read {language!r}: {exc}") from None
    return web.json_response({"text": found})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"model": request.app[MODERATOR].model_name})


def application(moderator: Moderator, concurrency: int) -> web.Application:
    """The service's routes, labelling at most `concurrency` images at once."""
    app = web.Application(client_max_size=MAX_SIDE * MAX_SIDE * 3 + 1)
    app[MODERATOR] = moderator
    app[EXECUTOR] = ThreadPoolExecutor(concurrency, thread_name_prefix="moderation")
    app.router.add_post("/labels", labels)
    app.router.add_post("/text", text)
    app.router.add_get("/health", health)

    async def shut_down(app: web.Application) -> None:
        app[EXECUTOR].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shut_down)
    return app


def warm(moderator: Moderator) -> None:
    """Load the model and an OCR engine before the first request: the health check
    answers only then."""
    moderator.labels(Image.new("RGB", (64, 64), "white"))
    moderator.text(Image.new("L", (64, 64), 255), "eng", MAX_OCR_SECONDS)


async def serve(host: str, port: int, concurrency: int, stop: asyncio.Event) -> None:
    # As many OCR engines as images handled at once: none waits for another's engine.
    moderator = Moderator(ocr_engines=concurrency)
    await asyncio.to_thread(warm, moderator)
    runner = web.AppRunner(application(moderator, concurrency), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("moderation service on http://%s:%d, model %s", host, port, moderator.model_name)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
