"""Builds a tiny random Llama chat model offline: a byte-level BPE tokenizer with a chat template, bfloat16 weights.

Its answers are gibberish; its token counts, finish reasons, errors and timings are real.
Usage: python make_tiny_model.py OUTPUT_DIR
"""

import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TEXT = [
    "What is the capital of France? The capital of France is Paris.",
    "You are a helpful assistant. Answer briefly and politely.",
    "The quick brown fox jumps over the lazy dog while the worker runs its jobs.",
    "Hello there! How are you today? I am fine, thank you for asking.",
    "Large language models generate text one token at a time on a GPU or a CPU.",
] * 20


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TEXT, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        chat_template=CHAT_TEMPLATE,
    )


def build_model(tokenizer: PreTrainedTokenizerFast, classifier: bool = False) -> PreTrainedModel:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16",
        **({"num_labels": 2, "id2label": {0: "negative", 1: "positive"}} if classifier else {}),
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config) if classifier else LlamaForCausalLM(config)
    return model.to(torch.bfloat16)


def main(output: Path, classifier: bool) -> None:
    output.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(output)
    build_model(tokenizer, classifier).save_pretrained(output)
    print(f"tiny {'classification' if classifier else 'chat'} model written to {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--classifier" in sys.argv[2:])
