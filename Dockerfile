# The worker on top of vLLM's OpenAI server image; entrypoint.sh runs and supervises both.
ARG BASE_IMAGE=vllm/vllm-openai:v0.11.0
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VLLM_HOST=127.0.0.1 \
    VLLM_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY docker/install_worker.py docker/install_worker.py
COPY src ./src
# Into the image's own Python, adding only what vLLM's image lacks (no second copy of its dependencies).
RUN python3 docker/install_worker.py /app \
    && worker-vllm --help >/dev/null
COPY --chmod=0755 entrypoint.sh /app/entrypoint.sh

# Nothing under /app is written at run time, so the image also runs as a non-root --user.
ENTRYPOINT ["/app/entrypoint.sh"]
CMD []
