"""Jobs through the real worker: fake queue socket, fake vLLM and fake API on 127.0.0.1."""

import asyncio
import json

from testbed.fake_vllm import FakeVllm
from testbed.scripted_queue import ScriptedQueue

from adapters.dev.local_queue import chat_job
from domain import rules
from domain.vllm import LogVerdict
from tests.conftest import eventually
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import TOKEN, StartWorker, chat


async def test_a_chat_job_round_trip_in_the_seed_format(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker()
    assert queue.received[0] == {"type": "register", "worker_id": "worker-1", "config_id": "cfg-1", "capacity": 1}
    assert queue.handshakes[0]["Authorization"] == f"Bearer {TOKEN}"
    await queue.push(chat_job("j1", chat(), config_id="cfg-1", temperature=0.2, max_tokens=3, stop=["\n\n"]))
    frame = await queue.wait_for_type("job_result", "j1")
    result = frame["result"]
    assert frame["fence_token"] == 1
    assert result["status"] == "success"
    assert (result["job_type"], result["task"], result["config_id"]) == (
        "chat_completion",
        "openai/chat-completion",
        "cfg-1",
    )
    assert result["processed_at"].endswith("Z") and len(result["processed_at"]) == 24
    completion = result["completion"]
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 3
    request = fake_vllm.record.requests[0]
    assert request["model"] == "default"
    assert (request["temperature"], request["max_tokens"], request["stop"]) == (0.2, 3, ["\n\n"])


async def test_eight_jobs_run_at_once_at_capacity_eight(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True  # every request is held until all eight are in
    await start_worker(CASOLA_MAX_JOBS=8)
    for number in range(8):
        await queue.push(chat_job(f"j{number}", chat()))
    await eventually(lambda: fake_vllm.record.running == 8, timeout=30, what="8 requests in vLLM at once")
    fake_vllm.behaviour.hang = False
    await eventually(lambda: len(queue.frames_of("job_result")) == 8, timeout=30, what="8 results")
    assert fake_vllm.record.peak_running == 8
    assert queue.frames_of("job_error") == []


async def test_a_ninth_transient_job_at_capacity_fails_fast(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True
    await start_worker(CASOLA_MAX_JOBS=2)
    for number in range(3):
        await queue.push(chat_job(f"j{number}", chat()))
    error = await queue.wait_for_type("job_error", "j2")
    assert error["error"].startswith("over_capacity: worker at capacity (2 of 2")


async def test_a_persisted_job_longer_than_its_lease_is_renewed_with_the_newest_fence_token(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True
    await start_worker(CASOLA_MAX_JOBS=2, CASOLA_LEASE_SECONDS=1.0, CASOLA_RENEW_LEASE_AFTER=0.3)
    await queue.push(chat_job("p1", chat(), mode="persisted", fence_token=4))
    await queue.wait_for(lambda f: f["type"] == "job_progress" and f["fence_token"] == 4)
    await queue.push(chat_job("p1", chat(), mode="persisted", fence_token=3))  # stale: ignored
    await queue.push(chat_job("p1", chat(), mode="persisted", fence_token=5))  # newer attempt: takes over
    await queue.wait_for(lambda f: f["type"] == "job_progress" and f["fence_token"] == 5)
    renewals = queue.frames_of("job_progress")
    assert len(renewals) >= 2
    assert {frame["job_id"] for frame in renewals} == {"p1"}
    fake_vllm.behaviour.hang = False
    fake_vllm.behaviour.delay = 0.0
    await queue.push(chat_job("t1", chat("another job")))
    await queue.wait_for_type("job_result", "t1")
    await queue.wait_for_type("job_result", "p1")
    assert len(fake_vllm.record.requests) == 2  # p1 and t1: neither duplicate started a request
    assert [f for f in queue.received if f.get("type") == "job_progress" and f["fence_token"] == 3] == []
    assert (await queue.wait_for_type("job_result", "p1"))["fence_token"] == 5


async def test_a_revoked_job_closes_its_vllm_request_and_sends_nothing(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True
    await start_worker(CASOLA_MAX_JOBS=2)
    await queue.push(chat_job("r1", chat("revoke me")))
    await eventually(lambda: fake_vllm.record.running == 1, what="request running in vLLM")
    await queue.push({"type": "job_revoked", "job_id": "r1", "reason": "client went away"})
    await eventually(lambda: len(fake_vllm.record.closed) == 1, what="vLLM request closed")
    assert fake_vllm.record.closed[0]["messages"][0]["content"] == "revoke me"
    fake_vllm.behaviour.hang = False
    await queue.push(chat_job("after", chat()))
    await queue.wait_for_type("job_result", "after")
    assert [f for f in queue.received if f.get("job_id") == "r1"] == []


async def test_a_bad_payload_gets_invalid_payload_naming_the_field(
    queue: ScriptedQueue, start_worker: StartWorker
) -> None:
    await start_worker()
    await queue.push(chat_job("bad", chat(), temperature=3.5))
    error = await queue.wait_for_type("job_error", "bad")
    assert error["error"].startswith("invalid_payload: temperature: Input should be less than or equal to 2")
    assert error["fence_token"] == 1


async def test_an_unknown_kind_gets_unsupported_job_type(queue: ScriptedQueue, start_worker: StartWorker) -> None:
    await start_worker()
    job = chat_job("img", chat())
    job["job_type"] = "image_generation"
    await queue.push(job)
    error = await queue.wait_for_type("job_error", "img")
    assert error["error"].startswith("unsupported_job_type: 'image_generation' is not supported; supported:")


async def test_embeddings_come_back_in_the_queues_format(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker()
    job = {"type": "job", "job_id": "e1", "mode": "transient", "fence_token": 1, "config_id": "cfg-1"}
    await queue.push({**job, "payload": {"task": "openai/embeddings", "input": ["a", "b"], "dimensions": 3}})
    result = (await queue.wait_for_type("job_result", "e1"))["result"]
    assert result == {
        "status": "success",
        "job_type": "openai/embeddings",
        "task": "openai/embeddings",
        "config_id": "cfg-1",
        "processed_at": result["processed_at"],
        "embeddings": [{"index": 0, "embedding": [0.1, 0.2, 0.3]}, {"index": 1, "embedding": [0.1, 0.2, 0.3]}],
        "prompt_tokens": 2,
        "total_tokens": 2,
    }
    assert fake_vllm.record.requests[0] == {"model": "default", "input": ["a", "b"], "dimensions": 3}


KIND_JOBS = [  # (job_type, payload, vLLM's route, the result field)
    ("openai/completion", {"prompt": "Once upon", "max_tokens": 3, "echo": True}, "completion"),
    ("vllm/score", {"queries": "q", "documents": ["a", "b"]}, "score"),
    ("vllm/rerank", {"query": "q", "documents": ["a", "b"], "top_n": 1}, "rerank"),
]


async def test_text_completion_score_and_rerank_jobs(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker()
    for number, (job_type, payload, field) in enumerate(KIND_JOBS):
        await queue.push(
            {"type": "job", "job_id": f"k{number}", "mode": "transient", "job_type": job_type, "payload": payload}
        )
        result = (await queue.wait_for_type("job_result", f"k{number}"))["result"]
        assert (result["task"], result["job_type"]) == (job_type, job_type)
        assert result[field]["model"] == "default"
        assert fake_vllm.record.requests[number] == payload | {"model": "default"}


async def test_a_job_addresses_any_name_vllm_serves_and_is_told_the_names_otherwise(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker(CASOLA_MAX_JOBS=2)
    fake_vllm.behaviour.aliases = ["sql-lora"]  # loaded after the worker started
    await queue.push(chat_job("lora", chat(), model="sql-lora"))
    await queue.wait_for_type("job_result", "lora")
    assert fake_vllm.record.requests[-1]["model"] == "sql-lora"
    await queue.push(chat_job("gpt", chat(), model="gpt-4o"))
    error = await queue.wait_for_type("job_error", "gpt")
    assert error["error"] == "invalid_payload: model: gpt-4o is not served here; served: default, sql-lora"
    assert len(fake_vllm.record.requests) == 1


async def test_what_vllm_was_not_started_for_is_told_with_the_flags_to_add(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.runner = "generate"
    fake_vllm.behaviour.tool_calling = False
    await start_worker(CASOLA_MAX_JOBS=2)
    await queue.push(
        {"type": "job", "job_id": "e", "mode": "transient", "payload": {"task": "openai/embeddings", "input": "a"}}
    )
    embeddings = await queue.wait_for_type("job_error", "e")
    assert embeddings["error"] == (
        "inference_error: this vLLM does not serve /v1/embeddings: openai/embeddings jobs need a pooling model "
        "(--runner pooling --convert embed in VLLM_EXTRA_ARGS)"
    )
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    await queue.push(chat_job("t", chat(), tools=[tool], tool_choice="auto"))
    tools = await queue.wait_for_type("job_error", "t")
    assert tools["error"].startswith('inference_error: vLLM answered HTTP 400: "auto" tool choice requires')
    assert tools["error"].endswith(
        "tool calling needs vLLM started with --enable-auto-tool-choice --tool-call-parser "
        "<the model's parser, e.g. hermes>: add both to VLLM_EXTRA_ARGS"
    )


async def test_a_field_the_worker_cannot_honour_is_refused_before_vllm_sees_it(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker(CASOLA_MAX_JOBS=3, CASOLA_MAX_CHOICES=2)
    await queue.push(chat_job("s", chat(), stream=True))
    await queue.push(chat_job("n", chat(), n=3))
    await queue.push(chat_job("u", chat(), temprature=0.2))
    assert (await queue.wait_for_type("job_error", "s"))["error"] == (
        "invalid_payload: stream: the queue returns one result, so streaming is refused"
    )
    assert (await queue.wait_for_type("job_error", "n"))["error"] == (
        "invalid_payload: n: at most 2 choices per job (CASOLA_MAX_CHOICES) (got 3)"
    )
    assert (await queue.wait_for_type("job_error", "u"))["error"].startswith(
        "invalid_payload: temprature: unknown field, refused rather than dropped"
    )
    assert fake_vllm.record.requests == []


async def test_malformed_frames_are_skipped_and_the_connection_stays(
    queue: ScriptedQueue, start_worker: StartWorker
) -> None:
    await start_worker()
    for garbage in ["{not json", "[1,2]", '{"no": "type"}', '{"type": "job", "job_id": 5}', '{"type": "news"}']:
        await queue.push(garbage)
    await queue.push({"type": "error", "message": "queue hiccup"})
    await queue.push(chat_job("ok", chat()))
    await queue.wait_for_type("job_result", "ok")
    assert len(queue.handshakes) == 1


async def test_vllm_errors_are_reported_with_vllm_reason(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.status = 400
    fake_vllm.behaviour.error_message = "max_tokens is too large: 9999 > 512"
    await start_worker()
    await queue.push(chat_job("big", chat(), max_tokens=9999))
    error = await queue.wait_for_type("job_error", "big")
    assert error["error"] == "inference_error: vLLM answered HTTP 400: max_tokens is too large: 9999 > 512"
    fake_vllm.behaviour.status = 500
    fake_vllm.behaviour.error_message = "boom"
    await queue.push(chat_job("boom", chat()))
    assert (await queue.wait_for_type("job_error", "boom"))["error"] == "inference_error: vLLM answered HTTP 500: boom"


async def test_a_connection_closed_before_an_answer_is_tried_once_more(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker()
    fake_vllm.behaviour.drop = 1
    await queue.push(chat_job("once", chat()))
    assert (await queue.wait_for_type("job_result", "once"))["result"]["status"] == "success"
    assert len(fake_vllm.record.requests) == 2
    fake_vllm.behaviour.drop = 2
    await queue.push(chat_job("twice", chat()))
    error = (await queue.wait_for_type("job_error", "twice"))["error"]
    assert error.startswith("vllm_unavailable: cannot reach vLLM at http://127.0.0.1:")
    assert len(fake_vllm.record.requests) == 4


async def test_a_job_past_its_deadline_is_cancelled(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True
    await start_worker(CASOLA_JOB_TIMEOUT=0.5)
    await queue.push(chat_job("slow", chat()))
    error = await queue.wait_for_type("job_error", "slow")
    assert error["error"] == "inference_timeout: no answer within 0.5 s (CASOLA_JOB_TIMEOUT)"
    await eventually(lambda: len(fake_vllm.record.closed) == 1, what="vLLM request closed")


async def test_the_queue_restarted_mid_job_gets_the_result_after_reconnect(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True
    await start_worker()
    await queue.push(chat_job("long", chat()))
    await eventually(lambda: fake_vllm.record.running == 1, what="request running in vLLM")
    await queue.stop()
    fake_vllm.behaviour.hang = False
    await eventually(lambda: fake_vllm.record.running == 0, what="vLLM answered")
    queue.received.clear()
    await queue.start()
    result = await queue.wait_for_type("job_result", "long")
    assert queue.received.index(result) > queue.received.index(queue.frames_of("register")[0])
    assert queue.received[0]["type"] == "register"


async def test_a_queue_that_accepts_and_closes_at_once_is_not_hammered(
    queue: ScriptedQueue, start_worker: StartWorker
) -> None:
    worker = await start_worker()
    for registered in (2, 3, 4):
        await queue.disconnect_workers()
        await queue.wait_for(lambda frame, n=registered: len(queue.frames_of("register")) == n)
    # Backoff(0.1, 0.5): no connection stayed up, so each wait doubled (0.1, 0.2, 0.4) and none reset it.
    assert worker.service.queue.backoff.next == 0.5  # type: ignore[attr-defined]
    assert len(queue.handshakes) == 4


async def test_payload_url_and_result_upload(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.completion_tokens = 70_000
    payload = {"messages": chat(), "max_tokens": 70_000}
    fake_api.documents["/payloads/1"] = (200, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    await start_worker(CASOLA_PAYLOAD_ALLOWED_HOSTS=f"127.0.0.1:{fake_api.server_port}")
    job = {"type": "job", "job_id": "u1", "mode": "persisted", "fence_token": 2, "config_id": "cfg-1"}
    await queue.push({**job, "payload_url": f"{fake_api.url}/payloads/1", "result_upload_url": f"{fake_api.url}/r/u1"})
    ref = await queue.wait_for_type("job_result_ref", "u1")
    assert ref == {"type": "job_result_ref", "job_id": "u1", "fence_token": 2}
    uploaded = json.loads(fake_api.uploads["/r/u1"])
    assert uploaded["completion"]["usage"]["completion_tokens"] == 70_000


async def test_payload_url_redirects_and_failures_are_payload_errors(
    queue: ScriptedQueue, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_api.documents["/moved"] = (302, b"", {"Location": f"{fake_api.url}/payloads/1"})
    await start_worker(CASOLA_MAX_JOBS=2, CASOLA_PAYLOAD_ALLOWED_HOSTS=f"127.0.0.1:{fake_api.server_port}")
    job = {"type": "job", "mode": "transient", "fence_token": 1, "config_id": "cfg-1"}
    await queue.push({**job, "job_id": "m", "payload_url": f"{fake_api.url}/moved"})
    await queue.push({**job, "job_id": "n", "payload_url": f"{fake_api.url}/missing"})
    moved = await queue.wait_for_type("job_error", "m")
    missing = await queue.wait_for_type("job_error", "n")
    assert moved["error"] == "invalid_payload: payload_url: HTTP 302: redirects are not followed"
    assert missing["error"] == "invalid_payload: payload_url: HTTP 404"


async def test_payload_urls_inside_the_host_are_refused_unless_allowed(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.completion_tokens = 70_000  # a result large enough to upload
    fake_api.documents["/payloads/1"] = (200, json.dumps({"messages": chat(), "max_tokens": 70_000}).encode(), {})
    await start_worker(CASOLA_MAX_JOBS=2)
    job = {"type": "job", "mode": "transient", "fence_token": 1, "config_id": "cfg-1"}
    await queue.push({**job, "job_id": "in", "payload_url": f"{fake_api.url}/payloads/1"})
    refused = await queue.wait_for_type("job_error", "in")
    assert refused["error"] == (
        "invalid_payload: payload_url: GET refused: 127.0.0.1 is a loopback address, refused "
        "(the operator can allow it with CASOLA_PAYLOAD_ALLOWED_HOSTS)"
    )
    upload_to_vllm = f"http://localhost:{fake_vllm.port}/v1/chat/completions"
    await queue.push(
        {
            **job,
            "job_id": "out",
            "payload": {"messages": chat(), "max_tokens": 70_000},
            "result_upload_url": upload_to_vllm,
        }
    )
    inline = await queue.wait_for_type("job_result", "out")  # the upload refused, the result comes inline
    assert inline["result"]["completion"]["usage"]["completion_tokens"] == 70_000
    assert [request for request in fake_api.requests if request[0] != "POST"] == []  # heartbeats only
    assert len(fake_vllm.record.requests) == 1  # the job's own request, no PUT of the result


async def test_heartbeats_carry_status_and_bearer_token(
    queue: ScriptedQueue, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    worker = await start_worker()
    await asyncio.to_thread(fake_api.wait_for_status, "running")
    assert await worker.stop() == 0
    assert fake_api.statuses()[0] == "starting"
    assert fake_api.statuses()[-1] == "stopping"
    assert set(fake_api.authorizations) == {f"Bearer {TOKEN}"}
    assert fake_api.heartbeats[0] == {"instance_id": "worker-1", "queue_id": "vllm-queue", "status": "starting"}


async def test_a_failing_heartbeat_api_never_stops_the_worker(
    queue: ScriptedQueue, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_api.status = 500
    worker = await start_worker()
    await eventually(lambda: len(fake_api.heartbeats) >= 3, what="three heartbeats")
    await queue.push(chat_job("j", chat()))
    assert (await queue.wait_for_type("job_result", "j"))["result"]["status"] == "success"
    assert not worker.task.done() and worker.service.failure is None
    assert len(queue.frames_of("register")) == 1, "the queue connection was never dropped for it"


async def test_drain_finishes_the_running_job_and_refuses_new_ones(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.delay = 0.5
    worker = await start_worker(CASOLA_MAX_JOBS=2, CASOLA_SHUTDOWN_GRACE_PERIOD=5)
    await queue.push(chat_job("running", chat()))
    await eventually(lambda: fake_vllm.record.running == 1, what="request running")
    worker.service.request_shutdown()
    await queue.wait_for_type("drain")
    await queue.push(chat_job("late", chat()))
    await queue.push(chat_job("late-persisted", chat(), mode="persisted"))
    assert await worker.exit_code() == 0
    assert (await queue.wait_for_type("job_result", "running"))["result"]["status"] == "success"
    assert (await queue.wait_for_type("job_error", "late"))["error"] == "shutting_down: worker is draining"
    assert [f for f in queue.received if f.get("job_id") == "late-persisted"] == []
    assert fake_api.statuses()[-1] == "stopping"


async def test_jobs_left_when_the_grace_period_ends(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True
    worker = await start_worker(CASOLA_MAX_JOBS=2, CASOLA_SHUTDOWN_GRACE_PERIOD=0.3)
    await queue.push(chat_job("t", chat()))
    await queue.push(chat_job("p", chat(), mode="persisted"))
    await eventually(lambda: fake_vllm.record.running == 2, what="requests running")
    assert await worker.stop() == 0
    error = await queue.wait_for_type("job_error", "t")
    assert error["error"] == "shutting_down: the worker shut down before the job finished"
    assert [f for f in queue.received if f.get("job_id") == "p"] == []  # released: redelivered after its lease
    await eventually(lambda: len(fake_vllm.record.closed) == 2, what="both vLLM requests closed")
    assert fake_api.statuses()[-1] == "stopping"


async def test_vllm_death_fails_transient_jobs_and_reports_error(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True
    worker = await start_worker()
    await queue.push(chat_job("t", chat()))
    await eventually(lambda: fake_vllm.record.running == 1, what="request running")
    fake_vllm.behaviour.healthy = False
    assert await worker.exit_code() == 1
    error = await queue.wait_for_type("job_error", "t")
    assert error["error"].startswith("vllm_unavailable: vLLM stopped answering /health")
    types = [frame["type"] for frame in queue.received]
    assert "pause" in types and types.index("pause") < types.index("job_error"), types  # paused while vLLM was down
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "error" and "vLLM stopped answering /health" in beat["error_message"]


async def test_a_queue_refusing_the_token_is_fatal(
    queue: ScriptedQueue, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    from http import HTTPStatus

    queue.refuse_with = HTTPStatus.UNAUTHORIZED
    worker = await start_worker(wait_registered=False)
    assert await worker.exit_code() == 2
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "fatal" and "HTTP 401" in beat["error_message"]


async def test_vllm_never_ready_reports_error(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.healthy = False
    worker = await start_worker(wait_registered=False, VLLM_STARTUP_TIMEOUT=0.5)
    assert await worker.exit_code() == 1
    assert fake_api.statuses() == ["starting", "error"]
    assert "VLLM_STARTUP_TIMEOUT" in fake_api.heartbeats[-1]["error_message"]
    assert queue.received == []


async def test_a_frozen_queue_is_noticed_within_the_keepalive(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.delay = 6.0  # the job ends after the worker noticed (a result written into the frozen socket
    await start_worker(CASOLA_QUEUE_KEEPALIVE=3)  # before that would be lost: the protocol has no acknowledgement)
    await queue.push(chat_job("during", chat()))
    queue.freeze()  # the socket stays open, nothing is read: pings go unanswered
    await queue.wait_for(lambda frame: frame["type"] == "register" and frame is not queue.received[0], timeout=30)
    result = await queue.wait_for_type("job_result", "during")  # the running job went on and its result came
    assert queue.received.index(result) > 1


async def test_a_secret_quoted_by_vllm_leaves_in_no_frame_and_no_heartbeat(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    key = "vllm-key-5ecret-0042"
    worker = await start_worker(VLLM_API_KEY=key)
    fake_vllm.behaviour.status = 400
    fake_vllm.behaviour.error_message = f"invalid api key {key}; token {TOKEN}"
    await queue.push(chat_job("leak", chat()))
    error = (await queue.wait_for_type("job_error", "leak"))["error"]
    assert error == "inference_error: vLLM answered HTTP 400: invalid api key ***; token ***"
    worker.service.fail(rules.on_vllm_log(LogVerdict.FATAL, f"CUDA driver version is insufficient ({key})"))  # type: ignore[arg-type]
    assert await worker.exit_code() == 2
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "fatal" and key not in beat["error_message"] and "***" in beat["error_message"]
