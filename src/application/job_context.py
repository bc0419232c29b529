"""The job a piece of work belongs to, for its log lines and its vLLM request: set in the job's own task."""

from contextvars import ContextVar

current_job_id: ContextVar[str | None] = ContextVar("current_job_id", default=None)
