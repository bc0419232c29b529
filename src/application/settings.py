"""The worker's configuration, read from the environment, with the defaults its first README promised."""

import ipaddress
import os
import socket
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from application.job_settings import JobSettings
from application.secrets import is_secret_name, mask, secret_values
from domain.gpu import GpuExpectations
from domain.leases import default_renew_after
from domain.lora import RUNTIME_LOADING, lora_serve_args
from domain.untrusted import without_credentials
from domain.urls import parse_http_url
from domain.vllm import cache_environment, serve_command

DEFAULT_REQUEST_TIMEOUT = 65.0


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class ConfigurationError(Exception):
    """One or more variables are missing or malformed; the message names each."""


def worker_version() -> str:
    try:
        return version("worker-vllm")
    except PackageNotFoundError:
        return "unknown"


def default_instance_id() -> str:
    return f"vast-{os.environ.get('CONTAINER_ID') or socket.gethostname()}"


Seconds = Annotated[float, Field(gt=0)]


class VllmSettings(BaseSettings):
    """Where vLLM is and how to address it: all that `check-vllm` needs."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, env_ignore_empty=True)

    VLLM_SCHEME: Literal["http", "https"] = "http"
    VLLM_HOST: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    VLLM_PORT: Annotated[int, Field(ge=1, le=65535)] = 8000
    VLLM_SERVED_MODEL_NAME: Annotated[str, Field(min_length=1)] = "default"
    VLLM_API_KEY: SecretStr | None = None
    VLLM_READ_TIMEOUT: Seconds | None = None
    CASOLA_ALLOW_INSECURE_TRANSPORT: bool = False

    @model_validator(mode="after")
    def _no_vllm_key_in_clear(self) -> Self:
        """The API key goes to vLLM in clear over http://: only to loopback, unless the operator opts out."""
        in_clear = self.VLLM_API_KEY and self.VLLM_SCHEME == "http" and not is_loopback_url(self.vllm_base_url)
        if in_clear and not self.CASOLA_ALLOW_INSECURE_TRANSPORT:
            raise ValueError(
                "VLLM_API_KEY: http:// to a VLLM_HOST that is not loopback would send the key in clear; "
                "set VLLM_SCHEME=https, or CASOLA_ALLOW_INSECURE_TRANSPORT=1"
            )
        return self

    @property
    def vllm_base_url(self) -> str:
        host = f"[{self.VLLM_HOST}]" if ":" in self.VLLM_HOST else self.VLLM_HOST  # an IPv6 address
        return f"{self.VLLM_SCHEME}://{host}:{self.VLLM_PORT}"

    @property
    def vllm_read_timeout(self) -> float:
        """How long vLLM may stay silent on one request: VLLM_READ_TIMEOUT, else the request's own limit."""
        return self.VLLM_READ_TIMEOUT or self.request_timeout

    @property
    def vllm_connections(self) -> int:
        """Requests to vLLM at once, beside the probes': one for check-vllm."""
        return 1

    @property
    def vllm_api_key(self) -> str | None:
        return self.VLLM_API_KEY.get_secret_value() if self.VLLM_API_KEY else None

    def secrets(self) -> list[str]:
        """Every secret value the worker knows: its own secret settings and the environment's (HF_TOKEN, ...)."""
        own = {name: value.get_secret_value() for name, value in vars(self).items() if isinstance(value, SecretStr)}
        return secret_values({**os.environ, **own})

    @property
    def request_timeout(self) -> float:
        """The HTTP client's limit on one vLLM request."""
        return DEFAULT_REQUEST_TIMEOUT


