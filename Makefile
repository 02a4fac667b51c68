# One command each, on a fresh machine with Python 3.11 and pip:
#   make test    set up .venv (all extras, pinned) and run the test suite
#   make bench   set up .venv and run the main job (checks, asv sweep, dashboard, report)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: venv test test-fast bench bench-quick check clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not browser"

check: venv
	$(BIN)/softgrad check

bench: venv
	$(BIN)/softgrad run

bench-quick: venv
	$(BIN)/softgrad run --quick

clean:
	rm -rf $(VENV) build *.egg-info
