"""The heartbeat port over httpx: `POST {CASOLA_API_URL}/api/heartbeats`, never fatal."""

import logging
from collections.abc import Callable
from typing import Any

import httpx

from application.metrics import NO_METRICS
from application.ports import WorkerMetrics
from domain.rules import HeartbeatStatus
from domain.untrusted import Masker

log = logging.getLogger("worker.heartbeat")


class HttpHeartbeats:
    """Sends heartbeats only when both the API URL and the token are set."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_url: str | None,
        token: str | None,
        instance_id: str,
        queue_id: str,
        masker: Masker | None = None,
        metrics: WorkerMetrics = NO_METRICS,
        about_vllm: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.about_vllm = about_vllm  # the served vLLM's version and kinds, once read
        self.client = client
        self.metrics = metrics
        self.url = f"{api_url}/api/heartbeats" if api_url else None
        self.token = token
        self.instance_id = instance_id
        self.queue_id = queue_id
        self.masker = masker or Masker()
        if not self.enabled:
            log.info("heartbeats off: CASOLA_API_URL and CASOLA_API_TOKEN are not both set")

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.token)

    async def send(self, status: HeartbeatStatus, error_message: str | None = None) -> None:
        if not self.enabled or self.url is None:
            return
        body: dict[str, Any] = {"instance_id": self.instance_id, "queue_id": self.queue_id, "status": status.value}
        if error_message is not None:
            body["error_message"] = self.masker(error_message)  # a vLLM log line can quote one
        body |= self.about_vllm()
        try:
            response = await self.client.post(self.url, json=body, headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as error:
            self.metrics.heartbeat_failed()
            log.warning("heartbeat %s failed: %s", status, type(error).__name__ + (f": {error}" if str(error) else ""))
            return
        if response.is_success:
            log.debug("heartbeat %s sent", status)
        else:
            self.metrics.heartbeat_failed()
            log.warning("heartbeat %s failed: HTTP %d", status, response.status_code)
