# spikeflight: `make demo` and `make test` set everything up on a fresh machine first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.spikeflight-installed

.PHONY: setup demo test test-all bench lint clean

setup: $(STAMP)

# The stamp depends on the dependency pins: editing them reinstalls.
$(STAMP): pyproject.toml requirements-lava.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	# lava-nc 0.10.0 rejects Python 3.11 in its metadata; runtime/lava_compat.py fixes it at import
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--ignore-requires-python -r requirements-lava.txt
	$(BIN)/python -c "from runtime.lava_compat import ensure_lava; ensure_lava(); \
		import lava.magma.core.run_configs" && echo "lava-nc ready"
	@touch $(STAMP)

demo: setup
	$(BIN)/spikeflight demo

test: setup
	$(BIN)/python -m pytest

test-all: setup
	$(BIN)/python -m pytest -m "slow or not slow"

bench: setup
	$(BIN)/spikeflight bench env
	$(BIN)/spikeflight bench expert --episodes 100
	$(BIN)/python -m pytest benchmarks --benchmark-enable -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache .benchmarks
