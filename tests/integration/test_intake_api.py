"""Intake's HTTP API on the real PostgreSQL: durable before 202, idempotent, strict, scoped to the agency."""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from services.common.contracts import Actor, Role, SubmissionAppliedV2, decode_command, wrap_event
from services.common.db import migrate
from services.common.inbox import Decoded, Record
from services.intake.adapters import repository
from services.intake.adapters.repository import provision_agency
from services.intake.adapters.vault import Vault
from services.intake.commands import COMMAND_ROUTES
from services.intake.entrypoints.http import create_app
from services.intake.entrypoints.outcomes import apply_outcomes
from tests.integration.conftest import SERVICES

pytestmark = pytest.mark.integration
BODY = {
    "category": "inaction",
    "unit_id": "meiwan",
    "description": "路灯坏了三个月无人修",
    "complainant": {"name": "王小明", "phone": "13912345678"},
}


class Api:
    def __init__(self, client: httpx.AsyncClient, pool: asyncpg.Pool, keys: dict[str, str]) -> None:
        self.client, self.pool, self.keys = client, pool, keys

    async def post(self, who: str, body: object = BODY, key: str | None = None, raw: bytes | None = None):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {self.keys[who]}", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        return await self.client.post(
            "/v1/complaints", content=raw if raw is not None else json.dumps(body), headers=headers
        )

    async def counts(self) -> tuple[int, int, int]:
        return (
            await self.pool.fetchval("SELECT count(*) FROM submissions"),
            await self.pool.fetchval("SELECT count(*) FROM complainants"),
            await self.pool.fetchval("SELECT count(*) FROM outbox"),
        )


@pytest.fixture
async def api(dsn: str) -> AsyncIterator[Api]:
    await migrate(dsn, "intake", SERVICES / "intake" / "migrations")
    app = create_app(dsn, lambda: datetime.now(UTC), Vault(os.urandom(32)), max_body_bytes=8 * 1024)
    async with app.router.lifespan_context(app):
        pool = app.state.pool
        async with pool.acquire() as conn:
            keys = {
                "hotline": await provision_agency(conn, "hotline", "12345", Role.CHANNEL, channel="hotline_12345"),
                "portal": await provision_agency(conn, "portal", "portal", Role.CHANNEL, channel="gov_portal"),
                "office": await provision_agency(conn, "office", "纠风办", Role.SUPERVISOR),
            }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield Api(client, pool, keys)


async def test_202_only_after_everything_is_stored(api: Api) -> None:
    r = await api.post("hotline")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "received" and body["case_id"].startswith("RC-")
    assert r.headers["location"] == f"/v1/submissions/{body['submission_id']}"
    assert await api.counts() == (1, 1, 1)
    row = await api.pool.fetchrow("SELECT topic, key, value FROM outbox")
    command = decode_command(row["value"])
    assert row["topic"] == "rectify.intake.commands.v1" and row["key"] == body["case_id"]
    assert command.actor.agency_id == "hotline" and command.payload.channel == "hotline_12345"  # type: ignore[attr-defined]
    assert b"13912345678" not in row["value"] and "王小明".encode() not in row["value"]


async def test_idempotency_same_body_same_answer_other_body_409(api: Api) -> None:
    first = await api.post("hotline", key="k-1")
    again = await api.post("hotline", key="k-1")
    assert again.status_code == 202 and again.json()["submission_id"] == first.json()["submission_id"]
    other = await api.post("hotline", BODY | {"description": "另一件事"}, key="k-1")
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert (await api.post("portal", key="k-1")).json()["submission_id"] != first.json()["submission_id"]
    assert await api.counts() == (2, 2, 2)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (BODY | {"unit_id": "atlantis"}, 422, "unit_id"),
        (BODY | {"category": "gossip"}, 422, "category"),
        (BODY | {"admin": True}, 422, "admin"),
        ({k: v for k, v in BODY.items() if k != "complainant"}, 422, "complainant"),
        (BODY | {"complainant": {"name": "x", "phone": "<script>"}}, 422, "complainant.phone"),
        (BODY | {"description": 5}, 422, "description"),
    ],
)
async def test_bad_input_names_the_field_and_stores_nothing(api: Api, body: dict, status: int, field: str) -> None:  # type: ignore[type-arg]
    r = await api.post("hotline", body)
    assert r.status_code == status
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert field in {e["field"] for e in problem["errors"]}
    assert await api.counts() == (0, 0, 0)


