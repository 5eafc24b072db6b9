"""`rectify seed` replays a simulated month through the whole running system, once however often it is run;
afterwards the rectification worker's per-tier gauges equal counts folded from its event store, and every
`rectify rebuild` (rectification, intake, scoring, ...) equals the live projection, or restores a damaged one.

The module runs its own broker (tansu starts in milliseconds) and its own system, so the seeded month never
reaches another module's consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from services.cli.local import LocalSystem, stack_module
from services.cli.main import app
from services.cli.seed import file_demo_complaints
from services.common.contracts import decode_event
from services.common.reference import reference
from services.common.settings import get_settings
from services.intake.admin import provision_demo
from services.rectification.domain.case import UNIT_STATUSES, CaseState, CaseStatus, evolve, holdups
from services.scoring.domain.periods import Period
from services.scoring.wiring import show_ranking
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.e2e
SEED, CASES = 7, 120
PATH_EVENTS = {
    "CaseFiled",
    "CaseAssigned",
    "CaseAcknowledged",
    "RectificationSubmitted",
    "RectificationRejected",
    "RectificationAccepted",
    "CasePublished",
    "SatisfactionRated",
    "CaseReopened",
    "CaseExposed",
    "CaseTransferred",
    "CaseDismissed",
    "CaseMerged",
    "DeadlinePassed",
    "CaseEscalated",
    "CaseClosed",
}


@pytest.fixture(scope="module")
def system(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    started = stack_module().start_broker(tmp_path_factory.mktemp("seed-broker"))
    try:
        own = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{started['port']}", "DATABASE_URL": servers["DATABASE_URL"]}
        with running_system(own, tmp_path_factory.mktemp("seed-logs"), own_broker=False) as local:
            yield local
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(started["pid"]), signal.SIGTERM)


def rectify(system: LocalSystem, *args: str) -> str:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABASE_URL", system.base_env["DATABASE_URL"])
        env.setenv("KAFKA_BOOTSTRAP_SERVERS", system.base_env["KAFKA_BOOTSTRAP_SERVERS"])
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(app, list(args))
        finally:
            get_settings.cache_clear()
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def seeded(system: LocalSystem) -> str:
    return rectify(system, "seed", "--seed", str(SEED), "--cases", str(CASES), "--timeout", "240")


def fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def sent_so_far(dsn: str) -> dict[str, int]:
    """What the seed has caused: the commands it stored and sent, and what rectification made of them."""
    [row] = fetch(
        dsn,
        "SELECT (SELECT count(*) FROM intake.seeded_commands) AS stored,"
        " (SELECT count(*) FROM intake.outbox WHERE topic = 'rectify.intake.commands.v1') AS sent,"
        " (SELECT count(*) FROM rectification.processed_messages p JOIN intake.seeded_commands s"
        "   ON s.command_id = p.message_id) AS decided,"
        " (SELECT count(*) FROM rectification.events e JOIN intake.seeded_commands s"
        "   ON s.command_id = (e.envelope->>'causation_id')::uuid) AS events",
    )
    return dict(row)


def test_the_month_travels_the_real_path_to_every_service(system: LocalSystem, seeded: str) -> None:
    dsn = system.base_env["DATABASE_URL"]
    assert f"seeded {CASES} simulated cases" in seeded
    counts = sent_so_far(dsn)
    assert counts["stored"] == counts["sent"] == counts["decided"] > CASES
    kinds = {r["event_type"] for r in fetch(dsn, "SELECT DISTINCT event_type FROM rectification.events")}
    assert kinds >= PATH_EVENTS, PATH_EVENTS - kinds
    streams = fetch(
        dsn, "SELECT count(DISTINCT stream_id) AS n FROM rectification.events WHERE stream_id LIKE $1", f"SIM-{SEED}-%"
    )
    assert streams[0]["n"] == CASES
    # the acting identities are the simulation's, recorded as seeded
    agencies = {r["agency_id"] for r in fetch(dsn, "SELECT DISTINCT agency_id FROM intake.seeded_commands")}
    assert {"hotline-12345", "jiufengban", "deadline-watcher", "satisfaction-survey"} <= agencies
    # scoring holds the month: every seeded case, and a ranking of the month with enough cases per unit
    facts = fetch(dsn, "SELECT count(*) AS n FROM scoring.case_facts WHERE case_id LIKE $1", f"SIM-{SEED}-%")
    assert facts[0]["n"] == CASES
    month = seeded.split("--period ")[1].split()[0]
    settings = get_settings().model_copy(update={"database_url": dsn})
    ranking, settled = asyncio.run(show_ranking(settings, Period.parse(month), "township", "v1"))
    assert not settled
    assert sum(1 for row in ranking.rows if row["eligible"]) >= 5
    # the public side shows published cases and exposures
    public = system.url("publicity-web")
    cases = httpx.get(f"{public}/api/v1/cases", params={"size": 200}, timeout=10).json()["cases"]
    assert sum(1 for c in cases if c["case_id"].startswith(f"SIM-{SEED}-")) >= 10
    exposure = httpx.get(f"{public}/api/v1/exposure", timeout=10).json()
    assert any(e["case_id"].startswith(f"SIM-{SEED}-") for e in exposure["cases"])


def test_seeding_again_sends_nothing_twice(system: LocalSystem, seeded: str) -> None:
    dsn = system.base_env["DATABASE_URL"]
    before = sent_so_far(dsn)
    again = rectify(system, "seed", "--seed", str(SEED), "--cases", str(CASES), "--timeout", "120")
    assert "nothing sent again" in again
    assert sent_so_far(dsn) == before


def test_open_and_overdue_gauges_per_tier_equal_the_event_store(system: LocalSystem, seeded: str) -> None:
    """The gauges (refreshed every second here) against each case folded from rectification's events."""
    dsn = system.base_env["DATABASE_URL"]
    tiers = {unit_id: unit.tier for unit_id, unit in reference().units.items()}
    metrics_url = f"http://127.0.0.1:{system.running['rectification-worker'].metrics_port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        expected = counted_from_events(dsn, tiers, datetime.now(UTC))
        gauges = scraped(metrics_url)
        if gauges == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert gauges == expected
    assert sum(open_ for open_, _ in expected.values()) > 0
    assert sum(overdue for _, overdue in expected.values()) > 0  # the month's stalled and late cases


