"""The HTTP client for a job's own URLs, as an async context manager for the container's resources."""

from collections.abc import AsyncIterator

import httpx

from adapters.payload_urls.guarded_network import GuardedNetwork, GuardedTransport
from domain.addresses import AddressPolicy


async def payload_client(policy: AddressPolicy) -> AsyncIterator[httpx.AsyncClient]:
    """For a job's own URLs: only where `policy` allows, no proxy or netrc from the environment."""
    transport = GuardedTransport(GuardedNetwork(policy))
    timeout = httpx.Timeout(10.0, connect=5.0)
    async with httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False) as client:
        yield client
