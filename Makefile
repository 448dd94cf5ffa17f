# One Makefile for people and CI. `make demo` and `make test` set everything up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve lock test lint typecheck unit integration bench clean

LOCK := requirements.lock

# Every package, pinned with its hashes (`make lock` writes the lock from pyproject.toml);
# then changeflow itself, editable, with nothing more.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# After a change to pyproject.toml's dependencies: pin them again (reaches PyPI). An
# existing pin is kept where it still fits; `make lock UPGRADE=1` takes the newest.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--all-build-deps --no-emit-index-url --no-emit-find-links --extra dev \
		$(if $(UPGRADE),--upgrade) --output-file $(LOCK) pyproject.toml

demo: $(STAMP)
	$(BIN)/changeflow demo

serve: $(STAMP)
	$(BIN)/changeflow up

# Two workers: most tests wait on servers, subprocesses and polls, so two share the two
# cores well; a module's tests stay on one worker (its fixtures start once).
TEST_WORKERS ?= 2

test: lint typecheck
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy changeflow config domain integrations reporting tasks flows bench tools

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integrations

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
