"""The lock files read as requirements (packaging's parser): what the worker's environments must hold."""

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def locked(lock: Path) -> list[Requirement]:
    """Each pinned requirement of a lock written by `make lock` (continuation lines and hashes left out)."""
    text = lock.read_text().replace("\\\n", " ")
    lines = (line.split(" --hash")[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def canonical(name: str) -> str:
    return str(canonicalize_name(name))