class GpuSettings(BaseSettings):
    """What the GPU checks expect: all that `check-gpu` needs."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, env_ignore_empty=True)

    CASOLA_EXPECTED_GPU_NAME: str | None = None
    CASOLA_EXPECTED_VRAM_GB: Annotated[float, Field(gt=0)] | None = None

    @property
    def gpu_expectations(self) -> GpuExpectations:
        return GpuExpectations(self.CASOLA_EXPECTED_GPU_NAME, self.CASOLA_EXPECTED_VRAM_GB)


class Settings(VllmSettings, GpuSettings, JobSettings):
    """Every variable the worker takes (docs/configuration.md); a job's own in `JobSettings`."""

    CASOLA_WS_URL: str
    CASOLA_CONFIG_ID: Annotated[str, Field(min_length=1)]
    VLLM_MODEL: Annotated[str, Field(min_length=1)]

    CASOLA_API_URL: str | None = None
    CASOLA_API_TOKEN: SecretStr | None = None
    CASOLA_INSTANCE_ID: Annotated[str, Field(min_length=1, default_factory=default_instance_id)]
    CASOLA_QUEUE_ID: str = "vllm-queue"
    CASOLA_HEARTBEAT_INTERVAL: Seconds = 60.0
    CASOLA_MAX_JOBS: Annotated[int, Field(ge=1, le=4096)] = 1
    CASOLA_LEASE_SECONDS: Seconds = 30.0
    CASOLA_RENEW_LEASE_AFTER: Seconds | None = None
    CASOLA_SHUTDOWN_GRACE_PERIOD: Annotated[float, Field(ge=0)] = 5.0
    CASOLA_JOB_TIMEOUT: Seconds = 600.0
    CASOLA_VLLM_STALL_TIMEOUT: Annotated[float, Field(ge=0)] = 120.0

    VLLM_STARTUP_TIMEOUT: Seconds = 120.0
    VLLM_STOP_TIMEOUT: Seconds = 30.0
    VLLM_EXTRA_ARGS: str = ""
    VLLM_SERVE_COMMAND: Annotated[str, Field(min_length=1)] = "vllm"
    CASOLA_CACHE_DIR: str | None = None

    CASOLA_QUEUE_KEEPALIVE: Annotated[float, Field(ge=3)] = 15.0
    WORKER_HTTP_HOST: str = "0.0.0.0"
    WORKER_HTTP_PORT: Annotated[int, Field(ge=0, le=65535)] = 8081
    WORKER_VLLM_LOG_PORT: Annotated[int, Field(ge=0, le=65535)] = 0
    CASOLA_BACKPRESSURE_CHECK_INTERVAL: Annotated[float, Field(ge=0)] = 5.0
    CASOLA_BACKPRESSURE_PAUSE_THRESHOLD: Annotated[float, Field(ge=0)] = 0.0
    CASOLA_BACKPRESSURE_RESUME_THRESHOLD: Annotated[float, Field(ge=0)] = 0.0
    CASOLA_LOGS_URL: str | None = None
    CASOLA_LOG_FLUSH_INTERVAL: Seconds = 30.0
    CASOLA_METRICS_URL: str | None = None
    CASOLA_METRICS_INTERVAL: Seconds = 30.0

    @field_validator("CASOLA_WS_URL")
    @classmethod
    def _websocket_url(cls, url: str) -> str:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return url

    @field_validator("CASOLA_API_URL", "CASOLA_LOGS_URL", "CASOLA_METRICS_URL")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url in (None, ""):
            return None
        parse_http_url(url)
        return url.rstrip("/")

    @model_validator(mode="after")
    def _no_token_in_clear(self) -> Self:
        """ws:// and http:// would carry the bearer token in clear: only to loopback, unless the operator opts out."""
        if self.CASOLA_ALLOW_INSECURE_TRANSPORT:
            return self
        urls = {name: getattr(self, name) for name in ("CASOLA_WS_URL", "CASOLA_API_URL", "CASOLA_LOGS_URL")}
        urls["CASOLA_METRICS_URL"] = self.CASOLA_METRICS_URL
        for name, url in urls.items():
            if url is not None and url.startswith(("ws://", "http://")) and not is_loopback_url(url):
                raise ValueError(
                    f"{name}: {url.split(':')[0]}:// to a host that is not loopback would send the token in clear; "
                    "use wss:// or https://, or set CASOLA_ALLOW_INSECURE_TRANSPORT=1"
                )
        return self

    @model_validator(mode="after")
    def _renew_before_lease_ends(self) -> Self:
        if self.CASOLA_RENEW_LEASE_AFTER is not None and self.CASOLA_RENEW_LEASE_AFTER >= self.CASOLA_LEASE_SECONDS:
            raise ValueError(
                f"CASOLA_RENEW_LEASE_AFTER ({self.CASOLA_RENEW_LEASE_AFTER}) must be less than "
                f"CASOLA_LEASE_SECONDS ({self.CASOLA_LEASE_SECONDS})"
            )
        return self

    @model_validator(mode="after")
    def _resume_at_or_below_pause(self) -> Self:
        if self.CASOLA_BACKPRESSURE_RESUME_THRESHOLD > self.CASOLA_BACKPRESSURE_PAUSE_THRESHOLD:
            resume, pause = self.CASOLA_BACKPRESSURE_RESUME_THRESHOLD, self.CASOLA_BACKPRESSURE_PAUSE_THRESHOLD
            raise ValueError(
                f"CASOLA_BACKPRESSURE_RESUME_THRESHOLD ({resume:g}) must not be above "
                f"CASOLA_BACKPRESSURE_PAUSE_THRESHOLD ({pause:g})"
            )
        return self

    @property
    def renew_lease_after(self) -> float:
        return self.CASOLA_RENEW_LEASE_AFTER or default_renew_after(self.CASOLA_LEASE_SECONDS)

    @property
    def queue_url(self) -> str:
        """`{CASOLA_WS_URL}/ws`: the path gets `/ws`, any query stays after it."""
        parts = urlsplit(self.CASOLA_WS_URL)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/ws"))

    @property
    def request_timeout(self) -> float:
        """A backstop behind the job's own deadline."""
        return self.CASOLA_JOB_TIMEOUT + 5.0

    @property
    def vllm_connections(self) -> int:
        return self.CASOLA_MAX_JOBS

    @property
    def vllm_command(self) -> list[str]:
        """`vllm serve ...`, with LoRA enabled when CASOLA_LORA_ROOT is set."""
        command = serve_command(
            self.VLLM_SERVE_COMMAND,
            self.VLLM_MODEL,
            self.VLLM_HOST,
            self.VLLM_PORT,
            self.VLLM_SERVED_MODEL_NAME,
            self.VLLM_EXTRA_ARGS,
        )
        if self.CASOLA_LORA_ROOT is None:
            return command
        return command + lora_serve_args(self.VLLM_EXTRA_ARGS, self.CASOLA_MAX_LORAS, self.CASOLA_MAX_LORA_RANK)

    @property
    def vllm_environment(self) -> dict[str, str]:
        """The environment vLLM is started with: the worker's, its caches under CASOLA_CACHE_DIR, and with
        CASOLA_LORA_ROOT, adapters loaded at run time."""
        lora = RUNTIME_LOADING if self.CASOLA_LORA_ROOT is not None else {}
        return os.environ | cache_environment(self.CASOLA_CACHE_DIR, dict(os.environ)) | lora

    @property
    def api_token(self) -> str | None:
        return self.CASOLA_API_TOKEN.get_secret_value() if self.CASOLA_API_TOKEN else None

    def masked(self) -> dict[str, Any]:
        """The effective configuration for the log, every secret masked."""
        return {name: mask(name, value) for name, value in self.model_dump().items()}


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from the environment (or `environ`), or `ConfigurationError` naming each bad variable."""
    return _load(Settings, environ)


def load_vllm_settings(environ: dict[str, str] | None = None) -> VllmSettings:
    return _load(VllmSettings, environ)


def load_gpu_settings(environ: dict[str, str] | None = None) -> GpuSettings:
    return _load(GpuSettings, environ)


def _load(model: type[SettingsT], environ: dict[str, str] | None) -> SettingsT:
    try:
        if environ is None:
            return model()
        return model.model_validate({name: value for name, value in environ.items() if value != ""})
    except ValidationError as error:
        raise ConfigurationError(describe(error)) from None


def describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "configuration"
        if item["type"] == "missing":
            problems.append(f"{name}: required, not set")
        elif not item["loc"]:
            problems.append(item["msg"].removeprefix("Value error, "))
        else:
            loggable = "***" if is_secret_name(name) else without_credentials(repr(item["input"]))
            problems.append(f"{name}={loggable}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
