"""The launcher stops vLLM's whole process group; a stopped process (SIGSTOP, as a hung engine can be) is killed at
once, since it cannot act on SIGTERM until it is continued."""

import asyncio
import os
import signal
import sys

from adapters.vllm.launcher import SubprocessLauncher, stopped_in_group
from tests.conftest import eventually
from tests.integration.conftest import alive

SLEEP = "import time; time.sleep(60)"
CHILD = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); {SLEEP}"


async def test_a_group_with_a_stopped_process_is_killed_without_waiting_for_sigterm() -> None:
    lines: list[str] = []
    process = await SubprocessLauncher().launch([sys.executable, "-c", CHILD], lines.append)
    await eventually(lambda: len(members(process.pid)) == 2, timeout=10, what="the child started")
    child = next(pid for pid in members(process.pid) if pid != process.pid)
    os.kill(child, signal.SIGSTOP)
    await eventually(lambda: stopped_in_group(process.pid) == [child], timeout=10, what="the child stopped")
    code = await asyncio.wait_for(process.stop(timeout=600), 30)  # not the 600 s a SIGTERM would be given
    assert code == -signal.SIGKILL
    await eventually(lambda: not alive(child), timeout=10, what="the stopped child gone")


async def test_a_running_group_gets_sigterm_first() -> None:
    process = await SubprocessLauncher().launch([sys.executable, "-c", "import time; time.sleep(60)"], print)
    assert await asyncio.wait_for(process.stop(timeout=600), 30) == -signal.SIGTERM


def members(group: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == group and alive(int(entry)):
                    found.append(int(entry))
            except ProcessLookupError:
                continue
    return found
