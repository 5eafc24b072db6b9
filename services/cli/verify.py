"""``rectify verify``: check the public ledger's whole chain and recompute every published ranking from it.

rectify verify --url https://public.example.org     the public site's download (/data/ledger.jsonl): what anyone can do
rectify verify --file ledger.jsonl                  a downloaded copy
rectify verify --database                           publicity's own table (DATABASE_URL), for operators
rectify verify ... --expect-head HASH               the chain must pass through a head hash archived earlier

Exit status 0 when everything verifies, 1 at the first broken link (its sequence number and what is wrong) or
a ranking that does not recompute. The algorithm is in docs/public-ledger.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from services.publicity.ledger import Verdict, verify

console = Console()


@dataclass
class CaseTimes:
    """What the case facts in the ledger say of one case: every dated step, and every unit that held it."""

    moments: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)


@dataclass
class RankingCheck:
    seq: int
    period: str
    tier: str
    formula_version: str
    result_hash: str
    problem: str | None  # None: recomputed byte for byte
    anchored: int = 0  # duration items found in the case facts of the ledger
    unanchored: list[str] = field(default_factory=list)  # the first few that were not
    notes: list[str] = field(default_factory=list)  # comparisons with this build's formula and calendar


@dataclass
class Report:
    chain: Verdict
    rankings: list[RankingCheck]

    @property
    def ok(self) -> bool:
        return self.chain.ok and all(r.problem is None and not r.unanchored for r in self.rankings)


class _Tap:
    """Passes entries through to the chain check while keeping what the ranking checks need."""

    def __init__(self, entries: Iterable[dict[str, Any]], rankings: bool) -> None:
        self.entries = entries
        self.rankings = rankings
        self.cases: dict[str, CaseTimes] = {}
        self.ranking_facts: list[tuple[int, dict[str, Any]]] = []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for entry in self.entries:
            if self.rankings and isinstance(entry.get("fact"), str):
                self._keep(entry)
            yield entry

    def _keep(self, entry: dict[str, Any]) -> None:
        try:
            doc = json.loads(entry["fact"])
        except ValueError:
            return  # the chain check names it
        if doc.get("kind") == "case":
            payload = doc["payload"]
            times = self.cases.setdefault(payload["case_id"], CaseTimes())
            times.moments.add(payload["entry"]["at"])
            if payload.get("responsible_unit_id"):
                times.units.add(payload["responsible_unit_id"])
        elif doc.get("kind") == "ranking":
            self.ranking_facts.append((entry.get("seq", 0), doc["payload"]))


def check_ranking(seq: int, payload: dict[str, Any], cases: dict[str, CaseTimes]) -> RankingCheck:
    """Recompute one published ranking from its evidence; anchor its durations in the ledger's case facts."""
    from services.rectification.domain.calendar import load_calendar
    from services.scoring.domain.evidence import calendar_disagreements, check
    from services.scoring.domain.formula import available_formulas, load_formula

    out = RankingCheck(
        seq, payload["period"], payload["tier"], payload["formula_version"], payload["result_hash"], check(payload)
    )
    evidence = payload.get("evidence")
    if not evidence:
        return out
    for unit in evidence["inputs"]["units"]:
        for kind in ("response", "rectification"):
            for case_id, start, end in unit[kind]:
                times = cases.get(case_id)
                if times is not None and {start, end} <= times.moments and unit["unit_id"] in times.units:
                    out.anchored += 1
                elif len(out.unanchored) < 5:
                    out.unanchored.append(f"{unit['unit_id']} {kind} {case_id} {start}..{end}")
    version = evidence["formula"]["version"]
    if version in available_formulas():
        same = load_formula(version).model_dump(mode="json") == evidence["formula"]
        out.notes.append(f"formula {version} {'is' if same else 'is NOT'} this build's file")
    calendar = load_calendar()
    if calendar.version == evidence["calendar"]["version"]:
        days = calendar_disagreements(evidence["calendar"], calendar)
        out.notes.append(
            f"calendar agrees with this build's {calendar.version}"
            if not days
            else f"calendar disagrees with this build's on {', '.join(d.isoformat() for d in days[:5])}"
        )
    return out


