# One command each, on a fresh machine with Python 3.11 and pip:
#   make test    set up .venv (all extras, pinned) and run the developer's suite (not slow; both cores)
#   make bench   set up .venv and run the main job (checks, asv sweep, dashboard, report)
# make test-slow runs the end-to-end tests (real asv runs, the browser, large cases) one at a time;
# make docs builds the documentation site (docs/, mkdocs.yml) into build/site, strictly (a broken link fails);
# make test-all runs the import contracts, the docs build, test and test-slow (what .ci/run runs).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: venv test test-slow test-all lint-imports docs bench bench-quick check clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist loadgroup --durations=20

test-slow: venv
	$(BIN)/python -m pytest -m slow

lint-imports: venv
	cd $(CURDIR) && $(BIN)/lint-imports

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

test-all: lint-imports docs test test-slow

check: venv
	$(BIN)/softgrad check

bench: venv
	$(BIN)/softgrad run

bench-quick: venv
	$(BIN)/softgrad run --quick

clean:
	rm -rf $(VENV) build *.egg-info
