"""The official openai client for check-vllm, made on demand: the openai package (20 MB) is imported only then."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from application.ports import Inference


async def openai_client(base_url: str, api_key: str | None, timeout: float) -> AsyncIterator[Any]:
    from adapters.vllm import official_inference

    async with contextlib.asynccontextmanager(official_inference.openai_client)(base_url, api_key, timeout) as client:
        yield client


def openai_inference(client: Any) -> Inference:
    from adapters.vllm.official_inference import OpenAIInference

    return OpenAIInference(client)
