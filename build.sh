#!/usr/bin/env bash
# Builds the worker image: IMAGE_NAME and IMAGE_TAG name it; extra arguments go to `docker build`.
set -euo pipefail

IMAGE_NAME="${IMAGE_NAME:-ghcr.io/casola-ai/worker-vllm}"
IMAGE_TAG="${IMAGE_TAG:-latest}"
cd "$(dirname "${BASH_SOURCE[0]}")"
exec docker build -t "${IMAGE_NAME}:${IMAGE_TAG}" "$@" .
