"""Attacks on the running system: every agency against every other agency's cases, bad credentials, oversize
bodies and floods, and injection strings in every text field of every command. Each test counts what it tried;
none may get in (figures in docs/reliability.md, from <artifacts>/reliability.json)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from markupsafe import escape

from services.cli.local import LocalSystem
from services.common.contracts import Role, decode_command
from services.common.topics import COMMANDS
from services.intake.admin import add_agency
from services.intake.commands import COMMAND_ROUTES
from tests.reliability.conftest import (
    AGENCIES,
    COMPLAINT,
    PUBLIC_INJECTIONS,
    Agencies,
    Figures,
    Published,
    bearer,
)

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]
O311 = "/open311/v2"
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)  # type: ignore[no-any-return]
    finally:
        await conn.close()


def fetch(system: LocalSystem, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(query(system.base_env["DATABASE_URL"], sql, *args))


def submissions(system: LocalSystem) -> int:
    return int(fetch(system, "SELECT count(*) FROM intake.submissions")[0][0])


def role_of(who: str) -> Role:
    return AGENCIES[who][0]


# ---------------------------------------------------------------------------- the access matrix


def test_every_agency_sees_and_acts_only_on_its_cases_on_every_endpoint(
    agencies: Agencies, keys: dict[str, str], figures: Figures
) -> None:
    """Filing channels see the cases they filed, a unit the cases it is responsible for, the supervisor all;
    on every endpoint (intake's API, its Open311 API, submission status, complainant contact) anything else
    is 404 (403 where the role may never do it), and an unseen case's id is not echoed back."""
    a = agencies.file("hotline", COMPLAINT | {"description": "矩阵 A"})
    b = agencies.file("portal", COMPLAINT | {"description": "矩阵 B"})
    for who, filed in (("hotline", a), ("portal", b)):
        assert agencies.outcome(who, filed["submission_id"])["status"] == "applied"
    agencies.step(
        "office", [a["case_id"]], "assign", lambda _: {"responsible_unit_id": "meiwan", "first_officer": "李"}
    )
    filer = {a["case_id"]: "hotline", b["case_id"]: "portal"}
    sees = {
        "office": {a["case_id"], b["case_id"]},
        "hotline": {a["case_id"]},
        "portal": {b["case_id"]},
        "meiwan": {a["case_id"]},
        "renwan": set(),
    }
    http, base = agencies.http, agencies.intake
    tried = got_in = 0

    ghost = "RC-20991231-999999"  # no such case: what an unseen case must look like, byte for byte

    def like_no_case(r: httpx.Response, case: str, method: str, path: str) -> bool:
        other = http.request(method, f"{base}{path.replace(case, ghost)}", headers=r.request.headers, json={})
        return r.status_code == other.status_code == 404 and r.text.replace(case, ghost) == other.text

    def check(ok: bool, *what: object) -> None:
        nonlocal tried, got_in
        tried += 1
        if not ok:
            got_in += 1
        assert ok, what

    for who, visible in sees.items():
        auth = bearer(keys[who])
        listed = {
            c["case_id"] for c in http.get(f"{base}/v1/cases", params={"size": 200}, headers=auth).json()["cases"]
        }
        o311 = http.get(f"{base}{O311}/requests.json", params={"service_request_id": ",".join(filer)}, headers=auth)
        o311_listed = {r["service_request_id"] for r in o311.json()} if o311.status_code == 200 else set()
        for case, filed in ((a["case_id"], a), (b["case_id"], b)):
            mine = case in visible
            check((case in listed) == mine, who, case, "list")
            check((case in o311_listed) == mine, who, case, "open311 list")
            r = http.get(f"{base}/v1/cases/{case}", headers=auth)
            check(
                r.status_code == 200 if mine else like_no_case(r, case, "GET", f"/v1/cases/{case}"), who, case, r.text
            )
            r = http.get(f"{base}{O311}/requests/{case}.json", headers=auth)
            one = f"{O311}/requests/{case}.json"
            check(r.status_code == 200 if mine else like_no_case(r, case, "GET", one), who, case, "open311", r.text)
            own_submission = filer[case] == who
            sid = filed["submission_id"]
            r = http.get(f"{base}/v1/submissions/{sid}", headers=auth)
            check(r.status_code == (200 if own_submission else 404), who, sid, r.text)
            r = http.get(f"{base}{O311}/tokens/{sid}.json", headers=auth)
            check(r.status_code == (200 if own_submission else 404), who, sid, "token", r.text)
            r = http.get(f"{base}/v1/complainants/{filed['complainant_ref']}", headers=auth)
            check(r.status_code == (200 if who == "office" else 403), who, "contact", r.text)
            for route in COMMAND_ROUTES:
                r = http.post(f"{base}/v1/cases/{case}/{route.path}", json={}, headers=auth)
                if role_of(who) not in route.roles:
                    check(r.status_code == 403, who, case, route.path, r.text)
                elif mine:
                    check(r.status_code in (202, 422), who, case, route.path, r.text)
                else:
                    path = f"/v1/cases/{case}/{route.path}"
                    check(like_no_case(r, case, "POST", path), who, case, route.path, r.text)
    figures["access_matrix"] = {
        "agencies": len(sees),
        "cases": 2,
        "endpoints": 7 + len(COMMAND_ROUTES),
        "requests": tried,
        "got_in": got_in,
    }


# ---------------------------------------------------------------------------- bad credentials


def raw_status(url: str, path: str, authorization: bytes) -> int:
    """One request with exactly these header bytes (an HTTP client would refuse to send a NUL)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + authorization + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        return int(s.recv(64).split(b" ")[1])


def test_bad_credentials_are_refused_everywhere_and_store_nothing(
    system: LocalSystem, agencies: Agencies, keys: dict[str, str], figures: Figures
) -> None:
    dsn = system.base_env["DATABASE_URL"]
    http, base = agencies.http, agencies.intake
    case = agencies.file("hotline", COMPLAINT | {"description": "凭据"})
    uid = uuid.uuid4().hex[:6]

    def fresh(name: str) -> str:
        return asyncio.run(
            add_agency(dsn, f"creds-{name}-{uid}", name, Role.CHANNEL, channel="hotline_12345", rate=100_000)
        )

    expired = fresh("expired")
    fetch(
        system,
        "UPDATE intake.api_keys SET expires_at = now() - interval '1 minute' WHERE agency_id = $1",
        f"creds-expired-{uid}",
    )
    revoked = fresh("revoked")
    assert http.delete(f"{base}/v1/keys/current", headers=bearer(revoked)).status_code == 204
    rotated = fresh("rotated")
    new = http.post(f"{base}/v1/keys/rotate", params={"grace_hours": 1}, headers=bearer(rotated))
    assert new.status_code == 201 and http.get(f"{base}/v1/cases", headers=bearer(rotated)).status_code == 200
    fetch(  # the hour of grace has passed
        system,
        "UPDATE intake.api_keys SET expires_at = now() - interval '1 second' WHERE key_id = $1",
        rotated.split("_")[1],
    )
    time.sleep(2.2)  # intake remembers a checked key for 2 s
    assert http.get(f"{base}/v1/cases", headers=bearer(new.json()["api_key"])).status_code == 200
    good = keys["hotline"]
    forged = good[:-4] + ("aaaa" if not good.endswith("aaaa") else "bbbb")
    keys_tried = {
        "expired": expired,
        "revoked": revoked,
        "rotated out after its grace": rotated,
        "forged secret": forged,
        "unknown key id": "rk_nobody_" + "x" * 40,
        "huge": "rk_" + "A" * 6000,
        "not a key": "' OR 1=1 --",
    }
    headers: dict[str, dict[str, Any]] = {f"Bearer {k}": bearer(v) for k, v in keys_tried.items()}
    headers |= {f"X-API-Key {k}": {"X-API-Key": v} for k, v in keys_tried.items()}
    headers |= {
        "none": {},
        "scheme only": {"Authorization": "Bearer"},
        "wrong scheme": {"Authorization": f"Basic {good}"},
        "token scheme": {"Authorization": f"Token {good}"},
        "key without scheme": {"Authorization": good},
        "non-ASCII": {"Authorization": "Bearer rk_密钥_ключ".encode()},
    }
    endpoints = [
        ("POST", "/v1/complaints", {"json": COMPLAINT}),
        ("GET", "/v1/cases", {}),
        ("GET", f"/v1/cases/{case['case_id']}", {}),
        ("GET", f"/v1/submissions/{case['submission_id']}", {}),
        (
            "POST",
            f"/v1/cases/{case['case_id']}/assign",
            {"json": {"responsible_unit_id": "meiwan", "first_officer": "x"}},
        ),
        ("POST", "/v1/keys/rotate", {}),
        ("GET", f"{O311}/requests.json", {}),
        (
            "POST",
            f"{O311}/requests.json",
            {"data": {"service_code": "inaction", "description": "x", "first_name": "x"}},
        ),
    ]
    before = submissions(system)
    statuses: dict[int, int] = {}
    for label, h in headers.items():
        for method, path, kwargs in endpoints:
            r = http.request(method, f"{base}{path}", headers=h, **kwargs)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code == 401, (label, method, path, r.status_code, r.text[:200])
            if path.startswith(O311):
                assert r.json()[0]["code"] == 401
            else:
                assert r.headers["content-type"] == "application/problem+json"
    for label, key in keys_tried.items():  # Open311's own ways to send a key: a query or form parameter
        r = http.get(f"{base}{O311}/requests.json", params={"api_key": key})
        assert r.status_code == 401, (label, r.text)
        statuses[401] += 1
    raw_headers = {
        "NUL byte": b"Bearer rk_a\x00b_c",
        "raw UTF-8": b"Bearer " + "rk_密钥".encode(),
        "invalid UTF-8": b"Bearer \xff\xfe",
        "empty bearer": b"Bearer ",
        "control characters": b"Bearer rk_\x01\x02\x7f",
    }
    for raw in raw_headers.values():
        status = raw_status(base, "/v1/cases", raw)
        assert status in (400, 401), (raw, status)
        statuses[status] = statuses.get(status, 0) + 1
    assert submissions(system) == before, "a refused request stored something"
    figures["bad_credentials"] = {
        "kinds": sorted([*headers, *raw_headers, "api_key parameter"]),
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "got_in": 0,
    }


# ---------------------------------------------------------------------------- abuse


def test_oversize_bodies_get_413_and_floods_get_429_and_nothing_stored_is_harmed(
    system: LocalSystem, agencies: Agencies, keys: dict[str, str], figures: Figures
) -> None:
    http, base = agencies.http, agencies.intake
    case = agencies.file("hotline", COMPLAINT | {"description": "滥用"})
    agencies.outcome("hotline", case["submission_id"])
    before = submissions(system)
    huge = COMPLAINT | {"description": "长" * 30_000}  # about 90 KB of JSON: over the 64 KiB limit

    def chunks() -> Any:  # no Content-Length: the server must count as it reads
        yield json.dumps(huge).encode()

    oversize = {
        "complaint": http.post(f"{base}/v1/complaints", json=huge, headers=bearer(keys["hotline"])),
        "complaint, chunked": http.post(
            f"{base}/v1/complaints",
            content=chunks(),
            headers=bearer(keys["hotline"]) | {"Content-Type": "application/json"},
        ),
        "lifecycle command": http.post(
            f"{base}/v1/cases/{case['case_id']}/escalate",
            json={"reason": "长" * 30_000},
            headers=bearer(keys["office"]),
        ),
    }
    for label in ("complaint", "complaint, chunked", "lifecycle command"):
        r = oversize[label]
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json", (label, r.text[:200])
    o311 = http.post(
        f"{base}{O311}/requests.json",
        data={"service_code": "inaction", "description": "长" * 30_000, "first_name": "x"},
        headers=bearer(keys["hotline"]),
    )
    assert o311.status_code == 413 and o311.json()[0]["code"] == 413
    assert submissions(system) == before

    # a flood from one agency: past its limit every request is 429 with Retry-After, nothing extra is stored
    dsn = system.base_env["DATABASE_URL"]
    flood_id = f"flood-{uuid.uuid4().hex[:6]}"
    flooder = asyncio.run(add_agency(dsn, flood_id, "flood", Role.CHANNEL, channel="media", rate=20))
    answers: dict[int, int] = {}
    for i in range(60):
        r = http.post(
            f"{base}/v1/complaints",
            json=COMPLAINT | {"description": f"洪水 {i}"},
            headers=bearer(flooder) | {"Idempotency-Key": f"flood-{i}"},
        )
        answers[r.status_code] = answers.get(r.status_code, 0) + 1
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and r.headers["content-type"] == "application/problem+json"
        else:
            assert r.status_code == 202, r.text
    assert set(answers) == {202, 429} and answers[202] <= 21, answers
    stored = fetch(system, "SELECT count(*) FROM intake.submissions WHERE agency_id = $1", flood_id)[0][0]
    assert stored == answers[202]
    assert http.get(f"{base}/v1/cases", headers=bearer(keys["portal"])).status_code == 200  # others unaffected
    assert http.get(f"{base}/v1/submissions/{case['submission_id']}", headers=bearer(keys["hotline"])).json()[
        "status"
    ] in ("applied", "refused")
    figures["abuse"] = {
        "oversize_requests": len(oversize) + 1,
        "oversize_refused_413": len(oversize) + 1,
        "flood_requests": 60,
        "flood_rate_per_minute": 20,
        "flood_answers": {str(k): v for k, v in sorted(answers.items())},
        "stored_beyond_the_limit": 0,
    }


# ---------------------------------------------------------------------------- injection

# Beyond what a supervisor might publish (conftest.PUBLIC_INJECTIONS): what no text field may take.
REFUSED_INJECTIONS: dict[str, str] = {
    "NUL": "before\x00after",
    "too long": "长" * 4001,
}
LONE_SURROGATE = '"\\ud800 lone surrogate"'  # raw JSON: a string no UTF-8 can hold
A_TEXT = "测试"
SHORT_FIELDS = {"cadre", "location", "first_officer", "target", "measure", "complainant.name"}  # at most 200


def must_refuse(name: str, field: str) -> bool:
    return name in REFUSED_INJECTIONS or (name == "long_line" and field in SHORT_FIELDS)


# every text field of every command: (route or "complaint", the agency sending it, a valid body, the text fields)
TEXT_FIELDS: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("complaint", "hotline", COMPLAINT | {"cadre": A_TEXT, "location": A_TEXT}, ("description", "cadre", "location")),
    ("complaint", "hotline", COMPLAINT, ("complainant.name",)),
    ("assign", "office", {"responsible_unit_id": "meiwan", "first_officer": A_TEXT}, ("first_officer",)),
    (
        "transfer",
        "office",
        {"to_unit_id": "meiwan", "reason": A_TEXT, "first_officer": A_TEXT},
        ("reason", "first_officer"),
    ),
    ("dismiss", "office", {"reason": A_TEXT}, ("reason",)),
    ("request-extension", "meiwan", {"working_days": 3, "reason": A_TEXT}, ("reason",)),
    ("decide-extension", "office", {"granted": False, "reason": A_TEXT}, ("reason",)),
    ("submit-plan", "meiwan", {"plan_summary": A_TEXT}, ("plan_summary",)),
    ("submit-rectification", "meiwan", {"report": A_TEXT, "evidence_refs": ["ev-1"]}, ("report",)),
    ("accept", "office", {"note": A_TEXT}, ("note",)),
    ("reject", "office", {"reason": A_TEXT, "working_days": 5}, ("reason",)),
    ("publish", "office", {"problem_summary": A_TEXT, "result_summary": A_TEXT}, ("problem_summary", "result_summary")),
    ("expose", "office", {"reason": A_TEXT}, ("reason",)),
    ("record-follow-up", "office", {"held": True, "note": A_TEXT}, ("note",)),
    ("escalate", "office", {"reason": A_TEXT}, ("reason",)),
    (
        "record-accountability",
        "office",
        {"target_kind": "cadre", "target": A_TEXT, "measure": A_TEXT},
        ("target", "measure"),
    ),
]


def with_text(body: dict[str, Any], field: str, text: str) -> dict[str, Any]:
    if field == "complainant.name":
        return body | {"complainant": body["complainant"] | {"name": text}}
    return body | {field: text}


WORKING_SETS = {"rectification.open_deadlines"}  # shrinks by design: a deadline leaves it when it is met


def table_counts(system: LocalSystem) -> dict[str, int]:
    tables = fetch(
        system,
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN"
        " ('intake', 'rectification', 'scoring', 'publicity') AND table_type = 'BASE TABLE'",
    )
    return {
        f"{t['table_schema']}.{t['table_name']}": fetch(
            system, f'SELECT count(*) FROM {t["table_schema"]}."{t["table_name"]}"'
        )[0][0]
        for t in tables
    }


def test_injection_in_every_text_field_is_stored_exactly_or_refused_naming_the_field(
    system: LocalSystem, agencies: Agencies, keys: dict[str, str], figures: Figures
) -> None:
    """SQL, markup, template and Unicode trickery in every text field of every command: each request is either
    refused with a problem+json naming the field, or stored with the text exactly as sent (and then decided by
    rectification, never stuck); the databases keep every table, and no table loses a row."""
    target = agencies.file("hotline", COMPLAINT | {"description": "注入目标"})
    assert agencies.outcome("hotline", target["submission_id"])["status"] == "applied"
    case = target["case_id"]
    agencies.step("office", [case], "assign", lambda _: {"responsible_unit_id": "meiwan", "first_officer": "李"})
    agencies.step("meiwan", [case], "acknowledge", lambda _: {})  # past triage: dismiss and merge are refused later
    http, base = agencies.http, agencies.intake
    before = table_counts(system)
    accepted: dict[str, tuple[str, str, str]] = {}  # submission id -> (route, field, text)
    refused: dict[str, int] = {}
    strings = PUBLIC_INJECTIONS | REFUSED_INJECTIONS
    for route, who, body, fields in TEXT_FIELDS:
        path = "/v1/complaints" if route == "complaint" else f"/v1/cases/{case}/{route}"
        for field in fields:
            for name, text in strings.items():
                r = http.post(f"{base}{path}", json=with_text(body, field, text), headers=bearer(keys[who]))
                if r.status_code == 202:
                    assert not must_refuse(name, field), (route, field, name)
                    accepted[r.json()["submission_id"]] = (route, field, text)
                    continue
                problem = r.json()
                assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
                assert field in {e["field"] for e in problem["errors"]}, (route, field, name, problem)
                assert must_refuse(name, field), (route, field, name, problem)
                refused[name] = refused.get(name, 0) + 1
            raw = json.dumps(with_text(body, field, "PLACEHOLDER")).replace('"PLACEHOLDER"', LONE_SURROGATE)
            r = http.post(
                f"{base}{path}",
                content=raw.encode(),
                headers=bearer(keys[who]) | {"Content-Type": "application/json"},
            )
            assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
            assert "column" in r.json()["errors"][0]["reason"], r.text  # where in the body
            refused["lone surrogate"] = refused.get("lone surrogate", 0) + 1

    # stored exactly: the command intake will send carries the text as it came
    rows = fetch(system, "SELECT value FROM intake.outbox WHERE topic = $1", COMMANDS.name)
    stored = {str(c.command_id): c.payload for c in map(decode_command, (r["value"] for r in rows))}
    for sid, (route, field, text) in accepted.items():
        payload = stored[sid]
        if field == "complainant.name":
            continue  # sealed in the vault, checked below through the supervisor's view
        assert getattr(payload, field) == text, (route, field)
    # and decided by rectification, applied or refused: no text left a command stuck
    for sid in accepted:
        who = next(w for r, w, _, _ in TEXT_FIELDS if r == accepted[sid][0])
        assert agencies.outcome(who, sid)["status"] in ("applied", "refused")
    names = [sid for sid, (_, field, _) in accepted.items() if field == "complainant.name"]
    for sid in names:
        ref = http.get(f"{base}/v1/submissions/{sid}", headers=bearer(keys["hotline"])).json()["complainant_ref"]
        contact = http.get(f"{base}/v1/complainants/{ref}", headers=bearer(keys["office"])).json()
        assert contact["name"] == accepted[sid][2]

    after = table_counts(system)
    assert after.keys() == before.keys(), "a table appeared or disappeared"
    shrunk = {t: (before[t], after[t]) for t in before if after[t] < before[t] and t not in WORKING_SETS}
    assert not shrunk, shrunk
    new_submissions = after["intake.submissions"] - before["intake.submissions"]
    assert new_submissions == len(accepted), (new_submissions, len(accepted))
    figures["injection_at_the_door"] = {
        "strings": sorted([*strings, "lone surrogate"]),
        "text_fields": sum(len(f) for *_, f in TEXT_FIELDS),
        "requests": len(accepted) + sum(refused.values()),
        "stored_exactly": len(accepted),
        "refused_naming_the_field": refused,
        "tables_lost_or_rows_lost": 0,
    }


class Markup(HTMLParser):
    """Every element and attribute of a page, to find live script the escaping let through."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.handlers: list[tuple[str, str, str | None]] = []
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name, value))
            if name in ("href", "src", "action") and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def test_published_injections_are_escaped_on_every_public_surface(
    system: LocalSystem, agencies: Agencies, published: Published, figures: Figures
) -> None:
    """What the supervisor published is shown exactly, as text: escaped in HTML (no live script, handler or
    javascript: URL), exact in JSON and Atom, defused in CSV (a leading = + - @ becomes text)."""
    http, public = agencies.http, agencies.public
    csv_text = http.get(f"{public}/data/cases.csv").text.lstrip("\ufeff")
    csv_rows = {row["case_id"]: row for row in csv.DictReader(io.StringIO(csv_text))}
    atom = ET.fromstring(http.get(f"{public}/feeds/published.atom").content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    atom_summaries = {
        e.find("a:link", ns).get("href", "").rsplit("/", 1)[-1]: e.find("a:summary", ns).text  # type: ignore[union-attr]
        for e in atom.findall("a:entry", ns)
    }
    checked = 0
    for name, case in published.cases.items():
        text = PUBLIC_INJECTIONS[name]
        stored = fetch(
            system,
            "SELECT envelope->'payload'->>'problem_summary' FROM rectification.events"
            " WHERE stream_id = $1 AND event_type = 'CasePublished'",
            case,
        )
        assert stored[0][0] == text, name  # stored exactly
        api = http.get(f"{public}/api/v1/cases/{case}").json()
        assert api["problem_summary"] == api["result_summary"] == text, name
        o311 = http.get(f"{public}/open311/v2/requests/{case}.json").json()[0]
        assert o311["description"] == text, name
        for lang in ("zh", "en"):
            page = http.get(f"{public}/cases/{case}", params={"lang": lang}).text
            assert str(escape(text)) in page, (name, lang)
            parsed = Markup()
            parsed.feed(page)
            assert not parsed.handlers, (name, parsed.handlers)
            assert not any("alert" in s for s in parsed.scripts), name
            assert not any(u.strip().lower().startswith("javascript:") for u in parsed.urls), name
            checked += 1
        # in the feed (its newest 50 hold them all); XML 1.0 cannot hold C0 controls but tab, LF and CR
        assert NOT_XML.sub("\ufffd", text) in (atom_summaries[case] or ""), name
        cell = csv_rows[case]["problem_summary"]
        assert cell == ("'" + text if text[0] in "=+-@" else text), (name, cell)
        checked += 4
    listing = http.get(f"{public}/").text
    parsed = Markup()
    parsed.feed(listing)
    assert not parsed.handlers and not any("alert" in s for s in parsed.scripts)
    figures["published_injections"] = {
        "strings": sorted(PUBLIC_INJECTIONS),
        "cases_published": len(published.cases),
        "surfaces": ["case page zh", "case page en", "JSON API", "Open311", "Atom", "CSV"],
        "checks": checked,
        "live_script_or_formula": 0,
    }
