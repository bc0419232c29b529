#!/usr/bin/env bash
# The worker's main job on the tiny model: it launches real vLLM, a local queue sends one chat job,
# the completion and its token usage are printed, and everything stops.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"
LOG="$ROOT/.cache/demo-worker.log"
PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
VLLM_PORT_FREE="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

sender=""
worker=""
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  [[ -n $sender ]] && kill "$sender" 2>/dev/null
  [[ -n $worker ]] && kill -TERM "$worker" 2>/dev/null && wait "$worker" 2>/dev/null
  return 0
}
trap cleanup EXIT

echo "demo: a local queue on ws://127.0.0.1:$PORT sends one chat job"
"$BIN/worker-vllm" send-test-job --port "$PORT" --timeout 600 --max-tokens 24 \
  -m "What is the capital of France?" >"$ROOT/.cache/demo-result.json" &
sender=$!

echo "demo: the worker starts vLLM on the tiny model (about a minute while vLLM compiles; log: $LOG)"
CASOLA_WS_URL="ws://127.0.0.1:$PORT" \
  CASOLA_CONFIG_ID=demo \
  CASOLA_INSTANCE_ID=demo-worker \
  VLLM_MODEL="$ROOT/.cache/tiny-chat-model" \
  VLLM_PORT="$VLLM_PORT_FREE" \
  VLLM_SERVE_COMMAND="$ROOT/.cache/bin/vllm" \
  VLLM_EXTRA_ARGS="--max-model-len 512 --dtype bfloat16" \
  VLLM_STARTUP_TIMEOUT=600 \
  "$BIN/worker-vllm" run --launch-vllm 2>"$LOG" &
worker=$!

code=0
wait "$sender" || code=$?
sender=""
if ((code != 0)); then
  echo "demo: the job failed; the worker's last log lines:" >&2
  grep -v ' vllm: ' "$LOG" | tail -n 20 >&2
  exit "$code"
fi
echo "demo: stopping the worker and vLLM"
kill -TERM "$worker"
wait "$worker" || code=$?
worker=""
echo "demo: done (worker exit code $code); the whole result is in .cache/demo-result.json"
exit "$code"
