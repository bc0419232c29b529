"""Real vLLM (CPU build, tiny model): the same chat load straight to vLLM and through fake queue + worker + vLLM.

Each request asks for 16 tokens (ignore_eos). For each concurrency (= the worker's capacity) the two paths
are measured in alternating rounds in one run, so the machine's noise falls on both. By default vLLM is
pinned to half the cores and the bench and the worker to the other half, as the worker sits beside vLLM
on a GPU host, where vLLM's work is on the GPU; with --no-pin all share the 2 cores, and vLLM's own
throughput then swings by a third with whatever else runs. Prints a table and
writes bench/results/bench_vllm.json. Run `make vllm-env` first (`make bench-vllm` does).
"""

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from testbed.real_vllm import TINY_MODEL, VLLM_COMMAND, start_vllm, stop_group

from adapters.dev.local_queue import LocalQueue
from bench.bench_worker import (
    RESULTS,
    SRC,
    WorkerUnderTest,
    direct,
    free_port,
    peak_rss_mb,
    summary,
    wait_until_healthy,
    without_latencies,
)

PAYLOAD: dict[str, Any] = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 16,
    "temperature": 0.7,
    "extra_body": {"ignore_eos": True},
}


def merged(runs: list[dict[str, Any]]) -> dict[str, float]:
    latencies = [latency for run in runs for latency in run["latencies"]]
    return summary(latencies, sum(run["seconds"] for run in runs))


