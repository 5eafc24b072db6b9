"""Schemathesis against intake's OpenAPI document, with the real server and PostgreSQL behind it.

Every operation is fuzzed with valid and invalid data by each role: no response may be a 5xx, and
every response must match the document (status codes, content types, bodies).
"""

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli.local import LocalSystem, prepare_all
from services.common.contracts import Role
from services.intake.admin import add_agency
from tests.conftest import fresh_database

pytestmark = pytest.mark.e2e
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def intake(
    servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalSystem, dict[str, str]]]:
    dsn = asyncio.run(fresh_database(servers["DATABASE_URL"]))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers["KAFKA_BOOTSTRAP_SERVERS"],
        "DATABASE_URL": dsn,
        "INTAKE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    asyncio.run(prepare_all(env))

    async def provision() -> dict[str, str]:
        return {
            "channel": await add_agency(dsn, "fuzz-hotline", "12345", Role.CHANNEL, "hotline_12345", rate=1_000_000),
            "supervisor": await add_agency(dsn, "fuzz-office", "纠风办", Role.SUPERVISOR, rate=1_000_000),
            "unit": await add_agency(dsn, "fuzz-unit", "梅湾街道", Role.UNIT, unit_id="meiwan", rate=1_000_000),
        }

    keys = asyncio.run(provision())
    local = LocalSystem(env, Path(tmp_path_factory.mktemp("fuzz-logs")))
    try:
        local.start("intake-api")
        local.wait_http("intake-api")
        yield local, keys
    finally:
        local.stop_all()


@pytest.mark.parametrize("role", ["channel", "supervisor", "unit"])
def test_no_5xx_and_every_response_matches_the_spec(intake: tuple[LocalSystem, dict[str, str]], role: str) -> None:
    system, keys = intake
    url = system.url("intake-api")
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{url}/openapi.json",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--workers",
            "1",  # CPython 3.11's ast module is not safe across threads; schemathesis uses it while generating
            "--seed",
            "2026",
            "--exclude-path-regex",
            "^/v1/keys/",  # rotating or revoking the key mid-run would turn every later request into a 401
            "--warnings",
            "off",
            "-H",
            f"Authorization: Bearer {keys[role]}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = run.stdout[-6000:] + run.stderr[-2000:]
    artifacts = os.environ.get("RECTIFY_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts, f"schemathesis-{role}.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, report
    assert "401/403" not in run.stdout, "the fuzzer was not authenticated: it tested only the door"
