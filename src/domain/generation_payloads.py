"""The generating kinds' payloads: chat and text completion, with the sampling and structured-output fields
they share, each typed and checked as vLLM's routes take them."""

from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from domain.payloads import (
    Int64,
    LogprobCount,
    Options,
    Penalty,
    Stop,
    StopText,
    Strict,
    TextPayload,
    Texts,
    TokenId,
    TokenIds,
    ToolName,
    choices_within_cap,
    limits_of,
)
from domain.refused_fields import REFUSED


class JsonSchema(Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: Options | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> Self:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is given exactly when type is json_schema")
        return self


class StructuralTagFormat(BaseModel):
    """vLLM's structural tags; their inner shape is vLLM's to check."""

    model_config = ConfigDict(extra="allow")
    type: Literal["structural_tag"]


class StructuredOutputs(Strict):
    """vLLM's constrained decoding: exactly one of json, regex, choice, grammar, json_object, structural_tag."""

    json_: str | Options | None = Field(default=None, alias="json")
    regex: str | None = None
    choice: Annotated[list[str], Field(min_length=1)] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    structural_tag: str | None = None
    disable_any_whitespace: bool | None = None
    disable_additional_properties: bool | None = None
    whitespace_pattern: str | None = None

    @model_validator(mode="after")
    def _one_constraint(self) -> Self:
        constraints = ("json_", "regex", "choice", "grammar", "json_object", "structural_tag")
        if sum(getattr(self, name) is not None for name in constraints) != 1:
            raise ValueError("give exactly one of json, regex, choice, grammar, json_object, structural_tag")
        return self


class GenerationPayload(TextPayload):
    """The sampling fields that chat and text completion share (OpenAI's and vLLM's own)."""

    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: dict[Annotated[str, Field(pattern=r"^\d+$")], Annotated[float, Field(ge=-100, le=100)]] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    n: Annotated[int, Field(ge=1)] | None = None
    seed: Int64 | None = None
    stop: Stop | None = None
    stream: Literal[False] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    response_format: ResponseFormat | StructuralTagFormat | None = None
    structured_outputs: StructuredOutputs | None = None
    use_beam_search: bool | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0)] | None = None
    length_penalty: float | None = None
    stop_token_ids: list[TokenId] | None = None
    include_stop_str_in_output: bool | None = None
    ignore_eos: bool | None = None
    min_tokens: Annotated[int, Field(ge=0)] | None = None
    skip_special_tokens: bool | None = None
    spaces_between_special_tokens: bool | None = None
    prompt_logprobs: LogprobCount | None = None
    logprob_token_ids: list[TokenId] | None = None
    allowed_token_ids: Annotated[list[TokenId], Field(min_length=1)] | None = None
    bad_words: list[StopText] | None = None
    echo: bool | None = None
    add_special_tokens: bool | None = None
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    return_token_offsets: bool | None = None
    thinking_token_budget: Annotated[int, Field(ge=-1)] | None = None
    repetition_detection: Options | None = None
    vllm_xargs: dict[str, str | int | float | list[str | int | float]] | None = None
    watermarking: bool | None = None
    session_id: str | None = None

    @field_validator("n")
    @classmethod
    def _choices_capped(cls, n: int | None, info: ValidationInfo) -> int | None:
        return choices_within_cap(n, info)

    @model_validator(mode="after")
    def _min_tokens_within_max(self) -> Self:
        limit = self.output_limit()
        if self.min_tokens is not None and limit is not None and self.min_tokens > limit:
            raise ValueError(f"min_tokens ({self.min_tokens}) is above the output limit ({limit})")
        return self

    def output_limit(self) -> int | None:
        return self.max_tokens


