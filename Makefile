# Two commands do all set-up on a fresh machine with Python 3.11:
#   make run   - create .venv, install pinned deps, convert the model, build the index, launch the app
#   make test  - the same set-up, plus headless Chromium, then the whole test suite
#   make test-fast - no model, no browser, no server (under a minute): the tests to run while editing
#   make lint  - ruff check ., ruff format --check . and mypy coach/
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
COACH := $(VENV)/bin/coach
# Model weights must never come from a hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-fast lint setup index browser bench eval clean-index

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and alone, so pip takes the local CPU build instead of the CUDA one
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

index: setup
	$(COACH) build --if-needed

run: index
	$(PY) app.py

# Debian's Chromium for the browser tests (never `playwright install`), and a CJK font so Chinese renders in them.
browser:
	@{ test -x /usr/bin/chromium && fc-list 2>/dev/null | grep -qi "noto.*cjk"; } || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null) \
	  || echo "warning: could not install Debian chromium / fonts-noto-cjk; browser tests will be skipped"; }

test: setup browser
	$(COACH) build --if-needed
	$(PY) -m pytest -q

# COACH_FAST_TIER=1: a test that loads the real model without being marked slow fails, naming the fix.
test-fast: setup
	COACH_FAST_TIER=1 $(PY) -m pytest -q -m "not slow and not browser"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy coach/

eval: index
	$(COACH) eval eval/queries.jsonl

bench: index
	$(PY) bench/run.py

clean-index:
	rm -rf index/builds index/CURRENT index/.lock
