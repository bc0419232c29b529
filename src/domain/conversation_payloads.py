"""The payloads of the other conversation APIs vLLM serves: OpenAI's Responses (`/v1/responses`) and Anthropic's
Messages (`/v1/messages`). The worker keeps nothing between jobs, so what asks it to (a stored response, a previous
one to continue, a background run) is refused, saying so; vLLM's schema judges the fields not modelled here.
"""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from domain.generation_payloads import ChatMessage, StructuredOutputs
from domain.payloads import Int64, JobPayload, Options, Penalty, Stop, StopText, TokenId
from domain.refused_fields import REFUSED, STREAMING

STATELESS = "the worker keeps no state between jobs: send the whole conversation in each job"
HELD_WHEN_TRUE = {  # refused only when true: false is what the worker does anyway
    "store": STATELESS,
    "background": "the queue holds the job until its result: a background run has no one to poll it",
}
RESPONSES_REFUSED = {
    **{name: why for name, why in REFUSED.items() if name not in ("metadata", "store")},
    "previous_response_id": STATELESS,
    "conversation": STATELESS,
    "prompt": "a stored prompt template lives on OpenAI's platform, which vLLM does not implement",
}
MESSAGES_REFUSED = {name: why for name, why in REFUSED.items() if name != "metadata"}  # Anthropic's own `metadata`


class ResponsesPayload(JobPayload):
    """OpenAI's Responses request: the input (text, or the items of a conversation), instructions and sampling;
    `store` is sent false, as the worker keeps nothing."""

    INPUTS = frozenset({"input"})
    REFUSES: ClassVar[dict[str, str]] = RESPONSES_REFUSED
    RULED_OWN = frozenset(HELD_WHEN_TRUE)

    input: str | Annotated[list[Options], Field(min_length=1)]
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    max_tool_calls: Annotated[int, Field(ge=0)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0)] | None = None
    seed: Int64 | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    tools: list[Options] | None = None
    tool_choice: str | Options | None = None
    parallel_tool_calls: bool | None = None
    text: Options | None = None
    reasoning: Options | None = None
    include: list[str] | None = None
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    previous_input_messages: list[Options] | None = None  # vLLM's: the earlier messages, given again in the job
    enable_response_messages: bool | None = None
    stop: Stop | None = None
    stop_token_ids: list[TokenId] | None = None
    logit_bias: dict[Annotated[str, Field(pattern=r"^\d+$")], Annotated[float, Field(ge=-100, le=100)]] | None = None
    ignore_eos: bool | None = None
    include_stop_str_in_output: bool | None = None
    include_reasoning: bool | None = None
    skip_special_tokens: bool | None = None
    structured_outputs: StructuredOutputs | None = None
    chat_template_kwargs: Options | None = None
    mm_processor_kwargs: Options | None = None
    media_io_kwargs: dict[str, Options] | None = None
    vllm_xargs: dict[str, str | int | float | list[str | int | float]] | None = None
    watermarking: bool | None = None
    session_id: str | None = None
    user: str | None = None
    priority: Int64 | None = None
    cache_salt: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    store: Literal[False] | None = False  # sent: vLLM's own default is true
    background: Literal[False] | None = None
    stream: Literal[False] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nothing_kept(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refused = [f"{name}: {why}" for name, why in HELD_WHEN_TRUE.items() if data.get(name)]
            if data.get("stream"):
                refused.insert(0, f"stream: {STREAMING}")
            if refused:
                raise ValueError("; ".join(refused))
        return data


class AnthropicMessage(ChatMessage):
    """One message of Anthropic's Messages API: a user's or the assistant's; the system prompt is `system`."""

    role: Literal["user", "assistant"]  # narrower than chat's roles


class AnthropicMessagesPayload(JobPayload):
    """Anthropic's Messages request, as vLLM serves it: the messages, `max_tokens` (required, as in Anthropic's
    API), the system prompt, sampling, tools and thinking."""

    INPUTS = frozenset({"messages"})
    REFUSES: ClassVar[dict[str, str]] = MESSAGES_REFUSED

    messages: Annotated[list[AnthropicMessage], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)]
    system: str | Annotated[list[Options], Field(min_length=1)] | None = None
    stop_sequences: Annotated[list[StopText], Field(max_length=64)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    tools: list[Options] | None = None
    tool_choice: Options | None = None
    thinking: Options | None = None
    output_config: Options | None = None
    metadata: Options | None = None
    chat_template_kwargs: Options | None = None
    vllm_xargs: dict[str, str | int | float | list[str | int | float]] | None = None
    watermarking: bool | None = None
    cache_salt: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    stream: Literal[False] | None = None
