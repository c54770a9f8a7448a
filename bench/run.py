"""Run every benchmark and write one Markdown report of their headline figures.

    python -m bench.run                      # everything, at the sizes below (make bench)
    python -m bench.run --quick              # small sizes: a smoke run that the scripts still work
    python -m bench.run --only contacts,users --out /tmp/report.md

Each benchmark runs in a child process of its own (``python -m bench.run
--child NAME``: a fresh embedded CouchDB, nothing shared with the others);
the child calls the script's function, which prints its usual lines and
returns a small dict of headline figures, and hands that dict back as JSON.
The table is built from those numbers, never parsed from printed text. The
report (default ``bench/results/pouchdb-server.md``, or ``couchdb.md`` with
``COUCH_URL``: one table per server) names the date, the cores, the server,
the Python and Node versions and the load average before and after, since the
machine is often shared. Exit status 1 if any benchmark failed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def default_out() -> Path:
    """One report per server: the embedded pouchdb-server's, or the ``COUCH_URL`` CouchDB's."""
    return RESULTS / ("couchdb.md" if os.environ.get("COUCH_URL") else "pouchdb-server.md")

Figures = dict[str, Any]


@dataclass(frozen=True)
class Bench:
    """One benchmark: the function to call, its sizes, and how its figures read in the table."""

    module: str
    function: str
    full: dict[str, Any]
    quick: dict[str, Any]
    what: str
    size: Callable[[Figures], str]
    headline: Callable[[Figures], str]
    versus: Callable[[Figures], str]
    goal: str = ""


BENCHES: dict[str, Bench] = {
    "contacts": Bench(
        "bench.contacts", "main", {"requests": 4000, "clients": 20}, {"requests": 200, "clients": 5},
        "`GET /api/v1/contact/{id}` by keep-alive clients",
        lambda f: f"{f['contacts']:,} contacts; {f['clients']} clients, {f['requests']:,} requests",
        lambda f: f"{f['api_ms']:.1f} ms median (CouchDB GET {f['couchdb_ms']:.1f} ms); "
                  f"`with_lineage` {f['lineage_ratio']:.2f}x",
        lambda f: f"**{f['ratio']:.2f}x** direct CouchDB GET", "<= 1.3x"),
    "replication": Bench(
        "bench.replication", "main", {"docs": 20000}, {"docs": 1000},
        "offline supervisor's first PouchDB pull through `/medic`",
        lambda f: f"{f['docs']:,} docs, {f['pulled']:,} visible",
        lambda f: f"{f['api_s']:.1f} s first pull; {f['incremental_s']:.2f} s for 100 new docs; "
                  f"the first sync's `_changes` alone {f['first_sync_changes_s']:.2f} s",
        lambda f: f"**{f['ratio']:.2f}x** PouchDB pulling the same docs from CouchDB", "<= 2x"),
    "sentinel": Bench(
        "bench.sentinel", "main", {"reports": 10000}, {"reports": 300},
        "sentinel draining a backlog of SMS reports",
        lambda f: f"{f['reports']:,} reports",
        lambda f: f"{f['reports_per_s']:.0f} reports/s ({f['sentinel_s']:.0f} s)",
        lambda f: f"raw read+write / sentinel **{f['ratio']:.2f}** copied to a fresh database, "
                  f"**{f.get('inplace_ratio', 0):.2f}** rewritten in place "
                  f"(raw / contract floor {f['floor_ratio']:.2f})",
        ">= 0.5"),
    "exports": Bench(
        "bench.exports", "main", {"sizes": [50000, 500000], "filtered": False}, {"sizes": [1000], "filtered": False},
        "`GET /api/v2/export/reports` streamed (API in its own process)",
        lambda f: " and ".join(f"{s['reports']:,}" for s in f.get("sizes", [f])) + " reports",
        lambda f: "; ".join(f"{s['reports']:,}: {s['rows_per_s']:,.0f} rows/s, peak RSS {s['peak_mb']:.0f} MB"
                            for s in f.get("sizes", [f])) + f" (idle {f['idle_mb']:.0f} MB)",
        lambda f: "**" + "x, ".join(f"{s['ratio']:.2f}" for s in f.get("sizes", [f]))
                  + "x** the rate of reading the view pages directly",
        "memory flat as exports grow"),
    "datapoints": Bench(
        "bench.datapoints", "run", {"datapoints": 1_000_000}, {"datapoints": 10_000, "campaigns": 1, "repeat": 3},
        "`/api/v1/datapoint`, 20 indicators x 50 districts",
        lambda f: f"{f['datapoints']:,} datapoints",
        lambda f: f"{f['api_ms']:.0f} ms median, 1 campaign; {f['all_campaigns_ms']:.0f} ms all",
        lambda f: f"**{f['ratio']:.1f}x** the `agg` view query alone ({f['couchdb_ms']:.0f} ms)",
        "<= 200 ms at 1M"),
    "users": Bench(
        "bench.users", "main", {"count": 1000}, {"count": 20},
        "CSV upload to `POST /api/v2/users`",
        lambda f: f"{f['users']:,} users",
        lambda f: f"{f['import_s']:.1f} s ({f['users_per_s']:.0f} users/s)",
        lambda f: f"**{f['ratio']:.2f}x** `_bulk_docs` of the same docs", "<= 1.2x CouchDB's own write"),
    "foci": Bench(
        "bench.foci", "run", {"cases": 100_000, "clusters": 5_000, "server_cases": 20_000, "server_clusters": 1_000},
        {"cases": 2000, "clusters": 100, "runs": 1, "moves": 2},
        "foci recount of a country: pure STRtree, then against the server",
        lambda f: f"{f['cases']:,} x {f['clusters']:,} pure; {f['server_cases']:,} x {f['server_clusters']:,} server",
        lambda f: f"pure {f['pure_ms']:.0f} ms; server {f['recount_ms']:.0f} ms, one moved case "
                  f"{f['one_move_ms']:.0f} ms",
        lambda f: f"**{f['ratio']:.2f}x** reading the points view alone"),
    "sms": Bench(
        "bench.sms", "run", {"reports": 500, "messages": 2000}, {"reports": 20, "messages": 50},
        "SMS reports in (`/api/v2/records`), messages out (`/api/sms`)",
        lambda f: f"{f['reports']:,} reports, {f['messages']:,} messages",
        lambda f: f"{f['reports_per_s']:.0f} reports/s; {f['messages_per_s']:.0f} messages/s (1 poller)",
        lambda f: f"**{f['reports_ratio']:.2f}x** CouchDB PUTs; **{f['messages_ratio']:.2f}x** `_bulk_docs`"),
    "spatial": Bench(
        "bench.spatial", "main", {"count": 20000}, {"count": 300},
        "spatial units: list pages, whole project, get",
        lambda f: f"{f['units']:,} units",
        lambda f: f"create one unit {f['create_ms']:.0f} ms",
        lambda f: f"page **{f['page_ratio']:.2f}x**, whole project **{f['all_ratio']:.2f}x**, "
                  f"get **{f['get_ratio']:.2f}x** CouchDB"),
    "purging": Bench(
        "bench.purging", "main", {"contacts": 10000}, {"contacts": 500},
        "sentinel purge run (QuickJS function, 3 role sets): contacts, unallocated, tasks, targets",
        lambda f: f"{f['contacts']:,} contacts, {f['purged']:,} purge records",
        lambda f: f"{f['purged_per_s']:,.0f} docs purged/s ({f['contacts_per_s']:,.0f} contacts/s); "
                  f"unchanged re-run {f['second_s']:.0f} s; {f['unpurged_per_s']:,.0f} un-purged/s",
        lambda f: f"raw floor / run **{f['floor_ratio']:.2f}**; RSS **+{f['rss_growth_mb']:.1f} MB** after the "
                  f"first batch ({f['rss_mb']:.0f} MB process)",
        "memory flat"),
    "load": Bench(
        "bench.load", "figures", {"clients": 200, "seconds": 300}, {"clients": 10, "seconds": 5},
        "mixed load: reads, writes, replication, exports, monitoring",
        lambda f: f"{f['clients']} clients x {f['seconds']:.0f} s",
        lambda f: f"{f['rate']:.0f} requests/s, {f['errors']} errors in {f['requests']:,} "
                  f"({f.get('retried', 0)} 503 + Retry-After waited out), {f.get('api_processes', 1)} API "
                  f"processes; slowest p99 {f['worst_p99_ms']:,.0f} ms ({f['worst_route']})",
        lambda f: "", "0 errors, >= 100 requests/s"),
    "passwords": Bench(
        "bench.password_checks", "run", {"checks": 8}, {"checks": 2},
        "PBKDF2-SHA256 x 600,000 (CouchDB 3.4's hash) checked off the event loop",
        lambda f: f"{f['checks']} checks at once, {f['cores']} cores",
        lambda f: f"threads: {f['thread_wall_s']:.1f} s, loop late <= {f['thread_lag_max_ms']:.0f} ms; "
                  f"processes: {f['process_wall_s']:.1f} s, <= {f['process_lag_max_ms']:.0f} ms",
        lambda f: f"inline: loop stopped up to **{f['inline_lag_max_ms']:.0f} ms**",
        "the loop keeps answering"),
}


# -- the child: one benchmark ------------------------------------------------------------------

def child(name: str, quick: bool, out: Path) -> None:
    """Run one benchmark in this process and write its figures as JSON to ``out``."""
    bench = BENCHES[name]
    function = getattr(importlib.import_module(bench.module), bench.function)
    result = function(**(bench.quick if quick else bench.full))
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    out.write_text(json.dumps(result))


# -- the parent: all of them, and the report ---------------------------------------------------

def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _pouchdb_server_version() -> str:
    try:
        lock = json.loads((ROOT / "package-lock.json").read_text())
        return lock["packages"]["node_modules/pouchdb-server"]["version"]
    except (OSError, KeyError, ValueError):
        return "?"


def run_one(name: str, quick: bool) -> tuple[Figures | None, float, str]:
    """(figures or None, seconds, error) of one benchmark run in a child process."""
    with tempfile.TemporaryDirectory(prefix="jamii-bench-run-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", "bench.run", "--child", name, "--figures", str(out)]
        if quick:
            command.append("--quick")
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        status = subprocess.run(command, cwd=ROOT).returncode
        elapsed = time.monotonic() - started
        if status != 0 or not out.exists():
            return None, elapsed, f"failed (exit status {status})"
        return json.loads(out.read_text()), elapsed, ""


def row(name: str, figures: Figures | None, seconds: float, error: str) -> str:
    bench = BENCHES[name]
    if figures is None:
        cells = [name, bench.what, "", f"**{error}**", "", bench.goal, f"{seconds:.0f}"]
    else:
        cells = [name, bench.what, bench.size(figures), bench.headline(figures), bench.versus(figures),
                 bench.goal, f"{seconds:.0f}"]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _couchdb_description(couch_url: str) -> str:
    """``Apache CouchDB 3.4.3, 1 node`` from the server itself (credentials kept out of the report)."""
    parts = urlsplit(couch_url)
    base = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", "", "", ""))
    request = urllib.request.Request(base + "/")
    if parts.username:
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            version = json.load(answer).get("version", "?")
        request.full_url = base + "/_membership"
        with urllib.request.urlopen(request, timeout=10) as answer:
            nodes = len(json.load(answer).get("cluster_nodes", []))
        return f"Apache CouchDB {version}, {nodes} node{'s' if nodes != 1 else ''} at `COUCH_URL`"
    except (OSError, ValueError):
        return "CouchDB at `COUCH_URL`"


def report(rows: list[str], details: list[str], quick: bool, load_before: tuple[float, ...],
           load_after: tuple[float, ...], couch_url: str | None, note: str = "") -> str:
    """The whole Markdown report."""
    server = (_couchdb_description(couch_url) if couch_url else
              f"embedded pouchdb-server {_pouchdb_server_version()} (LevelDB)")
    cores = os.cpu_count() or 1
    busy = max(load_before[0], load_after[0]) > cores
    lines = [
        "# Benchmarks" + (" (quick sizes: a smoke run, not figures to quote)" if quick else ""),
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cores} cores (`nproc`: {len(os.sched_getaffinity(0))}), {platform.machine()}, "
        f"load average {load_before[0]:.1f} before and {load_after[0]:.1f} after (1 min)"
        + (" — more than the cores: the machine was shared with other work during the run" if busy else ""),
        f"- server: {server}; Python {platform.python_version()}, Node {_version(['node', '--version'])}",
        *([f"- note: {note}"] if note else []),
        "- reproduce: `make bench` (or `python -m bench.run [--quick] [--only name,...]`; with `COUCH_URL` set, "
        "against that CouchDB)",
        "",
        "| bench | what | size | figure | against direct CouchDB | goal | run s |",
        "| --- | --- | --- | --- | --- | --- | ---: |",
        *rows,
    ]
    for detail in details:
        lines += ["", detail]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated, of: {','.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that every script still runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/pouchdb-server.md, or couchdb.md with COUCH_URL")
    parser.add_argument("--note", default="", help="a line for the report (e.g. what else ran on the machine)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--figures", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out = args.out or default_out()
    if args.child:
        child(args.child, args.quick, args.figures)
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    load_before = os.getloadavg()
    rows, details, failed = [], [], []
    for name in names:
        figures, seconds, error = run_one(name, args.quick)
        rows.append(row(name, figures, seconds, error))
        if figures is None or figures.get("errors"):
            failed.append(name)
        elif figures.get("details"):
            details.append(figures["details"])
    text = report(rows, details, args.quick, load_before, os.getloadavg(), os.environ.get("COUCH_URL"), args.note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"\n{text}\nwritten to {args.out}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