async def test_one_answer_names_every_field_wrong_reference_checks_included(api: Api) -> None:
    body = {k: v for k, v in BODY.items() if k != "description"} | {"category": "gossip", "unit_id": "atlantis"}
    r = await api.post("hotline", body)
    assert r.status_code == 422
    reasons = {e["field"]: e["reason"] for e in r.json()["errors"]}
    assert set(reasons) == {"description", "category", "unit_id"}
    assert reasons["category"].startswith("unknown category; one of ")
    # a field the model refuses is named once, with the model's reason
    r = await api.post("hotline", body | {"category": 5})
    assert [e["field"] for e in r.json()["errors"]].count("category") == 1
    # JSON that pydantic reads and orjson does not (NaN) still answers 422, without the extra checks
    raw = json.dumps(body | {"severity": float("nan")}).encode()
    r = await api.post("hotline", raw=raw)
    assert r.status_code == 422
    assert {"description", "severity"} <= {e["field"] for e in r.json()["errors"]}
    assert await api.counts() == (0, 0, 0)


async def test_malformed_oversized_and_wrong_type_bodies(api: Api) -> None:
    assert (await api.post("hotline", raw=b"{oops")).status_code == 400
    assert (await api.post("hotline", raw=b"{" + b" " * 9000 + b"}")).status_code == 413
    r = await api.client.post(
        "/v1/complaints", content=b"a=b", headers={"Authorization": f"Bearer {api.keys['hotline']}"}
    )
    assert r.status_code == 415
    assert await api.counts() == (0, 0, 0)


async def test_credentials_and_roles(api: Api) -> None:
    assert (await api.client.post("/v1/complaints", json=BODY)).status_code == 401
    bad = await api.client.post("/v1/complaints", json=BODY, headers={"Authorization": "Bearer rk_nope_nope"})
    assert bad.status_code == 401 and "detail" in bad.json()
    forged = api.keys["hotline"][:-2] + "xx"
    assert (await api.client.post("/v1/complaints", json=BODY, headers={"X-API-Key": forged})).status_code == 401
    assert (await api.post("office")).status_code == 403
    await api.pool.execute("UPDATE api_keys SET revoked_at = now() WHERE agency_id = 'portal'")
    assert (await api.post("portal")).status_code == 401
    assert await api.counts() == (0, 0, 0)


async def test_concurrent_requests_with_an_unchecked_key_check_it_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = repository.authenticate

    async def counted(conn: asyncpg.Pool, key: str, now: datetime) -> object:
        lookups.append(key)
        return await real(conn, key, now)

    monkeypatch.setattr(repository, "authenticate", counted)
    answers = await asyncio.gather(*(api.post("hotline") for _ in range(20)), api.post("office"))
    assert [a.status_code for a in answers] == [202] * 20 + [403]
    assert sorted(lookups) == sorted([api.keys["hotline"], api.keys["office"]])  # one query per key, not 21
    unknown = {"Authorization": "Bearer rk_nope_nope", "Content-Type": "application/json"}
    refused = await asyncio.gather(*(api.client.post("/v1/complaints", json=BODY, headers=unknown) for _ in range(3)))
    assert {r.status_code for r in refused} == {401}
    assert await api.counts() == (20, 20, 20)


async def test_an_agency_sees_only_its_own_submissions(api: Api) -> None:
    sid = (await api.post("hotline")).json()["submission_id"]
    own = await api.client.get(f"/v1/submissions/{sid}", headers={"Authorization": f"Bearer {api.keys['hotline']}"})
    assert own.status_code == 200 and own.json()["status"] == "received"
    other = await api.client.get(f"/v1/submissions/{sid}", headers={"Authorization": f"Bearer {api.keys['portal']}"})
    assert other.status_code == 404
    junk = await api.client.get(
        "/v1/submissions/not-a-uuid", headers={"Authorization": f"Bearer {api.keys['hotline']}"}
    )
    assert junk.status_code == 422 and junk.json()["errors"][0]["field"] == "path.submission_id"


