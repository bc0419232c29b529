#!/usr/bin/env bash
# `docker-daemon.sh start`: a Docker engine for the container tier. Installs Debian's docker.io and mmdebstrap
# when absent (as root), and starts dockerd when no daemon answers, noting that it did in $PIDFILE.
# `docker-daemon.sh stop`: stops the dockerd that `start` started, and nothing else.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/docker-client.sh
source "$HERE/docker-client.sh"
PIDFILE="${WORKER_VLLM_DOCKERD_PIDFILE:-/tmp/worker-vllm-dockerd.pid}"
LOG=/tmp/worker-vllm-dockerd.log

log() { echo "docker: $*" >&2; }

answers() { "${DOCKER[@]}" info >/dev/null 2>&1; }

install() {
  command -v dockerd >/dev/null && command -v mmdebstrap >/dev/null && [[ -x /usr/bin/docker ]] && return
  if ((EUID != 0)); then
    log "docker.io and mmdebstrap are missing: install them as root (apt-get install docker.io mmdebstrap)"
    exit 1
  fi
  log "installing Debian's docker.io and mmdebstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io mmdebstrap >/dev/null
  # shellcheck source=scripts/docker-client.sh
  source "$HERE/docker-client.sh" # Debian's client is there now
}

start() {
  install
  if answers; then
    log "a daemon answers"
    return
  fi
  log "starting dockerd (log: $LOG)"
  dockerd >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 60))
  until answers; do
    if ((SECONDS > deadline)) || ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      tail -n 20 "$LOG" >&2
      log "dockerd did not answer within 60 s"
      exit 1
    fi
    sleep 0.2
  done
  log "dockerd answers (pid $(cat "$PIDFILE"))"
}

stop() {
  [[ -f $PIDFILE ]] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  rm -f "$PIDFILE"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { log "dockerd stopped"; return 0; }
    sleep 0.2
  done
  log "dockerd did not stop within 30 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
