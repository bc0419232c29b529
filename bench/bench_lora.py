"""LoRA adapters loaded at run time, two ways, on real vLLM (CPU build) with the tiny chat model and its tiny adapters:
vLLM's load endpoint (`POST /v1/load_lora_adapter`, what the worker does) and vLLM's filesystem resolver plugin
(`VLLM_PLUGINS=lora_filesystem_resolver`: vLLM loads `<dir>/<name>` when a request names a model it does not know).

For each: the first request naming an adapter (with its load), the same request again (warm), another adapter
(first), and the base model, greedy, 12 tokens; each figure the median of `--rounds` vLLM starts' worth of
adapters (tiny-a, tiny-b, tiny-c in turn). Prints a table and writes bench/results/bench_lora.json.
Run `make vllm-env` first.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from testbed.real_vllm import TINY_LORAS, TINY_MODEL, start_vllm, stop_group

from bench.bench_worker import RESULTS, free_port, wait_until_healthy

ARGS = "--max-model-len 512 --dtype bfloat16 --enable-lora --max-loras 1 --max-lora-rank 16"
BODY = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 12,
        "temperature": 0.0, "ignore_eos": True}  # fmt: skip
ADAPTERS = ("tiny-a", "tiny-b", "tiny-c")


def resolvable() -> str:
    """The adapters, copied with their base named exactly as vLLM names its model: the resolver takes nothing else
    (the worker also takes the same last path component)."""
    folder = Path(tempfile.mkdtemp()) / "loras"
    shutil.copytree(TINY_LORAS, folder)
    for config_path in folder.glob("*/adapter_config.json"):
        config = json.loads(config_path.read_text())
        config_path.write_text(json.dumps(config | {"base_model_name_or_path": str(TINY_MODEL)}))
    return str(folder)


async def timed(client: httpx.AsyncClient, model: str) -> float:
    started = time.perf_counter()
    answer = await client.post("/v1/chat/completions", json=BODY | {"model": model})
    answer.raise_for_status()
    return time.perf_counter() - started


async def measure(way: str) -> dict[str, Any]:
    port, log = free_port(), Path(tempfile.mkdtemp()) / "vllm.log"
    environment = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"}
    if way == "resolver":
        environment |= {"VLLM_PLUGINS": "lora_filesystem_resolver", "VLLM_LORA_RESOLVER_CACHE_DIR": resolvable()}
    process = start_vllm(port, log, ARGS, environment=environment)
    figures: dict[str, list[float]] = {"base": [], "load": [], "first": [], "warm": []}
    try:
        await wait_until_healthy(f"http://127.0.0.1:{port}", timeout=600)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            await timed(client, "default")  # the base warmed up
            for name in ADAPTERS:
                figures["base"].append(await timed(client, "default"))
                started = time.perf_counter()
                if way == "endpoint":
                    load = {"lora_name": name, "lora_path": str(TINY_LORAS / name)}
                    loaded = await client.post("/v1/load_lora_adapter", json=load)
                    loaded.raise_for_status()
                figures["load"].append(time.perf_counter() - started)
                figures["first"].append(await timed(client, name) + figures["load"][-1])
                figures["warm"].append(await timed(client, name))
    finally:
        stop_group(process)
    return {"way": way} | {name: round(statistics.median(values) * 1000, 1) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    if not (TINY_LORAS / "tiny-a").exists() or not TINY_MODEL.exists():
        raise SystemExit("no tiny model or adapters: run `make vllm-env`")
    rows = [asyncio.run(measure(way)) for way in ("endpoint", "resolver")]
    print(f"{'way':>9} | {'base':>8} {'load':>8} {'first (load + request)':>22} {'warm':>8}  (ms, medians)")
    for row in rows:
        print(f"{row['way']:>9} | {row['base']:>8} {row['load']:>8} {row['first']:>22} {row['warm']:>8}")
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / "bench_lora.json"
    output.write_text(json.dumps({"machine_cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"saved {output}")


if __name__ == "__main__":
    main()
