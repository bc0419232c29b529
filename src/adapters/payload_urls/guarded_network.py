"""An httpx transport that connects a job's URLs only where the address policy allows.

The name is resolved here, every address it resolves to is checked, and the connection is made to a
checked address: a second DNS answer cannot send the request elsewhere. TLS still verifies the name.
"""

import asyncio
import contextlib
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


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's requests over httpcore's own connection pool, which takes the guarded network (httpx's transport
    takes none): HTTP/1.1, no proxy from the environment, no retries."""

    def __init__(self, network: GuardedNetwork) -> None:
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=network, retries=0
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = httpcore.URL(
            scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port, target=request.url.raw_path
        )
        core = httpcore.Request(
            request.method, url, headers=request.headers.raw, content=request.stream, extensions=request.extensions
        )
        with httpx_errors():
            response = await self.pool.handle_async_request(core)
        return httpx.Response(
            response.status, headers=response.headers, stream=_Body(response), extensions=response.extensions
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self.response = response

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        with httpx_errors():
            async for part in self.response.aiter_stream():
                yield part

    async def aclose(self) -> None:
        with httpx_errors():
            await self.response.aclose()


# httpcore's errors as httpx names them, so the payload store sees httpx's errors only.
_HTTPX_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProxyError: httpx.ProxyError,
}


@contextlib.contextmanager
def httpx_errors() -> typing.Iterator[None]:
    try:
        yield
    except tuple(_HTTPX_ERRORS) as error:
        translated = next(httpx_type for core_type, httpx_type in _HTTPX_ERRORS.items() if isinstance(error, core_type))
        raise translated(str(error)) from None
