"""A fast fake vLLM for benchmarks: aiohttp on uvloop, canned chat and embeddings answers, an optional delay, and
vLLM's own description of those two routes (/version, /openapi.json).

The threaded fake (`testbed.fake_vllm`) scripts failures for tests but answers a few hundred requests a
second; the worker's own cost needs a fake that is never the slower side.
Run it as `python -m testbed.fast_fake_vllm --port P [--delay S]`.
"""

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

from domain.kinds import CHAT, EMBEDDINGS
from domain.refused_fields import REFUSED
from testbed.fake_vllm_answers import openapi_document

USAGE = {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28}


def chat_answer() -> bytes:
    message = {"role": "assistant", "content": "Paris is the capital of France."}
    choice = {"index": 0, "message": message, "finish_reason": "length", "logprobs": None}
    answer = {"id": "chatcmpl-fast", "object": "chat.completion", "created": int(time.time()), "model": "default"}
    return json.dumps(answer | {"choices": [choice], "usage": USAGE}).encode()


def embeddings_answer() -> bytes:
    data = [{"object": "embedding", "index": 0, "embedding": [0.1] * 128}]
    usage = {"prompt_tokens": 4, "total_tokens": 4}
    return json.dumps({"object": "list", "model": "default", "data": data, "usage": usage}).encode()


def described() -> Any:
    """vLLM 0.32's /openapi.json for the two routes: each request's fields, as the real one lists them (the worker's
    models of them, and the fields its rules refuse), so a benchmark job pays the field judgment of production."""
    fields = {
        kind.route: {*kind.payload.known_names(), *REFUSED, "stream"} - {"task", "job_type", "extra_body"}
        for kind in (CHAT, EMBEDDINGS)
    }
    return openapi_document(fields)


def app(delay: float) -> web.Application:
    answers = {"/v1/chat/completions": chat_answer(), "/v1/embeddings": embeddings_answer()}

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if delay > 0:
            await asyncio.sleep(delay)
        return web.Response(body=answers[request.path], content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response()

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "default", "object": "model"}]})

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": "0.32.0"})

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(described())

    application = web.Application()
    application.router.add_post("/v1/chat/completions", answer)
    application.router.add_post("/v1/embeddings", answer)
    application.router.add_get("/health", health)
    application.router.add_get("/v1/models", models)
    application.router.add_get("/version", version)
    application.router.add_get("/openapi.json", openapi)
    return application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(app(args.delay), host=args.host, port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
