"""``rectify ranking``: show, publish, recompute and what-if, for unit rankings (docs/scoring.md).

rectify ranking show --period 2026-11                 the ranking as the projection stands now
rectify ranking publish --period 2026-11              publish each tier's ranking (RankingPublished)
rectify ranking recompute --period 2026-11            recompute the published rankings from the case-event log
rectify ranking what-if --period 2026-11 --formula v2 the same figures under another formula: how the ranks move
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from services.scoring.domain.periods import Period
    from services.scoring.domain.ranking import Ranking

ranking_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Unit rankings: show, publish, recompute from the log, what-if (docs/scoring.md).",
)
console = Console()

PeriodOption = Annotated[str, typer.Option("--period", help="YYYY-MM (month), YYYY-Qn (quarter) or YYYY (year)")]
TierOption = Annotated[str | None, typer.Option("--tier", help="township or department (default: both)")]
FormulaOption = Annotated[str, typer.Option("--formula", help="formula version (services/scoring/config)")]


def _period(text: str) -> Period:
    from services.scoring.domain.periods import Period, PeriodError

    try:
        return Period.parse(text)
    except PeriodError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _tiers(tier: str | None) -> list[str]:
    from services.scoring.service import TIERS

    if tier is None:
        return list(TIERS)
    if tier not in TIERS:
        console.print(f"[red]unknown tier {tier!r}[/red]; choose one of: {', '.join(TIERS)}")
        raise typer.Exit(2)
    return [tier]


def _settings():  # type: ignore[no-untyped-def]
    from services.common.settings import get_settings

    return get_settings()


@contextmanager
def log_progress(what: str) -> Iterator[Callable[[int], None]]:
    """A progress line for reading the log: events so far, rate and time (the total is not known in advance)."""
    columns = (SpinnerColumn(), TextColumn(f"{what}: {{task.completed:,.0f}} events"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(what, total=None)
        yield lambda n: progress.advance(task, n)


def ranking_table(ranking: Ranking, title: str) -> Table:
    from services.common.reference import reference

    units = reference().units
    table = Table(title=title, show_lines=False)
    for column in ("rank", "unit", "cases", "composite", "response", "on time", "first pass", "resolution"):
        table.add_column(column, justify="left" if column == "unit" else "right")
    table.add_column("satisfaction", justify="right")
    table.add_column("median days (resp/rect)", justify="right")
    table.add_column("notes")
    for row in ranking.rows:
        rates = row["rates"]
        name = units[row["unit_id"]].zh if row["unit_id"] in units else row["unit_id"]
        notes = ["十佳" if row["top_ten"] else "", *row["flags"]]
        if row["decided_by"] not in (None, "composite"):
            notes.append(f"tie broken by {row['decided_by']}")
        if not row["eligible"]:
            notes.append("too few cases")
        table.add_row(
            str(row["rank"] or "–"),
            f"{name} ({row['unit_id']})",
            str(row["cases"]),
            row["composite"] or "–",
            *(rates[r]["value"] or "–" for r in ("response", "on_time", "first_pass", "resolution", "satisfaction")),
            f"{row['median_response_days'] or '–'} / {row['median_rectification_days'] or '–'}",
            " ".join(n for n in notes if n),
        )
    return table


@ranking_app.command()
def show(period: PeriodOption, tier: TierOption = None, formula: FormulaOption = "v1") -> None:
    """The ranking as the projection stands now (provisional until the period has settled)."""
    from services.scoring.wiring import show_ranking

    p = _period(period)
    for t in _tiers(tier):
        ranking, settled = asyncio.run(show_ranking(_settings(), p, t, formula))
        state = "settled" if settled else f"provisional: settles at {p.cutoff.isoformat()}"
        console.print(ranking_table(ranking, f"{p} {t}, formula {formula} ({state})"))
        console.print(f"result hash {ranking.result_hash}  position {ranking.document['position']}")


@ranking_app.command()
def publish(period: PeriodOption, tier: TierOption = None, formula: FormulaOption = "v1") -> None:
    """Publish each tier's ranking for a settled period: RankingPublished, through scoring's outbox."""
    from services.scoring.service import NotSettled, PublishConflict
    from services.scoring.wiring import publish_ranking

    p = _period(period)
    try:
        done = asyncio.run(publish_ranking(_settings(), p, _tiers(tier), formula))
    except (NotSettled, PublishConflict) as exc:
        console.print(f"[red]not published:[/red] {exc}")
        raise typer.Exit(1) from None
    for publication in done:
        d = publication.ranking.document
        what = "published" if publication.new else "already published (unchanged)"
        console.print(f"{d['period']} {d['tier']} formula {d['formula_version']}: {what}, id {publication.ranking_id}")
        console.print(f"  top ten: {', '.join(d['top_ten']) or '–'}")
        console.print(f"  flagged: {', '.join(f['unit_id'] for f in d['bottom_flags']) or '–'}")
        console.print(f"  position {d['position']}")
        console.print(f"  input hash {publication.ranking.input_hash}")
        console.print(f"  result hash {publication.ranking.result_hash}")


@ranking_app.command()
def recompute(
    period: PeriodOption,
    tier: TierOption = None,
    idle: Annotated[float, typer.Option(help="seconds without records that end the log")] = 3.0,
) -> None:
    """Recompute the period's published rankings from the case-event log; exit 1 unless every hash matches."""
    from services.scoring.wiring import recompute_ranking

    p = _period(period)
    with log_progress("reading rectify.case.events.v1") as advance:
        verdicts = asyncio.run(recompute_ranking(_settings(), p, _tiers(tier), idle_s=idle, progress=advance))
    if not verdicts:
        console.print(f"[yellow]nothing published for {p}[/yellow]")
        raise typer.Exit(1)
    for v in verdicts:
        payload = v.published.payload
        console.print(f"{payload['period']} {payload['tier']} formula {payload['formula_version']}")
        console.print(f"  published  {payload['result_hash']}")
        if v.recomputed is not None:
            console.print(f"  recomputed {v.recomputed.result_hash}")
        console.print("  [green]identical[/green]" if v.matches else f"  [red]differs:[/red] {v.problem}")
    if not all(v.matches for v in verdicts):
        raise typer.Exit(1)


@ranking_app.command("what-if")
def what_if(
    period: PeriodOption,
    formula: FormulaOption,
    against: Annotated[str, typer.Option(help="the formula to compare with")] = "v1",
    tier: TierOption = None,
) -> None:
    """Rank the period's figures under another formula and show how each unit's rank moves."""
    from services.scoring.wiring import what_if_ranking

    p = _period(period)
    for t in _tiers(tier):
        before, after, changes = asyncio.run(what_if_ranking(_settings(), p, t, formula, against))
        scores = {
            name: {r["unit_id"]: r["composite"] for r in ranking.rows}
            for name, ranking in ((against, before), (formula, after))
        }
        table = Table(title=f"{p} {t}: formula {against} → {formula}")
        for column in ("unit", f"rank {against}", f"rank {formula}", "move", f"score {against}", f"score {formula}"):
            table.add_column(column, justify="left" if column == "unit" else "right")
        for unit, old, new in changes:
            move = "–" if old is None or new is None else (f"{old - new:+d}" if old != new else "=")
            table.add_row(
                unit, str(old or "–"), str(new or "–"), move, scores[against][unit] or "–", scores[formula][unit] or "–"
            )
        console.print(table)
        moved = sum(1 for _, old, new in changes if old != new)
        console.print(
            f"{moved} unit(s) change rank; result hashes {before.result_hash[:12]} → {after.result_hash[:12]}"
        )
