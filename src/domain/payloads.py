"""Job payloads: one pydantic model per kind, each field vLLM's route takes typed and checked, nothing dropped.

A field the worker does not know is refused, named; a field it knows but cannot honour is refused, saying why.
`extra_body` carries vLLM fields not modelled yet: it may not set the model, the input or streaming.
"""

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.errors import ErrorCategory, JobFailed
from domain.untrusted import shown

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
TokenId = Annotated[int, Field(ge=0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
LogprobCount = Annotated[int, Field(ge=0, le=20)]  # vLLM's default --max-logprobs
StopText = Annotated[str, Field(min_length=1)]
Stop = StopText | Annotated[list[StopText], Field(max_length=4)]
ToolName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")]
Options = dict[str, Any]

STREAMING = "the queue returns one result, so streaming is refused"
REFUSED: dict[str, str] = {
    "stream_options": STREAMING,
    "stream_interval": STREAMING,
    "request_id": "the worker names each vLLM request after its job",
    "kv_transfer_params": "internal to disaggregated vLLM deployments",
    "ec_transfer_params": "internal to disaggregated vLLM deployments",
    "best_of": "vLLM no longer takes it; use n",
    **dict.fromkeys(
        ("mm_payload", "return_mm_kwargs", "routed_experts_prompt_start"), "a vLLM internal the worker does not pass"
    ),
    "functions": "deprecated by OpenAI and not implemented by vLLM; use tools",
    "function_call": "deprecated by OpenAI and not implemented by vLLM; use tool_choice",
    **dict.fromkeys(
        ("audio", "modalities", "prediction", "web_search_options", "store", "metadata", "service_tier"),
        "an OpenAI platform feature vLLM does not implement",
    ),
    **dict.fromkeys(
        ("prompt_cache_key", "safety_identifier", "verbosity"), "an OpenAI platform feature vLLM does not implement"
    ),
}


_DEFAULTS: dict[type["JobPayload"], dict[str, Any]] = {}


@dataclass(frozen=True)
class PayloadLimits:
    """What the operator caps: `n` (choices per job, each a full generation) by CASOLA_MAX_CHOICES."""

    max_choices: int = 8


class Strict(BaseModel):
    """A nested object of the OpenAI request: unknown keys refused, as at the top."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class JobPayload(Strict):
    """What every kind's payload has; `request_body` is the JSON body sent to vLLM."""

    INPUTS: ClassVar[frozenset[str]] = frozenset()  # the kind's input fields, which extra_body may not set
    WORKERS: ClassVar[frozenset[str]] = frozenset({"model", "task", "job_type", "extra_body"})  # not sent as given

    _given: dict[str, Any] | None = PrivateAttr(default=None)  # the payload as it came, set by validate_payload

    model: str | None = "default"  # None or "default": VLLM_SERVED_MODEL_NAME
    task: str | None = None  # the kind's name, read before validation; not sent
    job_type: str | None = None
    extra_body: Options | None = None
    user: str | None = None
    priority: Int64 | None = None
    cache_salt: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    truncate_prompt_tokens: Annotated[int, Field(ge=-1)] | None = None
    truncation_side: Literal["left", "right"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _refused_fields_and_extra_body(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        refused = [f"{name}: {REFUSED[name]}" for name in data if name in REFUSED]
        if data.get("stream"):
            refused.append(f"stream: {STREAMING}")
        if refused:
            raise ValueError("; ".join(refused))
        extra = data.get("extra_body")
        return cls._unwrapped(data, extra) if isinstance(extra, dict) else data

    @classmethod
    def _unwrapped(cls, data: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        """Fields the worker models move out of `extra_body` to be checked like the rest; others stay as given."""
        fixed = sorted({"model", "stream", "task", "job_type", "extra_body", *cls.INPUTS} & set(extra))
        if fixed:
            raise ValueError(f"extra_body may not set {', '.join(fixed)}")
        known = {name: value for name, value in extra.items() if name in cls.model_fields}
        twice = sorted(set(known) & set(data))
        if twice:
            raise ValueError(f"{', '.join(twice)}: given both in the payload and in extra_body")
        refused = [f"extra_body.{name}: {REFUSED[name]}" for name in extra if name in REFUSED]
        if refused:
            raise ValueError("; ".join(refused))
        rest = {name: value for name, value in extra.items() if name not in known}
        return {**data, **known, "extra_body": rest or None}

    def request_body(self, model: str) -> dict[str, Any]:
        """The payload as given (it passed validation), `extra_body` merged in, the kind's defaults for fields not
        given, and the model vLLM serves; `null` is the same as leaving a field out."""
        given = self._given
        assert given is not None, "validate_payload makes payloads"
        extra = given.get("extra_body") or {}
        body = {name: value for name, value in self._defaults().items() if name not in given and name not in extra}
        body.update((name, value) for name, value in given.items() if value is not None and name not in self.WORKERS)
        body.update((name, value) for name, value in extra.items() if value is not None)
        body["model"] = model
        return body

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        """The fields with a default of the worker's own (the seed's seven, for chat), by their JSON names."""
        defaults = _DEFAULTS.get(cls)
        if defaults is None:
            defaults = _DEFAULTS[cls] = {
                field.alias or name: field.default
                for name, field in cls.model_fields.items()
                if field.default is not None and name not in cls.WORKERS
            }
        return defaults


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


class GenerationPayload(JobPayload):
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
        limits = info.context.get("limits") if isinstance(info.context, dict) else None
        cap = limits.max_choices if isinstance(limits, PayloadLimits) else PayloadLimits().max_choices
        if n is not None and n > cap:
            raise ValueError(f"at most {cap} choices per job (CASOLA_MAX_CHOICES)")
        return n

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

    def request_body(self, model: str) -> dict[str, Any]:
        body = super().request_body(model)
        if self.max_completion_tokens is not None and "max_tokens" not in self.model_fields_set:
            del body["max_tokens"]  # the seed's default yields to the caller's max_completion_tokens
        return body


TokenIds = Annotated[list[TokenId], Field(min_length=1)]
Texts = Annotated[list[str], Field(min_length=1)]


class CompletionPayload(GenerationPayload):
    """The OpenAI text completion request and vLLM's extras; OpenAI's (and vLLM's) defaults."""

    INPUTS = frozenset({"prompt", "prompt_embeds"})

    prompt: str | Texts | TokenIds | Annotated[list[TokenIds], Field(min_length=1)]
    logprobs: LogprobCount | None = None
    suffix: str | None = None
    prompt_embeds: str | Texts | None = None


class EmbeddingsPayload(JobPayload):
    """The OpenAI embeddings request and vLLM's extras: `input` is text or token ids, one or many."""

    INPUTS = frozenset({"input"})

    input: str | Texts | TokenIds | Annotated[list[TokenIds], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] | None = None  # vLLM's bytes formats are not JSON
    dimensions: Annotated[int, Field(ge=1)] | None = None
    embed_dtype: Literal["float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2"] | None = None
    endianness: Literal["native", "big", "little"] | None = None
    use_activation: bool | None = None
    add_special_tokens: bool | None = None
    padding: Literal["max_length", "do_not_pad"] | None = None
    mm_processor_kwargs: Options | None = None


ScoreText = str | Options
ScoreTexts = ScoreText | Annotated[list[ScoreText], Field(min_length=1)]


class PoolingPayload(JobPayload):
    """What vLLM's score and rerank routes share."""

    use_activation: bool | None = None
    padding: Literal["max_length", "do_not_pad"] | None = None
    max_tokens_per_query: Annotated[int, Field(ge=0)] | None = None
    max_tokens_per_doc: Annotated[int, Field(ge=0)] | None = None
    instruction: str | None = None
    chat_template_kwargs: Options | None = None
    mm_processor_kwargs: Options | None = None


SCORE_PAIRS = (("queries", "documents"), ("queries", "items"), ("text_1", "text_2"), ("data_1", "data_2"))


class ScorePayload(PoolingPayload):
    """vLLM's score request: one pair of inputs (`SCORE_PAIRS`), each a text, an object, or a list of them."""

    INPUTS = frozenset(name for pair in SCORE_PAIRS for name in pair)

    queries: ScoreTexts | None = None
    documents: ScoreTexts | None = None
    items: ScoreTexts | None = None
    text_1: ScoreTexts | None = None
    text_2: ScoreTexts | None = None
    data_1: ScoreTexts | None = None
    data_2: ScoreTexts | None = None

    @model_validator(mode="after")
    def _one_pair(self) -> Self:
        given = sorted(name for name in self.INPUTS if getattr(self, name) is not None)
        if [list(pair) for pair in SCORE_PAIRS if sorted(pair) == given] == []:
            pairs = ", ".join(f"{first} and {second}" for first, second in SCORE_PAIRS)
            raise ValueError(f"give one pair: {pairs}")
        return self


class RerankPayload(PoolingPayload):
    """vLLM's rerank request: a query, the documents, and how many of the best to return."""

    INPUTS = frozenset({"query", "documents"})

    query: ScoreText
    documents: ScoreTexts
    top_n: Annotated[int, Field(ge=0)] | None = None


def validate_payload(
    model: type[JobPayload], payload: Any, echo: bool = True, limits: PayloadLimits | None = None
) -> JobPayload:
    """The payload as `model`, or a `JobFailed` naming what is wrong; `echo=False` keeps the values out of it."""
    if not isinstance(payload, dict):
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"payload must be a JSON object, got {type(payload).__name__}")
    try:
        request = model.model_validate(payload, context={"limits": limits or PayloadLimits()})
    except ValidationError as error:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, describe_validation_error(error, echo)) from None
    request._given = payload
    return request


UNKNOWN_FIELD = "unknown field, refused rather than dropped (a vLLM field the worker does not model goes in extra_body)"
_MISMATCH = ("_type", "literal_error", "_parsing")


def describe_validation_error(error: ValidationError, echo: bool = True) -> str:
    """Names each wrong field and why, e.g. `temperature: must be <= 2 (got 3.5)`; the value only with `echo`.

    Of a union's alternatives, only the one that fits the value speaks: `stop: ['']` is a list, so the
    complaint is about its item, not that it is not a string.
    """
    items = [(_field(item["loc"]), item) for item in error.errors()]
    problems: dict[str, list[str]] = {}
    for field, item in items:
        if _mismatch(item) and any(_related(field, other) and not _mismatch(them) for other, them in items):
            continue
        problems.setdefault(field, []).append(_problem(item, echo and bool(field)))
    return "; ".join(_joined(field, messages) for field, messages in problems.items())


def _field(loc: tuple[int | str, ...]) -> str:
    """The field's path without the union members pydantic names (`list[str]`, `function-after[...]`, `Tool`)."""
    parts = [str(part) for part in loc if part != "[key]" and not _is_union_member(part)]
    return shown(".".join(parts), 100)


def _is_union_member(part: int | str) -> bool:
    if isinstance(part, int) or part == "[key]":
        return False
    return any(mark in part for mark in "[]-(") or part[:1].isupper() or part in ("str", "int", "float", "bool")


def _mismatch(item: Any) -> bool:
    """An alternative of a union that the value is not of at all."""
    wrong_type = any(str(item["type"]).endswith(kind) for kind in _MISMATCH)
    return wrong_type and any(_is_union_member(part) for part in item["loc"])


def _related(field: str, other: str) -> bool:
    """Of one top-level field: a value that fits no alternative is told only how it fails the one it fits."""
    return field.split(".")[0] == other.split(".")[0]


def _problem(item: Any, echo: bool) -> str:
    if item["type"] == "extra_forbidden":
        return UNKNOWN_FIELD
    message = str(item["msg"]).removeprefix("Value error, ")
    echoed = echo and item["type"] != "missing" and not isinstance(item["input"], dict)
    return f"{message} (got {_echoed(item['input'])})" if echoed else message


def _joined(field: str, messages: list[str]) -> str:
    text = " or ".join(dict.fromkeys(messages))
    return f"{field}: {text}" if field else text


def _echoed(value: Any) -> str:
    return shown(repr(value[:100] if isinstance(value, str) else value), 60)
