"""Builds tiny random LoRA adapters offline for the tiny chat model, in PEFT's layout (adapter_config.json and
adapter_model.safetensors), one folder each: two that change its answers (tiny-a, tiny-b, and tiny-c for the
eviction tests), one made for another base model (other-base), one of a rank over vLLM's default limit of 16
(too-wide) and one whose weights file cannot be read (bad-weights).
Usage: python make_tiny_loras.py OUTPUT_DIR [BASE_MODEL_NAME]
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN, KV_WIDTH, LAYERS = 128, 64, 2  # the tiny model's: 2 heads of 64, 1 key-value head
ADAPTERS = {  # name: (rank, base model, seed)
    "tiny-a": (8, None, 1),
    "tiny-b": (8, None, 2),
    "tiny-c": (4, None, 3),
    "other-base": (8, "meta-llama/Llama-3.1-8B-Instruct", 4),
    "too-wide": (32, None, 5),
    "bad-weights": (8, None, 6),  # its weights file is no safetensors file: vLLM cannot read it
}


def adapter(output: Path, rank: int, base: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for layer in range(LAYERS):
        for module, width in (("q_proj", HIDDEN), ("v_proj", KV_WIDTH)):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            weights[f"{prefix}.lora_A.weight"] = torch.randn(rank, HIDDEN, generator=generator).to(torch.bfloat16)
            weights[f"{prefix}.lora_B.weight"] = torch.randn(width, rank, generator=generator).to(torch.bfloat16)
    output.mkdir(parents=True, exist_ok=True)
    save_file(weights, output / "adapter_model.safetensors")
    if output.name == "bad-weights":
        (output / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    config = {
        "base_model_name_or_path": base, "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank,
        "lora_alpha": 4 * rank, "lora_dropout": 0.0, "bias": "none", "target_modules": ["q_proj", "v_proj"],
        "fan_in_fan_out": False, "modules_to_save": None, "use_rslora": False, "use_dora": False,
    }  # fmt: skip
    (output / "adapter_config.json").write_text(json.dumps(config, indent=2))


def main(output: Path, base: str) -> None:
    for name, (rank, other_base, seed) in ADAPTERS.items():
        adapter(output / name, rank, other_base or base, seed)
    print(f"tiny LoRA adapters written to {output}: {', '.join(ADAPTERS)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "tiny-chat-model")
