"""Job payloads: one pydantic model per kind, each field vLLM's route takes typed and checked, nothing dropped.

A field the worker does not know is refused, named; a field it knows but cannot honour is refused, saying why
(`refused_fields.py`). This module has what every kind shares and the pooling kinds (embeddings, score, rerank);
`generation_payloads.py` has chat and text completion, `audio_payloads.py` transcription and translation.
"""

import functools
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from domain.exchange import Attachment, FilePart
from domain.refused_fields import REFUSED, refuse_fields, unwrap_extra_body

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
TokenId = Annotated[int, Field(ge=0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
LogprobCount = Annotated[int, Field(ge=0, le=20)]  # vLLM's default --max-logprobs
StopText = Annotated[str, Field(min_length=1)]
Stop = StopText | Annotated[list[StopText], Field(max_length=4)]
ToolName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")]
Options = dict[str, Any]
TokenIds = Annotated[list[TokenId], Field(min_length=1)]
Texts = Annotated[list[str], Field(min_length=1)]


@dataclass(frozen=True)
class PayloadLimits:
    """What the operator caps: `n` (choices per job, each a full generation) by CASOLA_MAX_CHOICES, an audio job's
    file by CASOLA_MAX_AUDIO_BYTES, and a batch job's generations (conversations times `n`) by CASOLA_MAX_BATCH."""

    max_choices: int = 8
    max_audio_bytes: int = 25 * 1024 * 1024  # CASOLA_MAX_AUDIO_BYTES: OpenAI's 25 MB
    max_batch: int = 64


def limits_of(info: ValidationInfo) -> PayloadLimits:
    """The operator's caps, as validation was given them; the defaults when it was given none."""
    limits = info.context.get("limits") if isinstance(info.context, dict) else None
    return limits if isinstance(limits, PayloadLimits) else PayloadLimits()


def choices_within_cap(n: int | None, info: ValidationInfo) -> int | None:
    """`n` (each choice a full generation) no higher than CASOLA_MAX_CHOICES."""
    cap = limits_of(info).max_choices
    if n is not None and n > cap:
        raise ValueError(f"at most {cap} choices per job (CASOLA_MAX_CHOICES)")
    return n


class Strict(BaseModel):
    """A nested object of the OpenAI request: unknown keys refused, as at the top."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class JobPayload(Strict):
    """What every kind's payload has (`request_body.py` makes the JSON body sent to vLLM from it)."""

    INPUTS: ClassVar[frozenset[str]] = frozenset()  # the kind's input fields, which extra_body may not set
    NOT_SENT: ClassVar[frozenset[str]] = frozenset({"model", "task", "job_type", "extra_body"})  # the worker's own
    REFUSES: ClassVar[dict[str, str]] = REFUSED  # the fields refused whatever their value, and why
    RULED_OWN: ClassVar[frozenset[str]] = frozenset()  # refused by the kind's own rules (a value, a form's limits)
    WIRE_NAMES: ClassVar[dict[str, str]] = {}  # a field's name in vLLM's request, where it differs

    model: str | None = "default"  # None or "default": VLLM_SERVED_MODEL_NAME
    task: str | None = None  # the kind's name, read before validation; not sent
    job_type: str | None = None
    extra_body: Options | None = None

    @model_validator(mode="before")
    @classmethod
    def _refused_fields_and_extra_body(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        refuse_fields(data, cls.REFUSES)
        extra = data.get("extra_body")
        if not isinstance(extra, dict):
            return data
        return unwrap_extra_body(data, extra, set(cls.model_fields), cls.INPUTS, cls.REFUSES)

    @classmethod
    @functools.cache
    def known_names(cls) -> frozenset[str]:
        """The names the model reads (aliases, where a field has one)."""
        return frozenset(field.alias or name for name, field in cls.model_fields.items())

    @classmethod
    @functools.cache
    def ruled(cls) -> frozenset[str]:
        """Every field the worker's rules refuse, saying why: `REFUSES`, streaming, and the kind's own."""
        return frozenset({*cls.REFUSES, "stream", *cls.RULED_OWN})

    def yielded_defaults(self) -> frozenset[str]:
        """The worker's defaults that give way to what the caller gave (none, but for chat)."""
        return frozenset()

    def attachment(self) -> Attachment | None:
        """The file the payload brings for a form (an audio job's), given or by URL; None for a JSON kind."""
        return None

    def file_part(self, data: bytes) -> FilePart:
        """The form's file part for the attachment's bytes."""
        raise NotImplementedError(f"{type(self).__name__} brings no file")


class TextPayload(JobPayload):
    """What the text routes share (chat, completion, embeddings, score, rerank); the audio routes have none of it."""

    user: str | None = None
    priority: Int64 | None = None
    cache_salt: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    truncate_prompt_tokens: Annotated[int, Field(ge=-1)] | None = None
    truncation_side: Literal["left", "right"] | None = None


class EmbeddingsPayload(TextPayload):
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


class PoolingPayload(TextPayload):
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


class ClassifyPayload(TextPayload):
    """vLLM's classify request (a classification model, pooling runner): `input` (texts or token ids), or
    `messages` with the chat template applied."""

    INPUTS = frozenset({"input", "messages"})

    input: str | Texts | TokenIds | Annotated[list[TokenIds], Field(min_length=1)] | None = None
    messages: Annotated[list[Options], Field(min_length=1)] | None = None
    use_activation: bool | None = None
    padding: Literal["max_length", "do_not_pad"] | None = None
    media_io_kwargs: dict[str, Options] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool | None = None
    continue_final_message: bool | None = None
    chat_template: str | None = None
    chat_template_kwargs: Options | None = None
    mm_processor_kwargs: Options | None = None

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if (self.input is None) == (self.messages is None):
            raise ValueError("give one input: input or messages")
        return self