class ChatMessage(BaseModel):
    """One chat message; the other OpenAI message fields (name, tool_calls, tool_call_id, ...) pass through."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[Options] | None = None


class FunctionDefinition(Strict):
    name: ToolName
    description: str | None = None
    parameters: Options | None = None
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(Strict):
    name: ToolName


class NamedToolChoice(Strict):
    type: Literal["function"] = "function"
    function: NamedFunction


class ChatPayload(GenerationPayload):
    """The OpenAI chat request and vLLM's extras; the seed's defaults for its seven fields."""

    INPUTS = frozenset({"messages"})

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = 0.7
    max_tokens: Annotated[int, Field(ge=1)] | None = 512
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = 1.0
    frequency_penalty: Penalty | None = 0.0
    presence_penalty: Penalty | None = 0.0
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None
    top_logprobs: LogprobCount | None = None
    tools: Annotated[list[Tool], Field(min_length=1)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    include_reasoning: bool | None = None
    add_generation_prompt: bool | None = None
    continue_final_message: bool | None = None
    documents: list[dict[str, str]] | None = None
    mm_processor_kwargs: Options | None = None
    chat_template: str | None = None
    chat_template_kwargs: Options | None = None
    media_io_kwargs: dict[str, Options] | None = None
    return_prompt_text: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if self.continue_final_message and self.add_generation_prompt:
            raise ValueError("continue_final_message and add_generation_prompt cannot both be true")
        self._check_tool_choice()
        return self

    def _check_tool_choice(self) -> None:
        if self.tool_choice in (None, "none"):
            return
        names = {tool.function.name for tool in self.tools or []}
        if not names:
            raise ValueError("tool_choice needs tools")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in names:
            raise ValueError(f"tool_choice names {self.tool_choice.function.name!r}, which is not among the tools")

    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def yielded_defaults(self) -> frozenset[str]:
        if self.max_completion_tokens is not None and "max_tokens" not in self.model_fields_set:
            return frozenset({"max_tokens"})  # the seed's default yields to the caller's max_completion_tokens
        return frozenset()


class CompletionPayload(GenerationPayload):
    """The OpenAI text completion request and vLLM's extras; OpenAI's (and vLLM's) defaults."""

    INPUTS = frozenset({"prompt", "prompt_embeds"})

    prompt: str | Texts | TokenIds | Annotated[list[TokenIds], Field(min_length=1)]
    logprobs: LogprobCount | None = None
    suffix: str | None = None
    prompt_embeds: str | Texts | None = None


Conversation = Annotated[list[ChatMessage], Field(min_length=1)]


BATCH_LACKS = "vLLM's batch route does not take it (send such jobs one conversation each, as openai/chat-completion)"
NOT_IN_BATCH = (  # chat's fields that vLLM 0.32's BatchChatCompletionRequest lacks
    "add_special_tokens", "allowed_token_ids", "bad_words", "documents", "ignore_eos", "min_tokens",
    "parallel_tool_calls", "prompt_logprobs", "reasoning_effort", "repetition_detection", "return_prompt_text",
    "return_token_offsets", "session_id", "skip_special_tokens", "spaces_between_special_tokens", "stop_token_ids",
    "thinking_token_budget", "tools", "truncate_prompt_tokens", "truncation_side", "vllm_xargs",
)  # fmt: skip
BATCH_REFUSED = {**REFUSED, **dict.fromkeys(NOT_IN_BATCH, BATCH_LACKS),
                 "guided_decoding_backend": "deprecated by vLLM; use structured_outputs"}  # fmt: skip


class ChatBatchPayload(ChatPayload):
    """vLLM's batch chat request: chat's fields, `messages` a list of conversations, each answered as one choice;
    the fields its route lacks refused by name. Its generations (conversations times `n`) are capped by
    CASOLA_MAX_BATCH."""

    REFUSES: ClassVar[dict[str, str]] = BATCH_REFUSED

    messages: Annotated[list[Conversation], Field(min_length=1)]  # type: ignore[assignment]  # many, not one
    early_stopping: bool | None = None

    @model_validator(mode="after")
    def _batch_capped(self, info: ValidationInfo) -> Self:
        cap = limits_of(info).max_batch
        generations = len(self.messages) * (self.n or 1)
        if generations > cap:
            given = f"{len(self.messages)} conversations" + (f" times n={self.n}" if self.n and self.n > 1 else "")
            raise ValueError(f"messages: {given} is over {cap} generations per job (CASOLA_MAX_BATCH)")
        return self
