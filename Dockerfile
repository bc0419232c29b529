# The worker on top of vLLM's OpenAI server image; entrypoint.sh runs and supervises both.
# VLLM_VERSION is the one place the vLLM version lives: scripts/setup-vllm.sh reads it from here, so the
# real-vLLM tests run the vLLM (its CPU build) that this image is built on.
ARG VLLM_VERSION=0.32.0
ARG BASE_IMAGE=vllm/vllm-openai:v${VLLM_VERSION}
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
LABEL worker-vllm.base=${BASE_IMAGE}
# vLLM's engine in its own process (1, vLLM's default) or in its API server's (0). `make image` builds the CPU image
# with 0: measured there (python -m bench.bench_vllm --engines, make bench-startup), the same throughput and a
# start 7 s shorter, one process less importing torch. A GPU keeps vLLM's default, which overlaps its scheduling
# with the GPU's work (docs/container.md).
ARG VLLM_ENABLE_V1_MULTIPROCESSING=1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VLLM_HOST=127.0.0.1 \
    VLLM_PORT=8000 \
    WORKER_VLLM_LOG_PORT=8082 \
    CASOLA_CACHE_DIR=/cache \
    VLLM_ENABLE_V1_MULTIPROCESSING=${VLLM_ENABLE_V1_MULTIPROCESSING}

WORKDIR /app
# The worker in a virtual environment of its own, from requirements.lock: every package at the version the tests
# ran, checked against its hash. vLLM's Python is only borrowed to make it (any base with a Python 3.11+ and pip
# 22.3+ will do; the environment gets no pip of its own) and is left exactly as the base brought it.
ENV WORKER_VENV=/opt/worker-vllm
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv --without-pip "$WORKER_VENV" \
    && python3 -m pip --python "$WORKER_VENV/bin/python" install --quiet --require-hashes --no-deps -r requirements.lock \
    && python3 -m pip --python "$WORKER_VENV/bin/python" install --quiet --no-deps /app \
    && ln -s "$WORKER_VENV/bin/worker-vllm" "$WORKER_VENV/bin/worker-vllm-log-relay" /usr/local/bin/ \
    && worker-vllm --help >/dev/null \
    && mkdir -m 1777 /cache
# vLLM's compile cache and the model hub's cache (CASOLA_CACHE_DIR): a named volume here keeps them across
# containers, so a restart skips torch.compile. Any user may write it, as /tmp.
VOLUME /cache
COPY --chmod=0755 entrypoint.sh /app/entrypoint.sh

# The worker's /healthz (WORKER_HTTP_PORT, 8081 by default; 0 turns the endpoint and this check off).
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/worker-vllm/bin/python", "-c", "import os, sys, urllib.request; port = os.environ.get('WORKER_HTTP_PORT', '8081'); sys.exit(0) if port == '0' else urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# Nothing under /app is written at run time, so the image also runs as a non-root --user (the entrypoint gives
# a user with no writable HOME one under /tmp, where vLLM keeps its caches).
ENTRYPOINT ["/app/entrypoint.sh"]
CMD []
