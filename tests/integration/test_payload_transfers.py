"""What a payload host sends back is bounded: encodings, bombs, bodies and headers that never end, the answer to a PUT;
and a job's URL the worker cannot use fails that job as its payload, naming the field.

The payload store against a hostile server on 127.0.0.1 (allowed by CASOLA_PAYLOAD_ALLOWED_HOSTS); the worker
process's own memory under the same bombs is measured in test_payload_bombs.py.
"""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from testbed.fake_vllm import FakeVllm
from testbed.scripted_queue import ScriptedQueue

from adapters.dev.local_queue import chat_job
from adapters.payload_urls.bounded_body import ANSWER_BYTES
from adapters.payload_urls.guarded_network import GuardedNetwork, GuardedTransport
from adapters.payload_urls.store import HttpPayloadStore
from domain.addresses import AddressPolicy, parse_allowed_hosts
from domain.errors import PayloadTransferFailed
from tests.fakes.audio import audio_job
from tests.fakes.hostile_http import Answer, HostileServer, MiB, bomb, compressed, endless
from tests.integration.conftest import StartWorker, chat

PAYLOAD = {"messages": [{"role": "user", "content": "hello " * 1000}]}
CAP = 1 * MiB


@pytest.fixture
async def host() -> AsyncIterator[HostileServer]:
    async with HostileServer() as server:
        yield server


@pytest.fixture
async def store(host: HostileServer) -> AsyncIterator[HttpPayloadStore]:
    network = GuardedNetwork(AddressPolicy(parse_allowed_hosts(f"127.0.0.1:{host.port}")))
    async with httpx.AsyncClient(transport=GuardedTransport(network), trust_env=False) as client:
        yield HttpPayloadStore(client, deadline=10.0, max_bytes=CAP)


