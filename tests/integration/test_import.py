"""``rectify import`` against the real intake-api process: thousands of rows, bad ones reported, reruns harmless."""

import asyncio
import base64
import csv
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli.local import LocalSystem
from services.cli.main import app
from services.common.contracts import Role
from services.common.reference import reference
from services.intake.admin import add_agency
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration
COLUMNS = [
    "record_id",
    "category",
    "unit_id",
    "cadre",
    "description",
    "location",
    "happened_on",
    "severity",
    "complainant_name",
    "complainant_phone",
    "complainant_email",
]


class Intake:
    def __init__(self, system: LocalSystem, dsn: str, keys: dict[str, str]) -> None:
        self.system, self.dsn, self.keys = system, dsn, keys
        self.url = system.url("intake-api")

    def submissions(self, agency: str) -> int:
        async def count() -> int:
            conn = await asyncpg.connect(self.dsn)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM intake.submissions WHERE agency_id = $1", agency))
            finally:
                await conn.close()

        return asyncio.run(count())

    def run(self, file: Path, who: str = "hotline", *args: str) -> Any:
        return CliRunner().invoke(app, ["import", str(file), "--intake", self.url, "--key", self.keys[who], *args])


@pytest.fixture(scope="module")
def intake(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    dsn = asyncio.run(fresh_database(servers["DATABASE_URL"]))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers["KAFKA_BOOTSTRAP_SERVERS"],
        "DATABASE_URL": dsn,
        "INTAKE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    system = LocalSystem(env, Path(tmp_path_factory.mktemp("import-logs")))
    try:
        system.start("intake-api")
        system.wait_http("intake-api")

        async def provision() -> dict[str, str]:
            return {
                "hotline": await add_agency(dsn, "hotline", "12345", Role.CHANNEL, "hotline_12345", rate=1_000_000),
                "portal": await add_agency(dsn, "portal", "门户", Role.CHANNEL, "gov_portal", rate=1_000_000),
                "slow": await add_agency(dsn, "slow", "慢速", Role.CHANNEL, "media", rate=600),
                "office": await add_agency(dsn, "office", "纠风办", Role.SUPERVISOR),
            }

        yield Intake(system, dsn, asyncio.run(provision()))
    finally:
        system.stop_all()


def good_row(i: int, rng: random.Random) -> dict[str, str]:
    ref = reference()
    return {
        "record_id": f"12345-2026-{i:06d}",
        "category": rng.choice(sorted(ref.categories)),
        "unit_id": rng.choice(sorted(ref.units)),
        "cadre": "",
        "description": f"热线工单 {i}：窗口办事拖延",
        "location": "",
        "happened_on": "2026-10-0" + str(1 + i % 9),
        "severity": rng.choice(["general", "urgent", "complex"]),
        "complainant_name": f"市民{i}",
        "complainant_phone": f"139{i:08d}",
        "complainant_email": "",
    }


BAD_CHANGES: list[tuple[dict[str, str], str]] = [
    ({"unit_id": "atlantis"}, "unit_id"),
    ({"category": "gossip"}, "category"),
    ({"complainant_phone": "<script>"}, "complainant_phone"),
    ({"description": ""}, "description"),
    ({"happened_on": "2026-13-45"}, "happened_on"),
    ({"severity": "apocalyptic"}, "severity"),
    ({"complainant_name": ""}, "complainant_name"),
    ({"complainant_email": "not-an-email"}, "complainant_email"),
]


def records(n: int, start: int = 0) -> tuple[list[dict[str, str]], dict[int, str]]:
    """n rows, every 97th one bad in a known field; returns the rows and {row index: bad field}."""
    rng = random.Random(2026 + start)
    rows, bad = [], {}
    for i in range(start, start + n):
        row = good_row(i, rng)
        if i % 97 == 13:
            change, column = BAD_CHANGES[(i // 97) % len(BAD_CHANGES)]
            row |= change
            bad[i - start] = column
        rows.append(row)
    return rows, bad


def read_errors(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_csv_export_of_thousands_of_rows(intake: Intake, tmp_path: Path) -> None:
    rows, bad = records(1200)
    rows[500]["description"] = '多行\n描述，含"引号"'  # a quoted cell over two lines shifts the lines after it
    file = tmp_path / "hotline.csv"
    with file.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, COLUMNS)
        out.writeheader()
        out.writerows(rows)
        f.write("12345-2026-x,inaction,meiwan\n")  # too few cells
    errors = tmp_path / "errors.csv"

    first = intake.run(file, "hotline", "--errors", str(errors))
    assert first.exit_code == 1, first.output
    expected = {(i + 2 + (i > 500), column) for i, column in bad.items()} | {(1203, "row")}
    assert {(int(e["line"]), e["field"]) for e in read_errors(errors)} == expected
    assert f"1201 rows: {1200 - len(bad)} accepted, {len(bad) + 1} bad" in first.output
    assert intake.submissions("hotline") == 1200 - len(bad)

    again = intake.run(file, "hotline", "--errors", str(errors))  # a rerun: the same report, nothing new stored
    assert again.exit_code == 1 and {(int(e["line"]), e["field"]) for e in read_errors(errors)} == expected
    assert intake.submissions("hotline") == 1200 - len(bad)

    changed = tmp_path / "changed.csv"
    with changed.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, COLUMNS)
        out.writeheader()
        out.writerow(rows[0] | {"description": "改过的内容"})  # same record id, other content
    result = intake.run(changed, "hotline")
    assert result.exit_code == 1 and "409" in result.output


def test_a_jsonl_export(intake: Intake, tmp_path: Path) -> None:
    rows, bad = records(800, start=5000)
    lines = [json.dumps({k: v for k, v in r.items() if v}, ensure_ascii=False) for r in rows]
    nested = {"record_id": "nested-1", "category": "integrity", "unit_id": "renwan", "description": "公车私用"}
    lines.insert(100, json.dumps(nested | {"complainant": {"name": "李四", "phone": "13800000000"}}))
    lines.insert(200, "{not json")
    lines.insert(300, "[1, 2]")
    lines.insert(400, "")  # blank lines are skipped but still counted as lines
    lines.insert(401, json.dumps(rows[0] | {"admin": "yes"}))
    file = tmp_path / "hotline.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = tmp_path / "errors.csv"

    result = intake.run(file, "portal", "--errors", str(errors))
    assert result.exit_code == 1, result.output
    found = {(int(e["line"]), e["field"]) for e in read_errors(errors)}
    assert {(201, "line"), (301, "line"), (402, "admin")} <= found
    assert len(found) == len(bad) + 3
    assert intake.submissions("portal") == 800 - len(bad) + 1
    assert intake.run(file, "portal").exit_code == 1
    assert intake.submissions("portal") == 800 - len(bad) + 1


def test_exit_codes_and_the_rate_limit(intake: Intake, tmp_path: Path) -> None:
    rows, bad = records(140, start=9000)
    rows = [r for i, r in enumerate(rows) if i not in bad]
    file = tmp_path / "ok.csv"
    with file.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, COLUMNS)
        out.writeheader()
        out.writerows(rows)
    # 600 a minute is a burst of 100, then 10 a second: the importer waits as Retry-After says
    result = intake.run(file, "slow", "--concurrency", "8")
    assert result.exit_code == 0, result.output
    assert intake.submissions("slow") == len(rows)

    assert intake.run(file, "office").exit_code == 2  # a supervisor may not file: the whole run stops
    no_key = CliRunner().invoke(app, ["import", str(file), "--intake", intake.url, "--key", ""])
    assert no_key.exit_code == 2
    assert intake.run(tmp_path / "missing.csv").exit_code == 2
    odd = tmp_path / "odd.csv"
    odd.write_text("record_id,category,colour\n1,inaction,red\n", encoding="utf-8")
    assert intake.run(odd).exit_code == 2
    assert intake.run(tmp_path / "x.txt").exit_code == 2
