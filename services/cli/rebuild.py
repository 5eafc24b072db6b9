"""``rectify rebuild``: rebuild a projection from the log and compare it with the running one.

rectify rebuild scoring            replay rectify.case.events.v1 into scoring_rebuild, compare content hashes
rectify rebuild scoring --swap     ... then replace scoring's projection tables with the rebuilt ones
rectify rebuild rectification      fold the event store into rectification_rebuild (open deadlines, holds)
rectify rebuild intake             replay rectify.submission.outcomes.v1 into intake_rebuild (statuses, access)
rectify rebuild all                every projection here, compare only
rectify rebuild publicity          replay the public-cases and rankings topics into publicity_rebuild, compare
                                   hashes, and check the live ledger holds every fact of the log once (never rewritten)
rectify rebuild publicity --swap   ... then replace the projection tables and append what the live ledger lacks

Each projection is one command here; a new projection adds its own.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from services.cli.scoring_cmds import log_progress

rebuild_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Rebuild a projection from the log and compare it with the live one.",
)
console = Console()


@rebuild_app.command()
def scoring(
    swap: Annotated[bool, typer.Option(help="replace the live tables (stop the scoring worker first)")] = False,
    idle: Annotated[float, typer.Option(help="seconds without records that end the log")] = 3.0,
) -> None:
    """Replay the case-event log into a fresh shadow schema through the consumer's own code; compare hashes."""
    from services.common.settings import get_settings
    from services.scoring.wiring import ProjectorRunning, rebuild_scoring, tune_gc

    tune_gc()  # the worker's collector settings: the rebuild runs its projector (and bench.scoring times it so)
    try:
        with log_progress("replaying rectify.case.events.v1 into scoring_rebuild") as advance:
            report = asyncio.run(rebuild_scoring(get_settings(), idle_s=idle, swap=swap, progress=advance))
    except ProjectorRunning as exc:
        console.print(f"[red]not swapped:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"scoring rebuilt from {report.events:,} events")
    for column in ("table", "rebuilt", "live" + (" (after swap)" if report.swapped else ""), ""):
        table.add_column(column)
    for name, digest in report.rebuilt.items():
        live = report.live.get(name, "")
        table.add_row(name, digest[:16], live[:16], "=" if digest == live else "[red]differs[/red]")
    console.print(table)
    if report.identical:
        console.print("[green]the live projection equals the log's[/green]")
    else:
        console.print("[yellow]the live projection differs from the log's[/yellow] (still catching up, or run --swap)")
        raise typer.Exit(1)


@rebuild_app.command()
def publicity(
    swap: Annotated[
        bool, typer.Option(help="replace the live projection tables and append the facts the live ledger lacks")
    ] = False,
    idle: Annotated[float, typer.Option(help="seconds without records that end each topic")] = 3.0,
) -> None:
    """Replay the public-cases and rankings topics into publicity_rebuild through the consumer's own code; compare
    content hashes, and check that the live ledger holds every fact of the log once, with the same bytes."""
    from services.common.settings import get_settings
    from services.publicity.wiring import LiveAhead, rebuild_publicity

    try:
        with log_progress("replaying the public topics into publicity_rebuild") as advance:
            report = asyncio.run(rebuild_publicity(get_settings(), idle_s=idle, swap=swap, progress=advance))
    except LiveAhead as exc:
        console.print(f"[red]not swapped:[/red] {exc}")
        raise typer.Exit(1) from None
    title = f"publicity rebuilt from {report.facts:,} public facts and {report.rankings:,} rankings"
    console.print(_hash_table(title, report.rebuilt, report.live, report.swapped))
    ledger = report.ledger
    chain = ledger.chain
    console.print(
        f"ledger: {chain.entries:,} entries, chain {'verifies' if chain.ok else f'BROKEN at {chain.broken}'}; "
        f"of the log's {ledger.in_log:,} facts {len(ledger.missing):,} missing, {len(ledger.altered):,} altered; "
        f"{len(ledger.unknown):,} entries not in the log" + (f"; {report.appended:,} appended" if swap else "")
    )
    for what, ids in (("altered", ledger.altered), ("missing", ledger.missing)):
        for event_id in ids[:5]:
            console.print(f"  [red]{what}[/red] {event_id}")
    if report.identical and ledger.consistent:
        console.print("[green]the live projection and ledger agree with the log[/green]")
    else:
        console.print("[yellow]the live projection or ledger differs from the log[/yellow] (catching up, or --swap)")
        raise typer.Exit(1)


def _hash_table(title: str, rebuilt: dict[str, str], live: dict[str, str], swapped: bool) -> Table:
    table = Table(title=title)
    for column in ("table", "rebuilt", "live" + (" (after swap)" if swapped else ""), ""):
        table.add_column(column)
    for name, digest in rebuilt.items():
        theirs = live.get(name, "")
        table.add_row(name, digest[:16], theirs[:16], "=" if digest == theirs else "[red]differs[/red]")
    return table


@rebuild_app.command()
def rectification(
    swap: Annotated[bool, typer.Option(help="replace the live tables (safe while the worker runs)")] = False,
) -> None:
    """Fold the event store into rectification_rebuild (open deadlines, holds) in one snapshot; compare hashes."""
    from services.common.settings import get_settings
    from services.rectification.rebuild import EventsMoved, rebuild_rectification

    try:
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console) as bar:
            task = bar.add_task("folding rectification's event store, case by case", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = asyncio.run(rebuild_rectification(get_settings().database_url, swap=swap, progress=advance))
    except EventsMoved as exc:
        console.print(f"[red]not swapped:[/red] {exc}")
        raise typer.Exit(1) from None
    title = f"rectification rebuilt from {report.events:,} events of {report.cases:,} cases"
    console.print(_hash_table(title, report.rebuilt, report.live, report.swapped))
    if not report.identical:
        console.print("[yellow]the live projection differs from the event store's[/yellow] (run --swap)")
        raise typer.Exit(1)
    console.print("[green]the live projection equals the event store's[/green]")


@rebuild_app.command()
def intake(
    swap: Annotated[bool, typer.Option(help="write the rebuilt outcomes over the live rows, only forward")] = False,
    idle: Annotated[float, typer.Option(help="seconds without records that end the log")] = 3.0,
) -> None:
    """Replay rectify.submission.outcomes.v1 into intake_rebuild (submission status, case access); compare hashes."""
    from services.common.settings import get_settings
    from services.intake.rebuild import rebuild_intake

    settings = get_settings()
    with log_progress("replaying rectify.submission.outcomes.v1 into intake_rebuild") as advance:
        report = asyncio.run(
            rebuild_intake(
                settings.database_url, settings.kafka_bootstrap_servers, idle_s=idle, swap=swap, progress=advance
            )
        )
    console.print(_hash_table(f"intake rebuilt from {report.records:,} outcomes", report.rebuilt, report.live, swap))
    if not report.identical:
        console.print("[yellow]the live projection differs from the log's[/yellow] (still catching up, or run --swap)")
        raise typer.Exit(1)
    console.print("[green]the live projection equals the log's[/green]")


@rebuild_app.command("all")
def rebuild_all(idle: Annotated[float, typer.Option(help="seconds without records that end a log")] = 3.0) -> None:
    """Rebuild and compare every projection above, one after the other, without swapping; exit 1 if any differs."""
    failed = []
    for command in rebuild_app.registered_commands:
        if command.callback is None or command.callback is rebuild_all:
            continue
        name = command.name or command.callback.__name__
        params = inspect.signature(command.callback).parameters
        console.rule(name)
        try:
            command.callback(swap=False, **({"idle": idle} if "idle" in params else {}))
        except typer.Exit as exc:
            if exc.exit_code:
                failed.append(name)
    if failed:
        console.print(f"[red]differs:[/red] {', '.join(failed)}")
        raise typer.Exit(1)
