"""One job from frame to outcome: its payload, its kind from the table (resolved once), validation, inference,
the frame that reports it (the result inline or uploaded) and its metrics."""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from application.metrics import NO_METRICS
from application.ports import Inference, PayloadStore, WorkerMetrics
from application.served_models import ServedModels
from application.served_surface import ServedSurface
from domain.errors import CATEGORY_OF, ErrorCategory, InferenceRejected, JobFailed, PayloadTransferFailed, job_failure
from domain.exchange import Attachment
from domain.frames import JobError, JobResult, JobResultRef, OutboundFrame
from domain.jobs import upload_instead
from domain.kinds import resolve_kind
from domain.payloads import PayloadLimits
from domain.request_body import request_body, validate_payload
from domain.worker import RunningJob

log = logging.getLogger("worker")

Outcome = dict[str, Any] | JobFailed
EXPECTED_FAILURES: tuple[type[Exception], ...] = (JobFailed, TimeoutError, *CATEGORY_OF)


def utc_now() -> datetime:
    return datetime.now(UTC)


class JobRunner:
    def __init__(
        self,
        inference: Inference,
        payloads: PayloadStore,
        models: ServedModels,
        job_timeout: float,
        limits: PayloadLimits | None = None,
        now: Callable[[], datetime] = utc_now,
        metrics: WorkerMetrics = NO_METRICS,
        clock: Callable[[], float] = time.monotonic,
        surface: ServedSurface | None = None,
    ) -> None:
        self.surface = surface or ServedSurface(models.probe, models.default)  # what the served vLLM takes
        self.clock = clock
        self.in_flight = 0  # requests to vLLM now: what the stall watch looks at
        self.finished = 0
        self.metrics = metrics
        self.inference = inference
        self.payloads = payloads
        self.models = models
        self.job_timeout = job_timeout
        self.limits = limits or PayloadLimits()
        self.now = now

    def begin(self, run: RunningJob) -> None:
        """The job starts now, on the runner's clock (what its metrics count from)."""
        run.started_at = self.clock()

    async def run(self, run: RunningJob) -> OutboundFrame:
        """The frame that reports the job's outcome; the job counted in the metrics."""
        return await self.report(run, await self.outcome(run))

    async def outcome(self, run: RunningJob) -> Outcome:
        """The job's result, or why it failed; within the job's deadline."""
        try:
            async with asyncio.timeout(self.job_timeout):
                return await self._result(run)
        except EXPECTED_FAILURES as error:
            return job_failure(error, self.job_timeout)
        except Exception as error:
            log.exception("job %s: unexpected error", run.job.job_id)
            return job_failure(error, self.job_timeout)

    async def _result(self, run: RunningJob) -> dict[str, Any]:
        job = run.job
        payload = job.payload if job.payload_url is None else await self.payloads.fetch(job.payload_url)
        if not isinstance(payload, dict):
            reason = f"payload must be a JSON object, got {type(payload).__name__}"
            raise JobFailed(ErrorCategory.INVALID_PAYLOAD, reason)
        kind, job_type = resolve_kind(job.job_type, payload)
        run.kind = kind.task
        taken = await self.surface.judged(kind)  # a kind this vLLM does not serve ends here
        echo = job.payload_url is None  # a fetched payload's values are not echoed in its errors
        valid = validate_payload(kind.payload, payload, echo, self.limits, taken)
        body = request_body(valid, await self.models.resolve(valid.request.model))
        run.adapter = body["model"] if self.models.is_adapter(body["model"]) else None
        attachment = valid.request.attachment()
        file = None if attachment is None else valid.request.file_part(await self._attached(attachment))
        self.in_flight += 1  # requests to vLLM now, and those it finished: what the stall watch reads
        try:
            output = await self.inference.exchange(kind.request(body, job.request_id, file))
        except InferenceRejected as rejected:
            self.finished += 1
            raise kind.explained(rejected, body) from None
        finally:
            self.in_flight -= 1
        self.finished += 1
        return kind.job_result(job_type, job.config_id, output, body, self.now())

    async def _attached(self, attachment: Attachment) -> bytes:
        """A form's file: given inline, or fetched from its URL within CASOLA_MAX_AUDIO_BYTES."""
        if attachment.url is None:  # the payload's checks gave it inline then
            return attachment.data or b""
        try:
            data = await self.payloads.fetch_bytes(attachment.url, self.limits.max_audio_bytes)
        except PayloadTransferFailed as error:
            raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"{attachment.field}: {error}") from None
        if not data:
            raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"{attachment.field}: the file is empty")
        return data

    async def report(self, run: RunningJob, outcome: Outcome) -> OutboundFrame:
        """The frame that reports the outcome (a large result uploaded first when the job says where), and the
        job counted in the metrics."""
        job, took, fence_token = run.job, self.clock() - run.started_at, run.fence_token
        if isinstance(outcome, JobFailed):
            log.warning("job %s failed after %.2f s: %s%s", job.job_id, took, _on(run), outcome)
            self.metrics.job_ended(run.kind, outcome.category.value, took, took)
            return JobError(job.job_id, fence_token, str(outcome))
        log.info("job %s done in %.2f s (%s%s)", job.job_id, took, _on(run), _token_counts(outcome))
        uploaded = job.result_upload_url is not None and await self._uploaded(
            job.job_id, job.result_upload_url, outcome
        )
        frame = JobResultRef(job.job_id, fence_token) if uploaded else JobResult(job.job_id, fence_token, outcome)
        self.metrics.job_ended(run.kind, "result", took, self.clock() - run.started_at)
        prompt, completion = _tokens(_usage(outcome))
        self.metrics.tokens(int(prompt or 0), int(completion or 0))
        return frame

    def cancelled(self, run: RunningJob, category: str) -> None:
        """A job revoked or given up: counted, no frame."""
        took = self.clock() - run.started_at
        self.metrics.job_ended(run.kind, category, took, took)

    async def _uploaded(self, job_id: str, url: str, result: dict[str, Any]) -> bool:
        body = json.dumps(result, separators=(",", ":")).encode()
        if not upload_instead(len(body), url):
            return False
        try:
            await self.payloads.upload(url, body)
        except PayloadTransferFailed as error:
            log.warning("job %s: result upload failed, sending inline: %s", job_id, error)
            return False
        return True


