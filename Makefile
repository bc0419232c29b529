# worker-vllm: `make demo` and `make test` each set up what they need (the virtualenv, real vLLM's CPU build).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-fast test-vllm lint run demo bench bench-vllm vllm-env clean

$(BIN)/worker-vllm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

setup: $(BIN)/worker-vllm  ## the worker's virtualenv with its test tools

lint: setup
	$(BIN)/ruff check src tests testbed bench scripts docker
	$(BIN)/ruff format --check src tests testbed bench scripts docker
	$(BIN)/mypy src
	$(BIN)/hadolint Dockerfile

test: setup vllm-env lint  ## lint, types, then every test (the real-vLLM tier included)
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

bench-vllm: setup vllm-env  ## direct vLLM against queue + worker + vLLM
	$(BIN)/python -m bench.bench_vllm

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
