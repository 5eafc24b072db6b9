"""Rectification's one wiring module: the only place that knows its real adapters."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.common.batch_consumer import BatchConsumer, ConsumerConfig, require_ready, run_service
from services.common.contracts import CommandEnvelope, decode_command
from services.common.inbox import Inbox
from services.common.metrics import serve_metrics
from services.common.reference import reference
from services.common.settings import Settings, get_settings
from services.common.topics import COMMANDS
from services.common.worker import Runtime, add_outbox_relay, prepare, tune_gc, utcnow
from services.rectification.case_gauges import run_case_gauges
from services.rectification.domain.calendar import load_calendar
from services.rectification.domain.time_limits import load_time_limits
from services.rectification.entrypoints.commands import command_handler
from services.rectification.service import Rules, StateCache
from services.rectification.watcher import run_watcher

SERVICE = "rectification"
SCHEMA = "rectification"
GROUP = "rectify-rectification"  # the group (and so the committed offsets) of the faust agent this loop replaced
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


def consumer_config(settings: Settings, topic: str = COMMANDS.name, group: str = GROUP) -> ConsumerConfig:
    return ConsumerConfig(
        bootstrap=settings.kafka_bootstrap_servers,
        topic=topic,
        group_id=group,
        client_id=f"{group}-commands",
        batch_size=settings.consumer_batch_size,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        fetch_wait_ms=settings.consumer_fetch_wait_ms,
    )


def build_worker(settings: Settings, topic: str = COMMANDS.name, group: str = GROUP) -> Runtime:
    """The rectification worker: the commands consumer (a bare batch loop), the outbox relay, the deadline watcher
    and the case gauges, all background jobs of one ``Runtime``.

    The consumer decides each batch inside ``Inbox.apply`` (the handler loads, decides and appends in the inbox's
    transaction, with expected versions), so deciding stays in log order although the next poll is decoded while
    one applies; no plan hook works ahead. The case cache is dropped whenever partitions may have moved.
    """
    runtime = Runtime(settings, SERVICE, SCHEMA)
    rules = load_rules()
    cache = StateCache(settings.case_cache_size) if settings.case_cache_size else None
    handle = command_handler(rules, cache)
    require_ready(topic)

    async def consume_commands() -> None:
        inbox: Inbox[CommandEnvelope] = Inbox(
            await runtime.pool(),
            service=SERVICE,
            decode=decode_command,
            message_id=lambda c: c.command_id,
            handle=handle,
        )
        consumer = BatchConsumer(
            consumer_config(settings, topic, group), inbox, on_revoked=cache.clear if cache is not None else None
        )
        await consumer.run()

    async def watch_deadlines() -> None:
        await run_watcher(await runtime.pool(), rules, utcnow, settings.deadline_scan_interval_s)

    async def count_cases() -> None:
        tiers = {unit_id: unit.tier for unit_id, unit in reference().units.items()}
        await run_case_gauges(await runtime.pool(), tiers, utcnow, min(30.0, settings.deadline_scan_interval_s))

    runtime.background(consume_commands)
    add_outbox_relay(runtime)
    runtime.background(watch_deadlines)
    runtime.background(count_cases)
    return runtime


def main() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    runtime = build_worker(settings)
    tune_gc()  # the case cache holds up to case_cache_size states: do not rescan them every few hundred commands
    run_service(runtime, settings.log_level)
