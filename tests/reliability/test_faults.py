"""Faults injected into a whole system of this module's own: a simulated month (the `seed` scenario) and complaints
filed over HTTP flow through the real processes while services are SIGKILLed and restarted, PostgreSQL crashes
(``pg_ctl stop -m immediate``) and comes back, and the in-memory broker restarts empty. Afterwards nothing
acknowledged is lost, nothing is applied twice, no deadline breach is missed or doubled, and every projection
equals a rebuild from scratch (content hashes).

The module starts its own PostgreSQL (durable: fsync on, as in production) and its own broker, so its faults never
reach another module's servers or processes. Figures go to <artifacts>/reliability.json under "faults".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.cli.local import LocalSystem, stack_module
from services.cli.outbox_cmds import replay_outboxes
from services.cli.processes import PROCESSES
from services.cli.seed import _DECIDED as DECIDED
from services.cli.seed import MonthPlan, SeedReport, plan_seeded_month, seed_month
from services.cli.seed import _store_wave as store_wave
from services.cli.seed import _wait as wait_ids
from services.common.contracts import Role
from services.common.settings import Settings
from services.common.topics import CASE_EVENTS, COMMANDS, OUTCOMES, PUBLIC_CASES, RANKINGS, relay_marker
from services.intake.admin import add_agency
from services.intake.rebuild import rebuild_intake
from services.publicity.wiring import rebuild_publicity
from services.rectification.rebuild import EventsMoved, rebuild_rectification
from services.rectification.watcher import WATCHER, WATCHER_LOCK
from services.scoring.wiring import rebuild_scoring
from tests.e2e.conftest import running_system
from tests.reliability.conftest import Figures, artifacts, wait_for

pytestmark = pytest.mark.faults
SEED, CASES, DAYS = 17, 60, 30
KILL_ROUNDS = 2

# The schema of each topic's consumer (its processed_messages; scoring's log_epochs).
CONSUMED = {
    COMMANDS.name: "rectification",
    CASE_EVENTS.name: "scoring",
    PUBLIC_CASES.name: "publicity",
    OUTCOMES.name: "intake",
    RANKINGS.name: "publicity",
}
RELAYS = ("intake", "rectification", "scoring", "publicity")  # every schema whose worker runs an outbox relay
ALL_OUTBOXES = " UNION ALL ".join(f"SELECT topic, published_at FROM {schema}.outbox" for schema in RELAYS)
OUTBOX_ROWS = f"SELECT count(*) AS n FROM ({ALL_OUTBOXES}) o"
COMPLAINT: dict[str, Any] = {
    "category": "service_window",
    "unit_id": "meiwan",
    "description": "窗口工作人员态度生硬（故障注入）",
    "severity": "general",
    "complainant": {"name": "赵某某", "phone": "13900000000"},
}


def sql(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass
class Faulty:
    """The module's servers and processes, and the faults it can inject into them."""

    local: LocalSystem
    base: Path
    pids: dict[str, Any]
    key: str = ""

    @property
    def dsn(self) -> str:
        return self.local.base_env["DATABASE_URL"]

    @property
    def bootstrap(self) -> str:
        return self.local.base_env["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def settings(self) -> Settings:
        return Settings(kafka_bootstrap_servers=self.bootstrap, database_url=self.dsn)

    def _save_pids(self) -> None:
        (self.base / "pids.json").write_text(json.dumps(self.pids))  # what stack.stop ends, by PID

    def sigkill(self, name: str) -> None:
        running = self.local.running[name]
        os.kill(running.popen.pid, signal.SIGKILL)
        running.popen.wait(10)
        del self.local.running[name]

    def restart(self, name: str, http_port: int | None, metrics_port: int) -> None:
        self.local.start(name, http_port=http_port, metrics_port=metrics_port)
        wait_for(lambda: self.ready(name), 60, f"{name} ready again")

    def ready(self, name: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            port = self.local.running[name].metrics_port
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        return False

    def crash_postgres(self) -> None:
        stack_module().crash_postgres(Path(self.pids["postgres"]["data"]))

    def start_postgres(self) -> None:
        pg = self.pids["postgres"]
        self.pids["postgres"] = stack_module().start_cluster(Path(pg["data"]), int(pg["port"]), durable=True)
        self._save_pids()

    def restart_broker(self) -> None:
        """SIGTERM the broker and start a fresh one on the same port: every topic and committed offset is gone."""
        broker = self.pids["broker"]
        os.kill(int(broker["pid"]), signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(int(broker["pid"]), 0)
        self.pids["broker"] = stack_module().start_broker(self.base, port=int(broker["port"]))
        self._save_pids()


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    stack = stack_module()
    base = Path(tempfile.mkdtemp(prefix="rectify-faults-"))
    servers = stack.start(base, durable=True)
    try:
        with running_system(servers, artifacts(tmp_path_factory) / "faults-logs", own_broker=False) as local:
            # the deadline watcher scans every second (running_system), as in the other end-to-end modules
            system = Faulty(local, base, json.loads((base / "pids.json").read_text()))
            system.key = asyncio.run(
                add_agency(
                    system.dsn, "faults-hotline", "fault injection", Role.CHANNEL, channel="hotline_12345", rate=100_000
                )
            )
            yield system
    finally:
        stack.stop(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def figures(figures: Figures) -> dict[str, Any]:
    return figures["faults"]


class Filer:
    """Files complaints over HTTP from a thread until stopped; keeps the submission ids that were answered 202."""

    def __init__(self, system: Faulty, pause_s: float = 0.05) -> None:
        self.system, self.pause_s = system, pause_s
        self.acked: list[tuple[str, str]] = []  # (submission id, case id)
        self.failed = 0
        self.statuses: Counter[int] = Counter()  # every HTTP answer, by status
        self.retry_after: Counter[str | None] = Counter()  # the Retry-After header of every 503
        self.in_flight = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Filer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.system.key}"}
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                try:
                    url = self.system.local.url("intake-api")
                except KeyError:  # being restarted
                    time.sleep(0.05)
                    continue
                self.in_flight = 1
                try:
                    r = http.post(f"{url}/v1/complaints", json=COMPLAINT, headers=headers)
                    self.statuses[r.status_code] += 1
                    if r.status_code == 503:
                        self.retry_after[r.headers.get("retry-after")] += 1
                    if r.status_code == 202:
                        self.acked.append((r.json()["submission_id"], r.json()["case_id"]))
                    else:
                        self.failed += 1
                except httpx.HTTPError:
                    self.failed += 1
                finally:
                    self.in_flight = 0
                time.sleep(self.pause_s)


class Seeding:
    """``rectify seed``'s month, replayed from a thread (it waits until every service has taken it on)."""

    def __init__(self, system: Faulty) -> None:
        self.system = system
        self.report: SeedReport | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            dsn = self.system.dsn
            plan = asyncio.run(plan_seeded_month(dsn, SEED, CASES, DAYS, datetime.now(UTC)))
            self.report = asyncio.run(seed_month(dsn, plan, timeout_s=300))
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> Seeding:
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> SeedReport:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.report is not None, "the seed did not finish"
        return self.report


def in_flight(dsn: str) -> dict[str, int]:
    """Messages on their way: outbox rows not yet published, and per consumed topic the messages produced that
    its consumer has not applied yet (poison aside: none is sent here)."""
    produced = sql(
        dsn,
        "SELECT topic, count(*) AS n, count(*) FILTER (WHERE published_at IS NULL) AS unpublished"
        f" FROM ({ALL_OUTBOXES}) o GROUP BY topic",
    )
    applied = {
        (r["schema"], r["topic"]): r["n"]
        for r in sql(
            dsn,
            "SELECT 'rectification' AS schema, topic, count(*) AS n"
            " FROM rectification.processed_messages GROUP BY topic"
            # scoring keeps no ids (exactly once by each case's applied version): the events it has counted
            " UNION ALL SELECT 'scoring', $1, coalesce(sum(events), 0)::bigint FROM scoring.log_epochs"
            " UNION ALL SELECT 'publicity', topic, count(*) FROM publicity.processed_messages GROUP BY topic"
            " UNION ALL SELECT 'intake', topic, count(*) FROM intake.processed_messages GROUP BY topic",
            CASE_EVENTS.name,
        )
    }
    out = {"unpublished": sum(r["unpublished"] for r in produced), "unapplied": 0}
    for r in produced:
        consumer = CONSUMED.get(r["topic"])
        if consumer:
            out["unapplied"] += max(0, r["n"] - applied.get((consumer, r["topic"]), 0))
    return out


def settle(system: Faulty, timeout: float = 120) -> None:
    """Wait until nothing is in flight, twice in a row a second apart."""

    def quiet() -> bool:
        first = in_flight(system.dsn)
        if any(first.values()):
            return False
        time.sleep(1)
        return not any(in_flight(system.dsn).values())

    wait_for(quiet, timeout, "every message applied")


@dataclass(frozen=True)
class Hashes:
    live: dict[str, dict[str, str]]
    rebuilt: dict[str, dict[str, str]]


def rebuild_everything(system: Faulty) -> Hashes:
    """Every projection rebuilt from scratch (the `rectify rebuild ...` functions), beside the live content hashes."""
    settings, dsn = system.settings, system.dsn

    async def rectification() -> Any:
        for _ in range(10):
            with contextlib.suppress(EventsMoved):
                return await rebuild_rectification(dsn)
        raise AssertionError("the event store kept moving under the rebuild")

    reports = {
        "rectification": asyncio.run(rectification()),
        "intake": asyncio.run(rebuild_intake(dsn, system.bootstrap, idle_s=1.0)),
        "scoring": asyncio.run(rebuild_scoring(settings, idle_s=1.0)),
        "publicity": asyncio.run(rebuild_publicity(settings, idle_s=1.0)),
    }
    ledger = reports["publicity"].ledger
    assert ledger.consistent, (ledger.missing[:5], ledger.altered[:5], ledger.chain)
    return Hashes({k: r.live for k, r in reports.items()}, {k: r.rebuilt for k, r in reports.items()})


def assert_projections_equal_rebuilds(system: Faulty) -> Hashes:
    hashes = rebuild_everything(system)
    for name, live in hashes.live.items():
        differs = [t for t, h in hashes.rebuilt[name].items() if live.get(t) != h]
        assert not differs, f"{name}: {differs} differ from a rebuild from scratch"
    return hashes


def duplicates(dsn: str) -> dict[str, int]:
    """Everything that would show an event applied twice, counted (all must be 0)."""
    [row] = sql(
        dsn,
        "SELECT (SELECT count(*) - count(DISTINCT event_id) FROM rectification.events) AS event_ids,"
        " (SELECT count(*) FROM (SELECT stream_id FROM rectification.events GROUP BY stream_id"
        "   HAVING max(stream_version) <> count(*)) s) AS stream_gaps,"
        " (SELECT count(*) FROM (SELECT 1 FROM rectification.events WHERE event_type = 'DeadlinePassed'"
        "   GROUP BY stream_id, envelope->'payload'->>'which', envelope->'payload'->>'due' HAVING count(*) > 1) d)"
        "   AS breaches_twice,"
        # scoring: every case applied up to its last event, no case the store lacks, and as many events counted
        # (in its epochs' tallies) as the store holds: one event applied twice, or one missed, shows here
        " (SELECT count(*) FROM (SELECT stream_id, max(stream_version) AS v FROM rectification.events"
        "   GROUP BY stream_id) e FULL JOIN scoring.case_facts f ON f.case_id = e.stream_id"
        "   WHERE f.version IS DISTINCT FROM e.v)"
        " + abs((SELECT coalesce(sum(events), 0)::bigint FROM scoring.log_epochs)"
        "   - (SELECT count(*) FROM rectification.events))"
        "   AS scored_not_once,"
        " (SELECT count(*) FROM intake.submissions s WHERE s.status <> 'received' AND NOT EXISTS"
        "   (SELECT 1 FROM rectification.processed_messages p WHERE p.message_id = s.submission_id)) AS decided_unseen",
    )
    return dict(row)


def missed_breaches(dsn: str) -> int:
    """Running deadlines more than a few scans past due and still not recorded as breached."""
    return int(
        sql(dsn, "SELECT count(*) AS n FROM rectification.open_deadlines WHERE due_at < now() - interval '10 s'")[0][
            "n"
        ]
    )


def assert_acknowledged_present(system: Faulty, acked: list[tuple[str, str]]) -> None:
    """Every 202: its submission stored and applied, its case filed in the event store and scored."""
    ids = [uuid for uuid, _ in acked]
    cases = [case for _, case in acked]
    rows = sql(
        system.dsn,
        "SELECT s.submission_id, s.status,"
        " EXISTS (SELECT 1 FROM rectification.events e WHERE e.stream_id = s.case_id AND e.event_type = 'CaseFiled')"
        "   AS filed,"
        " EXISTS (SELECT 1 FROM scoring.case_facts f WHERE f.case_id = s.case_id) AS scored"
        " FROM intake.submissions s WHERE s.submission_id = ANY($1::uuid[]) AND s.case_id = ANY($2::text[])",
        ids,
        cases,
    )
    assert len(rows) == len(set(ids)), f"{len(set(ids)) - len(rows)} acknowledged submissions are missing"
    wrong = [dict(r) for r in rows if (r["status"], r["filed"], r["scored"]) != ("applied", True, True)]
    assert not wrong, wrong[:5]


def wait_decided(system: Faulty, acked: list[tuple[str, str]], timeout: float = 120) -> None:
    ids = [uuid for uuid, _ in acked]

    def decided() -> bool:
        q = "SELECT count(*) AS n FROM intake.submissions"
        q += " WHERE submission_id = ANY($1::uuid[]) AND status <> 'received'"
        return int(sql(system.dsn, q, ids)[0]["n"]) == len(set(ids))

    wait_for(decided, timeout, "every acknowledged submission decided")


@contextlib.contextmanager
def watcher_held(dsn: str) -> Iterator[None]:
    """Hold the deadline watcher's lock (as `rectify seed` does) from a thread of its own, until the block ends."""
    locked, release = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", WATCHER_LOCK)
            locked.set()
            await asyncio.to_thread(release.wait)
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    assert locked.wait(30), "the deadline watcher's lock was not granted"
    try:
        yield
    finally:
        release.set()
        thread.join(10)


# ----------------------------------------------------------------------------------------------------- the faults


def test_killed_services_lose_nothing_and_apply_nothing_twice(faulty: Faulty, figures: dict[str, Any]) -> None:
    """The month and HTTP filings flow while each process is SIGKILLed and restarted, round after round."""
    kills: list[dict[str, Any]] = []
    seeding = Seeding(faulty).start()
    with Filer(faulty, pause_s=0.2) as filer:
        wait_for(lambda: in_flight(faulty.dsn)["unapplied"] > 0 or None, 60, "the month starting to flow")
        for _ in range(KILL_ROUNDS):
            for name in PROCESSES:
                running = faulty.local.running[name]
                flowing = in_flight(faulty.dsn)
                faulty.sigkill(name)
                kills.append({"process": name, **flowing, "http_in_flight": filer.in_flight})
                time.sleep(0.5)
                faulty.restart(name, running.http_port, running.metrics_port)
        report = seeding.join()
    faulty.local.assert_alive()
    wait_decided(faulty, filer.acked)
    settle(faulty)
    seeded = sql(
        faulty.dsn,
        "SELECT count(*) AS stored, count(p.message_id) AS decided FROM intake.seeded_commands s"
        " LEFT JOIN rectification.processed_messages p ON p.message_id = s.command_id",
    )[0]
    assert seeded["stored"] == seeded["decided"] == len(report.plan.commands)
    assert_acknowledged_present(faulty, filer.acked)
    assert duplicates(faulty.dsn) == dict.fromkeys(duplicates(faulty.dsn), 0)
    assert missed_breaches(faulty.dsn) == 0
    assert_projections_equal_rebuilds(faulty)
    figures["killed_services"] = {
        "kills": len(kills),
        "processes": sorted({k["process"] for k in kills}),
        "seeded_commands": len(report.plan.commands),
        "case_events": report.events,
        "http_acknowledged": len(filer.acked),
        "http_refused_while_down": filer.failed,
        "in_flight_at_kills": [k["unpublished"] + k["unapplied"] for k in kills],
        "lost": 0,
        "duplicated": 0,
    }


def test_a_postgresql_crash_under_load_loses_nothing_acknowledged(faulty: Faulty, figures: dict[str, Any]) -> None:
    """``pg_ctl stop -m immediate`` while complaints are being filed; the same cluster restarted on the same port.
    Every process stays up: readiness goes red, then green on its own, and every 202 is stored and decided."""
    with Filer(faulty, pause_s=0.01) as filer, Filer(faulty, pause_s=0.01) as second:
        wait_for(lambda: len(filer.acked) + len(second.acked) >= 30 or None, 60, "filings flowing")
        flowing = in_flight(faulty.dsn)
        acked_before = len(filer.acked) + len(second.acked)
        http_in_flight = wait_for(lambda: filer.in_flight + second.in_flight, 10, "a filing in flight")
        faulty.crash_postgres()
        red = wait_for(lambda: [n for n in PROCESSES if not faulty.ready(n)] == list(PROCESSES) or None, 30, "red")
        time.sleep(2)  # the filings keep coming and are refused
        faulty.start_postgres()
        wait_for(lambda: all(faulty.ready(n) for n in PROCESSES), 60, "every process ready again")
        acked_at_restart = len(filer.acked) + len(second.acked)
        wait_for(lambda: len(filer.acked) + len(second.acked) >= acked_at_restart + 20 or None, 60, "202s again")
    faulty.local.assert_alive()  # nobody restarted them
    statuses = filer.statuses + second.statuses
    assert statuses[503] > 0, statuses  # the outage is answered "send it again", not as a server bug
    assert set(filer.retry_after + second.retry_after) == {"1"}
    acked = filer.acked + second.acked
    wait_decided(faulty, acked)
    settle(faulty)
    assert_acknowledged_present(faulty, acked)
    assert duplicates(faulty.dsn) == dict.fromkeys(duplicates(faulty.dsn), 0)
    dead = sql(faulty.dsn, "SELECT count(*) AS n FROM rectification.dead_letters")[0]["n"]
    assert dead == 0, "a message was dead-lettered because the database was down"
    assert_projections_equal_rebuilds(faulty)
    figures["postgresql_crash"] = {
        "crashes": 1,
        "in_flight_at_crash": flowing["unpublished"] + flowing["unapplied"],
        "http_requests_in_flight_at_crash": http_in_flight,
        "http_acknowledged": len(acked),
        "acknowledged_before_crash": acked_before,
        "refused_while_down": filer.failed + second.failed,
        "http_statuses": {str(code): n for code, n in sorted(statuses.items())},
        "all_processes_not_ready_during_outage": bool(red),
        "lost": 0,
        "duplicated": 0,
    }


def test_the_deadline_watcher_killed_around_breaches_records_each_once(faulty: Faulty, figures: dict[str, Any]) -> None:
    """A month whose breaches the simulation does not mark itself: while the watcher's lock is held, its commands
    are decided and its deadlines pass unrecorded. The rectification worker (which runs the watcher) is SIGKILLed,
    the lock let go, and the worker started and SIGKILLed again while its watcher takes the pile on. Each breach is
    then recorded exactly once, and none is left behind."""
    dsn = faulty.dsn
    plan = asyncio.run(plan_seeded_month(dsn, WATCHED_SEED, WATCHED_CASES, DAYS, datetime.now(UTC)))
    plan = replace(plan, commands=[c for c in plan.commands if c.actor.agency_id != WATCHER.agency_id])
    worker = "rectification-worker"
    with watcher_held(dsn):
        asyncio.run(store_month(dsn, plan))
        wait_for(lambda: decided_count(dsn, plan) == len(plan.commands) or None, 180, "the month decided")
        pile = sql(
            dsn,
            "SELECT case_id, which, due_at FROM rectification.open_deadlines WHERE due_at < now()"
            " AND case_id = ANY($1::text[])",
            plan.case_ids,
        )
        assert len(pile) >= 5, "the month left too few deadlines passed to watch"
        running = faulty.local.running[worker]
        faulty.sigkill(worker)
    kills = 1
    for delay in (0.0, 0.3, 0.8):  # killed again before, during or just after its first scans
        faulty.restart(worker, None, running.metrics_port)
        time.sleep(delay)
        running = faulty.local.running[worker]
        faulty.sigkill(worker)
        kills += 1
    faulty.restart(worker, None, running.metrics_port)
    wait_for(lambda: missed_breaches(dsn) == 0 or None, 60, "every passed deadline recorded")
    settle(faulty)
    recorded = sql(
        dsn,
        "SELECT stream_id, envelope->'payload'->>'which' AS which, (envelope->'payload'->>'due')::timestamptz AS due,"
        " count(*) AS n FROM rectification.events WHERE event_type = 'DeadlinePassed'"
        " AND envelope->'actor'->>'agency_id' = $1 AND stream_id = ANY($2::text[])"
        " GROUP BY 1, 2, 3",
        WATCHER.agency_id,
        plan.case_ids,
    )
    once = {(r["stream_id"], r["which"], r["due"]) for r in recorded if r["n"] == 1}
    assert all(r["n"] == 1 for r in recorded), [dict(r) for r in recorded if r["n"] != 1]
    assert {(r["case_id"], r["which"], r["due_at"]) for r in pile} <= once
    assert duplicates(dsn) == dict.fromkeys(duplicates(dsn), 0)
    assert_projections_equal_rebuilds(faulty)
    figures["deadline_watcher"] = {
        "kills": kills,
        "deadlines_passed_unrecorded_at_the_first_kill": len(pile),
        "breaches_recorded_by_the_watcher": len(recorded),
        "missed": 0,
        "doubled": 0,
    }


WATCHED_SEED, WATCHED_CASES = SEED + 1, 200


async def store_month(dsn: str, plan: MonthPlan) -> None:
    """The month's commands into intake's outbox, as `rectify seed` stores them (without taking the watcher's lock,
    which the caller holds), wave by wave."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "intake"})
    try:
        for wave in plan.waves():
            await store_wave(conn, plan.seed, wave)
            ids = [c.command_id for c in wave]
            await wait_ids(conn, DECIDED, ids, "decided", 0, len(ids), lambda *_: None, time.monotonic() + 180)
    finally:
        await conn.close()


def decided_count(dsn: str, plan: MonthPlan) -> int:
    return int(sql(dsn, DECIDED, [c.command_id for c in plan.commands])[0][0])


def test_a_broker_restart_is_refilled_from_postgresql(faulty: Faulty, figures: dict[str, Any]) -> None:
    """The in-memory broker restarts empty, once while the system is quiet and once under load. Each relay finds
    its marker topic gone and publishes its whole outbox again, in order, by itself; the consumers end where they
    were (the same content hashes as before the wipe, equal to a rebuild that reads only the refilled topics), skip
    nothing that came after, and apply nothing twice. ``rectify outbox replay`` (by hand) changes nothing either."""
    settle(faulty)
    published = sql(faulty.dsn, OUTBOX_ROWS)[0]["n"]
    with watcher_held(faulty.dsn):  # as time passes the watcher would record breaches and change the hashes
        before = assert_projections_equal_rebuilds(faulty)
        faulty.restart_broker()
        wait_for(lambda: refilled(faulty), 60, "every relay's outbox back on the broker")
        settle(faulty)
        quiet = assert_projections_equal_rebuilds(faulty)
        assert quiet.live == before.live
        assert quiet.rebuilt == before.rebuilt

    with Filer(faulty, pause_s=0.02) as filer:
        wait_for(lambda: len(filer.acked) >= 20 or None, 60, "filings flowing")
        flowing = in_flight(faulty.dsn)
        faulty.restart_broker()
        at_wipe = len(filer.acked)
        wait_for(lambda: len(filer.acked) >= at_wipe + 20 or None, 60, "filings after the wipe")
    wait_for(lambda: refilled(faulty), 60, "every relay's outbox back on the broker")
    wait_decided(faulty, filer.acked)
    with watcher_held(faulty.dsn):
        settle(faulty)
        assert_acknowledged_present(faulty, filer.acked)
        assert duplicates(faulty.dsn) == dict.fromkeys(duplicates(faulty.dsn), 0)
        loaded = assert_projections_equal_rebuilds(faulty)
        marked = asyncio.run(replay_outboxes(faulty.dsn, faulty.bootstrap, list(RELAYS)))
        assert sum(marked.values()) == sql(faulty.dsn, OUTBOX_ROWS)[0]["n"]
        settle(faulty)
        again = assert_projections_equal_rebuilds(faulty)
        assert again.live == loaded.live
    faulty.local.assert_alive()
    figures["broker_restart"] = {
        "restarts": 2,
        "records_on_the_broker_at_the_quiet_wipe": published,
        "in_flight_at_the_wipe_under_load": flowing["unpublished"] + flowing["unapplied"],
        "http_acknowledged_around_the_wipe": len(filer.acked),
        "rows_replayed_by_hand_afterwards": sum(marked.values()),
        "lost": 0,
        "duplicated": 0,
    }


def refilled(faulty: Faulty) -> bool:
    """Every relay has put its marker back on the broker, and nothing is left to publish."""

    async def topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=faulty.bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    markers = {relay_marker(schema).name for schema in RELAYS}
    return markers <= asyncio.run(topics()) and in_flight(faulty.dsn)["unpublished"] == 0
