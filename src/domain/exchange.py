"""One exchange with vLLM, as data: where it goes, the body, how the body is sent and how the answer comes back.

A kind says how (`JobKind.sent`, `JobKind.answered`); the runner makes the exchange from the kind and the payload,
and the inference port carries out every exchange the same way, whatever the kind.
"""

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Sent = Literal["json", "form"]  # a JSON body, or a multipart form: the body's fields and the payload's file
Answered = Literal["json", "bytes"]  # a JSON object, or bytes (audio) with their content type


class Attachment(NamedTuple):
    """A file a payload brings for its form: given inline (`data`) or by URL (`url`, in the payload's field `field`,
    fetched within CASOLA_MAX_AUDIO_BYTES)."""

    data: bytes | None
    url: str | None
    field: str


class FilePart(NamedTuple):
    """The file part of a form, as sent."""

    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True)
class VllmRequest:
    """What the inference port sends: `body` to `route`, as JSON or (`sent="form"`) as a form with `file`; the answer
    as JSON, or (`answered="bytes"`) as `{"content": bytes, "content_type": str}`. `request_id` goes in
    `X-Request-Id`, vLLM's own request id, so a job can be followed into vLLM's log."""

    route: str
    body: dict[str, Any]
    request_id: str | None = None
    sent: Sent = "json"
    answered: Answered = "json"
    file: FilePart | None = None
