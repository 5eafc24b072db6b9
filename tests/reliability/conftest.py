"""One whole system (every process, on the session's broker and PostgreSQL) shared by the attack, poison and
canary modules (stopped when the package's tests end), the agencies that attack it, and the figures the modules
record for docs/reliability.md."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
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

    def publish(self, case_ids: list[str], text: Callable[[str, str], str]) -> None:
        """Drive filed cases to publication: assign, acknowledge, plan, rectify, accept, publish.
        ``text(case_id, field)`` gives each free-text field of each command."""
        self.step(
            "office",
            case_ids,
            "assign",
            lambda c: {"responsible_unit_id": "meiwan", "first_officer": text(c, "first_officer")},
        )
        self.step("meiwan", case_ids, "acknowledge", lambda _: {})
        self.step("meiwan", case_ids, "submit-plan", lambda c: {"plan_summary": text(c, "plan_summary")})
        self.step(
            "meiwan",
            case_ids,
            "submit-rectification",
            lambda c: {"report": text(c, "report"), "evidence_refs": ["ev-1"]},
        )
        self.step("office", case_ids, "accept", lambda c: {"note": text(c, "note")})
        self.step(
            "office",
            case_ids,
            "publish",
            lambda c: {"problem_summary": text(c, "problem_summary"), "result_summary": text(c, "result_summary")},
        )

    def wait_public(self, case_id: str, status: str) -> dict[str, Any]:
        def there() -> dict[str, Any] | None:
            r = self.http.get(f"{self.public}/api/v1/cases/{case_id}")
            return r.json() if r.status_code == 200 and r.json()["status"] == status else None

        return wait_for(there, 60, f"{case_id} {status} on the public API")


@pytest.fixture(scope="package")
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


# What a supervisor may publish, and so what the public pages must show escaped (or, in CSV, defused).
PUBLIC_INJECTIONS: dict[str, str] = {
    "sql_drop": "'; DROP TABLE publicity.cases; --",
    "sql_tautology": "1' OR '1'='1' --",
    "sql_stacked": '公示"); DELETE FROM submissions; /*',
    "script": "<script>alert('xss')</script>",
    "img_onerror": '"><img src=x onerror=alert(1)>',
    "attribute_break": "' onmouseover='alert(1)' x='",
    "javascript_url": "javascript:alert(document.cookie)",
    "template": "{{ 7*7 }} {% if 1 %}x{% endif %} ${7*7}",
    "xml_cdata": "]]><![CDATA[<x>&amp;</x>",
    "rtl_override": "整改\u202egnp.exe\u202c完成",
    "zero_width": "已\u200b整\u200c改\u200d完\u2060成",
    "homoglyph": "\u0440\u0430\u0443\u0440\u0430l.com 梅湾街道",
    "combining": "Z\u0351\u0334a\u0336l\u0337g\u0338o\u0335 整改",
    "control_characters": "整改\x01\x08\x0b\x1b[31m完成\x7f",
    "csv_formula_equals": '=HYPERLINK("http://evil.example","点击")',
    "csv_formula_plus": "+cmd|' /C calc'!A0",
    "csv_formula_at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "csv_formula_minus": "-2+3+cmd|' /C calc'!A0",
    "long_line": "长" * 3990,
}


@dataclass(frozen=True)
class Published:
    """Cases driven through publication: one per injection string (its public summaries), each with unique
    canary markers in every complainant field and every private free-text field."""

    cases: dict[str, str]  # injection name -> case id
    markers: dict[str, dict[str, str]]  # case id -> field -> marker
    refs: dict[str, str]  # case id -> complainant ref


PRIVATE_FIELDS = ("description", "cadre", "location", "first_officer", "plan_summary", "report", "note")


@pytest.fixture(scope="package")
def published(agencies: Agencies) -> Published:
    cases: dict[str, str] = {}
    markers: dict[str, dict[str, str]] = {}
    refs: dict[str, str] = {}
    filed = []
    for name in PUBLIC_INJECTIONS:
        m = {
            "name": f"CANARYNAME{secrets.token_hex(5)}",
            "phone": f"139{secrets.randbelow(10**8):08d}",
            "email": f"canary{secrets.token_hex(5)}@example.org",
        } | {f: f"CANARY{f.upper().replace('_', '')}{secrets.token_hex(5)}" for f in PRIVATE_FIELDS}
        body = COMPLAINT | {
            "description": f"私密描述 {m['description']}",
            "cadre": f"科长 {m['cadre']}",
            "location": f"地点 {m['location']}",
            "complainant": {"name": m["name"], "phone": m["phone"], "email": m["email"]},
        }
        answer = agencies.file("hotline", body)
        cases[name] = answer["case_id"]
        markers[answer["case_id"]] = m
        refs[answer["case_id"]] = answer["complainant_ref"]
        filed.append(answer["submission_id"])
    for sid in filed:
        assert agencies.outcome("hotline", sid)["status"] == "applied"
    injected = {case_id: PUBLIC_INJECTIONS[name] for name, case_id in cases.items()}

    def text(case_id: str, field: str) -> str:
        if field in ("problem_summary", "result_summary"):
            return injected[case_id]
        return f"{field} {markers[case_id][field]}"

    agencies.publish(list(cases.values()), text)
    for case_id in cases.values():
        agencies.wait_public(case_id, "published")
    return Published(cases, markers, refs)
