"""``rectify rebuild``: rebuild a projection from the log and compare it with the running one.

rectify rebuild scoring            replay rectify.case.events.v1 into scoring_rebuild, compare content hashes
rectify rebuild scoring --swap     ... then replace scoring's projection tables with the rebuilt ones

Each projection is one command here; a new projection adds its own.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
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
    from services.scoring.wiring import ProjectorRunning, rebuild_scoring

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
