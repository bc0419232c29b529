# shellcheck shell=bash disable=SC2034 # the scripts that source this use its variables
# Sourced: DOCKER, a docker client that builds with BuildKit (the Dockerfiles use COPY --chmod and
# RUN --mount). A client with buildx does; otherwise Debian's own client (the docker.io package) does under
# DOCKER_BUILDKIT=1, where a client first on PATH without buildx would fall back to the legacy builder.
if [[ -n ${WORKER_VLLM_DOCKER:-} ]]; then
  read -r -a DOCKER <<<"$WORKER_VLLM_DOCKER"
elif docker buildx version >/dev/null 2>&1 || [[ ! -x /usr/bin/docker ]]; then
  DOCKER=(docker)
else
  DOCKER=(/usr/bin/docker)
fi
export DOCKER_BUILDKIT=1
