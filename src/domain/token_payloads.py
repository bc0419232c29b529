"""vLLM's own routes of the served model's tokenizer: `/tokenize` (a text, or a conversation with the chat template
applied, to its token ids, as before a long job to count them) and `/detokenize` (token ids back to text)."""

from typing import Annotated, Self

from pydantic import Field, model_validator

from domain.generation_payloads import ChatMessage, Tool
from domain.payloads import JobPayload, Options, TokenId


class TokenizePayload(JobPayload):
    """A `prompt`, or `messages` with the chat template's options; the token strings too when asked."""

    INPUTS = frozenset({"prompt", "messages"})

    prompt: str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    add_special_tokens: bool | None = None
    return_token_strs: bool | None = None
    add_generation_prompt: bool | None = None
    continue_final_message: bool | None = None
    chat_template: str | None = None
    chat_template_kwargs: Options | None = None
    mm_processor_kwargs: Options | None = None
    media_io_kwargs: dict[str, Options] | None = None
    tools: Annotated[list[Tool], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give one input: prompt or messages")
        if self.messages is None and (self.add_generation_prompt or self.continue_final_message or self.tools):
            raise ValueError("add_generation_prompt, continue_final_message and tools go with messages")
        return self


class DetokenizePayload(JobPayload):
    """Token ids back to text."""

    INPUTS = frozenset({"tokens"})

    tokens: Annotated[list[TokenId], Field(min_length=1)]
