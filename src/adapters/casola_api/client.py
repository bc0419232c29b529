"""The HTTP client for the Casola API, as an async context manager for the container's resources."""

from collections.abc import AsyncIterator

import httpx


async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
        yield client
