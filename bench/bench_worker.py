"""Worker overhead: fake queue + worker + fake vLLM as separate processes, against direct calls to the fake vLLM.

For each job kind (chat, embeddings), each fake vLLM (answering at once, and after 50 ms) and each capacity,
the same closed-loop load runs straight to the fake vLLM (the baseline, with the worker's HTTP client) and
through the worker, one after the other in the same run. The fake is `testbed.fast_fake_vllm` (aiohttp on
uvloop), so it is never the slower side. With two or more cores the worker is pinned to one core and the
bench (queue and load) and the fake to the others: the worker's CPU per job is the cost of a job on one
core, and 1000 / (CPU ms per job) the jobs per second one core sustains. The last column is the bare
client's own CPU per request in the direct run: at low rates this machine runs cold (measured: the same
domain work costs 27 us back to back and 556 us with 50 ms gaps), and that column shows how much of a
low-rate row's CPU any client pays. Before each fake's rows, the floor: what a bare uvloop echo server on the
worker's core spends per message at that rate (a job is at least two such wake-ups: its frame, vLLM's answer).
Prints a table and writes bench/results/bench_worker.json.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from adapters.dev.local_queue import LocalQueue
from adapters.vllm.client import PROBES, VllmClient

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
RESULTS = ROOT / "bench" / "results"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PAYLOAD = {"messages": MESSAGES, "max_tokens": 16, "temperature": 0.7}
KINDS = {  # kind: (job_type, vLLM route, payload)
    "chat": ("chat_completion", "/v1/chat/completions", PAYLOAD),
    "embeddings": ("openai/embeddings", "/v1/embeddings", {"input": "What is the capital of France?"}),
}


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


def vllm_body(payload: dict[str, Any], model: str = "default") -> bytes:
    """The body the worker sends for `payload`: `extra_body` merged in, the model named."""
    fields = {name: value for name, value in payload.items() if name != "extra_body"}
    return msgspec.json.encode({"model": model, **fields, **payload.get("extra_body", {})})


async def direct(
    url: str, concurrency: int, jobs: int, payload: dict[str, Any] = PAYLOAD, route: str = "/v1/chat/completions"
) -> dict[str, Any]:
    """The baseline: the same requests straight to vLLM, `concurrency` at a time, with the worker's client."""
    latencies: list[float] = []
    body = vllm_body(payload)
    http = VllmClient(url, None, concurrency + PROBES)
    await http.open()
    remaining = jobs

    async def one_lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            answer = await http.post(route, body)
            if answer.status != 200:
                raise RuntimeError(f"the fake answered HTTP {answer.status}")
            msgspec.json.decode(answer.body)
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await http.close()
    return summary(latencies, elapsed)


class BenchQueue:
    """A local queue that keeps `capacity` jobs in flight on the worker and times push to result."""

    def __init__(self, payload: dict[str, Any] = PAYLOAD, job_type: str = "chat_completion") -> None:
        self.payload, self.job_type = payload, job_type
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
        job = {"type": "job", "job_id": job_id, "mode": "transient", "fence_token": 1, "config_id": "bench"}
        self.pushed[job_id] = time.perf_counter()
        await self.local.push({**job, "job_type": self.job_type, "payload": self.payload})

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


def thread_cpu_seconds(pid: int) -> float:
    """The process's CPU time to the nanosecond (schedstat), every thread."""
    total = 0
    for thread in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{thread}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def own_cpu_seconds() -> float:
    """This process's CPU: during a direct run, the bare HTTP client's cost of the same requests."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_worker(
    queue_port: int, vllm_port: int, capacity: int, environment: dict[str, str], cpus: set[int] | None = None
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
        "WORKER_HTTP_PORT": str(free_port()),  # metrics on, as in production
    }
    profile = os.environ.get("BENCH_PROFILE")
    command = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []), "-m", "main", "run"]
    worker_env["PYTHONPATH"] = str(SRC)
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    return subprocess.Popen(
        command, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin
    )


class WorkerUnderTest:
    """A worker process behind a bench queue, kept for several measured runs."""

    def __init__(
        self,
        vllm_port: int,
        capacity: int,
        environment: dict[str, str],
        payload: dict[str, Any],
        job_type: str = "chat_completion",
        cpus: set[int] | None = None,
    ):
        self.vllm_port, self.capacity, self.environment, self.cpus = vllm_port, capacity, environment, cpus
        self.queue = BenchQueue(payload, job_type)

    async def __aenter__(self) -> "WorkerUnderTest":
        await self.queue.local.start()
        self.worker = start_worker(self.queue.local.port, self.vllm_port, self.capacity, self.environment, self.cpus)
        await asyncio.wait_for(self.queue.registered.wait(), 60)
        await self.queue.run(self.capacity, 4 * self.capacity + 20)  # warm-up
        return self

    async def run(self, jobs: int) -> tuple[dict[str, float], float]:
        """The run's figures and the worker's CPU seconds during it."""
        cpu_before = thread_cpu_seconds(self.worker.pid)
        result = await self.queue.run(self.capacity, jobs)
        return result, thread_cpu_seconds(self.worker.pid) - cpu_before

    async def __aexit__(self, *_: object) -> None:
        self.worker.terminate()
        self.worker.wait(30)
        await self.queue.local.stop()


async def through_worker(
    vllm_port: int, capacity: int, jobs: int, kind: str, cpus: set[int] | None
) -> tuple[dict[str, Any], dict[str, float]]:
    job_type, _, payload = KINDS[kind]
    environment = {"CASOLA_HEARTBEAT_INTERVAL": "60"}
    async with WorkerUnderTest(vllm_port, capacity, environment, payload, job_type, cpus) as under_test:
        result, cpu = await under_test.run(jobs)
        rss_mb = peak_rss_mb(under_test.worker.pid)
    return result, {"cpu_ms_per_job": cpu * 1000 / jobs, "rss_mb": rss_mb}


def start_fake_vllm(delay: float, cpus: set[int] | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "testbed.fast_fake_vllm", "--port", str(port), "--delay", str(delay)]
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin)
    return process, port


ECHO = """
import asyncio, sys, uvloop
class Echo(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data): self.transport.write(data)
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
uvloop.run(main())
"""


async def wake_floor(gap: float, cpus: set[int] | None, messages: int = 100) -> float:
    """A bare uvloop echo server's CPU per 300-byte message, one message every `gap` seconds, in microseconds."""
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    echo = await asyncio.create_subprocess_exec(sys.executable, "-c", ECHO, stdout=subprocess.PIPE, preexec_fn=pin)
    try:
        assert echo.stdout is not None
        port = int(await echo.stdout.readline())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        message = b"x" * 300
        for counted in (False, True):
            before = thread_cpu_seconds(echo.pid)
            for _ in range(messages if counted else 20):
                await asyncio.sleep(gap)
                writer.write(message)
                await reader.readexactly(len(message))
        writer.close()
        return (thread_cpu_seconds(echo.pid) - before) * 1e6 / messages
    finally:
        echo.kill()
        await echo.wait()


