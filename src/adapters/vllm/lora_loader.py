"""vLLM's /v1/load_lora_adapter over `VllmClient`: an adapter loaded at run time (vLLM started with --enable-lora and
VLLM_ALLOW_RUNTIME_LORA_UPDATING=1)."""

import msgspec

from adapters.vllm.client import BrokenAnswer, NoAnswer, VllmClient
from adapters.vllm.refusals import refusal
from domain.errors import InferenceRejected, InferenceUnavailable

NOT_ENABLED = (
    "this vLLM does not load adapters at run time: start it with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 "
    "(the worker does, when it launches vLLM with CASOLA_LORA_ROOT set)"
)


class HttpLoraLoader:
    def __init__(self, client: VllmClient) -> None:
        self.client = client

    async def load_adapter(self, name: str, path: str) -> None:
        body = msgspec.json.encode({"lora_name": name, "lora_path": path})
        try:
            answer = await self.client.post("/v1/load_lora_adapter", body)
        except (NoAnswer, BrokenAnswer) as error:
            raise InferenceUnavailable(f"cannot reach vLLM at {self.client.base_url}: {error}") from None
        if answer.status in (404, 405):
            raise InferenceRejected(NOT_ENABLED, answer.status)
        if answer.status >= 400:
            raise refusal(answer.status, answer.body)
