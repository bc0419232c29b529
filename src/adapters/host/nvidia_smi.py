"""The GPU inspector over `nvidia-smi`, run as a subprocess with a time limit."""

import asyncio
import contextlib
import shutil

from application.ports import GpuQuery
from domain.gpu import GPU_QUERY
from domain.untrusted import loggable

TIME_LIMIT = 15.0


class NvidiaSmi:
    def __init__(self, command: str = "nvidia-smi", time_limit: float = TIME_LIMIT) -> None:
        self.command = command
        self.time_limit = time_limit

    async def query(self, fields: str = GPU_QUERY) -> GpuQuery:
        path = shutil.which(self.command)
        if path is None:
            return GpuQuery(missing=True)
        process = await asyncio.create_subprocess_exec(
            path,
            f"--query-gpu={fields}",
            "--format=csv,noheader,nounits",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.time_limit):
                out, err = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            return GpuQuery(error=f"nvidia-smi did not answer within {self.time_limit:g} s")
        if process.returncode != 0:
            said = (err or out).decode(errors="replace").strip().splitlines()
            return GpuQuery(error=f"nvidia-smi failed (exit {process.returncode}): {loggable(said[0] if said else '')}")
        return GpuQuery(rows=out.decode(errors="replace"))
