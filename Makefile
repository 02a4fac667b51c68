# One command each, on a fresh machine with Python 3.11 and pip:
#   make test    set up .venv (all extras, pinned) and run the developer's suite (not slow; both cores)
#   make bench   set up .venv and run the main job (checks, asv sweep, dashboard, report)
# make test-slow runs the end-to-end tests (real asv runs, the browser, large cases) one at a time;
# make test-all runs both and the import contracts (what .ci/run runs).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: venv test test-slow test-all lint-imports bench bench-quick check clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist loadfile

test-slow: venv
	$(BIN)/python -m pytest -m slow

lint-imports: venv
	cd $(CURDIR) && $(BIN)/lint-imports

test-all: lint-imports test test-slow

check: venv
	$(BIN)/softgrad check

bench: venv
	$(BIN)/softgrad run

bench-quick: venv
	$(BIN)/softgrad run --quick

clean:
	rm -rf $(VENV) build *.egg-info
