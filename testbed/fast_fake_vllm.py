"""A fast fake vLLM for benchmarks: aiohttp on uvloop, canned chat and embeddings answers, an optional delay.

The threaded fake (`testbed.fake_vllm`) scripts failures for tests but answers a few hundred requests a
second; the worker's own cost needs a fake that is never the slower side.
Run it as `python -m testbed.fast_fake_vllm --port P [--delay S]`.
"""

import argparse
import asyncio
import json
import time

from aiohttp import web

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

    application = web.Application()
    application.router.add_post("/v1/chat/completions", answer)
    application.router.add_post("/v1/embeddings", answer)
    application.router.add_get("/health", health)
    application.router.add_get("/v1/models", models)
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
