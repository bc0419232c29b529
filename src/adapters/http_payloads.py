"""The payload store over httpx: GET `payload_url`, PUT to `result_upload_url`; capped, no redirects."""

import json
from typing import Any

import httpx

from domain.errors import PayloadTransferFailed

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


class HttpPayloadStore:
    def __init__(self, client: httpx.AsyncClient, max_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.client = client
        self.max_bytes = max_bytes

    async def fetch(self, url: str) -> Any:
        try:
            async with self.client.stream("GET", url, follow_redirects=False) as response:
                _check_status(response)
                body = await self._read_capped(response)
        except httpx.HTTPError as error:
            raise PayloadTransferFailed(f"GET failed: {type(error).__name__}: {error}") from None
        try:
            return json.loads(body)
        except ValueError as error:
            raise PayloadTransferFailed(f"not JSON: {error}") from None
        except RecursionError:
            raise PayloadTransferFailed("not JSON the worker reads: nested too deeply") from None

    async def _read_capped(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise PayloadTransferFailed(f"larger than the {self.max_bytes} byte cap")
            chunks.append(chunk)
        return b"".join(chunks)

    async def upload(self, url: str, body: bytes) -> None:
        try:
            response = await self.client.put(
                url, content=body, headers={"Content-Type": "application/json"}, follow_redirects=False
            )
        except httpx.HTTPError as error:
            raise PayloadTransferFailed(f"PUT failed: {type(error).__name__}: {error}") from None
        _check_status(response)


def _check_status(response: httpx.Response) -> None:
    if response.is_redirect:
        raise PayloadTransferFailed(f"HTTP {response.status_code}: redirects are not followed")
    if not response.is_success:
        raise PayloadTransferFailed(f"HTTP {response.status_code}")
