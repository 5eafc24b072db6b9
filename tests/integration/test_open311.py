"""Open311 GeoReport v2, driven by a third-party client (civicbot's Open311Client) against the real intake server.

The server is the real ``intake-api`` process (``rectify serve intake-api``) on a free port, with the real
PostgreSQL and a generated INTAKE_MASTER_KEY. civicbot files with the spec's ``api_key`` form field; for
reads it sends nothing of its own, so its transport adds the same ``api_key`` as a query parameter.
"""

import asyncio
import base64
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from civicbot import Endpoint, HttpError, HttpTransport, Open311Client
from civicbot.http import RateLimiter as Politeness

from services.cli.local import LocalSystem
from services.common.contracts import Role, decode_command
from services.common.reference import reference
from services.intake.admin import add_agency
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration


class AgencyTransport(HttpTransport):
    """civicbot's transport, without its politeness delay, adding the agency's api_key to every read."""

    def __init__(self, api_key: str) -> None:
        super().__init__(timeout=10, rate_limiter=Politeness(min_interval=0))
        self.api_key = api_key

    def get_bytes(self, url: str, params: Any = None, headers: Any = None) -> bytes:
        return super().get_bytes(url, {**(params or {}), "api_key": self.api_key}, headers)


class Intake:
    def __init__(self, system: LocalSystem, dsn: str, keys: dict[str, str]) -> None:
        self.system, self.dsn, self.keys = system, dsn, keys
        self.base = f"{system.url('intake-api')}/open311/v2"

    def client(self, who: str) -> Open311Client:
        endpoint = Endpoint(id="rectify", name="Rectify intake", base_url=self.base, write=True)
        return Open311Client(endpoint, transport=AgencyTransport(self.keys[who]))

    def query(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.dsn, server_settings={"search_path": "intake"})
            try:
                return await conn.fetch(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def intake(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    dsn = asyncio.run(fresh_database(servers["DATABASE_URL"]))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers["KAFKA_BOOTSTRAP_SERVERS"],
        "DATABASE_URL": dsn,
        "INTAKE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    system = LocalSystem(env, Path(tmp_path_factory.mktemp("open311-logs")))
    try:
        system.start("intake-api")
        system.wait_http("intake-api")  # migrated by the process itself before it listens

        async def provision() -> dict[str, str]:
            return {
                "hotline": await add_agency(dsn, "hotline", "12345 热线", Role.CHANNEL, "hotline_12345"),
                "portal": await add_agency(dsn, "portal", "门户网站", Role.CHANNEL, "gov_portal"),
                "office": await add_agency(dsn, "office", "区纠风办", Role.SUPERVISOR),
                "slow": await add_agency(dsn, "slow", "慢速通道", Role.CHANNEL, "media", rate=6),
            }

        yield Intake(system, dsn, asyncio.run(provision()))
    finally:
        system.stop_all()


FILING: dict[str, Any] = {
    "address_string": "梅湾街道政务服务中心",
    "description": "窗口工作人员上班时间玩手机",
    "first_name": "小明",
    "last_name": "王",
    "phone": "13912345678",
    "email": "wxm@example.org",
    "attributes": {"unit_id": "meiwan", "severity": "urgent"},
}


def test_the_service_list_is_our_categories_and_each_definition_lists_the_units(intake: Intake) -> None:
    client = intake.client("hotline")
    services = client.list_services()
    ref = reference()
    assert [s["service_code"] for s in services] == sorted(ref.categories)
    inaction = next(s for s in services if s["service_code"] == "inaction")
    assert inaction == {
        "service_code": "inaction",
        "service_name": "不作为",
        "description": "Inaction",
        "metadata": True,
        "type": "realtime",
        "keywords": "不作为,Inaction",
        "group": "作风",
    }
    definition = client.get_service_definition("inaction")
    unit = next(a for a in definition["attributes"] if a["code"] == "unit_id")
    assert unit["required"] is True and unit["datatype"] == "singlevaluelist"
    assert {v["key"] for v in unit["values"]} == set(ref.units)
    with pytest.raises(HttpError) as missing:
        client.get_service_definition("gossip")
    assert missing.value.status == 404 and json.loads(missing.value.body)[0]["code"] == 404


def test_file_list_and_get_a_request_with_the_third_party_client(intake: Intake) -> None:
    client = intake.client("hotline")
    sent = client.create_request(
        "service_window", dry_run=False, confirm="SEND", api_key=intake.keys["hotline"], validate_remote=True, **FILING
    )
    answer = sent.response[0]
    case_id, token = answer["service_request_id"], answer["token"]
    assert case_id.startswith("RC-") and answer["account_id"] is None and case_id in answer["service_notice"]

    # stored exactly as a filing over POST /v1/complaints: submission, sealed complainant, outbox command
    submission = intake.query("SELECT * FROM submissions WHERE submission_id = $1::uuid", token)[0]
    assert submission["case_id"] == case_id and submission["agency_id"] == "hotline"
    command = decode_command(intake.query("SELECT value FROM outbox WHERE key = $1", case_id)[0]["value"])
    payload = command.payload
    assert (payload.category, payload.unit_id, payload.location, payload.severity) == (  # type: ignore[attr-defined]
        "service_window",
        "meiwan",
        "梅湾街道政务服务中心",
        "urgent",
    )
    assert payload.channel == "hotline_12345" and payload.complainant_ref == submission["complainant_ref"]  # type: ignore[attr-defined]
    contact = httpx.get(
        f"{intake.system.url('intake-api')}/v1/complainants/{submission['complainant_ref']}",
        headers={"Authorization": f"Bearer {intake.keys['office']}"},
    ).json()
    assert (contact["name"], contact["phone"], contact["email"]) == ("王小明", "13912345678", "wxm@example.org")

    assert client.get_token(token) == [{"service_request_id": case_id, "token": token}]
    listed = {r["service_request_id"]: r for r in client.list_requests()}
    assert listed[case_id]["status"] == "open" and listed[case_id]["status_notes"] == "received"
    assert listed[case_id]["service_code"] == "service_window" and listed[case_id]["service_name"] == "窗口服务"
    assert listed[case_id]["requested_datetime"].endswith("+08:00")
    assert client.get_request(case_id) == listed[case_id]
    assert client.list_requests(service_request_ids=[case_id]) == [listed[case_id]]
    assert client.list_requests(status="closed") == []
    assert client.list_requests(service_code="integrity") == []

    # the same visibility as GET /v1/cases: another channel does not see it; the supervisor does
    portal = intake.client("portal")
    assert case_id not in {r["service_request_id"] for r in portal.list_requests()}
    with pytest.raises(HttpError) as hidden:
        portal.get_request(case_id)
    assert hidden.value.status == 404
    assert intake.client("office").get_request(case_id)["service_request_id"] == case_id


def post(intake: Intake, data: dict[str, Any], fmt: str = "json", **kw: Any) -> httpx.Response:
    return httpx.post(f"{intake.base}/requests.{fmt}", data=data, timeout=10, **kw)


def form(intake: Intake, who: str = "hotline", **changes: Any) -> dict[str, Any]:
    fields = {k: v for k, v in FILING.items() if k != "attributes"}
    fields |= {"service_code": "inaction", "api_key": intake.keys[who], "attribute[unit_id]": "meiwan"}
    return {k: v for k, v in (fields | changes).items() if v is not None}


def errors(r: httpx.Response) -> list[str]:
    body = r.json()
    assert isinstance(body, list) and all(e["code"] == r.status_code for e in body), body
    return [e["description"] for e in body]


def test_errors_are_the_specs_array_with_the_right_status(intake: Intake) -> None:
    before = intake.query("SELECT count(*) AS n FROM submissions")[0]["n"]
    cases = [
        (form(intake, service_code="gossip"), 400, "service_code"),
        (form(intake, **{"attribute[unit_id]": None}), 400, "attribute[unit_id]"),
        (form(intake, **{"attribute[unit_id]": "atlantis"}), 400, "attribute[unit_id]"),
        (form(intake, **{"attribute[colour]": "red"}), 400, "attribute[colour]"),
        (form(intake, first_name=None, last_name=None), 400, "first_name/last_name"),
        (form(intake, phone="<script>"), 400, "phone"),
        (form(intake, address_string=None), 400, "location"),
        (form(intake, lat="95", long="120"), 400, "lat/long"),
        (form(intake, admin="1"), 400, "admin"),
        (form(intake, description=None), 400, "description"),
        (form(intake, api_key=None), 401, ""),
        (form(intake, api_key="rk_nope_nope"), 401, ""),
        (form(intake, "office"), 403, ""),
    ]
    for data, status, field in cases:
        r = post(intake, data)
        assert r.status_code == status, (data, r.text)
        assert any(d.startswith(field) for d in errors(r)), (field, r.text)
    # one answer names every field wrong: the reference checks beside the model's
    r = post(intake, form(intake, service_code="gossip", description=None, **{"attribute[unit_id]": "atlantis"}))
    assert r.status_code == 400
    assert sorted(d.split(":")[0] for d in errors(r)) == ["attribute[unit_id]", "description", "service_code"]
    assert "attribute[unit_id]: unknown unit; see services.json" in errors(r)
    r = post(intake, form(intake, description=None, **{"attribute[unit_id]": "atlantis"}))
    assert "attribute[unit_id]: unknown unit; see services/inaction.json" in errors(r), r.text
    r = httpx.post(f"{intake.base}/requests.json", content=b"a=b", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and errors(r)
    assert httpx.get(f"{intake.base}/services.yaml").status_code == 404
    assert httpx.get(f"{intake.base}/requests.json").status_code == 401
    bad_dates = httpx.get(f"{intake.base}/requests.json", params={"api_key": intake.keys["hotline"], "end_date": "x"})
    assert bad_dates.status_code == 400 and errors(bad_dates)[0].startswith("end_date")
    for odd in ({"end_date": "0001-01-01T00:00:00Z"}, {"page_size": "²"}, {"status": "pending"}):
        r = httpx.get(f"{intake.base}/requests.json", params={"api_key": intake.keys["hotline"], **odd})
        assert r.status_code == 400 and errors(r), (odd, r.text)
    assert intake.query("SELECT count(*) AS n FROM submissions")[0]["n"] == before

    # JSON bodies are accepted too; an Idempotency-Key makes a retry safe, and a reuse with other data a 409
    body = {k: v for k, v in form(intake).items() if not k.startswith("attribute[")} | {
        "attribute": {"unit_id": "meiwan"}
    }
    key = {"Idempotency-Key": "open311-retry-1"}
    first = httpx.post(f"{intake.base}/requests.json", json=body, headers=key)
    again = httpx.post(f"{intake.base}/requests.json", json=body, headers=key)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    other = httpx.post(f"{intake.base}/requests.json", json=body | {"description": "另一件事"}, headers=key)
    assert other.status_code == 409 and errors(other)
    assert intake.query("SELECT count(*) AS n FROM submissions")[0]["n"] == before + 1

    assert post(intake, form(intake, "slow")).status_code == 200
    for _ in range(3):  # a burst of one, then 6 a minute
        limited = post(intake, form(intake, "slow"))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1 and errors(limited)


def test_xml_variants(intake: Intake) -> None:
    services = ET.fromstring(httpx.get(f"{intake.base}/services.xml").content)
    assert services.tag == "services" and len(services.findall("service")) == len(reference().categories)
    assert services.find("service/metadata").text == "true"  # type: ignore[union-attr]
    definition = ET.fromstring(httpx.get(f"{intake.base}/services/inaction.xml").content)
    keys = {v.findtext("key") for v in definition.findall("attributes/attribute/values/value")}
    assert set(reference().units) <= keys

    filed = post(intake, form(intake), "xml")
    assert filed.status_code == 200 and filed.headers["content-type"].startswith("text/xml")
    assert filed.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    case_id = ET.fromstring(filed.content).findtext("request/service_request_id")
    auth = {"api_key": intake.keys["hotline"]}
    one = ET.fromstring(httpx.get(f"{intake.base}/requests/{case_id}.xml", params=auth).content)
    assert one.tag == "service_requests" and one.findtext("request/status") == "open"
    listed = ET.fromstring(httpx.get(f"{intake.base}/requests.xml", params=auth).content)
    assert case_id in {r.findtext("service_request_id") for r in listed.findall("request")}

    missing = httpx.get(f"{intake.base}/requests/RC-20260101-999999.xml", params=auth)
    error = ET.fromstring(missing.content)
    assert missing.status_code == 404 and error.tag == "errors" and error.findtext("error/code") == "404"


async def test_the_migration_gives_cases_filed_before_it_their_category_and_time(dsn: str, tmp_path: Path) -> None:
    from services.common.contracts import encode_command
    from services.common.db import migrate
    from tests.integration.conftest import SERVICES
    from tests.unit.test_rectification_service import NOW, file_cmd

    before = tmp_path / "intake" / "migrations"  # migration ids are "<service>/<file>"
    before.mkdir(parents=True)
    for path in sorted((SERVICES / "intake" / "migrations").glob("00[1-4]_*.sql")):
        (before / path.name).write_text(path.read_text())
    await migrate(dsn, "intake", before)
    command = file_cmd("RC-20261123-000001")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "intake"})
    try:
        await conn.execute("INSERT INTO agencies (agency_id, name, role, channel) VALUES ('h', 'h', 'channel', 'x')")
        await conn.execute(
            "INSERT INTO case_access (case_id, filed_by, status) VALUES ($1, 'h', 'filed')", command.case_id
        )
        await conn.execute(
            "INSERT INTO submissions (submission_id, agency_id, request_hash, command_type, case_id, received_at)"
            " VALUES ($1, 'h', '', 'FileComplaint', $2, $3)",
            command.command_id,
            command.case_id,
            NOW,
        )
        await conn.execute(
            "INSERT INTO outbox (topic, key, value) VALUES ('rectify.intake.commands.v1', $1, $2)",
            command.case_id,
            encode_command(command),
        )
        applied = await migrate(dsn, "intake", SERVICES / "intake" / "migrations")
        assert applied[0] == "intake/005_case_access_category"  # later migrations follow it
        row = await conn.fetchrow("SELECT category, filed_at FROM case_access")
    finally:
        await conn.close()
    assert (row["category"], row["filed_at"]) == (command.payload.category, NOW)  # type: ignore[attr-defined]
