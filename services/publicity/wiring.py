"""Publicity's one wiring module: the public web process and the projection worker (public facts, rankings)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import uvicorn

from services.common.inbox import Inbox
from services.common.metrics import serve_metrics
from services.common.settings import Settings, get_settings
from services.common.topics import PUBLIC_CASES, RANKINGS
from services.common.worker import Runtime, add_batch_agent, add_outbox_relay, make_app, prepare, run_worker
from services.publicity.entrypoints.public_facts import apply_public_batch, decode_public_fact
from services.publicity.entrypoints.ranking_facts import apply_ranking_batch, decode_ranking_fact
from services.publicity.entrypoints.web import create_app

SERVICE = "publicity"
SCHEMA = "publicity"
MIGRATIONS = Path(__file__).parent / "migrations"


def build_worker(settings: Settings) -> faust.App:
    app = make_app(SERVICE, settings)
    runtime = Runtime(settings, SERVICE, SCHEMA)
    app.add_dependency(runtime)

    async def make_inbox() -> Inbox:  # type: ignore[type-arg]
        return Inbox(
            await runtime.pool(),
            service=SERVICE,
            decode=decode_public_fact,
            message_id=lambda e: e.event_id,
            handle=apply_public_batch,
        )

    async def make_ranking_inbox() -> Inbox:  # type: ignore[type-arg]
        return Inbox(
            await runtime.pool(),
            service=SERVICE,
            decode=decode_ranking_fact,
            message_id=lambda e: e.event_id,
            handle=apply_ranking_batch,
        )

    add_batch_agent(app, PUBLIC_CASES, make_inbox, settings)
    add_batch_agent(app, RANKINGS, make_ranking_inbox, settings)
    add_outbox_relay(runtime)  # dead letters leave through the outbox
    return app


def main_http() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    uvicorn.run(
        create_app(settings.database_url),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def main_worker() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    run_worker(build_worker(settings), settings.log_level)
