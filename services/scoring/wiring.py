"""Scoring's one wiring module."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from services.common.contracts import decode_event
from services.common.inbox import Inbox
from services.common.metrics import serve_metrics
from services.common.settings import Settings, get_settings
from services.common.topics import CASE_EVENTS
from services.common.worker import Runtime, add_batch_agent, add_outbox_relay, make_app, prepare, run_worker
from services.scoring.entrypoints.case_events import apply_case_events

SERVICE = "scoring"
SCHEMA = "scoring"
MIGRATIONS = Path(__file__).parent / "migrations"


def build_worker(settings: Settings) -> faust.App:
    app = make_app(SERVICE, settings)
    runtime = Runtime(settings, SERVICE, SCHEMA)
    app.add_dependency(runtime)

    async def make_inbox() -> Inbox:  # type: ignore[type-arg]
        return Inbox(
            await runtime.pool(),
            service=SERVICE,
            decode=decode_event,
            message_id=lambda e: e.event_id,
            handle=apply_case_events,
        )

    add_batch_agent(app, CASE_EVENTS, make_inbox, settings)
    add_outbox_relay(runtime)  # dead letters leave through the outbox
    return app


def main_worker() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    run_worker(build_worker(settings), settings.log_level)
