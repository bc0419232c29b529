"""The payload store over httpx: GET `payload_url` and `audio_url`, PUT to `result_upload_url`; capped on the wire and
once decoded, no redirects, a deadline on the whole transfer, and only to the addresses the guarded network allows."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec

from adapters.payload_urls.bounded_body import IDENTITY, answer_text, read_within
from adapters.payload_urls.guarded_network import AddressRefused
from application.metrics import NO_METRICS
from application.ports import WorkerMetrics
from domain.errors import PayloadTransferFailed

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_decode = msgspec.json.Decoder().decode  # strict: NaN, Infinity and invalid text are refused here
DEFAULT_DEADLINE = 60.0


class HttpPayloadStore:
    def __init__(
        self,
        client: httpx.AsyncClient,
        deadline: float = DEFAULT_DEADLINE,
        max_bytes: int = MAX_PAYLOAD_BYTES,
        metrics: WorkerMetrics = NO_METRICS,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.deadline = deadline
        self.max_bytes = max_bytes

    async def fetch(self, url: str) -> Any:
        body = await self._get(url, self.max_bytes)
        try:
            return _decode(body)
        except msgspec.DecodeError as error:
            raise PayloadTransferFailed(f"not strict JSON: {error}") from None
        except RecursionError:
            raise PayloadTransferFailed("not JSON the worker reads: nested too deeply") from None

    async def fetch_bytes(self, url: str, max_bytes: int) -> bytes:
        return await self._get(url, max_bytes, " (CASOLA_MAX_AUDIO_BYTES)")

    async def _get(self, url: str, cap: int, cap_named: str = "") -> bytes:
        """The body at `url`, no more than `cap` bytes on the wire nor once decoded."""
        async with (
            self._transfer("GET"),
            self.client.stream("GET", url, headers=IDENTITY, follow_redirects=False) as response,
        ):
            _check_status(response)
            body, wire = await read_within(response, cap, cap_named)
        self.metrics.payload_bytes("fetched", wire)
        return body

    async def upload(self, url: str, body: bytes) -> None:
        """PUTs `body`; of the answer, only the start of an error's is read, and never decoded."""
        headers = {"Content-Type": "application/json"} | IDENTITY
        async with (
            self._transfer("PUT"),
            self.client.stream("PUT", url, content=body, headers=headers, follow_redirects=False) as response,
        ):
            answer = "" if response.is_success else await answer_text(response)
        _check_status(response, answer)
        self.metrics.payload_bytes("uploaded", len(body))

    @asynccontextmanager
    async def _transfer(self, method: str) -> AsyncIterator[None]:
        """Every way a transfer fails, as `PayloadTransferFailed` saying why."""
        try:
            async with asyncio.timeout(self.deadline):
                yield
        except TimeoutError:
            reason = f"{method} not done within {self.deadline:g} s (CASOLA_PAYLOAD_TIMEOUT)"
            raise PayloadTransferFailed(reason) from None
        except AddressRefused as refused:
            raise PayloadTransferFailed(f"{method} refused: {refused}") from None
        except httpx.InvalidURL as error:  # the URL rule (domain.urls) lets none through: a second guard
            raise PayloadTransferFailed(f"{method} refused: not a URL the worker can use ({error})") from None
        except httpx.HTTPError as error:
            raise PayloadTransferFailed(f"{method} failed: {type(error).__name__}: {error}") from None


def _check_status(response: httpx.Response, answer: str = "") -> None:
    if response.is_redirect:
        raise PayloadTransferFailed(f"HTTP {response.status_code}: redirects are not followed")
    if not response.is_success:
        raise PayloadTransferFailed(f"HTTP {response.status_code}" + (f": {answer}" if answer else ""))
