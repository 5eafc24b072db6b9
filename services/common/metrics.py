"""Prometheus metrics shared by every process, and the process's own listener for them.

Labels are bounded: services, topics, outcomes, tiers, error codes; never case, agency or unit ids.
The listener (``serve_metrics``) is never the public port: it serves ``/metrics``, ``/healthz`` (the
process is alive) and ``/readyz`` (every registered readiness check passes: the database answers and,
for workers, each consumer is running).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

MESSAGES_CONSUMED = Counter("rectify_messages_consumed_total", "Messages consumed", ["service", "topic"])
MESSAGES_PRODUCED = Counter(
    "rectify_messages_produced_total", "Messages published by an outbox relay", ["service", "topic"]
)
DUPLICATES_SKIPPED = Counter("rectify_duplicates_skipped_total", "Redelivered messages ignored", ["service", "topic"])
DEAD_LETTERS = Counter(
    "rectify_dead_letters_total", "Messages sent to the dead-letter topic", ["service", "topic", "code"]
)
HANDLER_SECONDS = Histogram(
    "rectify_batch_handler_seconds", "Time to apply one consumed batch in one transaction", ["service", "topic"]
)
HANDLER_ERRORS = Counter(
    "rectify_batch_handler_errors_total", "Batches that failed and were retried", ["service", "topic"]
)
OUTBOX_BACKLOG = Gauge("rectify_outbox_backlog", "Outbox rows not yet published", ["service"])
DEADLINE_BREACHES = Counter("rectify_deadline_breaches_total", "Deadline breaches recorded by the watcher")
COMMANDS_DECIDED = Counter("rectify_commands_total", "Commands decided by rectification", ["outcome"])
SUBMISSIONS_PER_COMMIT = Histogram(
    "rectify_intake_submissions_per_commit",
    "Submissions stored by one intake transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
HTTP_REQUESTS = Counter("rectify_http_requests_total", "HTTP requests", ["service", "route", "status"])
HTTP_SECONDS = Histogram("rectify_http_request_seconds", "HTTP request latency", ["service", "route"])
CONSUMER_LAG = Gauge(
    "rectify_consumer_lag_events",
    "Events behind: partition high watermark seen in the last fetch minus the next offset to apply, summed",
    ["service", "topic"],
)
CONSUMER_LAST_BATCH = Gauge(
    "rectify_consumer_last_batch_timestamp_seconds", "Unix time the consumer last applied a batch", ["service", "topic"]
)
CASES_OPEN = Gauge("rectify_cases_open", "Open cases (someone holds them), by the responsible unit's tier", ["tier"])
CASES_OVERDUE = Gauge("rectify_cases_overdue", "Open cases with a running deadline already past, by tier", ["tier"])
READY = Gauge("rectify_ready", "1 when every readiness check of this process passes")


class Health:
    """Named readiness checks: flags set by the process (a consumer started) and callables (the database answers)."""

    def __init__(self) -> None:
        self._flags: dict[str, bool] = {}
        self._checks: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()

    def require(self, name: str, ready: bool = False) -> None:
        """Register a flag that must be true for the process to be ready."""
        with self._lock:
            self._flags.setdefault(name, ready)

    def mark(self, name: str, ready: bool) -> None:
        with self._lock:
            self._flags[name] = ready

    def check(self, name: str, fn: Callable[[], bool]) -> None:
        """Register a callable run on each /readyz (in the listener's thread; keep it quick)."""
        with self._lock:
            self._checks[name] = fn

    def clear(self) -> None:
        with self._lock:
            self._flags.clear()
            self._checks.clear()

    def status(self) -> dict[str, bool]:
        with self._lock:
            result = dict(self._flags)
            checks = dict(self._checks)
        for name, fn in checks.items():
            try:
                result[name] = bool(fn())
            except Exception:
                result[name] = False
        READY.set(1 if all(result.values()) else 0)
        return result


HEALTH = Health()


def database_check(dsn: str, timeout: float = 2.0, cache_s: float = 2.0) -> Callable[[], bool]:
    """A readiness check: the database accepts a connection and answers ``SELECT 1`` (cached for ``cache_s``)."""
    last: list[float] = [0.0, 0.0]  # checked at, result

    async def ping() -> bool:
        import asyncpg

        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            return bool(await conn.fetchval("SELECT 1", timeout=timeout) == 1)
        finally:
            await conn.close()

    def check() -> bool:
        if time.monotonic() - last[0] < cache_s:
            return bool(last[1])
        try:
            ok = asyncio.run(asyncio.wait_for(ping(), timeout + 1))
        except Exception:
            ok = False
        last[0], last[1] = time.monotonic(), float(ok)
        return ok

    return check


class _Handler(BaseHTTPRequestHandler):
    health: Health = HEALTH

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b'{"status":"ok"}', "application/json")
        elif path == "/readyz":
            checks = self.health.status()
            ok = all(checks.values())
            body = json.dumps({"status": "ready" if ok else "not ready", "checks": checks}).encode()
            self._send(200 if ok else 503, body, "application/json")
        else:
            self._send(404, b'{"status":"not found"}', "application/json")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None  # scrapes and probes every few seconds: not worth a log line each


def serve_metrics(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer | None:
    """Expose /metrics, /healthz and /readyz on a listener of its own, never on the public port."""
    if not port:
        return None
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-listener", daemon=True).start()
    return server
