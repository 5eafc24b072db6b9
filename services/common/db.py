"""PostgreSQL plumbing: one pool per service, bound to the service's own schema, and migrations."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

COMMON_MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _check_schema(schema: str) -> str:
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Returning a connection to the pool costs no round trip. Nothing here leaves session state behind:
    transactions always end in their context manager, advisory locks are transaction-scoped, and the
    outbox relay removes its LISTEN before it releases its connection."""


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see only ``schema`` (and ``public`` for extensions)."""
    _check_schema(schema)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        server_settings={"search_path": f"{schema}", "application_name": f"rectify-{schema}"},
    )
    assert pool is not None
    return pool


def migration_files(*dirs: Path) -> list[tuple[str, Path]]:
    """(id, path) pairs: the shared migrations first, then the service's own, each in name order."""
    files: list[tuple[str, Path]] = []
    for d in dirs:
        for path in sorted(d.glob("*.sql")):
            files.append((f"{d.parent.name}/{path.stem}", path))
    return files


async def migrate(dsn: str, schema: str, service_migrations: Path) -> list[str]:
    """Create ``schema`` and apply the versioned migrations it lacks, under an advisory lock. Returns those applied."""
    _check_schema(schema)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('rectify-migrate-' || $1))", schema)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(f"SET LOCAL search_path TO {schema}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["id"] for r in await conn.fetch("SELECT id FROM schema_migrations")}
            applied = []
            for mig_id, path in migration_files(COMMON_MIGRATIONS, service_migrations):
                if mig_id in done:
                    continue
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (id) VALUES ($1)", mig_id)
                applied.append(mig_id)
            return applied
    finally:
        await conn.close()


async def fresh_schema(dsn: str, schema: str, service_migrations: Path) -> None:
    """Drop ``schema`` if it exists and migrate it anew: the shadow schema a rebuild replays into."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {_check_schema(schema)} CASCADE")
    finally:
        await conn.close()
    await migrate(dsn, schema, service_migrations)
