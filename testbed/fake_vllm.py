"""A fake vLLM: a real HTTP server speaking /health, /v1/models, /metrics, /version, /openapi.json (when given one) and
the OpenAI routes of both runners.

It can answer slowly, with errors, or never, and it notices when a client closes a request.
Run it as `python -m tests.fakes.fake_vllm serve MODEL --host H --port P ...` to stand in for `vllm serve`.
"""

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testbed.fake_vllm_answers import ANSWERS, read_form, speech_refusal
from testbed.omni_speech import omni_speech


@dataclass
class Behaviour:
    delay: float = 0.0
    status: int | None = None
    error_message: str = "fake vLLM failure"
    hang: bool = False
    healthy: bool = True
    completion_tokens: int = 5
    drop: int = 0  # close this many of the next requests without answering
    runner: str = "any"  # "generate", "pooling", "speech" or "omni": the others' routes answer 404, as vLLM's do
    tool_calling: bool = True  # False: tools are refused as by a vLLM without --tool-call-parser
    aliases: list[str] = field(default_factory=list)  # more names in /v1/models (LoRA adapters, ...)
    waiting: int = 0  # vllm:num_requests_waiting in /metrics
    # Held requests (`hang`, `delay`) with `generating` show their tokens advancing at each /metrics read, as a long
    # generation does; without it their counters stay frozen, as a hung engine's do (its /health still 200).
    generating: bool = False
    version: str = "0.32.0"  # GET /version
    openapi: dict[str, Any] | None = None  # GET /openapi.json; None: 404, as vLLM with --disable-fastapi-docs
    lora: bool = True  # serves /v1/load_lora_adapter (vLLM with --enable-lora and runtime loading)
    lora_refusals: dict[str, str] = field(default_factory=dict)  # adapter name: the reason its load fails


TOKENIZER_ROUTES = ("/tokenize", "/detokenize")  # every vLLM serves its tokenizer
GENERATE_ROUTES = (
    "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", "/v1/chat/completions/batch",
    *TOKENIZER_ROUTES,
)  # fmt: skip
POOLING_ROUTES = ("/v1/embeddings", "/v1/score", "/v1/rerank", "/classify", *TOKENIZER_ROUTES)
SPEECH_ROUTES = ("/v1/audio/transcriptions", "/v1/audio/translations")
OMNI_ROUTES = ("/v1/audio/speech",)  # vLLM-Omni's text to speech


@dataclass
class Record:
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)  # X-Request-Id of each request
    closed: list[dict[str, Any]] = field(default_factory=list)
    running: int = 0
    peak_running: int = 0
    health_checks: int = 0
    metrics_reads: int = 0
    lora_loads: list[tuple[str, str]] = field(default_factory=list)  # (name, path) of each load asked for
    tokens: int = 0  # vllm:prompt_tokens_total plus vllm:generation_tokens_total


