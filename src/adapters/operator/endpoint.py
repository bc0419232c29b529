"""The worker's own HTTP endpoint: /metrics (Prometheus text), /healthz (the process answers), /readyz.

Each answer reads counters and flags already in memory: a scrape does no I/O and never touches the job path.
"""

import json
import logging
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("worker")
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class WorkerEndpoint:
    def __init__(
        self, host: str, port: int, metrics_text: Callable[[], bytes], readiness: Callable[[], tuple[bool, str]]
    ) -> None:
        self.host, self.port = host, port
        self.metrics_text = metrics_text
        self.readiness = readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        log.info("metrics and health on http://%s:%d (/metrics, /healthz, /readyz)", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics_text(), headers={"Content-Type": PROMETHEUS_TEXT})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reason = self.readiness()
        body = json.dumps({"ready": ready, "reason": reason})
        return web.Response(text=body, status=200 if ready else 503, content_type="application/json")
