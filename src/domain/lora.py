"""LoRA adapters served on demand from CASOLA_LORA_ROOT: what a job may call one, whether it was made for the served
model, and how vLLM is started to load them at run time. No I/O: the root is read by an adapter.

A job's `model` names an adapter by its folder's name under the root. The name is checked before anything touches
the disk or vLLM: vLLM's own filesystem resolver joins a requested name onto its directory as given, so `../x`
would reach outside it.
"""

import json
import re
import shlex
from typing import Any, NamedTuple

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
RUNTIME_LOADING = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"}  # vLLM's /v1/load_lora_adapter, off by default


def name_problem(name: str) -> str | None:
    """Why `name` cannot name an adapter folder (a path separator, `..`, a control character, ...), or None."""
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return "a control character"
    if "/" in name or "\\" in name:
        return "a path separator"
    if ".." in name:
        return "'..'"
    if not ADAPTER_NAME.match(name):
        return "not a plain name (letters, digits, '.', '_', '+', '-'; at most 128; not starting with a sign)"
    return None


class AdapterConfig(NamedTuple):
    """What the worker reads of an adapter's adapter_config.json."""

    base: str | None  # base_model_name_or_path
    rank: int | None  # r


def adapter_config(text: str) -> AdapterConfig:
    """The adapter's config, or ValueError saying why it cannot be read."""
    try:
        config: Any = json.loads(text)
    except ValueError as error:
        raise ValueError(f"adapter_config.json is not JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError("adapter_config.json is not a JSON object")
    base, rank = config.get("base_model_name_or_path"), config.get("r")
    return AdapterConfig(base if isinstance(base, str) else None, rank if isinstance(rank, int) else None)


def made_for(base: str | None, served_model: str) -> bool:
    """Whether an adapter made for `base` fits the served model (VLLM_MODEL): the same name, or the same last path
    component (`meta-llama/Llama-3.1-8B` fits `/models/Llama-3.1-8B`). An adapter that names no base is taken."""
    if base is None:
        return True

    def last(name: str) -> str:
        return name.rstrip("/").rsplit("/", 1)[-1].lower()

    return base.rstrip("/") == served_model.rstrip("/") or last(base) == last(served_model)


def lora_serve_args(extra_args: str, max_loras: int | None, max_rank: int | None) -> list[str]:
    """The `vllm serve` arguments that enable LoRA, unless VLLM_EXTRA_ARGS already gives them."""
    given = set(shlex.split(extra_args))
    args = [] if "--enable-lora" in given else ["--enable-lora"]
    if max_loras is not None and "--max-loras" not in given:
        args += ["--max-loras", str(max_loras)]
    if max_rank is not None and "--max-lora-rank" not in given:
        args += ["--max-lora-rank", str(max_rank)]
    return args
