"""The JSON log formatter (ids in, personal data out) and the metrics listener's health endpoints."""

from __future__ import annotations

import json
import logging
import socket

import httpx
import pytest

from services.common.logs import JsonFormatter, bound
from services.common.metrics import MESSAGES_CONSUMED, Health, _Handler, serve_metrics


def record(msg: str = "applied a batch", **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("services.common.inbox", logging.INFO, __file__, 1, msg, (), None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_a_line_is_json_with_service_level_and_bound_ids() -> None:
    with bound(correlation_id="corr-1", case_id="RC-1", submission_id="sub-1"):
        line = json.loads(JsonFormatter("rectification-worker").format(record(topic="rectify.intake.commands.v1")))
    assert line["message"] == "applied a batch" and line["level"] == "INFO"
    assert line["service"] == "rectification-worker" and line["logger"] == "services.common.inbox"
    assert (line["correlation_id"], line["case_id"], line["submission_id"]) == ("corr-1", "RC-1", "sub-1")
    assert line["topic"] == "rectify.intake.commands.v1" and "ts" in line


def test_ids_are_unbound_after_the_block() -> None:
    with bound(correlation_id="corr-2"):
        pass
    assert "correlation_id" not in json.loads(JsonFormatter().format(record()))


def test_personal_data_keys_are_never_written() -> None:
    rec = record(name="王某某", phone="13900000000", email="a@example.org", complainant={"name": "x"}, code="ok")
    line = json.loads(JsonFormatter().format(rec))
    assert {"name", "phone", "email", "complainant"}.isdisjoint(line) and line["code"] == "ok"
    assert "13900000000" not in json.dumps(line, ensure_ascii=False)


def test_exceptions_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = record()
        rec.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(rec))["exc"]


@pytest.fixture
def listener() -> tuple[str, Health]:
    health = Health()
    _Handler.health = health
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_metrics(port)
    assert server is not None
    try:
        yield f"http://127.0.0.1:{port}", health  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()
        from services.common.metrics import HEALTH

        _Handler.health = HEALTH


def test_health_metrics_and_readiness(listener: tuple[str, Health]) -> None:
    url, health = listener
    MESSAGES_CONSUMED.labels("test", "rectify.test.v1").inc()
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and 'rectify_messages_consumed_total{service="test"' in metrics.text
    assert httpx.get(f"{url}/healthz").status_code == 200
    health.require("consumer rectify.test.v1")
    health.check("database", lambda: True)
    not_ready = httpx.get(f"{url}/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"] == {"consumer rectify.test.v1": False, "database": True}
    health.mark("consumer rectify.test.v1", True)
    assert httpx.get(f"{url}/readyz").status_code == 200
    health.check("database", lambda: 1 / 0 > 0)  # a failing check is "not ready", never a crash
    assert httpx.get(f"{url}/readyz").status_code == 503
    assert httpx.get(f"{url}/nothing").status_code == 404


def test_database_check_fails_fast_without_a_server() -> None:
    from services.common.metrics import database_check

    assert database_check("postgresql://nobody@127.0.0.1:1/none", timeout=1)() is False