async def measure(port: int, concurrency: int, requests: int, rounds: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    direct_runs: list[dict[str, Any]] = []
    worker_runs: list[dict[str, Any]] = []
    cpu_total = 0.0
    environment = {"CASOLA_HEARTBEAT_INTERVAL": "60", "VLLM_STARTUP_TIMEOUT": "60"}
    async with WorkerUnderTest(port, concurrency, environment, PAYLOAD) as under_test:
        await direct(url, concurrency, 4 * concurrency, PAYLOAD)  # warm-up
        for round_number in range(rounds):  # A B B A ...: drift in the machine falls on both paths alike
            if round_number % 2 == 0:
                direct_runs.append(as_run(await direct(url, concurrency, requests, PAYLOAD)))
            through, cpu = await under_test.run(requests)
            worker_runs.append(as_run(through))
            cpu_total += cpu
            if round_number % 2 == 1:
                direct_runs.append(as_run(await direct(url, concurrency, requests, PAYLOAD)))
        rss = peak_rss_mb(under_test.worker.pid)
    base, work = merged(direct_runs), merged(worker_runs)
    return {
        "concurrency": concurrency,
        "direct": without_latencies(base),
        "worker": without_latencies(work),
        "ratio": work["jobs_per_s"] / base["jobs_per_s"],
        "cpu_ms_per_job": cpu_total * 1000 / (requests * rounds),
        "peak_rss_mb": rss,
    }


def as_run(result: dict[str, float]) -> dict[str, Any]:
    """Back to latencies and seconds, so that rounds can be merged (summary keeps p50/p99 only)."""
    return {"latencies": result["latencies"], "seconds": result["jobs"] / result["jobs_per_s"]}


HEADER = (
    f"{'conc':>4} {'reqs':>5} | {'direct/s':>8} {'p50':>7} {'p99':>7} | {'worker/s':>8} {'p50':>7} {'p99':>7} | "
    f"{'ratio':>5} {'cpu/job':>8} {'peak rss':>8}"
)


def print_row(row: dict[str, Any]) -> None:
    base, work = row["direct"], row["worker"]
    print(
        f"{row['concurrency']:>4} {work['jobs']:>5} | {base['jobs_per_s']:>8.1f} {base['p50_ms']:>5.0f}ms "
        f"{base['p99_ms']:>5.0f}ms | {work['jobs_per_s']:>8.1f} {work['p50_ms']:>5.0f}ms {work['p99_ms']:>5.0f}ms | "
        f"{row['ratio']:>5.2f} {row['cpu_ms_per_job']:>6.2f}ms {row['peak_rss_mb']:>6.1f}MB",
        flush=True,
    )


async def bench(concurrencies: list[int], requests: int, rounds: int, pinned: bool) -> list[dict[str, Any]]:
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "vllm.log"
    print(f"starting real vLLM on the tiny model (about a minute; log: {log})", flush=True)
    cpus = sorted(os.sched_getaffinity(0))
    vllm_cpus = set(cpus[: len(cpus) // 2]) if pinned and len(cpus) > 1 else None
    if vllm_cpus is not None:  # the bench and the worker (its child) on the other half, as beside a GPU
        os.sched_setaffinity(0, set(cpus) - vllm_cpus)
        print(f"vLLM pinned to cores {sorted(vllm_cpus)}, the bench and the worker to {sorted(set(cpus) - vllm_cpus)}")
    process = start_vllm(port, log, "--max-model-len 512 --dtype bfloat16", vllm_cpus)
    try:
        await wait_until_healthy(f"http://127.0.0.1:{port}", timeout=400)
        print(HEADER)
        rows = []
        for concurrency in concurrencies:
            row = await measure(port, concurrency, requests, rounds)
            print_row(row)
            rows.append(row)
        return rows
    finally:
        stop_group(process)


LAUNCH_ARGS = "--max-model-len 512 --dtype bfloat16"
LAUNCHES = ("plain", "worker", "new session")
ENGINES = ("plain", "in-process")  # vLLM 0.32's engine core in its own process (the default), or in the API server's
IN_PROCESS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


async def side_by_side(title: str, hows: tuple[str, ...], concurrency: int, requests: int, rounds: int
                       ) -> list[dict[str, Any]]:  # fmt: skip
    """Direct throughput to vLLM started each of `hows` ways, unpinned, as `make demo` and the tests run it: plainly
    (in the caller's session), by `worker-vllm run --launch-vllm`, in a new session (setsid, as before), or with its
    engine in the API server's process.

    They run side by side and are measured in alternating rounds (A B C C B A ...), so the machine's drift falls on
    all alike.
    """
    print(f"\n{title}, direct load at concurrency {concurrency}, all cores shared ({len(hows)} vLLMs starting)")
    ports = {how: free_port() for how in hows}
    runs: dict[str, list[dict[str, Any]]] = {how: [] for how in hows}
    async with LocalQueue() as queue, contextlib.AsyncExitStack() as stack:
        for how in hows:
            log = Path(tempfile.mkdtemp()) / "vllm.log"
            await stack.enter_async_context(Launched(how, ports[how], log, queue.url))
        for how in hows:
            url = f"http://127.0.0.1:{ports[how]}"
            await wait_until_healthy(url, timeout=600)
            await direct(url, concurrency, 2 * concurrency, PAYLOAD)  # warm-up
        for round_number in range(rounds):
            for how in hows if round_number % 2 == 0 else hows[::-1]:
                url = f"http://127.0.0.1:{ports[how]}"
                runs[how].append(as_run(await direct(url, concurrency, requests, PAYLOAD)))
    print(f"{'launched':>12} | {'direct/s':>8} {'p50':>7} {'p99':>7} | {'ratio to plain':>14}")
    rows: list[dict[str, Any]] = []
    for how in hows:
        result = without_latencies(merged(runs[how]))
        ratio = result["jobs_per_s"] / rows[0]["direct"]["jobs_per_s"] if rows else 1.0
        rows.append({"launched": how, "concurrency": concurrency, "direct": result, "ratio_to_plain": ratio})
        print(
            f"{how:>12} | {result['jobs_per_s']:>8.1f} {result['p50_ms']:>5.0f}ms {result['p99_ms']:>5.0f}ms | "
            f"{ratio:>14.2f}",
            flush=True,
        )
    return rows


class Launched:
    """vLLM started one of the `LAUNCHES` or `ENGINES` ways, stopped (with its whole group) on exit."""

    def __init__(self, how: str, port: int, log: Path, queue_url: str) -> None:
        self.how, self.port, self.log, self.queue_url = how, port, log, queue_url

    async def __aenter__(self) -> None:
        if self.how == "worker":
            self.process = worker_launching_vllm(self.port, self.log, self.queue_url)
        else:
            environment = IN_PROCESS if self.how == "in-process" else None
            self.process = start_vllm(
                self.port, self.log, LAUNCH_ARGS, new_session=self.how == "new session", environment=environment
            )

    async def __aexit__(self, *_: object) -> None:
        if self.how == "worker":
            self.process.terminate()  # the worker stops its vLLM
            await asyncio.to_thread(self.process.wait, 120)
        else:
            stop_group(self.process)


def worker_launching_vllm(port: int, log: Path, queue_url: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "CASOLA_WS_URL": queue_url,
        "CASOLA_CONFIG_ID": "bench",
        "VLLM_MODEL": str(TINY_MODEL),
        "VLLM_SERVE_COMMAND": str(VLLM_COMMAND),
        "VLLM_PORT": str(port),
        "VLLM_EXTRA_ARGS": LAUNCH_ARGS,
        "VLLM_STARTUP_TIMEOUT": "400",
    }
    command = [sys.executable, "-m", "main", "run", "--launch-vllm"]
    with log.open("wb") as output:
        return subprocess.Popen(command, env=environment, stdout=output, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=120, help="requests per path per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="let vLLM, the bench and the worker share every core"
    )
    parser.add_argument("--no-launch", dest="launch", action="store_false", help="skip the launch comparison")
    parser.add_argument("--engines", action="store_true", help="only the engine comparison: own process or in-process")
    args = parser.parse_args()
    if not VLLM_COMMAND.exists() or not TINY_MODEL.exists():
        sys.exit("real vLLM is not set up: run `make vllm-env`")
    if args.engines:
        engines = [
            row
            for concurrency in (int(c) for c in args.concurrency.split(","))
            for row in asyncio.run(side_by_side("vLLM's engine", ENGINES, concurrency, args.requests, args.rounds))
        ]
        RESULTS.mkdir(parents=True, exist_ok=True)
        (output := RESULTS / "bench_vllm_engines.json").write_text(json.dumps({"engines": engines}, indent=2))
        print(f"saved {output}")
        return
    rows = asyncio.run(bench([int(c) for c in args.concurrency.split(",")], args.requests, args.rounds, args.pin))
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    launches = asyncio.run(side_by_side("vLLM as launched", LAUNCHES, 32, 4 * args.requests, 4)) if args.launch else []
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / "bench_vllm.json"
    output.write_text(json.dumps({"machine_cores": os.cpu_count(), "rows": rows, "launches": launches}, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
