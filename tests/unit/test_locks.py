"""One lock for the tests and the image: the test tools' lock pins every package of the worker's lock alike, and the
environment the tests run in holds what the lock says."""

from importlib.metadata import distributions

from tests.integration.conftest import ROOT
from tests.locks import canonical, locked

WORKER_LOCK, DEV_LOCK = ROOT / "requirements.lock", ROOT / "requirements-dev.lock"


def pins(lock_name: str) -> dict[str, str]:
    return {canonical(r.name): str(r.specifier) for r in locked(ROOT / lock_name)}


def test_the_dev_lock_pins_every_package_of_the_worker_lock_at_the_same_version() -> None:
    worker, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in worker} == worker
    assert {"pytest", "uv", "ruff"} <= set(dev) and "pytest" not in worker


def test_every_requirement_is_pinned_and_hashed() -> None:
    for lock in (WORKER_LOCK, DEV_LOCK):
        requirements = locked(lock)
        assert requirements and all(str(r.specifier).startswith("==") for r in requirements), lock
        assert lock.read_text().count("--hash=sha256:") >= len(requirements)


def test_the_environment_the_tests_run_in_is_the_lock() -> None:
    dev = pins("requirements-dev.lock")
    installed = {canonical(d.name): d.version for d in distributions()}
    assert {name: f"=={installed[name]}" for name in dev if name in installed} == {
        name: pin for name, pin in dev.items() if name in installed
    }
    worker = pins("requirements.lock")
    not_for_linux = {"colorama", "pywin32", "httpx2-jsfetch"}  # their markers name Windows or a browser
    assert set(worker) - set(installed) <= not_for_linux
