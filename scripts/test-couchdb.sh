#!/usr/bin/env bash
# The whole suite against Apache CouchDB 3 (make test-couchdb; the second half of .ci/run).
#
#   COUCH_URL=http://admin:pass@host:5984 scripts/test-couchdb.sh     # a CouchDB 3 you already run
#   COUCHDB_TARBALL=path/to/apache-couchdb-3.x.tar.gz scripts/test-couchdb.sh
#   COUCHDB_CLUSTER=1 COUCHDB_TARBALL=... scripts/test-couchdb.sh         # on a 3-node cluster (make test-cluster)
#
# With a tarball (a relocatable release with its couchdb-local runner, as ../shared/couchdb holds), it is
# extracted into a temporary folder, its runtime packages are installed (as root; otherwise named), and
# one node is started with CouchDB's default configuration (the auth lockout on) on a free port. The node
# is stopped and the folder removed whatever happens. Tests that stop their database get nodes of their
# own from the same runner (COUCHDB_LOCAL). PYTEST_ARGS is passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# What CouchDB's auth lockout is set to on the server at COUCH_URL (the suite must pass with it on)
lockout() {
    "$PY" - <<'PYTHON'
import asyncio, os
from api.config import Config
from api.couch import Couch

async def lockout():
    config = Config.from_env({"COUCH_URL": os.environ["COUCH_URL"]})
    async with Couch.from_config(config) as couch:
        section = await couch.config_section("chttpd_auth_lockout")
    print(f"== CouchDB's auth lockout: {section or 'the built-in defaults (mode = enforce, threshold = 5)'}")

asyncio.run(lockout())
PYTHON
}

if [ -n "${COUCH_URL:-}" ]; then
    echo "== the suite against COUCH_URL (${COUCH_URL##*@})"
    lockout
    # shellcheck disable=SC2086
    exec "$PY" -m pytest ${PYTEST_ARGS:-}
fi
if [ -z "${COUCHDB_TARBALL:-}" ]; then
    echo "set COUCHDB_TARBALL=path/to/apache-couchdb-3.x.tar.gz, or COUCH_URL=http://admin:pass@host:5984" >&2
    exit 2
fi
tarball=$(cd "$(dirname "$COUCHDB_TARBALL")" && pwd)/$(basename "$COUCHDB_TARBALL")

work=$(mktemp -d "${TMPDIR:-/tmp}/jamii-couchdb.XXXXXX")
runner=""
data="$work/node"
epmd_was_running=false
if "$PY" -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", 4369)) != 0)'; then
    epmd_was_running=true
fi

cleanup() {
    status=${1:-$?}
    set +e  # best effort from here: one failed step must not leave a node running or the folder behind
    if [ -n "$runner" ] && [ -f "$data/couchdb.pid" ]; then
        "$runner" stop --data "$data" >/dev/null 2>&1 || true
    fi
    # CouchDB's first start launches epmd (Erlang's port mapper), which outlives the node: stop it only if
    # it is ours (no other Erlang node was running before)
    if [ "$epmd_was_running" = false ] && [ -n "$runner" ]; then
        for epmd in "$(dirname "$runner")"/couchdb/erts-*/bin/epmd; do
            [ -x "$epmd" ] && "$epmd" -kill >/dev/null 2>&1 || true
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT INT TERM

echo "== Apache CouchDB from $tarball"
tar -xzf "$tarball" -C "$work"
runner=$(ls "$work"/*/couchdb-local)
if [ "$(id -u)" = 0 ]; then
    "$runner" check-deps --install-deps
else
    "$runner" check-deps
fi

port=$("$PY" -c 'from scripts.couchdb import free_port; print(free_port())')
password=$("$PY" -c 'import secrets; print(secrets.token_hex(12))')
if [ "${COUCHDB_CLUSTER:-}" = 1 ]; then
    # three nodes (n=3, q=2, CouchDB's cluster defaults), the suite talking to the first, as one API process
    # behind HAProxy would; the other two are stopped by cleanup_cluster
    data="$work/node1"
    cleanup_cluster() {
        local kept=$?
        set +e
        for i in 2 3; do
            [ -f "$work/node$i/couchdb.pid" ] && "$runner" stop --data "$work/node$i" >/dev/null 2>&1
        done
        cleanup "$kept"  # exits with the status the suite left
    }
    trap cleanup_cluster EXIT INT TERM
    ports=("$port" "$("$PY" -c 'from scripts.couchdb import free_port; print(free_port())')" \
           "$("$PY" -c 'from scripts.couchdb import free_port; print(free_port())')")
    for i in 1 2 3; do
        "$runner" start --cluster --port "${ports[$((i - 1))]}" --data "$work/node$i" \
            --node-name "jamiitest${ports[0]}n$i" --admin "admin:$password"
    done
    "$runner" cluster-setup --admin "admin:$password" --data "$work/node1" --data "$work/node2" --data "$work/node3"
    what="a 3-node Apache CouchDB cluster (n=3, q=2), through the node on port $port"
else
    "$runner" start --port "$port" --data "$data" --admin "admin:$password"
    what="Apache CouchDB on port $port"
fi
COUCH_URL="http://admin:$password@127.0.0.1:$port" lockout

echo "== the suite against $what"
# shellcheck disable=SC2086
COUCH_URL="http://admin:$password@127.0.0.1:$port" COUCHDB_LOCAL="$runner" "$PY" -m pytest ${PYTEST_ARGS:-}