def _on(run: RunningJob) -> str:
    """The adapter the job ran on, for its log line."""
    return f"adapter {run.adapter}; " if run.adapter else ""


def _usage(result: dict[str, Any]) -> dict[str, Any]:
    """The token counts or audio seconds: the result's own `usage` (audio), its answer's (chat), or the result's
    top-level counts (embeddings)."""
    if isinstance(usage := result.get("usage"), dict):
        return usage
    output = next((value for value in result.values() if isinstance(value, dict) and "usage" in value), {})
    usage = output.get("usage") or result
    return usage if isinstance(usage, dict) else {}


def _token_counts(result: dict[str, Any]) -> str:
    """What the job's log line says it cost: tokens, seconds of audio heard, or bytes of audio spoken."""
    usage = _usage(result)
    if usage.get("type") == "duration":
        return f"{usage.get('seconds', '?')} s of audio"
    if (heard := result.get("duration")) is not None:  # verbose_json: the duration, no usage
        return f"{heard} s of audio"
    if isinstance(spoken := result.get("audio_base64"), str):
        size = len(spoken) * 3 // 4 - spoken[-2:].count("=")  # base64's padding stands for no byte
        return f"{size} bytes of {result.get('format', '?')} audio"
    prompt, completion = _tokens(usage)
    return f"prompt {'?' if prompt is None else prompt}, completion {completion or 0} tokens"


def _tokens(usage: dict[str, Any]) -> tuple[Any, Any]:
    """The prompt's and the completion's tokens, as OpenAI's chat names them or as its Responses API and
    Anthropic's Messages API do."""
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    return prompt, usage.get("completion_tokens", usage.get("output_tokens"))
