"""The codec endpoint the Temporal UI calls to show decrypted payloads (`ferry codec-server`).

Temporal's remote codec protocol: `POST /encode` and `POST /decode` with a JSON
body `{"payloads": [...]}` (the protobuf JSON of `Payloads`), answered in the same
shape. The browser calls it from the UI's origin, so the answers carry CORS
headers for the configured origins; anything else is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from ferry.temporal.codec import EncryptionCodec

ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def codec_app(codec: EncryptionCodec, origins: Sequence[str]) -> web.Application:
    allowed = set(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if origin is not None and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Vary"] = "Origin"
        return response

    def endpoint(
        transform: Callable[[Sequence[Payload]], Awaitable[list[Payload]]],
    ) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                payloads = json_format.Parse(await request.text(), Payloads())
                result = Payloads(payloads=await transform(payloads.payloads))
            except (json_format.ParseError, ValueError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.Response(
                text=json_format.MessageToJson(result), content_type="application/json"
            )

        return handle

    async def health(request: web.Request) -> web.StreamResponse:
        return web.json_response({"keys": len(list(codec.key_ids()))})

    app = web.Application(middlewares=[cors])
    app.router.add_post("/encode", endpoint(codec.encode))
    app.router.add_post("/decode", endpoint(codec.decode))
    app.router.add_get("/health", health)
    return app


async def serve(
    codec: EncryptionCodec, host: str, port: int, origins: Sequence[str], stop: asyncio.Event
) -> None:
    runner = web.AppRunner(codec_app(codec, origins), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
