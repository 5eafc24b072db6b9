"""Intake's one wiring module: the HTTP API process and the worker process (outcomes, ingestion, outbox relay)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import uvicorn
from fastapi import FastAPI

from services.common.contracts import decode_event
from services.common.inbox import Inbox
from services.common.metrics import serve_metrics
from services.common.settings import Settings, get_settings
from services.common.topics import OUTCOMES, SUBMISSIONS_IN, TopicSpec
from services.common.worker import Runtime, add_batch_agent, add_outbox_relay, make_app, prepare, run_worker, utcnow
from services.intake.adapters.vault import Vault
from services.intake.entrypoints.http import create_app, tune_gc
from services.intake.entrypoints.ingest import Ingestor
from services.intake.entrypoints.outcomes import apply_outcomes
from services.intake.service import Submitter

SERVICE = "intake"
SCHEMA = "intake"
MIGRATIONS = Path(__file__).parent / "migrations"


def vault_of(settings: Settings) -> Vault:
    if not settings.intake_master_key:
        raise SystemExit("INTAKE_MASTER_KEY is not set: intake needs it to seal complainants' data (docs/intake.md)")
    return Vault.from_base64(settings.intake_master_key)


def build_http(settings: Settings) -> FastAPI:
    return create_app(settings.database_url, utcnow, vault_of(settings))


def build_worker(settings: Settings, ingestion: TopicSpec = SUBMISSIONS_IN) -> faust.App:
    app = make_app(SERVICE, settings)
    runtime = Runtime(settings, SERVICE, SCHEMA)
    app.add_dependency(runtime)

    async def make_inbox() -> Inbox:  # type: ignore[type-arg]
        return Inbox(
            await runtime.pool(),
            service=SERVICE,
            decode=decode_event,
            message_id=lambda e: e.event_id,
            handle=apply_outcomes,
        )

    add_batch_agent(app, OUTCOMES, make_inbox, settings)
    add_ingestion(app, runtime, vault_of(settings), ingestion)
    add_outbox_relay(runtime)
    return app


def add_ingestion(app: faust.App, runtime: Runtime, vault: Vault, topic: TopicSpec) -> None:
    """The ingestion topic's consumer, with a Submitter of its own that runs (and stops) with the worker."""
    submitters: list[Submitter] = []
    started = asyncio.Event()

    async def run_submitter() -> None:
        submitter = Submitter(await runtime.pool(), vault, utcnow)
        submitter.start()
        submitters.append(submitter)
        started.set()
        try:
            await asyncio.get_running_loop().create_future()  # until the worker stops and cancels this job
        finally:
            await submitter.stop()

    async def make_ingestor() -> Ingestor:
        await started.wait()
        return Ingestor(await runtime.pool(), submitters[0], utcnow, service=SERVICE)

    runtime.background(run_submitter)
    add_batch_agent(app, topic, make_ingestor, runtime.settings)  # type: ignore[arg-type]


def main_http() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    app = build_http(settings)
    tune_gc()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
    )


def main_worker() -> None:
    settings = get_settings()
    asyncio.run(prepare(settings, SCHEMA, MIGRATIONS))
    serve_metrics(settings.metrics_port, settings.metrics_host)
    run_worker(build_worker(settings), settings.log_level)