async def test_openapi_documents_the_strict_body(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    op = doc["paths"]["/v1/complaints"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False
    assert {"202", "401", "409", "422"} <= set(op["responses"])


async def rectification_applied(api: Api, case_id: str, version: int, status: str, unit: str | None) -> None:
    """What rectification would send back after applying a command: the outcome intake consumes."""
    sid = await api.pool.fetchval(
        "SELECT submission_id FROM submissions WHERE case_id = $1 ORDER BY received_at DESC LIMIT 1", case_id
    )
    payload = SubmissionAppliedV2(
        submission_id=sid, case_id=case_id, case_version=version, events=(), status=status, responsible_unit_id=unit
    )
    env = wrap_event(
        payload,
        stream_id=case_id,
        stream_version=version,
        occurred_at=datetime.now(UTC),
        recorded_at=datetime.now(UTC),
        actor=Actor(agency_id="rectification", role=Role.SYSTEM),
        correlation_id=uuid.uuid4(),
        causation_id=None,
    )
    async with api.pool.acquire() as conn, conn.transaction():
        await apply_outcomes(conn, [Decoded(Record("outcomes", 0, 0, None, b""), env)])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_lifecycle_commands_are_accepted_from_the_right_roles(api: Api) -> None:
    async with api.pool.acquire() as conn:
        unit_key = await provision_agency(conn, "unit-meiwan", "梅湾街道", Role.UNIT, unit_id="meiwan")
    filed = (await api.post("hotline")).json()
    assert filed["complainant_ref"].startswith("cp-")
    case = filed["case_id"]
    await rectification_applied(api, case, 1, "filed", None)

    assign = {"responsible_unit_id": "meiwan", "first_officer": "梅湾街道 李主任"}
    r = await api.client.post(f"/v1/cases/{case}/assign", json=assign, headers=bearer(api.keys["office"]))
    assert r.status_code == 202, r.text
    assert r.json()["command"] == "AssignCase" and r.json()["case_id"] == case
    command = decode_command(await api.pool.fetchval("SELECT value FROM outbox ORDER BY id DESC LIMIT 1"))
    assert command.payload.message_type == "AssignCase" and command.actor.role == "supervisor"

    before = await api.client.post(f"/v1/cases/{case}/acknowledge", json={}, headers=bearer(unit_key))
    assert before.status_code == 404  # not yet this unit's case
    await rectification_applied(api, case, 2, "assigned", "meiwan")
    ack = await api.client.post(f"/v1/cases/{case}/acknowledge", json={}, headers=bearer(unit_key))
    assert ack.status_code == 202
    seen = await api.client.get(f"/v1/cases/{case}", headers=bearer(unit_key))
    assert seen.json()["responsible_unit_id"] == "meiwan" and seen.json()["case_version"] == 2
    await rectification_applied(api, case, 1, "filed", None)  # a stale, redelivered outcome changes nothing
    assert (await api.client.get(f"/v1/cases/{case}", headers=bearer(unit_key))).json()["case_version"] == 2

    hotline, office = bearer(api.keys["hotline"]), bearer(api.keys["office"])
    assert (await api.client.post(f"/v1/cases/{case}/assign", json=assign, headers=hotline)).status_code == 403
    assert (await api.client.post(f"/v1/cases/{case}/acknowledge", json={}, headers=office)).status_code == 403
    missing = await api.client.post("/v1/cases/RC-20260101-999999/assign", json=assign, headers=office)
    assert missing.status_code == 404
    bad = await api.client.post(
        f"/v1/cases/{case}/reject", json={"reason": "证据不足", "working_days": "five"}, headers=office
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "working_days"
    odd = await api.client.post(f"/v1/cases/{case}/assign", json=assign | {"x": 1}, headers=office)
    assert odd.status_code == 422 and odd.json()["errors"][0]["field"] == "x"
    weird_id = await api.client.post("/v1/cases/'; DROP TABLE x;--/assign", json=assign, headers=office)
    assert weird_id.status_code in (404, 422)
    assert await api.pool.fetchval("SELECT count(*) FROM submissions") == 3


async def test_every_lifecycle_command_has_a_documented_route(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    for route in COMMAND_ROUTES:
        op = doc["paths"][f"/v1/cases/{{case_id}}/{route.path}"]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False


async def test_contact_is_sealed_readable_by_the_supervisor_and_erasable(api: Api) -> None:
    filed = (await api.post("hotline")).json()
    ref = filed["complainant_ref"]
    sealed = await api.pool.fetchval("SELECT sealed FROM complainants WHERE complainant_ref = $1", ref)
    assert "王小明".encode() not in sealed and b"13912345678" not in sealed
    office, hotline = bearer(api.keys["office"]), bearer(api.keys["hotline"])
    assert (await api.client.get(f"/v1/complainants/{ref}", headers=hotline)).status_code == 403
    contact = (await api.client.get(f"/v1/complainants/{ref}", headers=office)).json()
    assert contact == {"complainant_ref": ref, "name": "王小明", "phone": "13912345678", "email": None}

    assert (await api.client.delete(f"/v1/complainants/{ref}", headers=hotline)).status_code == 403
    assert (await api.client.delete(f"/v1/complainants/{ref}", headers=office)).status_code == 204
    gone = await api.client.get(f"/v1/complainants/{ref}", headers=office)
    assert gone.status_code == 410
    assert (await api.client.delete(f"/v1/complainants/{ref}", headers=office)).status_code == 204  # idempotent
    assert await api.pool.fetchval("SELECT count(*) FROM complainant_keys WHERE complainant_ref = $1", ref) == 0
    # the case itself is untouched: its submission and outbox command stand, and name no person
    status = await api.client.get(f"/v1/submissions/{filed['submission_id']}", headers=hotline)
    assert status.status_code == 200 and status.json()["case_id"] == filed["case_id"]
    unknown = await api.client.get("/v1/complainants/cp-00000000000000000000", headers=office)
    assert unknown.status_code == 404


async def test_keys_rotate_with_grace_and_revoke_at_once(api: Api) -> None:
    old = api.keys["hotline"]
    r = await api.client.post("/v1/keys/rotate", params={"grace_hours": 0}, headers=bearer(old))
    assert r.status_code == 201
    new = r.json()["api_key"]
    assert new != old and new.startswith("rk_")
    assert (await api.client.get("/v1/cases", headers=bearer(old))).status_code == 401  # no grace asked
    assert (await api.client.get("/v1/cases", headers=bearer(new))).status_code == 200
    graced = (await api.client.post("/v1/keys/rotate", headers=bearer(new))).json()
    assert (await api.client.get("/v1/cases", headers=bearer(new))).status_code == 200  # 24 h of grace
    newest = graced["api_key"]
    assert (await api.client.delete("/v1/keys/current", headers=bearer(newest))).status_code == 204
    assert (await api.client.get("/v1/cases", headers=bearer(newest))).status_code == 401
    assert (
        await api.client.post("/v1/keys/rotate", params={"grace_hours": 999}, headers=bearer(new))
    ).status_code == 422


async def test_each_agency_has_a_rate_limit(api: Api) -> None:
    async with api.pool.acquire() as conn:
        slow = await provision_agency(conn, "slow-desk", "慢速通道", Role.CHANNEL, channel="media", rate_per_minute=6)
    assert (await api.client.get("/v1/cases", headers=bearer(slow))).status_code == 200
    limited = await api.client.get("/v1/cases", headers=bearer(slow))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"] == "application/problem+json"
    assert (await api.client.get("/v1/cases", headers=bearer(api.keys["hotline"]))).status_code == 200


async def test_command_routes_check_in_order_and_answer_problems(api: Api) -> None:
    """Key, then the case id's form, then the role, then Idempotency-Key, then the case, then the body."""
    office, hotline = bearer(api.keys["office"]), bearer(api.keys["hotline"])
    assign = {"responsible_unit_id": "meiwan", "first_officer": "梅湾街道 李主任"}
    assert (await api.client.post("/v1/cases/nope/assign", json=assign)).status_code == 401
    r = await api.client.post("/v1/cases/nope/assign", content=b"{oops", headers=hotline)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "https://rectify.example/problems/invalid-request",
        "title": "Invalid request",
        "status": 422,
        "detail": "some parameters are missing or invalid",
        "errors": [{"field": "path.case_id", "reason": "String should match pattern '^RC-[0-9]{8}-[0-9]{6,}$'"}],
    }
    missing = "/v1/cases/RC-20260101-999999/assign"
    r = await api.client.post(missing, content=b"{oops", headers=hotline | {"Idempotency-Key": "\x7f"})
    assert r.status_code == 403 and r.json()["detail"] == "only a supervisor may assign"
    r = await api.client.post(missing, content=b"{oops", headers=office | {"Idempotency-Key": "a b"})
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "Idempotency-Key", "reason": "1 to 200 printable ASCII characters"}
    ]
    r = await api.client.post(missing, content=b"{oops", headers=office | {"Idempotency-Key": "k-1"})
    assert r.status_code == 404 and r.json()["detail"] == "no case RC-20260101-999999 for this agency"
    case = (await api.post("hotline")).json()["case_id"]
    json_office = office | {"Content-Type": "application/json"}
    r = await api.client.post(f"/v1/cases/{case}/assign", content=b"{oops", headers=json_office)
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    r = await api.client.post(f"/v1/cases/{case}/assign", content=b"a=b", headers=office)
    assert r.status_code == 415
    r = await api.client.post(f"/v1/cases/{case}/assign", content=b"{" + b" " * 9000 + b"}", headers=json_office)
    assert r.status_code == 413
    r = await api.client.post(f"/v1/cases/{case}/assign", json=assign, headers=office | {"X-Correlation-ID": "c-42"})
    assert r.status_code == 202 and r.headers["x-correlation-id"] == "c-42"
    assert r.headers["location"] == f"/v1/submissions/{r.json()['submission_id']}"
    again = await api.client.post(f"/v1/cases/{case}/assign", json=assign, headers=office)
    assert again.headers["x-correlation-id"] not in ("", r.headers["x-correlation-id"])
    assert await api.pool.fetchval("SELECT count(*) FROM submissions") == 3
