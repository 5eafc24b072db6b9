"""``rectify outbox``: each service's outbox, and ``rectify outbox replay`` to refill a broker that lost its data.

rectify outbox [--service S]          backlog, oldest unpublished row, rows published, per service and topic
rectify outbox replay [--service S]   after a broker lost its data: create the topics, then let every relay
                                      publish its whole outbox again, in id order

The local broker (tansu) keeps its topics and committed offsets in memory, so a restart wipes them. PostgreSQL
is the durable record: every message ever sent is an outbox row, stamped ``published_at`` and kept. A replay
creates the topics as declared (before anything auto-creates them with other partition counts), then, holding
each service's relay lock so no batch is half-way, marks every row unpublished; the running relays then publish
everything again in id order (the commit order, as the first time). The refilled topics hold the same records
in the same order as before the wipe, so a consumer that remembers a position finds there what it had read; one
that starts from the beginning finds messages it has applied, which its inbox skips by message id.
"""

from __future__ import annotations

import asyncio

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from services.cli.ops import ServiceOpt, _dsn, _schema_exists, _services, outbox
from services.common.kafka import ensure_topics

console = Console()
outbox_app = typer.Typer(
    add_completion=False, help="Each service's outbox; replay it into a broker that lost its data."
)


async def replay_outboxes(dsn: str, bootstrap: str, services: list[str]) -> dict[str, int]:
    """Create the declared topics, then mark every published outbox row of ``services`` for publishing again.

    Returns the rows marked, per service. Each service's rows are marked in one transaction under its relay's
    advisory lock (the one ``OutboxRelay.publish_batch`` takes), and its relay is woken by ``NOTIFY``.
    """
    await ensure_topics(bootstrap)
    marked: dict[str, int] = {}
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "rectify-outbox-replay"})
    try:
        for schema in services:
            if not await _schema_exists(conn, schema, "outbox"):
                continue
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1 || '-relay'))", schema)
                status = await conn.execute(
                    f"UPDATE {schema}.outbox SET published_at = NULL WHERE published_at IS NOT NULL"
                )
                await conn.execute(f"NOTIFY {schema}_outbox")
            marked[schema] = int(status.split()[-1])
    finally:
        await conn.close()
    return marked


@outbox_app.callback(invoke_without_command=True)
def show(ctx: typer.Context, service: ServiceOpt = None) -> None:
    """Show each service's outbox: backlog, oldest unpublished row and rows published, per topic."""
    if ctx.invoked_subcommand is None:
        outbox(service)


@outbox_app.command()
def replay(service: ServiceOpt = None) -> None:
    """After a broker lost its data (a restart of the local in-memory broker): create the topics and publish every
    outbox row again, in order, through the running relays. Consumers skip what they applied before."""
    from services.common.settings import get_settings

    marked = asyncio.run(replay_outboxes(_dsn(), get_settings().kafka_bootstrap_servers, _services(service)))
    table = Table(title="outbox rows to publish again")
    table.add_column("service")
    table.add_column("rows")
    for schema, n in marked.items():
        table.add_row(schema, f"{n:,}")
    console.print(table)
    console.print("the relays publish them now; `rectify outbox` shows the backlog going down")
