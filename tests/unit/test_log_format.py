"""The text log line: the standard library's layout, one line per event, whatever the message holds."""

import logging
import re
import sys

from adapters.log_format import TEXT_FORMAT, TextFormatter


def record(
    message: str, *args: object, created: float = 1_700_000_000.25, exc_info: object = None
) -> logging.LogRecord:
    entry = logging.LogRecord("worker", logging.INFO, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]
    entry.created, entry.msecs = created, (created - int(created)) * 1000
    return entry


def test_a_line_is_laid_out_as_the_standard_formatter_would() -> None:
    entry = record("job %s done in %.2f s", "j1", 0.5)
    assert TextFormatter().format(entry) == logging.Formatter(TEXT_FORMAT).format(
        record("job %s done in %.2f s", "j1", 0.5)
    )
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,250 INFO    worker: job j1 done in 0\.50 s", TextFormatter().format(entry)
    )


def test_the_time_follows_each_second() -> None:
    formatter = TextFormatter()
    first, later = formatter.format(record("a")), formatter.format(record("a", created=1_700_000_061.5))
    assert first[:19] != later[:19] and later[19:23] == ",500"
    assert formatter.format(record("a")) == first


def test_control_characters_and_lone_surrogates_cannot_make_a_second_line() -> None:
    line = TextFormatter().format(record("job %s", "x\nINFO forged\x1b[2J\ud800"))
    assert "\n" not in line and line.endswith("job x\\nINFO forged\\x1b[2J\\ud800")


def test_an_exception_follows_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = TextFormatter().format(record("failed", exc_info=sys.exc_info()))
    assert line.split("\n")[0].endswith("worker: failed") and line.endswith("ValueError: boom")
