"""Prometheus metrics of the API process, exposed at ``/api/v1/express-metrics``.

Names follow the prometheus-api-metrics package CHT uses, so CHT Watchdog's
dashboards find them: ``http_request_duration_seconds`` (histogram by method,
route and code) and ``http_requests_total``. Routes are the registered path
patterns (``/api/v1/contact/{uuid}``), never raw paths, to keep label sets small.
"""

from __future__ import annotations

import os
import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST, GCCollector, PlatformCollector, ProcessCollector

from . import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Duration of HTTP requests in seconds",
    ["method", "route", "code"], registry=REGISTRY,
    buckets=(0.003, 0.01, 0.03, 0.1, 0.3, 1, 1.5, 3, 5, 10),
)
REQUESTS = Counter("http_requests", "HTTP requests served", ["method", "route", "code"], registry=REGISTRY)
COUCH_DURATION = Histogram(
    "couchdb_request_duration_seconds", "Duration of requests from the API to CouchDB",
    ["method"], registry=REGISTRY, buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10),
)
APP_VERSION = Gauge("app_version", "The version of the API", ["version", "major", "minor", "patch"],
                    registry=REGISTRY)
_major, _minor, _patch = (__version__.split(".") + ["0", "0"])[:3]
APP_VERSION.labels(__version__, _major, _minor, _patch).set(1)
SENTINEL_BACKLOG = Gauge("sentinel_backlog", "Changes of the medic database the sentinel has not processed yet",
                         registry=REGISTRY)
TRANSITIONS = Gauge("sentinel_transitions", "Documents each sentinel transition has run on, by outcome",
                    ["transition", "outcome"], registry=REGISTRY)
PYTHON_INFO = Gauge("jamii_python_info", "Python runtime", ["version"], registry=REGISTRY)
PYTHON_INFO.labels(sys.version.split()[0]).set(1)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def label_process(worker: str) -> None:
    """Name this process in its metrics (``target_info{worker, pid}``): with several API processes on one
    port, each is scraped on its own port and its figures are its own, never summed."""
    REGISTRY.set_target_info({"worker": worker or "0", "pid": str(os.getpid())})


def observe_request(method: str, route: str, code: int, seconds: float) -> None:
    REQUEST_DURATION.labels(method, route, str(code)).observe(seconds)
    REQUESTS.labels(method, route, str(code)).inc()


def observe_couch(method: str, seconds: float) -> None:
    COUCH_DURATION.labels(method).observe(seconds)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
