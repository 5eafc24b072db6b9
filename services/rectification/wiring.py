"""Rectification's one wiring module: the only place that knows its real adapters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from services.common.contracts import decode_command
from services.common.inbox import Inbox
from services.common.metrics import serve_metrics
from services.common.reference import reference
from services.common.settings import Settings, get_settings
from services.common.topics import COMMANDS
from services.common.worker import (
    Runtime,
    add_batch_agent,
    add_outbox_relay,
    make_app,
    prepare,
    run_worker,
    tune_gc,
    utcnow,
)
from services.rectification.case_gauges import run_case_gauges
from services.rectification.domain.calendar import load_calendar
from services.rectification.domain.time_limits import load_time_limits
from services.rectification.entrypoints.commands import command_handler
from services.rectification.service import Rules, StateCache
from services.rectification.watcher import run_watcher

SERVICE = "rectification"
SCHEMA = "rectification"
MIGRATIONS = Path(__file__).parent / "migrations"


def load_rules() -> Rules:
    ref = reference()
    return Rules(
        clock=utcnow,
        units=frozenset(ref.units),
        categories=frozenset(ref.categories),
        calendar=load_calendar(),
        policy=load_time_limits(),
    )


def build_app(settings: Settings) -> faust.App:
    app = make_app(SERVICE, settings)
    runtime = Runtime(settings, SERVICE, SCHEMA)
    app.add_dependency(runtime)
    rules = load_rules()
    cache = StateCache(settings.case_cache_size) if settings.case_cache_size else None
    handle = command_handler(rules, cache)

    async def make_inbox() -> Inbox:  # type: ignore[type-arg]
        return Inbox(
            await runtime.pool(),
            service=SERVICE,
            decode=decode_command,
            message_id=lambda c: c.command_id,
            handle=handle,
        )

    async def watch_deadlines() -> None:
        await run_watcher(await runtime.pool(), rules, utcnow, settings.deadline_scan_interval_s)

    async def count_cases() -> None:
        tiers = {unit_id: unit.tier for unit_id, unit in reference().units.items()}
        await run_case_gauges(await runtime.pool(), tiers, utcnow, min(30.0, settings.deadline_scan_interval_s))

    add_batch_agent(app, COMMANDS, make_inbox, settings)
    add_outbox_relay(runtime)
    runtime.background(watch_deadlines)
    runtime.background(count_cases)
    return app


def main() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    app = build_app(settings)
    tune_gc()  # the case cache holds up to case_cache_size states: do not rescan them every few hundred commands
    run_worker(app, settings.log_level)
