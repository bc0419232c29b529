"""What a job may ask of the worker, read from the environment: where its payload URLs may connect and how long a
transfer may take, the caps on its choices, its conversations and its file, and the LoRA adapters it may name."""

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from domain.addresses import AddressPolicy, parse_allowed_hosts
from domain.payloads import PayloadLimits


class JobSettings(BaseSettings):
    CASOLA_PAYLOAD_ALLOWED_HOSTS: str = ""
    CASOLA_PAYLOAD_TIMEOUT: Annotated[float, Field(gt=0)] = 60.0
    CASOLA_MAX_CHOICES: Annotated[int, Field(ge=1, le=128)] = 8
    CASOLA_MAX_BATCH: Annotated[int, Field(ge=1, le=4096)] = 64
    CASOLA_MAX_AUDIO_BYTES: Annotated[int, Field(ge=1, le=1024 * 1024 * 1024)] = 25 * 1024 * 1024
    CASOLA_LORA_ROOT: Annotated[str, Field(min_length=1)] | None = None  # a folder of LoRA adapters, one each
    CASOLA_MAX_LORAS: Annotated[int, Field(ge=1, le=1024)] | None = None  # vLLM's --max-loras (its default: 1)
    CASOLA_MAX_LORA_RANK: Annotated[int, Field(ge=1, le=512)] | None = None  # vLLM's --max-lora-rank (16)

    @field_validator("CASOLA_PAYLOAD_ALLOWED_HOSTS")
    @classmethod
    def _allowed_hosts(cls, text: str) -> str:
        parse_allowed_hosts(text)
        return text

    @property
    def payload_policy(self) -> AddressPolicy:
        """Where `payload_url` and `result_upload_url` may connect."""
        return AddressPolicy(parse_allowed_hosts(self.CASOLA_PAYLOAD_ALLOWED_HOSTS))

    @property
    def payload_limits(self) -> PayloadLimits:
        """The caps a payload is validated against."""
        return PayloadLimits(self.CASOLA_MAX_CHOICES, self.CASOLA_MAX_AUDIO_BYTES, self.CASOLA_MAX_BATCH)
