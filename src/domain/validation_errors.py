"""A payload's validation errors as one line that names each wrong field and why."""

from typing import Any

from pydantic import ValidationError

from domain.untrusted import loggable

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
    return loggable(".".join(parts), 100)


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
    return loggable(repr(value[:100] if isinstance(value, str) else value), 60)
