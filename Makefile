# worker-vllm: `make demo` and `make test` each set up what they need (the virtualenv, real vLLM's CPU build).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup lock test test-fast test-vllm test-container lint run demo bench bench-vllm bench-startup vllm-env image container-image docker clean

# The worker's dependencies come from requirements.lock (the image's) and, with the test tools, requirements-dev.lock:
# every package pinned with its hashes, installed with --require-hashes, so the tests run the image's versions.
$(BIN)/worker-vllm: pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

setup: $(BIN)/worker-vllm  ## the worker's virtualenv with its test tools, from the locks

# uv resolves once for every platform and every Python from 3.11 (--universal), so one lock serves the CPU base's
# Python 3.11 and vLLM's image's 3.12; pip installs it. UPGRADE=1 moves every unpinned package to its newest release.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet $(if $(UPGRADE),--upgrade)
lock: setup  ## requirements.lock and requirements-dev.lock from pyproject.toml's pins (UPGRADE=1: newest of the rest)
	$(LOCK) -o requirements.lock
	$(LOCK) --extra dev -c requirements.lock -o requirements-dev.lock

lint: setup
	$(BIN)/ruff check src tests testbed bench scripts docker
	$(BIN)/ruff format --check src tests testbed bench scripts docker
	$(BIN)/mypy src
	$(BIN)/hadolint Dockerfile docker/cpu-base/Dockerfile

test: setup vllm-env lint container-image  ## lint, types, then every test (the real-vLLM and container tiers included)
	$(BIN)/pytest

test-fast: setup  ## unit and in-process integration tests only
	$(BIN)/pytest -m "not slow and not vllm"

run: setup  ## the worker, configured by the environment (see README)
	$(BIN)/worker-vllm run

bench: setup  ## worker overhead against a fake vLLM
	$(BIN)/python -m bench.bench_worker

vllm-env:  ## real vLLM (CPU build) in ~/.cache/worker-vllm and a tiny model in .cache/
	bash scripts/setup-vllm.sh

demo: setup vllm-env  ## one chat job through the worker and real vLLM on the tiny model
	bash scripts/demo.sh

test-vllm: setup vllm-env  ## only the real-vLLM tier
	$(BIN)/pytest -m vllm

test-container: setup vllm-env image  ## only the container tier
	$(BIN)/pytest -m container

image: vllm-env  ## worker-vllm:cpu: the Dockerfile on a vLLM CPU base built here (the base once, ~3 min)
	bash scripts/build-image.sh

container-image: vllm-env  # for make test: the image when a Docker daemon answers, else how to get one
	@if bash -c 'source scripts/docker-client.sh && "$${DOCKER[@]}" info' >/dev/null 2>&1; then \
		bash scripts/build-image.sh; \
	else \
		echo "make test: no Docker daemon answers, so the container tier will be skipped; \`make docker\` gets one"; \
	fi

docker:  ## a Docker engine: Debian's docker.io and mmdebstrap installed if absent, dockerd started if none answers
	bash scripts/docker-daemon.sh start

bench-vllm: setup vllm-env  ## direct vLLM against queue + worker + vLLM
	$(BIN)/python -m bench.bench_vllm

bench-startup: setup image  ## the image's cold and warm start: to vLLM answering, registered, the first result
	$(BIN)/python -m bench.bench_startup

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
