"""Which values are secrets: every variable whose name holds TOKEN, KEY, SECRET, PASSWORD or AUTH."""

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from domain.untrusted import without_credentials

SECRET_NAME_PARTS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "AUTH")
MIN_SECRET_LENGTH = 4


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values of every variable whose name holds TOKEN, KEY, SECRET, PASSWORD or AUTH, longest first."""
    values = {value for name, value in environ.items() if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def is_secret_name(name: str) -> bool:
    return any(part in name.upper() for part in SECRET_NAME_PARTS)


def mask(name: str, value: Any) -> Any:
    if isinstance(value, SecretStr) or (is_secret_name(name) and value):
        return "***" if value else None
    return without_credentials(value) if isinstance(value, str) else value
