"""Log output: one event per line (its traceback indented under it), human-readable or JSON lines, UTC times with
the zone, every secret masked; the records themselves are never changed, so other handlers see them as logged."""

import json
import logging
import os
import sys
import time
from collections.abc import Mapping

from application.job_context import current_job_id
from application.secrets import secret_values
from domain.untrusted import Masker, escape_controls, loggable

NOISY_LOGGERS = ("httpx", "httpcore", "httpx2", "openai", "websockets", "asyncio")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
CONTINUATION = "    "  # a traceback's or stack's lines start here: no line but an event's own starts at column 0


class UtcFormatter(logging.Formatter):
    """The standard library's formatter, its times in UTC with the zone: 2026-11-30T08:30:20.018Z."""

    converter = staticmethod(time.gmtime)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self, masker: Masker | None = None) -> None:
        super().__init__(TEXT_FORMAT)
        self.masked = masker or Masker()
        self._second, self._second_text = -1, ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """As the standard library's, the second's text made once a second: a job's line is on the hot path."""
        second = int(record.created)
        if second != self._second:
            self._second, self._second_text = second, time.strftime(self.default_time_format, self.converter(second))
        return self.default_msec_format % (self._second_text, record.msecs)

    def parts(self, record: logging.LogRecord) -> tuple[str, str, str]:
        """The event's time, its message, and its traceback and stack (empty when none), masked and escaped."""
        message = escape_controls(self.masked(record.getMessage()))
        details = [self.formatException(record.exc_info) if record.exc_info else record.exc_text or ""]
        details.append(self.formatStack(record.stack_info) if record.stack_info else "")
        indented = "\n".join(
            CONTINUATION + escape_controls(self.masked(line))
            for detail in details
            if detail
            for line in detail.splitlines()
        )
        return self.formatTime(record), message, indented


class TextFormatter(UtcFormatter):
    """`TEXT_FORMAT`, one line per event: control characters are escaped, so no input can forge a line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp, message, details = self.parts(record)
        line = TEXT_FORMAT % {"asctime": stamp, "levelname": record.levelname, "name": record.name, "message": message}
        return f"{line}\n{details}" if details else line


class JsonFormatter(UtcFormatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp, message, details = self.parts(record)
        line = {"ts": stamp, "level": record.levelname.lower(), "logger": record.name, "message": message}
        if (job_id := current_job_id.get()) is not None:
            line["job_id"] = loggable(job_id, 256)
        if details:
            line["error"] = details
        return json.dumps(line)


def not_relayed(record: logging.LogRecord) -> bool:
    """vLLM's lines relayed in the container are in its log already (the relay wrote them): shipped, not repeated."""
    return not getattr(record, "relayed", False)


def configure_logging(log_format: str = "text", level: str = "INFO", environ: Mapping[str, str] | None = None) -> None:
    # No line shows the caller's file, the thread or the process: records need not look them up (the logging
    # HOWTO's "Optimization"), which is a third of a job's log line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    masker = Masker(secret_values(os.environ if environ is None else environ))  # before settings: the environment's
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(masker) if log_format == "json" else TextFormatter(masker))
    handler.addFilter(not_relayed)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
