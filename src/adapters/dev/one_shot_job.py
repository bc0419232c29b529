"""`send-test-job`: a `LocalQueue` as a one-shot queue that pushes one job and reports its answer."""

import json
from collections.abc import Callable
from typing import Any

from adapters.dev.local_queue import LocalQueue, chat_job


async def one_shot_job(queue: LocalQueue, job: dict[str, Any], timeout: float, say: Callable[[str], None]) -> int:
    """Waits for a worker, pushes `job`, says what came back; the exit code: 0 for a result."""
    try:
        await queue.start()
    except OSError as error:
        say(f"cannot listen on {queue.host}:{queue.port}: {error.strerror or error}")
        return 1
    async with queue:
        say(f"listening on {queue.url}: start a worker with CASOLA_WS_URL={queue.url}")
        try:
            register = await queue.wait_for_type("register", timeout=timeout)
            say(f"worker {register.get('worker_id')} registered (capacity {register.get('capacity')}); sending job")
            answer = await queue.answer_to(job, timeout)
        except TimeoutError:
            say(f"no answer within {timeout:.0f} s")
            return 1
    if answer["type"] == "job_error":
        say(f"job failed: {answer.get('error')}")
        return 1
    for line in summary(answer["result"]):
        say(line)
    print(json.dumps(answer["result"], indent=2))
    return 0


def summary(result: dict[str, Any]) -> list[str]:
    completion = result.get("completion", {})
    choice, usage = (completion.get("choices") or [{}])[0], completion.get("usage", {})
    tokens = ", ".join(f"{name} {usage.get(name + '_tokens')}" for name in ("prompt", "completion", "total"))
    return [
        f"completion: {choice.get('message', {}).get('content')!r}",
        f"finish reason: {choice.get('finish_reason')}; tokens: {tokens}",
    ]


def chat_test_job(texts: list[str], system: str | None, max_tokens: int, temperature: float) -> dict[str, Any]:
    """The one chat job: a system message if given, then the user's messages."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": text} for text in texts]
    return chat_job("test-job-1", messages, max_tokens=max_tokens, temperature=temperature)
