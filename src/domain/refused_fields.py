"""What a payload may not hold: fields the worker refuses (naming why), and `extra_body`'s limits.

`extra_body` carries vLLM fields the worker does not model yet, passed as is; a field the worker does model moves
out of it, to be checked like the rest; it may not set the model, the kind's input or streaming.
"""

from typing import Any

STREAMING = "the queue returns one result, so streaming is refused"
REFUSED: dict[str, str] = {
    "stream_options": STREAMING,
    "stream_interval": STREAMING,
    "request_id": "the worker names each vLLM request after its job",
    "kv_transfer_params": "internal to disaggregated vLLM deployments",
    "ec_transfer_params": "internal to disaggregated vLLM deployments",
    "best_of": "vLLM no longer takes it; use n",
    **dict.fromkeys(
        ("mm_payload", "return_mm_kwargs", "routed_experts_prompt_start"), "a vLLM internal the worker does not pass"
    ),
    "functions": "deprecated by OpenAI and not implemented by vLLM; use tools",
    "function_call": "deprecated by OpenAI and not implemented by vLLM; use tool_choice",
    **dict.fromkeys(
        ("audio", "modalities", "prediction", "web_search_options", "store", "metadata", "service_tier"),
        "an OpenAI platform feature vLLM does not implement",
    ),
    **dict.fromkeys(
        ("prompt_cache_key", "safety_identifier", "verbosity"), "an OpenAI platform feature vLLM does not implement"
    ),
}


def refuse_fields(data: dict[str, Any], refuses: dict[str, str] = REFUSED) -> None:
    """ValueError naming each refused field of `data` (those of `refuses`), and why."""
    refused = [f"{name}: {refuses[name]}" for name in data if name in refuses]
    if data.get("stream"):
        refused.append(f"stream: {STREAMING}")
    if refused:
        raise ValueError("; ".join(refused))


def unwrap_extra_body(
    data: dict[str, Any],
    extra: dict[str, Any],
    modelled: set[str],
    inputs: frozenset[str],
    refuses: dict[str, str] = REFUSED,
) -> dict[str, Any]:
    """`data` with the `modelled` fields moved out of `extra_body`; the others stay in it as given."""
    fixed = sorted({"model", "stream", "task", "job_type", "extra_body", *inputs} & set(extra))
    if fixed:
        raise ValueError(f"extra_body may not set {', '.join(fixed)}")
    known = {name: value for name, value in extra.items() if name in modelled}
    twice = sorted(set(known) & set(data))
    if twice:
        raise ValueError(f"{', '.join(twice)}: given both in the payload and in extra_body")
    refused = [f"extra_body.{name}: {refuses[name]}" for name in extra if name in refuses]
    if refused:
        raise ValueError("; ".join(refused))
    rest = {name: value for name, value in extra.items() if name not in known}
    return {**data, **known, "extra_body": rest or None}