async def test_a_get_asks_for_the_body_as_it_is(host: HostileServer, store: HttpPayloadStore) -> None:
    host.answers["/p"] = Answer(body=json.dumps(PAYLOAD).encode())
    assert await store.fetch(f"{host.url}/p") == PAYLOAD
    assert host.requests[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_a_body_encoded_anyway_is_decoded(encoding: str, host: HostileServer, store: HttpPayloadStore) -> None:
    header = "deflate" if encoding == "raw-deflate" else encoding  # some servers send raw deflate under its name
    body = compressed(encoding, json.dumps(PAYLOAD).encode())
    host.answers["/p"] = Answer(headers={"Content-Encoding": header}, body=body)
    assert await store.fetch(f"{host.url}/p") == PAYLOAD
    audio = bytes(range(256)) * 4096  # 1 MiB exactly: at the cap, not over it
    host.answers["/a"] = Answer(headers={"Content-Encoding": header}, body=compressed(encoding, audio))
    assert await store.fetch_bytes(f"{host.url}/a", CAP) == audio


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_a_bomb_is_refused_at_the_cap_counted_on_decoded_bytes(
    encoding: str, host: HostileServer, store: HttpPayloadStore
) -> None:
    header = "deflate" if encoding == "raw-deflate" else encoding
    host.answers["/bomb"] = Answer(headers={"Content-Encoding": header}, body=bomb(encoding))
    with pytest.raises(PayloadTransferFailed, match=f"^larger than the {CAP} byte cap$"):
        await store.fetch(f"{host.url}/bomb")
    with pytest.raises(PayloadTransferFailed, match=r"^larger than the 4096 byte cap \(CASOLA_MAX_AUDIO_BYTES\)$"):
        await store.fetch_bytes(f"{host.url}/bomb", 4096)


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip", "x-custom"])
async def test_an_encoding_zlib_does_not_read_is_refused_by_name(
    encoding: str, host: HostileServer, store: HttpPayloadStore
) -> None:
    host.answers["/p"] = Answer(headers={"Content-Encoding": encoding}, body=b"\x00" * 100)
    with pytest.raises(PayloadTransferFailed) as refused:
        await store.fetch(f"{host.url}/p")
    assert str(refused.value) == f"Content-Encoding {encoding!r} is not read (identity was asked)"


async def test_a_corrupt_or_cut_encoded_body_fails_saying_so(host: HostileServer, store: HttpPayloadStore) -> None:
    host.answers["/corrupt"] = Answer(headers={"Content-Encoding": "gzip"}, body=b"\x1f\x8b not gzip at all")
    with pytest.raises(PayloadTransferFailed, match=r"^the gzip body does not decode: "):
        await store.fetch(f"{host.url}/corrupt")
    whole = compressed("gzip", json.dumps(PAYLOAD).encode())
    host.answers["/cut"] = Answer(headers={"Content-Encoding": "gzip"}, body=whole[: len(whole) // 2])
    with pytest.raises(PayloadTransferFailed, match=r"^the gzip body ends before its end$"):
        await store.fetch(f"{host.url}/cut")


async def test_a_body_that_never_ends_is_refused_at_the_cap(host: HostileServer, store: HttpPayloadStore) -> None:
    host.answers["/endless"] = Answer(body=endless)
    with pytest.raises(PayloadTransferFailed, match=f"^larger than the {CAP} byte cap$"):
        await store.fetch(f"{host.url}/endless")
    host.answers["/zeros"] = Answer(headers={"Content-Encoding": "gzip"}, body=lambda: endless(b"\x00" * 65536))
    with pytest.raises(PayloadTransferFailed, match=r"does not decode|larger than"):  # not gzip, or too long
        await store.fetch(f"{host.url}/zeros")


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    host: HostileServer, store: HttpPayloadStore
) -> None:
    host.answers["/big"] = Answer(headers={"Content-Length": str(CAP + 1)}, body=endless)
    with pytest.raises(PayloadTransferFailed, match=f"^larger than the {CAP} byte cap$"):
        await store.fetch(f"{host.url}/big")


async def test_a_header_that_never_ends_fails_the_transfer(host: HostileServer, store: HttpPayloadStore) -> None:
    host.answers["/header"] = Answer(endless_header=True)
    with pytest.raises(PayloadTransferFailed, match=r"^GET failed: RemoteProtocolError"):
        await store.fetch(f"{host.url}/header")
    with pytest.raises(PayloadTransferFailed, match=r"^PUT failed: RemoteProtocolError"):
        await store.upload(f"{host.url}/header", b"{}")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_the_answer_to_a_put_is_not_decoded_nor_read(
    encoding: str, host: HostileServer, store: HttpPayloadStore
) -> None:
    host.answers["/r"] = Answer(headers={"Content-Encoding": encoding}, body=bomb(encoding))
    await store.upload(f"{host.url}/r", b'{"result": 1}')
    assert host.requests[0].body == b'{"result": 1}'
    assert host.requests[0].headers["accept-encoding"] == "identity"
    host.answers["/endless"] = Answer(body=endless)
    await store.upload(f"{host.url}/endless", b"{}")


async def test_a_refused_put_says_why_from_the_start_of_the_answer(
    host: HostileServer, store: HttpPayloadStore
) -> None:
    host.answers["/denied"] = Answer(403, body=b"<Error><Code>AccessDenied</Code>\n</Error>" + b" " * 100_000)
    with pytest.raises(PayloadTransferFailed) as refused:
        await store.upload(f"{host.url}/denied", b"{}")
    assert str(refused.value) == r"HTTP 403: <Error><Code>AccessDenied</Code>\n</Error>"
    host.answers["/endless"] = Answer(500, body=lambda: endless(b"e" * 1000))
    with pytest.raises(PayloadTransferFailed) as failed:
        await store.upload(f"{host.url}/endless", b"{}")
    assert str(failed.value).startswith("HTTP 500: eeee") and len(str(failed.value)) < 300 < ANSWER_BYTES
    host.answers["/gzip"] = Answer(500, headers={"Content-Encoding": "gzip"}, body=bomb("gzip"))
    with pytest.raises(PayloadTransferFailed, match=r"^HTTP 500$"):
        await store.upload(f"{host.url}/gzip", b"{}")


@pytest.mark.parametrize(
    "url", ["http://0177.0.0.1/p", "http://[::1/p", "http://exa mple/p", "http://a.example:99999/"]
)
async def test_a_url_httpx_cannot_use_fails_the_transfer_not_the_worker(store: HttpPayloadStore, url: str) -> None:
    """The URL rule keeps these out of the frames and payloads; should one get here, it is a transfer failure."""
    for transfer in (store.fetch(url), store.upload(url, b"{}")):
        with pytest.raises(PayloadTransferFailed, match=r"refused: not a URL the worker can use|refused|failed"):
            await transfer


UNUSABLE = {
    "unparseable": ("http://[::1/p", "has a malformed IPv6 host"),
    "octal IPv4": ("http://0177.0.0.1/p", "host '0177.0.0.1' is not a dotted-quad IPv4 address"),
    "short IPv4": ("http://127.1/p", "host '127.1' is not a dotted-quad IPv4 address"),
}


@pytest.mark.parametrize("field", ["payload_url", "result_upload_url", "audio_url"])
@pytest.mark.parametrize("case", list(UNUSABLE))
async def test_a_url_the_worker_cannot_use_fails_its_job_as_the_payload_naming_the_field(
    field: str,
    case: str,
    queue: ScriptedQueue,
    fake_vllm: FakeVllm,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, reason = UNUSABLE[case]
    await start_worker()
    if field == "audio_url":
        await queue.push(audio_job("bad", audio_url=url))
    else:
        await queue.push({**chat_job("bad", chat()), field: url})
    error = await queue.wait_for_type("job_error", "bad")
    assert error["error"].startswith(f"invalid_payload: {field}: {reason}"), error["error"]
    assert fake_vllm.record.requests == []
    assert not [record for record in caplog.records if record.exc_info], "an expected failure logged a traceback"
