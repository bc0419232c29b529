"""`worker-vllm dev`: a local queue with an OpenAI-compatible REST front, each request a transient job.

Workers connect to its queue socket as to the Casola queue (the same wire protocol); any OpenAI client then
drives them end to end. A request whose client goes away is revoked, as the queue does. Not for production.
"""

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from adapters.dev.local_queue import Frame, LocalQueue
from application.signals import until_shutdown_signal
from domain import frames
from domain.errors import ErrorCategory
from domain.kinds import KINDS, JobKind

log = logging.getLogger("worker.dev")

STATUS_OF: dict[str, int] = {
    ErrorCategory.INVALID_PAYLOAD: 400,
    ErrorCategory.UNSUPPORTED_JOB_TYPE: 400,
    ErrorCategory.INFERENCE_ERROR: 500,
    ErrorCategory.INFERENCE_TIMEOUT: 504,
    ErrorCategory.VLLM_UNAVAILABLE: 503,
    ErrorCategory.VLLM_STALLED: 503,
    ErrorCategory.SHUTTING_DOWN: 503,
    ErrorCategory.OVER_CAPACITY: 429,
}
ListModels = Callable[[], Awaitable[list[str]]]


async def audio_form(kind: JobKind, request: web.Request) -> dict[str, Any]:
    """An OpenAI audio upload as the queue's payload: the file as `audio_base64` (with its name and type), each form
    field as the JSON value its payload field takes (a form carries only text), `name[]` fields as lists."""
    if not request.content_type.startswith("multipart/"):
        raise ValueError(f"Content-Type is {request.content_type}")
    payload: dict[str, Any] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        if part.name == "file":
            payload["audio_base64"] = base64.b64encode(await part.read()).decode()
            payload["filename"], payload["content_type"] = part.filename, part.headers.get("Content-Type")
        elif part.name.endswith("[]"):
            payload.setdefault(part.name[:-2], []).append(await part.text())
        else:
            payload[part.name] = form_value(kind, part.name, await part.text())
    return {name: value for name, value in payload.items() if value is not None}


def form_value(kind: JobKind, name: str, text: str) -> Any:
    """`text` as it is where the payload field takes text, else read as JSON (numbers, true and false)."""
    field = kind.payload.model_fields.get(name)
    try:
        if field is not None and field.annotation is not None:
            TypeAdapter(field.annotation).validate_python(text, strict=True)
            return text
    except ValidationError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def openai_error(status: int, category: str, message: str) -> web.Response:
    """OpenAI's error object; `type` keeps the job's error category."""
    body = {"error": {"message": message, "type": category, "param": None, "code": status}}
    return web.json_response(body, status=status)


class OpenAIFront:
    def __init__(
        self,
        queue_host: str,
        queue_port: int,
        http_host: str,
        http_port: int,
        list_models: ListModels,
        timeout: float = 600.0,
    ) -> None:
        self.queue = LocalQueue(queue_host, queue_port, on_frame=self._on_frame)
        self.http_host, self.http_port = http_host, http_port
        self.list_models = list_models
        self.timeout = timeout
        self.pending: dict[str, asyncio.Future[Frame]] = {}
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    async def start(self) -> None:
        await self.queue.start()
        self._runner = web.AppRunner(self._app(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.http_host, self.http_port)
        await site.start()
        self.http_port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.queue.stop()

    async def serve_until_signal(self) -> int:
        """`worker-vllm dev`: serves until SIGTERM or SIGINT; 1 when its ports cannot be had."""
        try:
            await self.start()
        except OSError as error:
            log.error("cannot listen on %s: %s", self.http_host, error.strerror or error)
            return 1
        try:
            log.info("queue on %s: start workers with CASOLA_WS_URL=%s", self.queue.url, self.queue.url)
            log.info("OpenAI-compatible front on %s/v1: point any OpenAI client at it", self.url)
            await until_shutdown_signal()
        finally:
            await self.stop()
        return 0

    async def __aenter__(self) -> "OpenAIFront":
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for kind in KINDS:
            app.router.add_post(kind.route, self._handler(kind))
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    def _handler(self, kind: JobKind) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._job(kind, request)

        return handle

    async def _job(self, kind: JobKind, request: web.Request) -> web.Response:
        try:
            body = await audio_form(kind, request) if kind.sent == "form" else json.loads(await request.read())
        except ValueError as error:
            what = "a multipart form with a file" if kind.sent == "form" else "JSON"
            return openai_error(400, "invalid_request_error", f"the request body is not {what}: {error}")
        if not isinstance(body, dict):
            return openai_error(400, "invalid_request_error", "the request body must be a JSON object")
        answer = await self._answer(kind, body)
        if isinstance(answer, web.Response):
            return answer
        if answer["type"] == "job_error":
            category, _, reason = str(answer.get("error", "")).partition(": ")
            return openai_error(STATUS_OF.get(category, 500), category, reason)
        response = kind.response(answer["result"], str(body.get("model") or "default"))
        if kind.answered == "bytes":  # OpenAI's speech route answers with the audio itself
            return web.Response(body=base64.b64decode(response["audio_base64"]), content_type=response["content_type"])
        if kind.sent == "form" and body.get("response_format") == "text":  # the bare transcript, as the queue's front
            return web.Response(text=response["text"])
        return web.json_response(response)

    async def _answer(self, kind: JobKind, body: dict[str, Any]) -> Frame | web.Response:
        """Pushes the request as a transient job and waits for its answer; a client that leaves revokes it."""
        job_id = f"dev-{uuid.uuid4().hex}"
        job = frames.queue_job(job_id, "transient", 1, "dev", kind.task, body)
        self.pending[job_id] = asyncio.get_running_loop().create_future()
        try:
            worker = await self.queue.push(job, self.queue.next_worker())
        except (RuntimeError, ConnectionClosed):
            self.pending.pop(job_id, None)
            return openai_error(503, "no_worker", "no worker is connected to this queue")
        try:
            async with asyncio.timeout(self.timeout):
                return await self.pending[job_id]
        except TimeoutError:
            await self._revoke(worker, job_id, "timed out at the front")
            return openai_error(504, "timeout", f"no answer within {self.timeout:g} s")
        except asyncio.CancelledError:
            await self._revoke(worker, job_id, "the client went away")
            raise
        finally:
            self.pending.pop(job_id, None)

    async def _revoke(self, worker: ServerConnection, job_id: str, reason: str) -> None:
        try:
            await self.queue.push(frames.queue_revoke(job_id, reason), worker)
        except ConnectionClosed as error:
            log.info("cannot revoke %s: %s", job_id, error)

    async def _on_frame(self, frame: Frame) -> None:
        if frame.get("type") == "register":
            log.info("worker %s registered, capacity %s", frame.get("worker_id"), frame.get("capacity"))
        future = self.pending.get(str(frame.get("job_id")))
        if frame.get("type") in ("job_result", "job_error") and future is not None and not future.done():
            future.set_result(frame)

    async def _models(self, request: web.Request) -> web.Response:
        try:
            names = await self.list_models()
        except Exception as error:  # vLLM down or refusing: the front says so, as vLLM's own would fail
            return openai_error(503, "vllm_unavailable", str(error))
        data = [{"id": name, "object": "model", "owned_by": "vllm"} for name in names]
        return web.json_response({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"workers": self.queue.connected})
