"""The job path, followed as data: which of the worker's files one job frame enters, from the queue adapter's frame
handler to the result frame handed back to it, and how often it climbs back up a floor (domain 1, application 2,
adapters 3). Run: `python -m bench.job_path` (prints the route and writes bench/results/job_path.json).

One chat job runs through the real adapters (the websockets queue, aiohttp to a fake vLLM) wired by the real
container. A profile hook follows the data: the frame's text, then whatever a call made from it returned (the Job,
the running job, the payload, the request body, vLLM's answer, the result, the frame), and their parts. A file is
entered when one of its functions is called with that data; leaving it by a return is not a move.

A second count leaves the adapters out: the files inside the hexagon (domain and application) the data enters
between the ports, as a reading of the code alone sees it (it stops where a port's adapter is chosen at run time).
"""

import asyncio
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from adapters.dev.local_queue import LocalQueue, chat_job
except ImportError:  # the layout before the adapters were grouped, to measure an older checkout
    from adapters.local_queue import LocalQueue, chat_job  # type: ignore[no-redef]
from testbed.fake_vllm import FakeVllm

from application.settings import load_settings
from wiring import Container

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"
FLOORS = {"domain": 1, "application": 2, "adapters": 3}
SCALARS = (int, float, bool, type(None))  # too common to follow: a count, a flag
JOB_ID = "followed"


@dataclass
class Trail:
    """What the data has become so far, and the files it entered in order."""

    held: list[Any] = field(default_factory=list)  # kept alive, so no id is reused while following
    ids: set[int] = field(default_factory=set)
    carrying: set[int] = field(default_factory=set)  # frames called with the data: what they return is followed
    frames: list[types.FrameType] = field(default_factory=list)  # every frame seen: a coroutine resumed is no call
    seen: set[int] = field(default_factory=set)
    stays: list[tuple[str, str]] = field(default_factory=list)
    done: bool = False

    def follow(self, value: Any, depth: int = 2) -> None:
        if id(value) in self.ids or isinstance(value, SCALARS) or depth < 0:
            return
        self.held.append(value)
        self.ids.add(id(value))
        parts: Any = ()
        if isinstance(value, dict):
            parts = value.values()
        elif isinstance(value, (list, tuple)):
            parts = value
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            parts = vars(value).values()
        for part in parts:
            self.follow(part, depth - 1)

    def on_event(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if self.done or event not in ("call", "return"):
            return
        path = Path(frame.f_code.co_filename)
        if SOURCE not in path.parents or path.name == "local_queue.py":  # the queue's side is not the worker
            return
        if event == "return":
            if id(frame) in self.carrying and arg is not None and not isinstance(arg, SCALARS):
                self.follow(arg)
            return
        if id(frame) in self.seen:  # a coroutine resumed, not called
            return
        self.seen.add(id(frame))
        self.frames.append(frame)
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        arguments = [frame.f_locals.get(name) for name in names]  # `self` too: a method of the data is entered
        if not self.held:  # the frame's text, as the queue adapter's frame handler hands it on
            texts = (a for a in arguments if isinstance(a, (str, bytes)) and JOB_ID in str(a) and '"job"' in str(a))
            text = next(texts, None)
            caller = Path(frame.f_back.f_code.co_filename) if frame.f_back else path
            if text is None or SOURCE not in caller.parents or caller.relative_to(SOURCE).parts[0] != "adapters":
                return
            self.follow(text)
            self.stays.append((str(caller.relative_to(SOURCE)), frame.f_back.f_code.co_qualname))  # type: ignore[union-attr]
        if not any(id(argument) in self.ids for argument in arguments):
            return
        self.carrying.add(id(frame))
        self.stays.append((str(path.relative_to(SOURCE)), code.co_qualname))
        if code.co_name == "send" and path.relative_to(SOURCE).parts[0] == "adapters":
            self.done = True  # the result frame is back in the queue adapter


def route(stays: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The stays, a file's consecutive calls as one, each with its floor and whether it climbed back up."""
    rows: list[dict[str, Any]] = []
    for file, function in stays:
        if rows and rows[-1]["file"] == file:
            if function not in rows[-1]["functions"]:
                rows[-1]["functions"].append(function)
            continue
        floor = FLOORS[file.split("/")[0]]
        climbed = bool(rows) and floor > rows[-1]["floor"]
        rows.append({"file": file, "floor": floor, "climbed": climbed, "functions": [function]})
    return rows


async def follow_one_job() -> list[tuple[str, str]]:
    trail = Trail()
    vllm = FakeVllm()
    vllm.start()
    try:
        async with LocalQueue() as queue:
            environment = {
                "CASOLA_WS_URL": queue.url, "CASOLA_CONFIG_ID": "cfg", "CASOLA_INSTANCE_ID": "w1",
                "CASOLA_API_URL": "http://127.0.0.1:9", "VLLM_MODEL": "tiny", "VLLM_PORT": str(vllm.port),
                "CASOLA_BACKPRESSURE_CHECK_INTERVAL": "0", "CASOLA_VLLM_STALL_TIMEOUT": "0",
                "CASOLA_HEARTBEAT_INTERVAL": "60",
            }  # fmt: skip
            container = Container(settings=load_settings(environment))
            await container.init_resources()
            service = await container.service()
            task = asyncio.create_task(service.run())
            await queue.wait_for_type("register", timeout=20)
            sys.setprofile(trail.on_event)
            try:
                await queue.push(chat_job(JOB_ID, [{"role": "user", "content": "hi"}], max_tokens=3))
                await queue.wait_for_type("job_result", JOB_ID, timeout=20)
            finally:
                sys.setprofile(None)
            service.request_shutdown()
            await asyncio.wait_for(task, 20)
            await container.shutdown_resources()
    finally:
        vllm.stop()
    return trail.stays


def main() -> None:
    rows = route(asyncio.run(follow_one_job()))
    files = sorted({row["file"] for row in rows})
    climbs = sum(row["climbed"] for row in rows)
    print(f"{'':>3} {'floor':>5}  {'file':<40} functions")
    for number, row in enumerate(rows, 1):
        mark = "UP " if row["climbed"] else "   "
        print(f"{number:>3} {mark}{row['floor']:>2}  {row['file']:<40} {', '.join(row['functions'])}")
    print(f"\n{len(files)} files entered, {len(rows)} stays, {climbs} climbs back up")
    inner = route(
        [(row["file"], function) for row in rows if row["floor"] < FLOORS["adapters"] for function in row["functions"]]
    )
    inner_files = sorted({row["file"] for row in inner})
    inner_climbs = sum(row["climbed"] for row in inner)
    print(f"inside the hexagon (domain and application, the adapters left out): {len(inner_files)} files, "
          f"{len(inner)} stays, {inner_climbs} climbs back up")  # fmt: skip
    out = ROOT / "bench" / "results" / "job_path.json"
    out.parent.mkdir(exist_ok=True)
    inside = {"files": inner_files, "stays": len(inner), "climbs": inner_climbs}
    out.write_text(json.dumps({"files": files, "stays": rows, "climbs": climbs, "inside": inside}, indent=2) + "\n")


if __name__ == "__main__":
    main()
