# Two commands: `make run` starts everything, `make test` runs the whole suite.
# Both install what they need first and are safe to run again.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NPM_FLAGS := --omit=optional --no-audit --no-fund --loglevel=error

.PHONY: install run test test-couchdb test-cluster fuzz bench load clean upload-ddocs cluster cluster-test

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

# The whole suite against Apache CouchDB 3: COUCH_URL=http://admin:pass@host:5984 (a server you run), or
# COUCHDB_TARBALL=path/to/apache-couchdb-3.x.tar.gz (a release with couchdb-local: one node is started with
# CouchDB's default configuration and stopped afterwards). See scripts/test-couchdb.sh.
test-couchdb: install
	COUCH_URL="$(COUCH_URL)" COUCHDB_TARBALL="$(COUCHDB_TARBALL)" PYTEST_ARGS="$(PYTEST_ARGS)" PY="$(PY)" \
		bash scripts/test-couchdb.sh

# The whole suite on a 3-node Apache CouchDB cluster (n=3, q=2) started from COUCHDB_TARBALL, through its first
# node (docs/scaling.md); the third part of .ci/run.
test-cluster: install
	COUCHDB_CLUSTER=1 COUCHDB_TARBALL="$(COUCHDB_TARBALL)" PYTEST_ARGS="$(PYTEST_ARGS)" PY="$(PY)" \
		bash scripts/test-couchdb.sh

# The production layout on this machine (scripts/cluster.py, docs/scaling.md): 3 CouchDB nodes, HAProxy,
# CLUSTER_WORKERS API processes on one port, 2 sentinels; Ctrl-C stops everything. CouchDB comes from
# COUCHDB_TARBALL (a release with couchdb-local), COUCHDB_LOCAL (an extracted one's runner) or
# CLUSTER_NODES=url,url,url with CLUSTER_ADMIN=user:pass (a cluster you run). CLUSTER_PORT (16100) is the
# first of the ports it uses.
CLUSTER_SOURCE = $(if $(CLUSTER_NODES),--nodes "$(CLUSTER_NODES)" --admin "$(CLUSTER_ADMIN)",$(if $(COUCHDB_LOCAL),--runner "$(COUCHDB_LOCAL)",--tarball "$(COUCHDB_TARBALL)"))
cluster: install
	$(PY) -m scripts.cluster $(CLUSTER_SOURCE) --workers $(or $(CLUSTER_WORKERS),3) $(CLUSTER_ARGS)

# The layout under a mixed load with a CouchDB node, the active sentinel and an API worker killed
# (scripts/cluster_test.py); same sources as `make cluster`.
cluster-test: install
	$(PY) -m scripts.cluster_test $(CLUSTER_SOURCE) $(CLUSTER_ARGS)

# The full fuzzing run (tests/resilience/test_fuzz.py, slow): hundreds of requests per operation, in two
# processes (the shards of test_fuzz_full), each with its own server; about 45 minutes on 2 cores.
fuzz: install
	$(MAKE) -j2 fuzz-shard0of2 fuzz-shard1of2

fuzz-shard%: install
	$(PY) -m pytest -m slow -s -k "test_fuzz_full and shard$*" tests/resilience/test_fuzz.py $(PYTEST_ARGS)

upload-ddocs: install
	$(PY) -m scripts.upload_ddocs

bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

# 200 concurrent clients for 5 minutes against a fresh stack (LOAD_ARGS="--clients 50 --seconds 30").
load: install
	$(PY) -m bench.load $(LOAD_ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache
