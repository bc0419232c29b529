#!/usr/bin/env bash
# Container entrypoint: starts vLLM and the worker as independent processes and supervises both.
#
#   vLLM exits        -> the worker gets its grace period to notice and report an `error` heartbeat,
#                        then the container exits non-zero.
#   the worker exits  -> vLLM is stopped; the container exits with the worker's code.
#   SIGTERM / SIGINT  -> SIGTERM to the worker; once it exits (or after its grace period plus a margin,
#                        then SIGKILL) vLLM gets SIGTERM, then SIGKILL after VLLM_STOP_TIMEOUT.
#
# ENTRYPOINT_VLLM_COMMAND, ENTRYPOINT_WORKER_COMMAND and ENTRYPOINT_GPU_CHECK_COMMAND replace the commands
# (tests use stand-ins). The GPU check runs first; a failure ends the container before anything starts.
set -euo pipefail

read -r -a VLLM_COMMAND <<<"${ENTRYPOINT_VLLM_COMMAND:-worker-vllm launch-vllm}"
read -r -a WORKER_COMMAND <<<"${ENTRYPOINT_WORKER_COMMAND:-worker-vllm run}"
read -r -a GPU_CHECK_COMMAND <<<"${ENTRYPOINT_GPU_CHECK_COMMAND:-worker-vllm check-gpu}"
read -r -a LOG_RELAY_COMMAND <<<"${ENTRYPOINT_LOG_RELAY_COMMAND:-worker-vllm-log-relay}"
VLLM_LOG_PORT="${WORKER_VLLM_LOG_PORT:-0}"
GRACE="${CASOLA_SHUTDOWN_GRACE_PERIOD:-5}"
MARGIN="${ENTRYPOINT_SHUTDOWN_MARGIN:-10}"
VLLM_STOP_TIMEOUT="${VLLM_STOP_TIMEOUT:-30}"

vllm_pid=""
worker_pid=""
signalled=""
reaped=0

log() {
  printf '%s entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

gpu_diagnostic() {
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    log "nvidia-smi not found: no NVIDIA driver visible in this container"
    return 0
  fi
  local cuda
  cuda=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' || true)
  log "GPU driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || echo unknown), ${cuda:-CUDA version unknown}"
  nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader 2>/dev/null | while read -r gpu; do
    log "GPU $gpu"
  done || log "nvidia-smi failed: the GPU may be unusable"
}

# A user with no home of its own (`docker run --user 1000:1000`) has HOME=/, which it cannot write; vLLM,
# torch and Hugging Face keep their caches under $HOME/.cache.
writable_home() {
  if [[ ! -w ${HOME:-/} ]]; then
    log "HOME (${HOME:-unset}) is not writable by uid $(id -u): using /tmp/worker-vllm-home for caches"
    export HOME=/tmp/worker-vllm-home
    mkdir -p "$HOME"
  fi
}

# vLLM's engine passes tensors through /dev/shm: Docker's default 64 MiB stops it at start.
shm_check() {
  local kib
  kib=$(df -k /dev/shm 2>/dev/null | awk 'NR == 2 {print $2}') || return 0
  if [[ -n $kib ]] && ((kib < 1048576)); then
    log "/dev/shm is $((kib / 1024)) MiB: vLLM's engine may fail to start; run the container with --ipc=host or --shm-size 8g"
  fi
}

# running PID: true while PID exists and is not a zombie waiting to be reaped.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# wait_until_gone PID SECONDS: true if PID ended within SECONDS.
wait_until_gone() {
  local deadline=$((SECONDS + ${2%.*} + 1))
  while running "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# reap PID: sets `reaped` to its exit code (the process has ended). Not in a subshell: only we can wait.
reap() {
  reaped=0
  wait "$1" 2>/dev/null || reaped=$?
}

# tell_worker_vllm_exited CODE: over the log relay's port, so the worker reports it at once, even while it still
# waits for vLLM to be ready (it notices a vLLM that stopped answering anyway). Said again until the worker
# exits: a worker still starting up is not listening yet.
tell_worker_vllm_exited() {
  if [[ $VLLM_LOG_PORT != 0 ]]; then
    "${LOG_RELAY_COMMAND[@]}" --exited "$1" "$VLLM_LOG_PORT" || true
  fi
}

# group_members PGID [STATES]: the live processes of that process group (only those in STATES, e.g. Tt, if given).
group_members() {
  local stat pid rest
  for stat in /proc/[0-9]*/stat; do
    read -r rest <"$stat" 2>/dev/null || continue
    pid=${rest%% *}
    rest=${rest##*) }
    read -r -a rest <<<"$rest"
    [[ ${rest[2]} == "$1" && ${rest[0]} != Z && ${2:-${rest[0]}} == *"${rest[0]}"* ]] && echo "$pid"
  done
  return 0
}

# Every process started here has ended (those SIGKILLed just now get 2 s to go), or is killed now; says which
# were left.
nothing_left() {
  local left deadline=$((SECONDS + 2))
  while left=$(group_members "$vllm_pid"; group_members "$worker_pid") && [[ -n $left ]] && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if [[ -z $left ]]; then
    log "nothing left running"
  else
    log "left running: $(echo "$left" | tr '\n' ' ')(SIGKILL)"
    kill -KILL -- "-$vllm_pid" "-$worker_pid" 2>/dev/null || true
  fi
}

stop_group() {
  local pid=$1 name=$2 timeout=$3 stopped
  stopped=$(group_members "$pid" Tt)
  if [[ -n $stopped ]]; then # a stopped process (SIGSTOP, a hung engine) cannot act on SIGTERM: no waiting
    log "$name has stopped processes ($(echo "$stopped" | tr '\n' ' ')): SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  if running "$pid"; then
    log "stopping $name (pid $pid): SIGTERM"
    kill -TERM -- "-$pid" 2>/dev/null || true
    if ! wait_until_gone "$pid" "$timeout"; then
      log "$name ignored SIGTERM for ${timeout}s: SIGKILL"
    fi
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true # whatever of the group outlived its leader
}

stop_worker() {
  local timeout=$((${GRACE%.*} + MARGIN))
  if running "$worker_pid"; then
    log "stopping the worker (pid $worker_pid): SIGTERM, up to ${timeout}s"
    kill -TERM "$worker_pid" 2>/dev/null || true
    if ! wait_until_gone "$worker_pid" "$timeout"; then
      log "the worker did not exit within ${timeout}s: SIGKILL"
    fi
  fi
  kill -KILL -- "-$worker_pid" 2>/dev/null || true
}

main() {
  writable_home
  shm_check
  gpu_diagnostic
  # A bad host (wrong GPU, busy, ECC errors, power-capped) sends a `fatal` heartbeat and stops here,
  # before vLLM spends minutes loading a model on it.
  local checked=0
  "${GPU_CHECK_COMMAND[@]}" || checked=$?
  if ((checked != 0)); then
    log "GPU check failed (exit $checked): not starting vLLM"
    exit "$checked"
  fi
  trap 'signalled=TERM' TERM
  trap 'signalled=INT' INT

  # Each in a process group of its own (job control on while they start), to stop each with its children;
  # not in a session of its own: with autogroup scheduling a new session is a scheduling group of its own,
  # and vLLM ran 4x slower beside a busy worker that way.
  set -m
  if [[ $VLLM_LOG_PORT != 0 ]]; then
    # vLLM's output, line by line, to the container's log and to the worker (who ships it and spots fatal
    # lines); the relay never waits on the worker.
    "${VLLM_COMMAND[@]}" > >(exec "${LOG_RELAY_COMMAND[@]}" "$VLLM_LOG_PORT") 2>&1 &
  else
    "${VLLM_COMMAND[@]}" &
  fi
  vllm_pid=$!
  "${WORKER_COMMAND[@]}" &
  worker_pid=$!
  set +m
  log "started vLLM: ${VLLM_COMMAND[*]} (pid $vllm_pid)"
  log "started the worker: ${WORKER_COMMAND[*]} (pid $worker_pid)"

  while [[ -z $signalled ]] && running "$vllm_pid" && running "$worker_pid"; do
    wait -n "$vllm_pid" "$worker_pid" 2>/dev/null || true
  done

  local worker_code vllm_code
  if [[ -n $signalled ]]; then
    log "SIG$signalled: shutting down"
    stop_worker
    reap "$worker_pid"
    worker_code=$reaped
    stop_group "$vllm_pid" vLLM "$VLLM_STOP_TIMEOUT"
    reap "$vllm_pid"
    vllm_code=$reaped
    log "worker exited with $worker_code, vLLM with $vllm_code"
    nothing_left
    exit "$worker_code"
  fi

  if ! running "$worker_pid"; then
    reap "$worker_pid"
    worker_code=$reaped
    log "the worker exited with $worker_code: stopping vLLM"
    stop_group "$vllm_pid" vLLM "$VLLM_STOP_TIMEOUT"
    reap "$vllm_pid"
    nothing_left
    exit "$worker_code"
  fi

  reap "$vllm_pid"
  vllm_code=$reaped
  log "vLLM exited with $vllm_code: the worker has ${GRACE}s (+${MARGIN}s) to report it"
  kill -KILL -- "-$vllm_pid" 2>/dev/null || true
  local deadline=$((SECONDS + ${GRACE%.*} + MARGIN + 1))
  while running "$worker_pid" && ((SECONDS < deadline)); do
    tell_worker_vllm_exited "$vllm_code"
    wait_until_gone "$worker_pid" 1 && break
  done
  if running "$worker_pid"; then
    stop_worker
  fi
  reap "$worker_pid"
  worker_code=$reaped
  log "worker exited with $worker_code"
  nothing_left
  if ((worker_code != 0)); then
    exit "$worker_code"
  fi
  exit $((vllm_code != 0 ? vllm_code : 1))
}

main "$@"
