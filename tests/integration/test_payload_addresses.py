"""A job's URLs reach only allowed addresses, checked on the address connected to; the whole transfer has a deadline.

Real HTTP servers on 127.0.0.1; names resolve through a stub, so no address here can leave the machine.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from adapters.payload_urls.client import payload_client
from adapters.payload_urls.guarded_network import GuardedNetwork, GuardedTransport
from adapters.payload_urls.store import HttpPayloadStore
from domain.addresses import AddressPolicy, parse_allowed_hosts
from domain.errors import PayloadTransferFailed
from tests.fakes.dripping import dripping_server
from tests.fakes.fake_api import FakeApi

REFUSED = "(the operator can allow it with CASOLA_PAYLOAD_ALLOWED_HOSTS)"
MakeStore = Callable[..., Awaitable[HttpPayloadStore]]


class StubResolver:
    """Answers from a table, and keeps each name it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(-2, "Name or service not known")
        return self.table[host]


@pytest.fixture
def server() -> Iterator[FakeApi]:
    api = FakeApi().start()
    api.documents["/payload"] = (200, json.dumps({"messages": []}).encode(), {})
    yield api
    api.stop()


@pytest.fixture
async def make_store() -> AsyncIterator[MakeStore]:
    clients = []

    async def make(
        allowed: str = "", table: dict[str, list[str]] | None = None, deadline: float = 10.0, resolve: Any = None
    ) -> HttpPayloadStore:
        network = GuardedNetwork(AddressPolicy(parse_allowed_hosts(allowed)), resolve or StubResolver(table or {}))
        client = httpx.AsyncClient(transport=GuardedTransport(network), trust_env=False)
        clients.append(client)
        return HttpPayloadStore(client, deadline=deadline)

    yield make
    for client in clients:
        await client.aclose()


async def test_a_loopback_url_is_refused_before_any_connection(server: FakeApi, make_store: MakeStore) -> None:
    store = await make_store()
    with pytest.raises(PayloadTransferFailed) as refused:
        await store.fetch(f"{server.url}/payload")
    assert str(refused.value) == f"GET refused: 127.0.0.1 is a loopback address, refused {REFUSED}"
    with pytest.raises(PayloadTransferFailed, match=r"^PUT refused: 127\.0\.0\.1 is a loopback address"):
        await store.upload(f"{server.url}/results/1", b"{}")
    assert server.requests == []


async def test_a_name_that_resolves_to_loopback_is_refused(server: FakeApi, make_store: MakeStore) -> None:
    store = await make_store(table={"files.example": ["127.0.0.1"]})
    with pytest.raises(PayloadTransferFailed, match=r"^GET refused: host files.example resolves to a loopback"):
        await store.fetch(f"http://files.example:{server.server_port}/payload")
    assert server.requests == []


async def test_a_name_with_any_refused_address_is_refused(server: FakeApi, make_store: MakeStore) -> None:
    store = await make_store("127.0.0.1", table={"files.example": ["127.0.0.1", "127.0.0.2"]})
    with pytest.raises(PayloadTransferFailed, match="resolves to a loopback"):
        await store.fetch(f"http://files.example:{server.server_port}/payload")
    assert server.requests == []


async def test_an_allowed_name_connects_to_the_address_it_was_checked_on(
    server: FakeApi, make_store: MakeStore
) -> None:
    port = server.server_port
    store = await make_store(f"files.example:{port}", table={"files.example": ["127.0.0.1"]})
    assert await store.fetch(f"http://files.example:{port}/payload") == {"messages": []}
    await store.upload(f"http://files.example:{port}/results/1", b'{"ok": 1}')
    # The stub's answer was used (the system resolver knows no files.example), the name kept for Host.
    assert server.requests == [
        ("GET", "/payload", f"files.example:{port}"),
        ("PUT", "/results/1", f"files.example:{port}"),
    ]
    assert server.uploads["/results/1"] == b'{"ok": 1}'


async def test_an_allowed_name_on_another_port_is_refused(server: FakeApi, make_store: MakeStore) -> None:
    store = await make_store("files.example:1", table={"files.example": ["127.0.0.1"]})
    with pytest.raises(PayloadTransferFailed, match="refused"):
        await store.fetch(f"http://files.example:{server.server_port}/payload")
    assert server.requests == []


async def test_an_unknown_name_fails_the_transfer_saying_so(make_store: MakeStore) -> None:
    store = await make_store()
    with pytest.raises(PayloadTransferFailed, match=r"^GET failed: ConnectError: cannot resolve the host"):
        await store.fetch("http://nowhere.example/payload")


async def test_a_name_that_resolves_to_a_6to4_form_of_loopback_is_refused(
    server: FakeApi, make_store: MakeStore
) -> None:
    store = await make_store(table={"files.example": ["2002:7f00:1::"]})
    with pytest.raises(PayloadTransferFailed, match=r"^GET refused: host files.example resolves to a loopback"):
        await store.fetch("http://files.example/payload")


async def test_a_name_that_never_resolves_cannot_hold_a_job_past_the_transfer_deadline(make_store: MakeStore) -> None:
    asked = asyncio.Event()

    async def never(host: str, port: int) -> list[str]:
        asked.set()
        await asyncio.Event().wait()
        return []

    store = await make_store(deadline=0.3, resolve=never)
    with pytest.raises(PayloadTransferFailed, match=r"^GET not done within 0\.3 s \(CASOLA_PAYLOAD_TIMEOUT\)$"):
        await asyncio.wait_for(store.fetch("http://files.example/payload"), 10)
    assert asked.is_set()


async def test_a_dripping_server_cannot_hold_a_job_past_the_transfer_deadline(make_store: MakeStore) -> None:
    server, sent = await dripping_server()
    port = server.sockets[0].getsockname()[1]
    store = await make_store(f"127.0.0.1:{port}", deadline=0.5)
    async with server:
        with pytest.raises(PayloadTransferFailed) as late:
            await store.fetch(f"http://127.0.0.1:{port}/slow")
    assert str(late.value) == "GET not done within 0.5 s (CASOLA_PAYLOAD_TIMEOUT)"
    assert 0 < len(sent) < 100  # it was reading, byte by byte, when the deadline ended it


async def test_the_container_client_follows_the_same_policy(server: FakeApi) -> None:
    client_resource = payload_client(AddressPolicy())
    client = await anext(client_resource)
    try:
        with pytest.raises(PayloadTransferFailed, match="loopback"):
            await HttpPayloadStore(client).fetch(f"http://localhost:{server.server_port}/payload")
    finally:
        await client_resource.aclose()
    assert server.requests == []
