"""The log line: the standard library's layout in UTC, one event per line whatever its message or exception holds,
and records left as they were logged for every other handler."""

import io
import json
import logging
import re
import sys
from typing import Any

import pytest

from adapters.operator.log_format import TEXT_FORMAT, JsonFormatter, TextFormatter
from domain.untrusted import Masker

FORGED = "x\n2026-01-01T00:00:00.000Z INFO    worker: forged\x1b[2J\ud800"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def record(message: str, *args: object, created: float = 1_700_000_000.25, **extra: Any) -> logging.LogRecord:
    entry = logging.LogRecord("worker", logging.INFO, __file__, 1, message, args, extra.get("exc_info"))
    entry.created, entry.msecs = created, (created - int(created)) * 1000
    entry.stack_info = extra.get("stack_info")
    return entry


def raised(message: str) -> Any:
    try:
        raise ValueError(message)
    except ValueError:
        return sys.exc_info()


def test_a_line_is_the_standard_layout_in_utc_with_the_zone() -> None:
    standard = logging.Formatter(TEXT_FORMAT)
    standard.converter = TextFormatter.converter
    standard.default_time_format, standard.default_msec_format = "%Y-%m-%dT%H:%M:%S", "%s.%03dZ"
    assert TextFormatter().format(record("job %s done in %.2f s", "j1", 0.5)) == standard.format(
        record("job %s done in %.2f s", "j1", 0.5)
    )
    assert TextFormatter().format(record("job %s", "j1")) == "2023-11-14T22:13:20.250Z INFO    worker: job j1"


def test_text_and_json_give_the_same_utc_time() -> None:
    text = TextFormatter().format(record("a"))
    assert json.loads(JsonFormatter().format(record("a")))["ts"] == text.split(" ")[0] == "2023-11-14T22:13:20.250Z"


def test_control_characters_and_lone_surrogates_cannot_make_a_second_line() -> None:
    line = TextFormatter().format(record("job %s", FORGED))
    assert "\n" not in line and line.endswith("job x\\n2026-01-01T00:00:00.000Z INFO    worker: forged\\x1b[2J\\ud800")


@pytest.mark.parametrize("where", ["exc_info", "stack_info"])
def test_an_exception_or_a_stack_follows_its_line_indented_and_cannot_forge_a_line(where: str) -> None:
    detail = raised(FORGED) if where == "exc_info" else f"Stack (most recent call last):\n{FORGED}"
    lines = TextFormatter().format(record("failed", **{where: detail})).split("\n")
    assert lines[0] == "2023-11-14T22:13:20.250Z INFO    worker: failed"
    assert all(line.startswith("    ") for line in lines[1:]) and len(lines) > 2
    assert not any(re.match(STAMP, line) for line in lines[1:]), "no line of the detail looks like an event"
    assert any("forged\\x1b[2J\\ud800" in line for line in lines[1:])


def test_secrets_are_masked_in_the_message_the_exception_and_the_stack() -> None:
    entry = record("Bearer %s", "tok-abcdef", exc_info=raised("bad tok-abcdef"), stack_info="at tok-abcdef")
    for formatter in (TextFormatter(Masker(["tok-abcdef"])), JsonFormatter(Masker(["tok-abcdef"]))):
        out = formatter.format(entry)
        assert "tok-abcdef" not in out and "Bearer ***" in out and "bad ***" in out and "at ***" in out


def test_a_record_reaches_every_other_handler_as_it_was_logged() -> None:
    kept: list[logging.LogRecord] = []
    stream = io.StringIO()
    shown_handler = logging.StreamHandler(stream)
    shown_handler.setFormatter(TextFormatter(Masker(["tok-abcdef"])))
    keeping = logging.Handler()
    keeping.emit = kept.append  # type: ignore[method-assign]
    logger = logging.getLogger("test.untouched")
    logger.handlers[:] = [shown_handler, keeping]
    logger.propagate = False
    try:
        raise ValueError("bad tok-abcdef")
    except ValueError:
        logger.exception("token %s", "tok-abcdef", stack_info=True)
    [entry] = kept
    assert (entry.msg, entry.args, entry.exc_text) == ("token %s", ("tok-abcdef",), None)
    assert entry.exc_info is not None and entry.stack_info is not None
    assert "tok-abcdef" not in stream.getvalue()


def test_the_time_follows_each_second_and_each_millisecond() -> None:
    formatter = TextFormatter()
    first, later = formatter.format(record("a")), formatter.format(record("a", created=1_700_000_061.5))
    assert first.startswith("2023-11-14T22:13:20.250Z") and later.startswith("2023-11-14T22:14:21.500Z")
    assert formatter.format(record("a", created=1_700_000_061.125)).startswith("2023-11-14T22:14:21.125Z")
