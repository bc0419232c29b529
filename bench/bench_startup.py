"""Cold and warm start of the image: `docker run` to vLLM answering, to the worker registered, to the first job's
result, with vLLM's start-up phases as the worker reported them.

The image (`make image`) runs as the README says, on the tiny model, with a named volume at /cache: a fresh volume
for the cold start, the same volume again for each warm one. The queue and the API are the test bed's fakes on
127.0.0.1; this bench asks vLLM's /health every 20 ms from outside the container, so "answering" is vLLM's own
moment, and the worker's delay after it is measured, not assumed. vLLM runs on core 0, the worker and the bench on
core 1, as in the container tier. Prints a table and writes bench/results/bench_startup.json.

    python -m bench.bench_startup [--warm 2] [--variant image|in-process|own-process ...]
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
from testbed.scripted_queue import ScriptedQueue
from tests.fakes.fake_api import FakeApi
from tests.integration.containers import environment, readable_model, worker_container

from adapters.dev.local_queue import chat_job
from bench.bench_worker import RESULTS

ROOT = Path(__file__).resolve().parents[1]
STARTUP = 600.0
PHASE = re.compile(r"vLLM starting: (?P<name>[^(]+) \((?P<seconds>[\d.]+) s(?:, cache (?P<cache>\w+))?\)")
VARIANTS = {  # what a start sets beyond the README's run line
    "image": {},  # as the image is built (the CPU image: the engine in-process)
    "in-process": {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},  # vLLM's engine in its API server's process
    "own-process": {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"},  # in a process of its own, vLLM's default
}


def image() -> str:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build-image.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the image could not be built (make docker, then make image):\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


async def until_answering(port: str, started: float) -> float:
    """Seconds from `started` to vLLM's first /health 200, asked every 20 ms."""
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)


async def one_start(tag: str, model: Path, volume: str, variant: dict[str, str], start: str) -> dict[str, Any]:
    async with ScriptedQueue() as queue:
        api = FakeApi().start()
        try:
            variables = environment(queue, api, **variant)
            with worker_container(tag, model, variables, cache_volume=volume, show_log=False) as container:
                answering = asyncio.create_task(until_answering(variables["VLLM_PORT"], container.started))
                await queue.wait_for_type("register", timeout=STARTUP)
                registered = time.monotonic() - container.started
                await queue.push(chat_job(f"{start}-job", [{"role": "user", "content": "Hi"}], max_tokens=8))
                ended = await queue.wait_for(
                    lambda frame: frame.get("job_id") == f"{start}-job" and frame["type"] != "job_progress", timeout=300
                )
                result = ended.get("result") or {"status": ended.get("error")}
                first_result = time.monotonic() - container.started
                vllm_answering = await asyncio.wait_for(answering, 5)
                logs = container.logs()
                await asyncio.to_thread(container.stop, 60)
        finally:
            api.stop()
    assert result["status"] == "success", result
    phases = [PHASE.search(str(beat.get("error_message"))) for beat in api.heartbeats if beat["status"] == "starting"]
    return {
        "start": start,
        "vllm_answering_s": round(vllm_answering, 2),
        "registered_s": round(registered, 2),
        "worker_delay_s": round(registered - vllm_answering, 3),
        "first_result_s": round(first_result, 2),
        "phases": {match["name"]: float(match["seconds"]) for match in phases if match},
        "compile_cache": next((match["cache"] for match in phases if match and match["cache"]), None),
        "loaded_compiled_code": "Directly load" in logs,
    }


async def bench(variant: str, warm: int) -> list[dict[str, Any]]:
    tag, model_dir = image(), ROOT / ".cache" / "bench-startup"
    model_dir.mkdir(parents=True, exist_ok=True)
    model = model_dir / "model" if (model_dir / "model").exists() else readable_model(model_dir)
    volume = f"worker-vllm-bench-cache-{uuid.uuid4().hex[:8]}"
    client = docker.from_env()
    client.volumes.create(volume)
    rows = []
    try:
        for start in ["cold", *(f"warm {n}" for n in range(1, warm + 1))]:
            print(f"{variant}, {start}: docker run ...", flush=True)
            rows.append({"variant": variant} | await one_start(tag, model, volume, VARIANTS[variant], start))
            print(HEADER)
            print_row(rows[-1])
    finally:
        client.volumes.get(volume).remove(force=True)
    return rows


HEADER = f"{'variant':>10} {'start':>7} | {'vLLM up':>8} {'registered':>10} {'delay':>6} {'1st result':>10} | phases"


def print_row(row: dict[str, Any]) -> None:
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in row["phases"].items())
    print(
        f"{row['variant']:>10} {row['start']:>7} | {row['vllm_answering_s']:>7.1f}s {row['registered_s']:>9.1f}s "
        f"{row['worker_delay_s']:>5.2f}s {row['first_result_s']:>9.1f}s | {phases} (cache {row['compile_cache']})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=2, help="warm starts after the cold one")
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", help="default: image")
    arguments = parser.parse_args()
    rows = [row for variant in arguments.variant or ["image"] for row in asyncio.run(bench(variant, arguments.warm))]
    print(f"\n{HEADER}")
    for row in rows:
        print_row(row)
    for variant in dict.fromkeys(row["variant"] for row in rows):
        cold, *warm = [row for row in rows if row["variant"] == variant]
        if warm:
            best = min(row["registered_s"] for row in warm)
            print(f"{variant}: warm to registered {best:.1f} s = {best / cold['registered_s']:.2f} of cold")
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / "bench_startup.json"
    output.write_text(json.dumps({"machine_cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