class FakeVllm(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, host: str = "127.0.0.1", port: int = 0, served_model: str = "default") -> None:
        super().__init__((host, port), Handler)
        self.served_model = served_model
        self.behaviour = Behaviour()
        self.record = Record()
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets its connection (a cancelled request) is no error of the fake's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def start(self) -> "FakeVllm":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def wait_for(self, condition: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("fake vLLM: condition not met in time")
            time.sleep(0.01)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FakeVllm

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/health":
            self.server.record.health_checks += 1
            self._send(200 if self.server.behaviour.healthy else 503, b"" if self.server.behaviour.healthy else b"{}")
        elif self.path == "/v1/models":
            names = [self.server.served_model, *self.server.behaviour.aliases]
            self._json(200, {"object": "list", "data": [{"id": name, "object": "model"} for name in names]})
        elif self.path == "/metrics":
            record = self.server.record
            record.metrics_reads += 1
            model, waiting = self.server.served_model, self.server.behaviour.waiting
            if self.server.behaviour.generating:
                record.tokens += record.running
            text = (
                f'vllm:num_requests_running{{model_name="{model}"}} {record.running}\n'
                f'vllm:num_requests_waiting{{model_name="{model}"}} {waiting}\n'
                f'vllm:prompt_tokens_total{{model_name="{model}"}} {record.tokens}\n'
                f'vllm:generation_tokens_total{{model_name="{model}"}} 0\n'
            )
            self._send(200, text.encode(), "text/plain")
        elif self.path == "/version":
            self._json(200, {"version": self.server.behaviour.version})
        elif self.path == "/openapi.json" and self.server.behaviour.openapi is not None:
            self._json(200, self.server.behaviour.openapi)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        content = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        content_type = self.headers.get("Content-Type", "")
        body = (
            read_form(content, content_type) if content_type.startswith("multipart/") else json.loads(content or b"{}")
        )
        if self.path == "/control":
            for name, value in body.items():
                setattr(self.server.behaviour, name, value)
            self._json(200, {"ok": True})
            return
        if self.path == "/v1/load_lora_adapter" and self.server.behaviour.lora:
            self._load_lora(body)
            return
        if self.path not in self._routes():
            self._json(404, {"detail": "Not Found"})
            return
        with self.server.lock:
            self.server.record.requests.append(body)
            self.server.record.request_ids.append(self.headers.get("X-Request-Id"))
            self.server.record.running += 1
            self.server.record.peak_running = max(self.server.record.peak_running, self.server.record.running)
        try:
            self._answer(body)
        finally:
            with self.server.lock:
                self.server.record.running -= 1

    def _load_lora(self, body: dict[str, Any]) -> None:
        """As vLLM: the adapter loaded under its name (listed in /v1/models from then on), or a 500 with the reason."""
        self.server.record.lora_loads.append((body["lora_name"], body["lora_path"]))
        refused = self.server.behaviour.lora_refusals.get(body["lora_name"])
        if refused is not None:
            self._json(500, {"error": {"message": refused, "type": "InternalServerError", "code": 500}})
            return
        self.server.behaviour.aliases.append(body["lora_name"])
        self._send(200, f"Success: LoRA adapter '{body['lora_name']}' added successfully.".encode(), "text/plain")

    def _routes(self) -> tuple[str, ...]:
        runner = self.server.behaviour.runner
        served = {"generate": GENERATE_ROUTES, "pooling": POOLING_ROUTES, "speech": SPEECH_ROUTES, "omni": OMNI_ROUTES}
        return served.get(runner, (*GENERATE_ROUTES, *POOLING_ROUTES, *SPEECH_ROUTES, *OMNI_ROUTES))

    def _answer(self, body: dict[str, Any]) -> None:
        behaviour = self.server.behaviour
        if behaviour.drop > 0:
            behaviour.drop -= 1
            self.close_connection = True
            return
        if not self._wait(behaviour.delay):
            self.server.record.closed.append(body)
            self.close_connection = True
            return
        if behaviour.status is not None:
            self._json(
                behaviour.status, {"object": "error", "message": behaviour.error_message, "code": behaviour.status}
            )
        elif body.get("tools") and not behaviour.tool_calling:
            message = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
            self._json(400, {"error": {"message": message, "type": "BadRequestError", "code": 400}})
        elif self.path in OMNI_ROUTES:
            self._send(*omni_speech(body))
        elif (refused := speech_refusal(self.path, body)) is not None:
            self._json(400, {"error": {"message": refused, "type": "BadRequestError", "code": 400}})
        else:
            self.server.record.tokens += behaviour.completion_tokens + 1
            self._json(200, ANSWERS[self.path](body, body.get("model", ""), behaviour.completion_tokens))

    def _wait(self, delay: float) -> bool:
        """Waits `delay` seconds (or while `hang` is set); False as soon as the client closes the connection."""
        if delay <= 0 and not self.server.behaviour.hang:
            return True
        deadline = time.monotonic() + delay
        while self.server.behaviour.hang or time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.01)
            try:
                if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    return False
            except ConnectionError:  # closed with a reset
                return False
        return True

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


def main(argv: list[str]) -> None:
    """`fake_vllm serve MODEL --host H --port P --served-model-name N [...]`, like `vllm serve`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("serve")
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", default="default")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--say", action="append", default=[], help="print this log line at start")
    parser.add_argument(
        "--say-late", action="append", default=[], help="print this line after --startup-delay (FAKE_VLLM_SAY_LATE too)"
    )
    parser.add_argument("--exit-after", type=float, default=None, help="exit with code 3 after this many seconds")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--spawn-child", action="store_true", help="start a child process in the same group")
    parser.add_argument("--pid-file", default=None)
    args, _ = parser.parse_known_args(argv)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = [os.getpid()]
    if args.spawn_child:
        pids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]).pid)
    if args.pid_file:
        with open(args.pid_file, "w") as pid_file:
            pid_file.write("\n".join(map(str, pids)))
    print(f"fake vLLM serving {args.model} as {args.served_model_name}", flush=True)
    for line in args.say:
        print(line, flush=True)
    time.sleep(args.startup_delay)
    for line in [*args.say_late, *filter(None, os.environ.get("FAKE_VLLM_SAY_LATE", "").split("\n"))]:
        print(line, flush=True)
    server = FakeVllm(args.host, args.port, args.served_model_name)
    server.behaviour.delay = args.delay
    if args.exit_after is not None:
        threading.Timer(args.exit_after, lambda: os._exit(3)).start()
    print(f"listening on {args.host}:{server.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