def jobs_for(capacity: int, delay: float, scale: float) -> int:
    base = 200 if delay > 0 else 3000
    return int(max(base, capacity * (25 if delay > 0 else 40)) * scale)


def split_cores(pinned: bool) -> tuple[set[int] | None, set[int] | None]:
    """(the worker's core, the others' cores), or no pinning on one core or when asked."""
    cores = sorted(os.sched_getaffinity(0))
    if not pinned or len(cores) < 2:
        return None, None
    return {cores[-1]}, set(cores[:-1])


async def bench(
    kinds: list[str], capacities: list[int], delays: list[float], scale: float, pinned: bool
) -> list[dict[str, Any]]:
    worker_cpus, other_cpus = split_cores(pinned)
    if other_cpus is not None:
        os.sched_setaffinity(0, other_cpus)
        print(f"worker pinned to core {sorted(worker_cpus or [])}, bench and fake vLLM to {sorted(other_cpus)}")
    print(HEADER)
    rows: list[dict[str, Any]] = []
    for delay in delays:
        fake, port = start_fake_vllm(delay, other_cpus)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_healthy(url)
            floor = await wake_floor(delay, worker_cpus)
            pace = f"{delay * 1000:.0f} ms"
            print(f"floor at a {pace} pace: a bare uvloop echo on the worker's core, {floor:.0f} us a message")
            for kind in kinds:
                _, route, payload = KINDS[kind]
                for capacity in capacities:
                    jobs = jobs_for(capacity, delay, scale)
                    await direct(url, capacity, min(jobs, 200), payload, route)  # warm-up
                    cpu_before = own_cpu_seconds()
                    baseline = await direct(url, capacity, jobs, payload, route)
                    client_cpu_ms = (own_cpu_seconds() - cpu_before) * 1000 / jobs
                    worker, usage = await through_worker(port, capacity, jobs, kind, worker_cpus)
                    row = {"kind": kind, "fake_delay_ms": delay * 1000, "capacity": capacity}
                    row |= {"baseline": without_latencies(baseline), "worker": without_latencies(worker)}
                    row |= usage | {"ratio": worker["jobs_per_s"] / baseline["jobs_per_s"]}
                    row["direct_client_cpu_ms_per_request"] = client_cpu_ms
                    row["jobs_per_s_one_core"] = 1000 / row["cpu_ms_per_job"]
                    row["wake_floor_us"] = floor
                    rows.append(row)
                    print_row(row)
        finally:
            fake.terminate()
            fake.wait(10)
    return rows


HEADER = (
    f"{'kind':>10} {'fake':>6} {'cap':>4} {'jobs':>5} | {'direct/s':>9} {'p50':>7} {'p99':>7} | "
    f"{'worker/s':>9} {'p50':>7} {'p99':>7} | {'ratio':>5} {'cpu/job':>8} {'1 core/s':>8} {'rss':>6} | "
    f"{'client cpu/req':>14}"
)


def print_row(row: dict[str, Any]) -> None:
    base, work = row["baseline"], row["worker"]
    print(
        f"{row['kind']:>10} {row['fake_delay_ms']:>4.0f}ms {row['capacity']:>4} {work['jobs']:>5} | "
        f"{base['jobs_per_s']:>9.1f} {base['p50_ms']:>5.1f}ms {base['p99_ms']:>5.1f}ms | "
        f"{work['jobs_per_s']:>9.1f} {work['p50_ms']:>5.1f}ms {work['p99_ms']:>5.1f}ms | "
        f"{row['ratio']:>5.2f} {row['cpu_ms_per_job']:>6.3f}ms {row['jobs_per_s_one_core']:>8.0f} "
        f"{row['rss_mb']:>4.0f}MB | {row['direct_client_cpu_ms_per_request']:>12.3f}ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kinds", default="chat,embeddings")
    parser.add_argument("--capacities", default="1,8,32,128")
    parser.add_argument("--delays-ms", default="0,50")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of jobs")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="let every process share every core")
    args = parser.parse_args()
    capacities = [int(value) for value in args.capacities.split(",")]
    delays = [float(value) / 1000 for value in args.delays_ms.split(",")]
    rows = asyncio.run(bench(args.kinds.split(","), capacities, delays, args.scale, args.pin))
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / "bench_worker.json"
    output.write_text(json.dumps({"machine_cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
