"""Builds a tiny random Whisper speech-to-text model offline: a byte-level BPE of a few hundred entries wrapped in
`WhisperTokenizer` with Whisper's special tokens in Whisper's order, bfloat16 weights, and the feature extractor,
processor and generation configs vLLM reads.

Its transcripts are gibberish; vLLM's audio decoding, its request checks, token counts and timings are real.
Usage: python make_tiny_whisper.py OUTPUT_DIR
"""

import sys
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

TEXT = [
    "What is the capital of France? The capital of France is Paris.",
    "The quick brown fox jumps over the lazy dog while the worker runs its jobs.",
    "Hello there! How are you today? I am fine, thank you for asking.",
    "Speech to text turns a recording into words, one token at a time.",
] * 20
# Whisper's special tokens, in Whisper's order: the prompt vLLM writes names them, and verbose_json reads the times.
SPECIAL = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    *(f"<|{code}|>" for code in LANGUAGES),
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
    *(f"<|{i * 0.02:.2f}|>" for i in range(1501)),
]


def build_tokenizer(directory: Path) -> WhisperTokenizer:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=384, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(TEXT, trainer)
    vocab, merges = bpe.model.save(str(directory))
    tokenizer = WhisperTokenizer(vocab, merges, errors="replace")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})  # type: ignore[dict-item]
    tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def build_model(tokenizer: WhisperTokenizer) -> WhisperForConditionalGeneration:
    ids = tokenizer.convert_tokens_to_ids
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=128,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=256,
        decoder_ffn_dim=256,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=ids("<|endoftext|>"),
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=ids("<|endoftext|>"),
        decoder_start_token_id=ids("<|startoftranscript|>"),
        begin_suppress_tokens=[ids("<|endoftext|>")],
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # a random model that prefers text: no special or timestamp token ever scores high
        first_special = ids("<|endoftext|>")
        model.model.decoder.embed_tokens.weight[first_special:] = 0
    generation = model.generation_config
    generation.decoder_start_token_id = ids("<|startoftranscript|>")
    generation.no_timestamps_token_id = ids("<|notimestamps|>")
    generation.lang_to_id = {f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES}
    generation.task_to_id = {"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")}
    generation.is_multilingual = True
    generation.max_length = 448
    return model.to(torch.bfloat16)


def main(output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = build_tokenizer(Path(scratch))
        processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer)
        processor.save_pretrained(output)
        processor.feature_extractor.save_pretrained(output)  # preprocessor_config.json, which older readers want
    build_model(tokenizer).save_pretrained(output)
    print(f"tiny Whisper model written to {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
