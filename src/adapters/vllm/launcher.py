"""The process launcher over asyncio subprocesses: its own process group, output line by line."""

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("worker.launcher")

PR_SET_PDEATHSIG = 1
LINE_LIMIT = 1024 * 1024


def _own_group_dying_with_parent() -> None:
    """Runs in the child before exec: a process group of its own, so it can be stopped whole, but not a session
    (under autogroup scheduling a new session is a scheduling group of its own: vLLM ran 4x slower); and
    SIGTERM if the worker dies without cleaning up. (`process_group=0` would do the first; uvloop lacks it.)"""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class SubprocessProcess:
    """A launched process; `stop` signals its whole group, so none of its children is orphaned."""

    def __init__(self, process: asyncio.subprocess.Process, reader: "asyncio.Task[None]") -> None:
        self.process = process
        self.reader = reader

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self) -> int:
        code = await self.process.wait()
        await asyncio.wait([self.reader], timeout=1.0)
        return code

    async def stop(self, timeout: float) -> int:
        if stopped := stopped_in_group(self.process.pid):  # a stopped process cannot act on SIGTERM: no waiting
            log.warning("vLLM's processes %s are stopped (SIGSTOP): SIGKILL", ", ".join(map(str, stopped)))
            self._signal_group(signal.SIGKILL)
        if self.process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                log.warning("process %d ignored SIGTERM for %.1f s: SIGKILL", self.pid, timeout)
                self._signal_group(signal.SIGKILL)
                await self.process.wait()
        self._signal_group(signal.SIGKILL)  # whatever of the group outlived its leader
        await asyncio.wait([self.reader], timeout=1.0)
        return self.process.returncode if self.process.returncode is not None else -1

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def stopped_in_group(group: int) -> list[int]:
    """The processes of process group `group` that are stopped (state T or t in /proc), on Linux."""
    stopped = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid, rest = stat.read_text().split(" (", 1)
            state, _, pgrp = rest.rsplit(") ", 1)[1].split()[:3]
            if int(pgrp) == group and state in ("T", "t"):
                stopped.append(int(pid))
    return sorted(stopped)


class SubprocessLauncher:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env

    async def launch(self, argv: list[str], on_line: Callable[[str], None]) -> SubprocessProcess:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_own_group_dying_with_parent,
            env=self.env,
            limit=LINE_LIMIT,
        )
        log.info("started %s (pid %d)", argv[0], process.pid)
        return SubprocessProcess(process, asyncio.create_task(_forward_lines(process, on_line)))


async def _forward_lines(process: asyncio.subprocess.Process, on_line: Callable[[str], None]) -> None:
    assert process.stdout is not None
    while True:
        try:
            line = await process.stdout.readline()
        except ValueError:  # a line over LINE_LIMIT: skip what is buffered
            continue
        if not line:
            return
        on_line(line.decode(errors="replace").rstrip())
