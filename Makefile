# Strongroom: two commands on a fresh machine (Python >= 3.11 and make):
#   make run    ingest records/ into bags/ (ephemeral Prefect, SQLite ledger) and show the result
#   make test   the whole test suite
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.strongroom-installed

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

.PHONY: run test browser bench install clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# pip's and setuptools' own output (banners, warnings) goes to a log, shown only if the install fails
	@echo "strongroom: installing into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --quiet --upgrade pip && \
	   $(BIN)/python -m pip install --quiet -e '.[test]'; } >$(VENV)/install.log 2>&1 || \
	 { cat $(VENV)/install.log; echo "strongroom: error: the install failed (log: $(VENV)/install.log)"; exit 1; }
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/strongroom ingest --records records --bags bags
	$(BIN)/strongroom show bags/*.v*/

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The catalogue's tests drive a real headless browser, Debian's chromium: installed here when it is
# absent and this is a Debian machine where we may install (root); elsewhere the tests say what is missing.
browser:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
	 { echo "strongroom: installing chromium for the catalogue's browser tests (apt-get)"; \
	   apt-get install -y -q chromium >/dev/null 2>&1 || \
	   { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	   echo "strongroom: warning: apt-get could not install chromium; the browser tests will fail"; }

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
