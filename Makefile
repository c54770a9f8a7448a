# Two commands: `make run` starts everything, `make test` runs the whole suite.
# Both install what they need first and are safe to run again.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NPM_FLAGS := --omit=optional --no-audit --no-fund --loglevel=error

.PHONY: install run test bench load clean upload-ddocs

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci $(NPM_FLAGS)
	touch $@

run: install
	$(PY) -m scripts.run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

upload-ddocs: install
	$(PY) -m scripts.upload_ddocs

bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

# 200 concurrent clients for 5 minutes against a fresh stack (LOAD_ARGS="--clients 50 --seconds 30").
load: install
	$(PY) -m bench.load $(LOAD_ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache
