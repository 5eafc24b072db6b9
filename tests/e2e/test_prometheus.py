"""Prometheus from Debian's package against the local run: configs and rules check, every process is scraped,
and a query returns the value this test caused (N complaints filed -> N more commands applied).

promtool also checks a real /metrics page, and every process answers /healthz and /readyz on its metrics port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.cli.local import REPO, LocalSystem, free_port
from services.cli.seed import demo_complaints
from services.common.contracts import Role
from services.intake.admin import add_agency
from tests.e2e.conftest import running_system

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not shutil.which("prometheus") or not shutil.which("promtool"), reason="apt install prometheus"),
]
FILED = 5


@pytest.fixture(scope="module")
def system(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with running_system(servers, tmp_path_factory.mktemp("prom-logs")) as local:
        yield local


@pytest.fixture(scope="module")
def prometheus(system: LocalSystem) -> Iterator[str]:
    work = Path(tempfile.mkdtemp(prefix="rectify-prom-"))
    shutil.copy(REPO / "infra" / "alerts.yml", work / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{r.metrics_port}"]}]}
            for name, r in system.running.items()
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(work / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        shutil.rmtree(work, ignore_errors=True)


def promtool(*args: str, stdin: bytes | None = None) -> None:
    done = subprocess.run(["promtool", *args], input=stdin, capture_output=True, timeout=30)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_promtool_accepts_the_config_rules_and_a_real_metrics_page(system: LocalSystem) -> None:
    promtool("check", "config", "--syntax-only", str(REPO / "infra" / "prometheus.yml"))
    promtool("check", "rules", str(REPO / "infra" / "alerts.yml"))
    for r in system.running.values():
        page = httpx.get(f"http://127.0.0.1:{r.metrics_port}/metrics", timeout=5)
        assert page.status_code == 200
        promtool("check", "metrics", stdin=page.content)


def wait_for(predicate, timeout: float = 45.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_process_is_healthy_and_ready_on_its_metrics_port(system: LocalSystem) -> None:
    for r in system.running.values():
        base = f"http://127.0.0.1:{r.metrics_port}"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        wait_for(lambda base=base: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, what=f"{r.name} ready")


def query(prom: str, expr: str) -> float | None:
    try:
        answer = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    result = answer.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else None


def test_scrapes_succeed_and_a_query_returns_what_the_test_caused(system: LocalSystem, prometheus: str) -> None:
    wait_for(lambda: query(prometheus, "count(up == 1)") == len(system.running), what="every target scraped")
    applied = 'sum(rectify_commands_total{outcome="applied"}) or vector(0)'
    before = wait_for(lambda: query(prometheus, applied) is not None and (query(prometheus, applied),), what="a value")[
        0
    ]
    key = asyncio.run(
        add_agency(system.base_env["DATABASE_URL"], "prom-hotline", "12345 热线", Role.CHANNEL, channel="hotline_12345")
    )
    for i, body in enumerate(demo_complaints(FILED, seed=7)):
        r = httpx.post(
            f"{system.url('intake-api')}/v1/complaints",
            json=body,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"prom-{i}"},
            timeout=10,
        )
        assert r.status_code == 202, r.text
    wait_for(lambda: query(prometheus, applied) == before + FILED, timeout=60, what=f"{FILED} more applied commands")
    filed = 'sum(rectify_http_requests_total{service="intake",route="/v1/complaints",status="202"})'
    wait_for(lambda: query(prometheus, filed) == FILED, what=f"{FILED} filings counted by intake-api")  # own scrape
