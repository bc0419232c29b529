"""Strings from the queue and from payload URLs: loggable shortened and escaped, never raw."""

import hashlib
import re
from collections.abc import Iterable

LOGGABLE_LIMIT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_URL_USERINFO = re.compile(r"(?<=://)[^/\s@]*@")
_SECRET_QUERY = re.compile(r"(?i)([?&][^=&\s]*(?:token|key|secret|password|auth|sig)[^=&\s]*=)[^&\s#]*")


def without_secrets(text: str, secrets: Iterable[str]) -> str:
    """Each secret value (longest first) replaced by ***."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class Masker:
    """The one masking step for text that leaves the worker (frames, heartbeats, log lines, shipped logs, /readyz):
    each secret value, longest first, replaced by ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self._secret_bytes = [(secret.encode(), b"***") for secret in self.secrets]

    def __call__(self, text: str) -> str:
        return without_secrets(text, self.secrets)

    def encoded(self, data: bytes) -> bytes:
        """The same for UTF-8 text already encoded (a frame on its way out)."""
        for secret, mask in self._secret_bytes:
            data = data.replace(secret, mask)
        return data


def without_credentials(text: str) -> str:
    """`user:password@` in URLs and the values of secret-looking query parameters, replaced by ***."""
    return _SECRET_QUERY.sub(r"\1***", _URL_USERINFO.sub("***@", text))


def loggable(value: object, limit: int = LOGGABLE_LIMIT) -> str:
    """`value` fit for a log line: shortened to about `limit` characters, control characters escaped, credentials in
    URLs stripped."""
    text = value if isinstance(value, str) else repr(value)
    escaped = escape_controls(without_credentials(text[: limit + 100])[:limit])
    return escaped if len(text) <= limit else f"{escaped}... ({len(text)} chars)"


def escape_controls(text: str) -> str:
    """Control characters (newlines, ESC, NUL, ...) and lone surrogates as escapes: one line stays one line."""
    if text.isprintable():  # no control character, no surrogate: the common case, in C
        return text
    escaped = _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


class WarningBudget:
    """At most `burst` warnings in any `window` seconds; the rest are counted, not written."""

    def __init__(self, burst: int = 20, window: float = 60.0) -> None:
        self.burst = burst
        self.window = window
        self.window_start = float("-inf")
        self.written = 0
        self.held_back = 0

    def allow(self, now: float) -> int | None:
        """None to hold this warning back; else how many were held back since the last one written."""
        if now - self.window_start >= self.window:
            self.window_start, self.written = now, 0
        if self.written >= self.burst:
            self.held_back += 1
            return None
        self.written += 1
        held, self.held_back = self.held_back, 0
        return held


def header_safe(value: str, limit: int = 128) -> str:
    """`value` for an HTTP header: as is when short printable ASCII, else a stable digest (no injection, no crash)."""
    if value.isascii() and value.isprintable() and 0 < len(value) <= limit:
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:32]