def verify_entries(
    entries: Iterable[dict[str, Any]], *, rankings: bool = True, expect_head: str | None = None
) -> Report:
    tap = _Tap(entries, rankings)
    chain = verify(tap, expect_head)
    checks = [check_ranking(seq, payload, tap.cases) for seq, payload in tap.ranking_facts] if chain.ok else []
    return Report(chain, checks)


# ---------------------------------------------------------------------------- sources


def lines_of_file(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def lines_of_url(url: str, client: Any = None) -> Iterator[dict[str, Any]]:
    """The public download ``{url}/data/ledger.jsonl``, streamed."""
    import httpx

    own = client is None
    http = client or httpx.Client(timeout=60, follow_redirects=True)
    try:
        with http.stream("GET", f"{url.rstrip('/')}/data/ledger.jsonl") as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)
    finally:
        if own:
            http.close()


async def entries_of_database(dsn: str) -> list[dict[str, Any]]:
    from services.common.db import create_pool
    from services.publicity.adapters.ledger import every_entry

    pool = await create_pool(dsn, "publicity", max_size=1)
    try:
        return [e.to_json() async for chunk in every_entry(pool) for e in chunk]
    finally:
        await pool.close()


# ---------------------------------------------------------------------------- the command


def print_report(report: Report) -> None:
    chain = report.chain
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(chain.facts.items())) or "no facts"
    if chain.ok:
        console.print(
            f"[green]the chain verifies[/green]: {chain.entries:,} entries ({kinds}); "
            f"head {chain.head.seq} {chain.head.hash}"
        )
    else:
        console.print(f"[red]the chain is broken at entry {chain.broken.seq}[/red]: {chain.broken.problem}")  # type: ignore[union-attr]
        console.print(f"the last good entry is {chain.head.seq} ({chain.head.hash})")
        return
    for r in report.rankings:
        name = f"entry {r.seq}: ranking {r.period} {r.tier} (formula {r.formula_version})"
        if r.problem is not None:
            console.print(f"[red]{name} does not recompute[/red]: {r.problem}")
        else:
            console.print(f"[green]{name} recomputes byte for byte[/green]: result {r.result_hash}")
        console.print(f"  {r.anchored:,} duration items anchored in the ledger's case facts", highlight=False)
        for item in r.unanchored:
            console.print(f"  [red]not in the ledger's case facts[/red]: {item}", highlight=False)
        for note in r.notes:
            console.print(f"  {note}", highlight=False)


def verify_command(
    url: Annotated[str | None, typer.Option(help="the public site's address: reads its /data/ledger.jsonl")] = None,
    file: Annotated[Path | None, typer.Option(help="a downloaded ledger.jsonl", exists=True, dir_okay=False)] = None,
    database: Annotated[bool, typer.Option("--database", help="publicity's table, from DATABASE_URL")] = False,
    rankings: Annotated[bool, typer.Option(help="recompute every published ranking from its evidence")] = True,
    expect_head: Annotated[
        str | None, typer.Option(help="a head hash archived before: the chain must reach it")
    ] = None,
) -> None:
    """Check the public ledger's whole chain and recompute each published ranking from it (docs/public-ledger.md)."""
    if sum((url is not None, file is not None, database)) != 1:
        console.print("[red]name one source[/red]: --url, --file or --database")
        raise typer.Exit(2)
    if url is not None:
        entries: Iterable[dict[str, Any]] = lines_of_url(url)
    elif file is not None:
        entries = lines_of_file(file)
    else:
        from services.common.settings import get_settings

        entries = asyncio.run(entries_of_database(get_settings().database_url))
    report = verify_entries(entries, rankings=rankings, expect_head=expect_head)
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)
