"""``rectify``: the one command-line entry point for operators.

rectify up                 the whole system on this machine, with demo data; Ctrl-C stops it
rectify serve PROCESS      run one process (what docker-compose.yml and `up` start)
rectify schemas [--check]  regenerate docs/events/*.json and docs/asyncapi.yaml
rectify agency add ...     provision an agency and print its new API key
rectify seed               replay a simulated month of cases through the running system
rectify import FILE        file a hotline export (CSV or JSONL) through the intake API
rectify down               stop what a `rectify up` in another terminal started
rectify outbox             outbox backlog per service and topic
rectify outbox replay      refill a broker that lost its data from the outboxes, in order
rectify dlq list|redrive   list and re-drive dead letters
rectify bench [NAME]       run the benchmarks in bench/
rectify verify --url URL   check the public ledger's chain and recompute its rankings
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli.import_cmd import import_records
from services.cli.local import LocalSystem
from services.cli.ops import bench, dlq_app, down, record_up
from services.cli.outbox_cmds import outbox_app
from services.cli.processes import PROCESSES
from services.cli.rebuild import rebuild_app
from services.cli.scoring_cmds import ranking_app
from services.cli.verify import verify_command

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
agency_app = typer.Typer(no_args_is_help=True, help="Agencies and their API keys")
app.add_typer(agency_app, name="agency")
app.add_typer(ranking_app, name="ranking")
app.add_typer(rebuild_app, name="rebuild")
app.command("import")(import_records)
app.add_typer(dlq_app, name="dlq")
app.add_typer(outbox_app, name="outbox")
app.command("bench")(bench)
app.command("down")(down)
app.command("verify")(verify_command)
console = Console()
REPO = Path(__file__).resolve().parents[2]


@app.command()
def serve(process: Annotated[str, typer.Argument(help=f"one of: {', '.join(PROCESSES)}")]) -> None:
    """Run one process in the foreground. Configuration comes from the environment (see docs/configuration.md)."""
    if process not in PROCESSES:
        console.print(f"[red]unknown process {process!r}[/red]; choose one of: {', '.join(PROCESSES)}")
        raise typer.Exit(2)
    from services.common.logs import setup_logging
    from services.common.metrics import HEALTH, database_check
    from services.common.settings import get_settings

    settings = get_settings()
    setup_logging(process, settings.log_level)
    HEALTH.check("database", database_check(settings.database_url))
    PROCESSES[process].load()()


@app.command()
def schemas(check: Annotated[bool, typer.Option(help="only check; exit 1 when stale")] = False) -> None:
    """Regenerate the JSON Schemas and the AsyncAPI document from the event contracts."""
    from services.common import schemas as gen

    docs = REPO / "docs"
    if check:
        stale = gen.stale(docs)
        if stale:
            console.print(f"[red]stale:[/red] {', '.join(stale)} (run: rectify schemas)")
            raise typer.Exit(1)
        console.print("schemas are current")
        return
    changed = gen.write(docs)
    console.print(f"{len(changed)} file(s) written" if changed else "schemas are current")


@agency_app.command("add")
def agency_add(
    agency_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option(help="display name")],
    role: Annotated[str, typer.Option(help="channel, supervisor or unit")],
    channel: Annotated[str | None, typer.Option(help="for a filing channel: hotline_12345, gov_portal, ...")] = None,
    unit: Annotated[str | None, typer.Option(help="for a unit: the unit id it acts for")] = None,
) -> None:
    """Create an agency (or update it) and print a new API key. The key is shown once; only its hash is kept."""
    from services.common.contracts import Role
    from services.common.settings import get_settings
    from services.intake.admin import add_agency

    key = asyncio.run(add_agency(get_settings().database_url, agency_id, name, Role(role), channel, unit))
    console.print(key)


@app.command()
def seed(
    seed_: Annotated[int, typer.Option("--seed", help="the simulation's seed: case ids SIM-<seed>-NNNN")] = 2026,
    cases: Annotated[int, typer.Option(min=2, max=20_000, help="complaints filed over the month")] = 300,
    days: Annotated[int, typer.Option(min=1, max=366, help="the month: this many days up to today")] = 30,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the workers")] = 600.0,
    complaints: Annotated[
        int, typer.Option(min=0, max=100_000, help="instead: file N demo complaints through intake's HTTP API")
    ] = 0,
    intake: Annotated[str, typer.Option(help="intake API base URL (with --complaints)")] = "http://127.0.0.1:8000",
    key: Annotated[str, typer.Option(envvar="RECTIFY_API_KEY", help="a filing channel's API key (--complaints)")] = "",
) -> None:
    """Replay a simulated month of cases through the running system (DATABASE_URL), idempotently.

    The month (services/rectification/simulation.py) walks every path: on time, late, overdue, rejected and
    redone, reopened, relapsed, exposed, transferred, extended, dismissed, merged, stalled; the units are those of
    DOMAIN.md. Each command keeps the simulation's actor and time and goes into intake's outbox (recorded in
    intake.seeded_commands), then through the commands topic to rectification, scoring and publicity; the seed
    waits until each has taken it on. Commands dated after now are the future and are not sent.
    With --complaints N, files N demo complaints through intake's HTTP API instead.
    """
    from services.cli import seed as seeding
    from services.common.settings import get_settings

    if complaints:
        if not key:
            console.print("[red]--key (or RECTIFY_API_KEY) is required with --complaints[/red]")
            raise typer.Exit(2)
        answers = seeding.file_demo_complaints(intake, key, complaints)
        console.print(f"filed {len(answers)} complaints, e.g. case {answers[0]['case_id']}")
        return
    from datetime import UTC, datetime

    dsn = get_settings().database_url
    plan = asyncio.run(seeding.plan_seeded_month(dsn, seed_, cases, days, datetime.now(UTC)))
    if (plan.cases, plan.days) != (cases, days):
        console.print(f"seed {seed_} was seeded before as {plan.cases} cases from {plan.start}: replaying that month")
    try:
        report = seeding.seed_month_with_progress(dsn, plan, timeout)
    except seeding.SeedTimeout as exc:
        console.print(f"[red]not finished:[/red] {exc} (seeding again resumes where this stopped)")
        raise typer.Exit(1) from None
    for line in seeding.describe(report):
        console.print(line)


@app.command()
def up(
    intake_port: Annotated[int, typer.Option(help="intake API port (a free one if taken)")] = 8000,
    public_port: Annotated[int, typer.Option(help="public page port (a free one if taken)")] = 8080,
    demo: Annotated[int, typer.Option(help="cases of the simulated month seeded as demo data (0: none)")] = 300,
    state_dir: Annotated[Path, typer.Option(help="where the local servers keep data and logs")] = REPO / ".rectify",
) -> None:
    """Start the broker, PostgreSQL, every service and the public page on this machine, with demo data.

    Uses KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL when both are set, instead of starting servers.
    Ctrl-C stops everything this command started, by PID.
    """
    from datetime import UTC, datetime

    from services.cli import seed as seeding
    from services.cli.local import run_prepare, stack_module
    from services.intake.admin import provision_demo

    stack = None
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"):
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "DATABASE_URL": os.environ["DATABASE_URL"],
        }
        console.print("using the servers named by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    else:
        stack = stack_module()
        with console.status("starting the broker (tansu) and PostgreSQL ..."):
            env = stack.start(state_dir / "stack")
    env |= {
        "KAFKA_SESSION_TIMEOUT_MS": os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000"),
        "INTAKE_MASTER_KEY": os.environ.get("INTAKE_MASTER_KEY") or _local_master_key(state_dir),
        "DEADLINE_SCAN_INTERVAL_S": os.environ.get("DEADLINE_SCAN_INTERVAL_S", "5"),
    }
    system = LocalSystem(env, state_dir / "logs")

    def shutdown(*_: object) -> None:
        console.print("\nstopping ...")
        system.stop_all()
        (state_dir / "up.json").unlink(missing_ok=True)
        if stack is not None:
            stack.stop(state_dir / "stack")
        console.print("stopped everything this command started")
        sys.exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, shutdown)
    try:
        with console.status("migrating schemas and creating topics ..."):
            run_prepare(env)
        with console.status("starting the services ..."):
            for i, name in enumerate(PROCESSES):
                port = {"intake-api": intake_port, "publicity-web": public_port}.get(name)
                system.start(name, http_port=port, metrics_port=9101 + i)
            pids = {n: r.popen.pid for n, r in system.running.items()}
            record_up(state_dir, pids, state_dir / "stack" if stack is not None else None, os.getpid())
            system.wait_http("intake-api")
            system.wait_http("publicity-web")
            keys = asyncio.run(provision_demo(env["DATABASE_URL"]))
            (state_dir / "demo-keys.json").write_text(json.dumps(keys, indent=2))
        seeded = None
        if demo:
            console.print(f"seeding a simulated month ({demo} cases) through the running system ...")
            plan = asyncio.run(seeding.plan_seeded_month(env["DATABASE_URL"], 2026, demo, 30, datetime.now(UTC)))
            seeded = seeding.seed_month_with_progress(env["DATABASE_URL"], plan)
        if seeded is not None:
            for line in seeding.describe(seeded):
                console.print(line)
        _print_where(system, env, keys, state_dir)
        while True:
            for name, r in list(system.running.items()):
                if r.popen.poll() is not None:
                    console.print(f"[red]{name} exited ({r.popen.returncode}); see {r.log}[/red]")
                    system.running.pop(name)
            time.sleep(1)
    except KeyboardInterrupt:
        shutdown()
    except Exception:
        shutdown_err = sys.exc_info()[1]
        console.print(f"[red]failed: {shutdown_err}[/red]")
        system.stop_all()
        if stack is not None:
            stack.stop(state_dir / "stack")
        raise typer.Exit(1) from None


def _local_master_key(state_dir: Path) -> str:
    """The local run's intake master key, made once and kept in the state folder (never committed)."""
    path = state_dir / "intake-master.key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.b64encode(os.urandom(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def _print_where(system: LocalSystem, env: dict[str, str], keys: dict[str, str], state_dir: Path) -> None:
    table = Table(title="Rectify is running", show_header=True)
    table.add_column("what")
    table.add_column("where")
    table.add_row("public results page", system.url("publicity-web") + "/")
    table.add_row("public JSON API", system.url("publicity-web") + "/api/v1/cases")
    table.add_row("intake API docs", system.url("intake-api") + "/docs")
    for name, r in system.running.items():
        table.add_row(f"metrics: {name}", f"http://127.0.0.1:{r.metrics_port}/metrics")
    table.add_row("Kafka bootstrap", env["KAFKA_BOOTSTRAP_SERVERS"])
    table.add_row("PostgreSQL", env["DATABASE_URL"])
    table.add_row("logs", str(state_dir / "logs"))
    console.print(table)
    console.print(f"demo API key (12345 hotline, a filing channel): [bold]{keys['hotline-12345']}[/bold]")
    console.print(f"all demo keys (supervisor, units): {state_dir / 'demo-keys.json'}")
    console.print(
        "try: curl -X POST -H 'Authorization: Bearer <key>' -H 'Content-Type: application/json' "
        f"{system.url('intake-api')}/v1/complaints -d @docs/examples/complaint.json"
    )
    console.print("Ctrl-C stops everything.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
