"""Worker overhead: fake queue + worker + fake vLLM as separate processes, against direct calls to the fake vLLM.

For each fake vLLM (answering at once, and after 50 ms) and each capacity, the same closed-loop load runs
straight to the fake vLLM (the baseline) and through the worker, one after the other in the same run.
Prints a table and writes bench/results/bench_worker.json.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil

from adapters.local_queue import LocalQueue, chat_job

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
RESULTS = ROOT / "bench" / "results"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PAYLOAD = {"messages": MESSAGES, "max_tokens": 16, "temperature": 0.7}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def without_latencies(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "latencies"}


def summary(latencies: list[float], seconds: float) -> dict[str, Any]:
    return {
        "latencies": latencies,
        "jobs": len(latencies),
        "jobs_per_s": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


async def wait_until_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} not healthy")


async def direct(
    url: str, model: str, concurrency: int, jobs: int, payload: dict[str, Any] = PAYLOAD
) -> dict[str, float]:
    """The baseline: the same chat requests straight to vLLM, `concurrency` at a time, with the worker's client."""
    latencies: list[float] = []
    body = {"model": model, **{k: v for k, v in payload.items() if k != "extra_body"}, **payload.get("extra_body", {})}
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="EMPTY", max_retries=0, timeout=120) as client:
        remaining = jobs

        async def one_lane() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                await client.post("/chat/completions", body=body, cast_to=bytes)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed)


