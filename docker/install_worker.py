"""Installs the worker into the image's Python without changing any package the base image brought.

The worker itself goes in with --no-deps; of its pinned dependencies only the ones the image lacks are
installed, under constraints that hold every package already there at its version.
Usage: python3 install_worker.py PROJECT_DIR
"""

import re
import subprocess
import sys
import tempfile
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", *args], check=True)


def missing(requirements: list[str]) -> list[str]:
    absent = []
    for requirement in requirements:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        try:
            found = distribution(name).version
            print(f"install_worker: {name} {found} comes with the image; keeping it")
        except PackageNotFoundError:
            absent.append(requirement)
    return absent


def main(project: Path) -> None:
    requirements = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze"], check=True, capture_output=True, text=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(line for line in frozen.stdout.splitlines() if "==" in line))
    pip("--no-deps", str(project))
    absent = missing(requirements)
    if absent:
        pip("--constraint", constraints.name, *absent)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
