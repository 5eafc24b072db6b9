"""One whole system (every process, the real broker, the real PostgreSQL) for every reliability module, the
agencies that attack it, and the figures the modules record for docs/reliability.md."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from services.cli.local import LocalSystem
from services.common.contracts import Role
from services.intake.admin import add_agency
from tests.e2e.conftest import running_system

T = TypeVar("T")
Figures = dict[str, dict[str, Any]]


def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(os.environ.get("RECTIFY_TEST_ARTIFACTS") or tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def system(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with running_system(servers, artifacts(tmp_path_factory) / "reliability-logs") as local:
        yield local


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Figures]:
    """What the modules tried and what came of it; written to <artifacts>/reliability.json at the end."""
    found: Figures = defaultdict(dict)
    yield found
    target = artifacts(tmp_path_factory) / "reliability.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(target.read_text()) if target.exists() else {}
    target.write_text(json.dumps(previous | dict(found), indent=2, ensure_ascii=False, sort_keys=True) + "\n")


AGENCIES: dict[str, tuple[Role, str | None, str | None]] = {
    # name: (role, channel, unit)
    "hotline": (Role.CHANNEL, "hotline_12345", None),
    "portal": (Role.CHANNEL, "gov_portal", None),
    "office": (Role.SUPERVISOR, None, None),
    "meiwan": (Role.UNIT, None, "meiwan"),
    "renwan": (Role.UNIT, None, "renwan"),
}


@pytest.fixture(scope="session")
def keys(system: LocalSystem) -> dict[str, str]:
    dsn = system.base_env["DATABASE_URL"]

    async def provision() -> dict[str, str]:
        out = {}
        for name, (role, channel, unit) in AGENCIES.items():
            out[name] = await add_agency(
                dsn, f"rel-{name}", f"reliability {name}", role, channel=channel, unit_id=unit, rate=100_000
            )
        return out

    return asyncio.run(provision())


def wait_for(predicate: Callable[[], T | None], timeout: float = 60.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Agencies:
    """HTTP calls to intake as the provisioned agencies, and waiting for rectification's decisions."""

    def __init__(self, system: LocalSystem, keys: dict[str, str]) -> None:
        self.system, self.keys = system, keys
        self.intake = system.url("intake-api")
        self.public = system.url("publicity-web")
        self.http = httpx.Client(timeout=20)

    def file(self, who: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(f"{self.intake}/v1/complaints", json=body, headers=bearer(self.keys[who]))
        assert r.status_code == 202, r.text
        return r.json()  # type: ignore[no-any-return]

    def command(self, who: str, case_id: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"{self.intake}/v1/cases/{case_id}/{path}", json=body, headers=bearer(self.keys[who]))

    def outcome(self, who: str, submission_id: str, timeout: float = 60.0) -> dict[str, Any]:
        def decided() -> dict[str, Any] | None:
            r = self.http.get(f"{self.intake}/v1/submissions/{submission_id}", headers=bearer(self.keys[who]))
            return r.json() if r.status_code == 200 and r.json()["status"] != "received" else None

        return wait_for(decided, timeout, f"the outcome of submission {submission_id}")

    def step(self, who: str, case_ids: list[str], path: str, body: Callable[[str], dict[str, Any]]) -> None:
        """One lifecycle step on many cases at once: every command sent, then every outcome awaited (applied)."""
        sent = []
        for case_id in case_ids:
            r = self.command(who, case_id, path, body(case_id))
            assert r.status_code == 202, (path, r.text)
            sent.append(r.json()["submission_id"])
        for sid in sent:
            outcome = self.outcome(who, sid)
            assert outcome["status"] == "applied", (path, outcome)

    def publish(self, case_ids: list[str], summaries: Callable[[str], tuple[str, str]]) -> None:
        """Drive filed cases to publication: assign, acknowledge, plan, rectify, accept, publish."""
        self.step("office", case_ids, "assign", lambda _: {"responsible_unit_id": "meiwan", "first_officer": "李主任"})
        self.step("meiwan", case_ids, "acknowledge", lambda _: {})
        self.step("meiwan", case_ids, "submit-plan", lambda _: {"plan_summary": "整改方案"})
        self.step("meiwan", case_ids, "submit-rectification", lambda _: {"report": "已整改", "evidence_refs": ["ev-1"]})
        self.step("office", case_ids, "accept", lambda _: {})
        self.step(
            "office",
            case_ids,
            "publish",
            lambda c: {"problem_summary": summaries(c)[0], "result_summary": summaries(c)[1]},
        )

    def wait_public(self, case_id: str, status: str) -> dict[str, Any]:
        def there() -> dict[str, Any] | None:
            r = self.http.get(f"{self.public}/api/v1/cases/{case_id}")
            return r.json() if r.status_code == 200 and r.json()["status"] == status else None

        return wait_for(there, 60, f"{case_id} {status} on the public API")


@pytest.fixture(scope="session")
def agencies(system: LocalSystem, keys: dict[str, str]) -> Iterator[Agencies]:
    a = Agencies(system, keys)
    yield a
    a.http.close()


COMPLAINT: dict[str, Any] = {
    "category": "service_window",
    "unit_id": "meiwan",
    "description": "窗口工作人员态度生硬",
    "severity": "general",
    "complainant": {"name": "王小明", "phone": "13912345678"},
}