class BenchQueue:
    """A local queue that keeps `capacity` jobs in flight on the worker and times push to result."""

    def __init__(self, payload: dict[str, Any] = PAYLOAD) -> None:
        self.payload = payload
        self.local = LocalQueue(on_frame=self.on_frame)
        self.registered = asyncio.Event()
        self.pushed: dict[str, float] = {}
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.remaining = 0
        self.done = asyncio.Event()
        self.sequence = 0

    async def on_frame(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "register":
            self.registered.set()
        elif frame["type"] in ("job_result", "job_error"):
            await self.finished(frame)

    async def finished(self, frame: dict[str, Any]) -> None:
        started = self.pushed.pop(frame["job_id"])
        if frame["type"] == "job_error":
            self.errors.append(frame["error"])
        self.latencies.append(time.perf_counter() - started)
        if self.remaining > 0:
            await self.push()
        elif not self.pushed:
            self.done.set()

    async def push(self) -> None:
        self.remaining -= 1
        self.sequence += 1
        job_id = f"job-{self.sequence}"
        fields = {name: value for name, value in self.payload.items() if name != "messages"}
        self.pushed[job_id] = time.perf_counter()
        await self.local.push(chat_job(job_id, self.payload["messages"], config_id="bench", **fields))

    async def run(self, capacity: int, jobs: int) -> dict[str, float]:
        self.latencies, self.errors, self.remaining = [], [], jobs
        self.done.clear()
        started = time.perf_counter()
        for _ in range(min(capacity, jobs)):
            await self.push()
        await self.done.wait()
        elapsed = time.perf_counter() - started
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} jobs failed, first: {self.errors[0]}")
        return summary(self.latencies, elapsed)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_worker(
    queue_port: int, vllm_port: int, capacity: int, environment: dict[str, str]
) -> subprocess.Popen[bytes]:
    worker_env = {
        **os.environ,
        **environment,
        "CASOLA_WS_URL": f"ws://127.0.0.1:{queue_port}",
        "CASOLA_CONFIG_ID": "bench",
        "CASOLA_INSTANCE_ID": "bench-worker",
        "CASOLA_MAX_JOBS": str(capacity),
        "VLLM_MODEL": "tiny",
        "VLLM_PORT": str(vllm_port),
    }
    profile = os.environ.get("BENCH_PROFILE")
    command = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []), "-m", "main", "run"]
    worker_env["PYTHONPATH"] = str(SRC)
    return subprocess.Popen(command, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class WorkerUnderTest:
    """A worker process behind a bench queue, kept for several measured runs."""

    def __init__(self, vllm_port: int, capacity: int, environment: dict[str, str], payload: dict[str, Any]):
        self.vllm_port, self.capacity, self.environment = vllm_port, capacity, environment
        self.queue = BenchQueue(payload)

    async def __aenter__(self) -> "WorkerUnderTest":
        await self.queue.local.start()
        self.worker = start_worker(self.queue.local.port, self.vllm_port, self.capacity, self.environment)
        self.process = psutil.Process(self.worker.pid)
        await asyncio.wait_for(self.queue.registered.wait(), 60)
        await self.queue.run(self.capacity, 4 * self.capacity + 20)  # warm-up
        return self

    async def run(self, jobs: int) -> tuple[dict[str, float], float]:
        """The run's figures and the worker's CPU seconds during it."""
        cpu_before = cpu_seconds(self.process)
        result = await self.queue.run(self.capacity, jobs)
        return result, cpu_seconds(self.process) - cpu_before

    async def __aexit__(self, *_: object) -> None:
        self.worker.terminate()
        self.worker.wait(30)
        await self.queue.local.stop()


async def through_worker(
    vllm_port: int, capacity: int, jobs: int, environment: dict[str, str]
) -> tuple[dict[str, float], dict[str, float]]:
    async with WorkerUnderTest(vllm_port, capacity, environment, PAYLOAD) as under_test:
        result, cpu = await under_test.run(jobs)
        rss_mb = peak_rss_mb(under_test.worker.pid)
    return result, {"cpu_ms_per_job": cpu * 1000 / jobs, "rss_mb": rss_mb}


def start_fake_vllm(delay: float) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "testbed.fake_vllm", "serve", "tiny", "--port", str(port)]
    command += ["--delay", str(delay)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port


def jobs_for(capacity: int, delay: float, scale: float) -> int:
    base = 200 if delay > 0 else 1000
    return int(max(base, capacity * (25 if delay > 0 else 40)) * scale)


async def bench(capacities: list[int], delays: list[float], scale: float) -> list[dict[str, Any]]:
    rows = []
    for delay in delays:
        fake, port = start_fake_vllm(delay)
        try:
            await wait_until_healthy(f"http://127.0.0.1:{port}")
            for capacity in capacities:
                jobs = jobs_for(capacity, delay, scale)
                await direct(f"http://127.0.0.1:{port}", "default", capacity, min(jobs, 50))  # warm-up
                baseline = await direct(f"http://127.0.0.1:{port}", "default", capacity, jobs)
                worker, usage = await through_worker(port, capacity, jobs, {"CASOLA_HEARTBEAT_INTERVAL": "60"})
                row = {"fake_delay_ms": delay * 1000, "capacity": capacity, "baseline": without_latencies(baseline)}
                row |= {"worker": without_latencies(worker)}
                row |= usage | {"ratio": worker["jobs_per_s"] / baseline["jobs_per_s"]}
                rows.append(row)
                print_row(row)
        finally:
            fake.terminate()
            fake.wait(10)
    return rows


HEADER = (
    f"{'fake':>6} {'cap':>4} {'jobs':>5} | {'direct/s':>9} {'p50':>7} {'p99':>7} | "
    f"{'worker/s':>9} {'p50':>7} {'p99':>7} | {'ratio':>5} {'cpu/job':>8} {'rss':>6}"
)


def print_row(row: dict[str, Any]) -> None:
    base, work = row["baseline"], row["worker"]
    print(
        f"{row['fake_delay_ms']:>4.0f}ms {row['capacity']:>4} {work['jobs']:>5} | "
        f"{base['jobs_per_s']:>9.1f} {base['p50_ms']:>5.1f}ms {base['p99_ms']:>5.1f}ms | "
        f"{work['jobs_per_s']:>9.1f} {work['p50_ms']:>5.1f}ms {work['p99_ms']:>5.1f}ms | "
        f"{row['ratio']:>5.2f} {row['cpu_ms_per_job']:>6.3f}ms {row['rss_mb']:>4.0f}MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacities", default="1,8,32,128")
    parser.add_argument("--delays-ms", default="0,50")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of jobs")
    args = parser.parse_args()
    capacities = [int(value) for value in args.capacities.split(",")]
    delays = [float(value) / 1000 for value in args.delays_ms.split(",")]
    print(HEADER)
    rows = asyncio.run(bench(capacities, delays, args.scale))
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / "bench_worker.json"
    output.write_text(json.dumps({"machine_cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
