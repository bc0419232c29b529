#!/usr/bin/env bash
# `make image`: the worker's image, worker-vllm:cpu, built by the project's Dockerfile on the vLLM CPU base
# (scripts/build-cpu-base.sh, built once). The same Dockerfile on vllm/vllm-openai is ./build.sh's GPU image.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=scripts/docker-client.sh
source "$HERE/docker-client.sh"
IMAGE="${WORKER_VLLM_IMAGE:-worker-vllm:cpu}"

if ! "${DOCKER[@]}" info >/dev/null 2>&1; then
  echo "image: no Docker daemon answers. On Debian, as root: apt-get install docker.io mmdebstrap, then" >&2
  echo "image: start one with \`dockerd >/tmp/dockerd.log 2>&1 &\` (or \`make docker\`)" >&2
  exit 1
fi
base="$(bash "$HERE/build-cpu-base.sh" | tail -n 1)"
started=$SECONDS
log="$(mktemp)"
if ! "${DOCKER[@]}" build --progress plain --network host --build-arg "BASE_IMAGE=$base" \
  --build-arg VLLM_ENABLE_V1_MULTIPROCESSING=0 -t "$IMAGE" "$ROOT" \
  >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "image: the build failed; its whole log: $log" >&2
  exit 1
fi
rm -f "$log"
size="$("${DOCKER[@]}" image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}')"
echo "image: $IMAGE on $base in $((SECONDS - started)) s, $size" >&2
echo "$IMAGE"