def counted_from_events(dsn: str, tiers: dict[str, str], now: datetime) -> dict[str, tuple[int, int]]:
    """(open, overdue) per tier: open = someone holds the case; overdue = open with a running deadline past,
    recorded as breached or not."""
    states: dict[str, CaseState | None] = {}
    for row in fetch(dsn, "SELECT stream_id, envelope::text AS e FROM rectification.events ORDER BY global_position"):
        states[row["stream_id"]] = evolve(
            states.get(row["stream_id"]), decode_event(row["e"]).payload, row["stream_id"]
        )
    totals = {tier: (0, 0) for tier in set(tiers.values())}
    for state in states.values():
        assert state is not None
        if not any(h.ended_at is None for h in holdups(state)):
            continue
        tier = tiers[state.responsible_unit_id or state.unit_id]
        running = [state.ack_due] if state.status is CaseStatus.ASSIGNED else []
        running += [state.rectify_due] if state.status in UNIT_STATUSES else []
        late = any(due is not None and due < now for due in running)
        open_, overdue = totals[tier]
        totals[tier] = (open_ + 1, overdue + late)
    return totals


def scraped(url: str) -> dict[str, tuple[int, int]]:
    values: dict[str, dict[str, int]] = {"rectify_cases_open": {}, "rectify_cases_overdue": {}}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            if sample.name in values:
                values[sample.name][sample.labels["tier"]] = int(sample.value)
    opened, overdue = values["rectify_cases_open"], values["rectify_cases_overdue"]
    return {tier: (opened[tier], overdue.get(tier, 0)) for tier in opened}


@pytest.fixture(scope="module")
def submitted(system: LocalSystem, seeded: str) -> list[str]:
    """Complaints filed over HTTP, an assignment, and a command the decider refuses, all decided: what intake
    projects from the outcomes. Returns the submission ids."""
    keys = asyncio.run(provision_demo(system.base_env["DATABASE_URL"]))
    filer, supervisor = keys["hotline-12345"], keys["jiufeng-office"]
    filed = file_demo_complaints(system.url("intake-api"), filer, 4, seed=SEED)
    submissions = [(a["submission_id"], filer) for a in filed]
    with httpx.Client(base_url=system.url("intake-api"), timeout=10) as client:
        for case, command, body in (
            (filed[0]["case_id"], "assign", {"responsible_unit_id": "meiwan", "first_officer": "张主任"}),
            (filed[1]["case_id"], "accept", {}),  # nothing to accept yet: the decider refuses it
        ):
            r = client.post(f"/v1/cases/{case}/{command}", json=body, headers={"Authorization": f"Bearer {supervisor}"})
            assert r.status_code == 202, r.text
            submissions.append((r.json()["submission_id"], supervisor))
        deadline = time.monotonic() + 30
        decided = set()
        for submission, key in submissions:
            while True:
                r = client.get(f"/v1/submissions/{submission}", headers={"Authorization": f"Bearer {key}"})
                if r.status_code == 200 and r.json()["status"] != "received":
                    decided.add(r.json()["status"])
                    break
                assert time.monotonic() < deadline, r.text
                time.sleep(0.2)
    assert decided == {"applied", "refused"}
    return [s for s, _ in submissions]


def test_every_rebuilt_projection_equals_the_live_one(system: LocalSystem, submitted: list[str]) -> None:
    out = rectify(system, "rebuild", "all", "--idle", "1")
    for name in ("rectification", "intake", "scoring"):
        assert name in out
    assert "differs" not in out


def test_a_damaged_projection_differs_and_a_swap_restores_it(system: LocalSystem, submitted: list[str]) -> None:
    dsn = system.base_env["DATABASE_URL"]
    [closed] = fetch(
        dsn, "SELECT case_id FROM rectification.case_holds WHERE case_id LIKE 'SIM-%' AND ended_at IS NOT NULL LIMIT 1"
    )
    fetch(dsn, "DELETE FROM rectification.case_holds WHERE case_id = $1", closed["case_id"])
    fetch(dsn, "UPDATE intake.submissions SET status = 'received', code = NULL, reason = NULL, decided_at = NULL")
    fetch(dsn, "UPDATE intake.case_access SET status = 'received', responsible_unit_id = NULL, case_version = 0")
    for name, args in (("rectification", ()), ("intake", ("--idle", "1"))):
        with pytest.raises(AssertionError, match="differs"):
            rectify(system, "rebuild", name, *args)
        assert "differs" not in rectify(system, "rebuild", name, "--swap", *args)
        assert "differs" not in rectify(system, "rebuild", name, *args)
    statuses = {r["status"] for r in fetch(dsn, "SELECT status FROM intake.submissions")}
    assert statuses == {"applied", "refused"}
