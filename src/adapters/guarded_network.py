"""An httpx transport that connects a job's URLs only where the address policy allows.

The name is resolved here, every address it resolves to is checked, and the connection is made to a
checked address: a second DNS answer cannot send the request elsewhere. TLS still verifies the name.
"""

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from domain.addresses import AddressPolicy

Resolve = Callable[[str, int], Awaitable[list[str]]]


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address the policy refuses; the message says which kind."""


async def resolve_with_system(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedNetwork(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        policy: AddressPolicy,
        resolve: Resolve = resolve_with_system,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolve = resolve
        self.network = network or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        for address in addresses:
            if (reason := self.policy.refusal(host, port, address)) is not None:
                raise AddressRefused(reason)
        for address in addresses[:-1]:
            try:
                return await self.network.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue
        return await self.network.connect_tcp(addresses[-1], port, timeout, local_address, socket_options)

    async def _addresses(self, host: str, port: int) -> list[str]:
        if _is_address(host):
            return [host]
        try:
            addresses = await self.resolve(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve the host: {error.strerror or error}") from None
        if not addresses:
            raise httpcore.ConnectError("cannot resolve the host: no address")
        return addresses

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are refused")

    async def sleep(self, seconds: float) -> None:
        await self.network.sleep(seconds)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def guarded_transport(network: GuardedNetwork) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, its connection pool given the guarded network; no proxy from the environment."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(  # httpx takes no network backend; its pool does
        ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=network
    )
    return transport
