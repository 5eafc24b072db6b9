"""One complaint from filing to the public page, through every real process, broker and database.

The complainant's name and phone are unique markers; they must appear nowhere on the public side:
not in the public JSON API, the public HTML, the publicity database, its topic or its logs.
"""

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.cli.local import LocalSystem
from services.common.contracts import Role
from services.common.topics import PUBLIC_CASES
from services.intake.admin import add_agency
from tests.e2e.conftest import running_system
from tests.integration.test_outbox_relay import consume_all

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    logs = Path(os.environ.get("RECTIFY_TEST_ARTIFACTS", tmp_path_factory.mktemp("logs"))) / "e2e-logs"
    with running_system(servers, logs) as local:
        yield local


@pytest.fixture(scope="module")
def hotline_key(system: LocalSystem) -> str:
    return asyncio.run(
        add_agency(system.base_env["DATABASE_URL"], "hotline", "12345 热线", Role.CHANNEL, channel="hotline_12345")
    )


def wait_for(predicate, timeout: float = 90.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def filed(system: LocalSystem, hotline_key: str) -> dict[str, str]:
    markers = {
        "name": f"CANARY{secrets.token_hex(6)}",
        "phone": f"139{secrets.randbelow(10**8):08d}",
        "email": f"canary{secrets.token_hex(4)}@example.org",
        "description": f"DESCMARK{secrets.token_hex(6)}",
    }
    body = {
        "category": "service_window",
        "unit_id": "meiwan",
        "description": f"窗口工作人员态度生硬 {markers['description']}",
        "severity": "general",
        "complainant": {"name": markers["name"], "phone": markers["phone"], "email": markers["email"]},
    }
    r = httpx.post(
        f"{system.url('intake-api')}/v1/complaints",
        json=body,
        headers={"Authorization": f"Bearer {hotline_key}", "Idempotency-Key": "e2e-1"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    return markers | {"case_id": r.json()["case_id"], "submission_id": r.json()["submission_id"]}


def test_the_submission_is_applied(system: LocalSystem, hotline_key: str, filed: dict[str, str]) -> None:
    def applied():  # type: ignore[no-untyped-def]
        r = httpx.get(
            f"{system.url('intake-api')}/v1/submissions/{filed['submission_id']}",
            headers={"Authorization": f"Bearer {hotline_key}"},
        )
        return r.json() if r.json()["status"] != "received" else None

    outcome = wait_for(applied, what="the submission outcome")
    assert outcome["status"] == "applied" and outcome["case_version"] == 1


def test_the_case_reaches_the_public_api_and_page(system: LocalSystem, filed: dict[str, str]) -> None:
    public = system.url("publicity-web")
    case = wait_for(
        lambda: (r := httpx.get(f"{public}/api/v1/cases/{filed['case_id']}")).status_code == 200 and r.json(),
        what="the case on the public API",
    )
    assert case["status"] == "filed" and case["unit_id"] == "meiwan" and case["category"] == "service_window"
    assert [s["step"] for s in case["timeline"]] == ["filed"]
    listing = httpx.get(f"{public}/api/v1/cases", params={"unit": "meiwan"}).json()
    assert filed["case_id"] in {c["case_id"] for c in listing["cases"]}
    page = httpx.get(f"{public}/cases/{filed['case_id']}")
    assert page.status_code == 200 and filed["case_id"] in page.text and "梅湾街道" in page.text
    english = httpx.get(f"{public}/cases/{filed['case_id']}", params={"lang": "en"})
    assert "Meiwan Subdistrict" in english.text and 'lang="en"' in english.text
    assert filed["case_id"] in httpx.get(f"{public}/").text


async def all_text(dsn: str, schema: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
            )
        ]
        chunks = []
        for table in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM {schema}."{table}" t')
            chunks.extend(r["row"] for r in rows)
        return "\n".join(chunks)
    finally:
        await conn.close()


def test_no_personal_data_anywhere_public(
    system: LocalSystem, filed: dict[str, str], hotline_key: str, keys: dict[str, str]
) -> None:
    public = system.url("publicity-web")
    wait_for(lambda: httpx.get(f"{public}/api/v1/cases/{filed['case_id']}").status_code == 200, what="the case")
    dsn = system.base_env["DATABASE_URL"]
    secret = [filed["name"], filed["phone"], filed["email"], filed["description"]]
    surfaces = {
        "public JSON API": httpx.get(f"{public}/api/v1/cases").text
        + httpx.get(f"{public}/api/v1/cases/{filed['case_id']}").text,
        "public HTML": httpx.get(f"{public}/").text
        + httpx.get(f"{public}/cases/{filed['case_id']}").text
        + httpx.get(f"{public}/cases/{filed['case_id']}?lang=en").text,
        "publicity database": asyncio.run(all_text(dsn, "publicity")),
        "publicity logs": "".join(
            (system.log_dir / f"{p}.log").read_text(errors="replace") for p in ("publicity-web", "publicity-worker")
        ),
        "publicity metrics": "".join(
            httpx.get(f"http://127.0.0.1:{system.running[p].metrics_port}/metrics").text
            for p in ("publicity-web", "publicity-worker")
        ),
    }
    topic = asyncio.run(consume_all(system.base_env["KAFKA_BOOTSTRAP_SERVERS"], PUBLIC_CASES.name, 1, timeout_ms=5000))
    surfaces["public topic"] = "".join(r.value.decode(errors="replace") for r in topic)
    assert filed["case_id"] in surfaces["public topic"]
    for where, text in surfaces.items():
        for marker in secret:
            assert marker not in text, f"{marker!r} leaked into the {where}"
    # at rest, even intake holds the markers only sealed; the supervisor can still read them, so they exist
    for schema in ("intake", "rectification", "scoring"):
        stored = asyncio.run(all_text(dsn, schema))
        assert filed["name"] not in stored and filed["phone"] not in stored, f"plaintext in {schema}"
    ref = httpx.get(
        f"{system.url('intake-api')}/v1/submissions/{filed['submission_id']}",
        headers={"Authorization": f"Bearer {hotline_key}"},
    ).json()["complainant_ref"]
    contact = httpx.get(
        f"{system.url('intake-api')}/v1/complainants/{ref}", headers={"Authorization": f"Bearer {keys['office']}"}
    ).json()
    assert (contact["name"], contact["phone"], contact["email"]) == (filed["name"], filed["phone"], filed["email"])


@pytest.fixture(scope="module")
def keys(system: LocalSystem) -> dict[str, str]:
    dsn = system.base_env["DATABASE_URL"]

    async def provision() -> dict[str, str]:
        return {
            "office": await add_agency(dsn, "office", "区纠风办", Role.SUPERVISOR),
            "meiwan": await add_agency(dsn, "unit-meiwan", "梅湾街道", Role.UNIT, unit_id="meiwan"),
            "renwan": await add_agency(dsn, "unit-renwan", "仁湾镇", Role.UNIT, unit_id="renwan"),
        }

    return asyncio.run(provision())


def submit(system: LocalSystem, key: str, case_id: str, command: str, body: dict) -> dict:  # type: ignore[type-arg]
    r = httpx.post(
        f"{system.url('intake-api')}/v1/cases/{case_id}/{command}",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    sid = r.json()["submission_id"]

    def decided():  # type: ignore[no-untyped-def]
        s = httpx.get(
            f"{system.url('intake-api')}/v1/submissions/{sid}", headers={"Authorization": f"Bearer {key}"}
        ).json()
        return s if s["status"] != "received" else None

    return wait_for(decided, what=f"the outcome of {command}")  # type: ignore[no-any-return]


def test_the_lifecycle_runs_over_http_and_refusals_reach_the_submitter(
    system: LocalSystem, keys: dict[str, str], filed: dict[str, str]
) -> None:
    case = filed["case_id"]
    intake = system.url("intake-api")

    def post(key: str, command: str, body: dict) -> int:  # type: ignore[type-arg]
        r = httpx.post(f"{intake}/v1/cases/{case}/{command}", json=body, headers={"Authorization": f"Bearer {key}"})
        return r.status_code

    assert post(keys["renwan"], "acknowledge", {}) == 404  # not its case: as if it did not exist
    assigned = submit(
        system, keys["office"], case, "assign", {"responsible_unit_id": "meiwan", "first_officer": "李主任"}
    )
    assert assigned["status"] == "applied" and assigned["case_version"] == 2
    assert post(keys["renwan"], "acknowledge", {}) == 404
    mine = httpx.get(f"{intake}/v1/cases/{case}", headers={"Authorization": f"Bearer {keys['meiwan']}"}).json()
    assert mine["responsible_unit_id"] == "meiwan" and mine["status"] == "assigned"
    early = submit(system, keys["office"], case, "accept", {})
    assert early["status"] == "refused" and "cannot accept" in early["reason"]
    assert submit(system, keys["meiwan"], case, "acknowledge", {})["status"] == "applied"
    public = system.url("publicity-web")
    steps = wait_for(
        lambda: (
            (s := [t["step"] for t in httpx.get(f"{public}/api/v1/cases/{case}").json()["timeline"]])[-1]
            == "acknowledged"
            and s
        ),
        what="the public timeline",
    )
    assert steps == ["filed", "assigned", "acknowledged"]
    case_json = httpx.get(f"{public}/api/v1/cases/{case}").json()
    assert case_json["responsible_unit_id"] == "meiwan" and case_json["deadline"]


def test_erasing_the_complainant_leaves_the_public_ledger_verifiable_and_unchanged(
    system: LocalSystem, keys: dict[str, str], filed: dict[str, str], hotline_key: str
) -> None:
    from typer.testing import CliRunner

    from services.cli.main import app
    from services.cli.verify import lines_of_url
    from services.publicity.ledger import verify

    public = system.url("publicity-web")

    def case_facts() -> list[dict]:  # type: ignore[type-arg]
        entries = list(lines_of_url(public))
        mine = [e for e in entries if f'"case_id":"{filed["case_id"]}"' in e["fact"]]
        return entries if len(mine) >= 3 else []  # filed, assigned, acknowledged (the lifecycle test above)

    before = wait_for(case_facts, what="the case's facts in the public ledger")
    assert verify(before).ok
    ref = httpx.get(
        f"{system.url('intake-api')}/v1/submissions/{filed['submission_id']}",
        headers={"Authorization": f"Bearer {hotline_key}"},
    ).json()["complainant_ref"]
    erased = httpx.delete(
        f"{system.url('intake-api')}/v1/complainants/{ref}", headers={"Authorization": f"Bearer {keys['office']}"}
    )
    assert erased.status_code == 204
    gone = httpx.get(
        f"{system.url('intake-api')}/v1/complainants/{ref}", headers={"Authorization": f"Bearer {keys['office']}"}
    )
    assert gone.status_code == 410
    after = list(lines_of_url(public))
    assert after[: len(before)] == before  # every public fact byte for byte as it was, in the same place
    verdict = verify(after, expect_head=before[-1]["hash"])
    assert verdict.ok, verdict.broken
    text = "".join(e["fact"] for e in after)
    for secret in (ref, filed["name"], filed["phone"], filed["email"], filed["description"]):
        assert secret not in text
    result = CliRunner().invoke(app, ["verify", "--url", public, "--expect-head", before[-1]["hash"]])
    assert result.exit_code == 0 and "the chain verifies" in result.output, result.output
