"""Log output: one line per event, human-readable or JSON lines, with every secret masked."""

import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from application.job_context import current_job_id
from application.secrets import secret_values
from domain.untrusted import escape_controls, shown, without_secrets

NOISY_LOGGERS = ("httpx", "httpcore", "httpx2", "openai", "websockets", "asyncio")


class SecretMasker(logging.Filter):
    """Replaces any secret value in a record's final message with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if record.exc_info and record.exc_text is None:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True

    def mask(self, text: str) -> str:
        return without_secrets(text, self.secrets)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (job_id := current_job_id.get()) is not None:
            line["job_id"] = shown(job_id, 256)
        if record.exc_text or record.exc_info:
            line["error"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(line)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """One event, one line: control characters in the message are escaped, so no input can forge a line.

    `TEXT_FORMAT`, written out: a job's line is on the hot path, and the time's text changes once a second.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second, self._stamp = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        message = escape_controls(record.getMessage())
        line = f"{self._stamp},{int(record.msecs):03d} {record.levelname:<7} {record.name}: {message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return f"{line}\n{record.exc_text}" if record.exc_text else line


def configure_logging(log_format: str = "text", level: str = "INFO", environ: Mapping[str, str] | None = None) -> None:
    # No line shows the caller's file, the thread or the process: records need not look them up (the logging
    # HOWTO's "Optimization"), which is a third of a job's log line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(SecretMasker(secret_values(os.environ if environ is None else environ)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
