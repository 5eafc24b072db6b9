"""Prometheus metrics shared by every process. Labels are bounded: topics, services, outcomes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on a listener of its own, never on the public port."""
    if port:
        start_http_server(port, addr=host)
