"""The moderation service (`ferry moderator`): nudenet's model behind HTTP on loopback,
so that the worker holds neither the model nor ONNX Runtime nor OpenCV (about 130 MB
of a worker's memory). It is to the analysis what clamd is to the scan.

`POST /labels?width=W&height=H` takes an image's RGB pixels (`W * H * 3` bytes,
row by row, no header: the worker has decoded and bounded the image already) and
answers `{"model": ..., "labels": [[class, best score], ...]}`, highest score first:
what `Moderator.labels` answers in process, from the same code. A body of another
size, or an image over `MAX_SIDE`, is 400. `GET /health` is 200 once the model is
loaded (it loads at start), with its name.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from PIL import Image

from ferry.media.analysis import Moderator

log = logging.getLogger(__name__)

# The worker sends images bounded by `moderation_max_side` (320; 640 before); this is the refusal
# of a body no worker sends, not a tuning knob.
MAX_SIDE = 4096

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


async def health(request: web.Request) -> web.Response:
    return web.json_response({"model": request.app[MODERATOR].model_name})


def application(moderator: Moderator, concurrency: int) -> web.Application:
    """The service's routes, labelling at most `concurrency` images at once."""
    app = web.Application(client_max_size=MAX_SIDE * MAX_SIDE * 3 + 1)
    app[MODERATOR] = moderator
    app[EXECUTOR] = ThreadPoolExecutor(concurrency, thread_name_prefix="moderation")
    app.router.add_post("/labels", labels)
    app.router.add_get("/health", health)

    async def shut_down(app: web.Application) -> None:
        app[EXECUTOR].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shut_down)
    return app


def warm(moderator: Moderator) -> None:
    """Load the model before the first request: the health check answers only then."""
    moderator.labels(Image.new("RGB", (64, 64), "white"))


async def serve(host: str, port: int, concurrency: int, stop: asyncio.Event) -> None:
    moderator = Moderator()
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
