"""The Kafka ingestion topic: an agency publishes submissions directly; each takes the HTTP API's path.

A message's value is the JSON body of ``POST /v1/complaints``; its headers carry the API key
(``authorization: Bearer <key>``, or ``x-api-key``) and, optionally, ``idempotency-key``. With an
``x-command`` header (a lifecycle route's path, e.g. ``assign``) and ``x-case-id``, the value is the body
of ``POST /v1/cases/{x-case-id}/{x-command}`` instead. Each message is checked in the HTTP API's order and
by its rules (the key, the role, the idempotency key, the strict body, the reference data, the case's
visibility) and handed to the same ``Submitter``, so a valid message is stored exactly as a request is.

At least once, never twice: the Submitter commits a batch's submissions in its own transactions before
faust commits the offsets. A message redelivered after a crash in between carries the same idempotency
key (its header; without one, ``kafka:`` and a SHA-256 of the command, case and value), so the Submitter
answers it with the earlier submission. Without the header, identical messages from one agency are one
submission: send an idempotency key to file two identical complaints.

An invalid message is dead-lettered (through intake's outbox, counted, code and reason in headers). Its
value is kept without the ``complainant`` object, and one that is not a JSON object is not kept at all:
personal data lives only in the vault. The source partition and offset in the headers point to the
original, which the topic keeps for 7 days. An unknown, expired or revoked key is dead-lettered too
(``unauthenticated``), so an agency whose key lapsed loses nothing silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson
from pydantic import BaseModel, ValidationError

from services.common import http
from services.common.contracts import Command, FileComplaint, Role
from services.common.inbox import TRANSIENT, Record, dead_letter
from services.common.metrics import HANDLER_ERRORS, HANDLER_SECONDS, MESSAGES_CONSUMED
from services.common.reference import reference
from services.intake.adapters import repository as repo
from services.intake.adapters.repository import Agency, CaseAccess
from services.intake.adapters.vault import Contact
from services.intake.commands import COMMAND_ROUTES, CommandRoute
from services.intake.domain import ComplaintRequest, complainant_ref, fingerprint, may_access
from services.intake.service import IdempotencyConflict, Submit, Submitter

MAX_MESSAGE_BYTES = 64 * 1024  # the HTTP API's body limit
TOKEN = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII: an API key, an idempotency key
CASE_ID = re.compile(r"^RC-[0-9]{8}-[0-9]{6,}$")
ROUTES: dict[str, CommandRoute] = {r.path: r for r in COMMAND_ROUTES}
B = TypeVar("B", bound=BaseModel)
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str  # x-error-code on the dead letter
    reason: str  # x-error-reason: which header or field, and why


@dataclass(frozen=True, slots=True)
class Seen:
    """What the database says about a batch: the agencies of its keys, the cases its commands name."""

    agencies: dict[str, Agency | None]
    cases: dict[str, CaseAccess | None]


class Ingestor:
    """Consumes the ingestion topic a polled batch at a time (``add_batch_agent`` calls ``process``)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        submitter: Submitter,
        clock: Callable[[], datetime],
        *,
        service: str = "intake",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.pool = pool
        self.submitter = submitter
        self.clock = clock
        self.service = service
        self.max_message_bytes = max_message_bytes

    async def process(self, records: Sequence[Record]) -> None:
        """Like ``Inbox.process``: a batch that fails for an unexpected reason is retried record by record,
        and a record that still fails is dead-lettered, so one bad message never stops its partition."""
        if not records:
            return
        started = time.perf_counter()
        topic = records[0].topic
        try:
            await self._process(records)
        except TRANSIENT:
            raise
        except Exception:
            HANDLER_ERRORS.labels(self.service, topic).inc()
            log.exception("ingestion batch failed; retrying record by record", extra={"size": len(records)})
            for record in records:
                await self._process_alone(record)
        HANDLER_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)
        MESSAGES_CONSUMED.labels(self.service, topic).inc(len(records))

    async def _process_alone(self, record: Record) -> None:
        try:
            await self._process([record])
        except TRANSIENT:
            raise
        except Exception as exc:
            log.exception("ingested message failed; dead-lettering it", extra={"offset": record.offset})
            async with self.pool.acquire() as conn, conn.transaction():
                reason = f"{type(exc).__name__}: {exc}"[:500]
                await dead_letter(conn, self.service, [(redacted(record), "handler_error", reason)])

    async def _process(self, records: Sequence[Record]) -> None:
        seen = await self._look_up(records)
        verdicts = [self.check(r, seen) for r in records]
        rejected = [(r, v) for r, v in zip(records, verdicts, strict=True) if isinstance(v, Rejected)]
        rejected += await self._submit(
            [(r, v) for r, v in zip(records, verdicts, strict=True) if isinstance(v, Submit)]
        )
        if rejected:
            async with self.pool.acquire() as conn, conn.transaction():
                await dead_letter(conn, self.service, [(redacted(r), v.code, v.reason) for r, v in rejected])

    async def _look_up(self, records: Sequence[Record]) -> Seen:
        now = self.clock()
        keys = {k for r in records if (k := api_key(r)) and TOKEN.match(k)}  # others are unknown keys anyway
        named = {c for r in records if header(r, "x-command") and (c := header(r, "x-case-id")) and CASE_ID.match(c)}
        async with self.pool.acquire() as conn:
            agencies = {k: await repo.authenticate(conn, k, now) for k in keys}  # one query per key, not per message
            cases = {c: await repo.get_case_access(conn, c) for c in named}
        return Seen(agencies, cases)

    def check(self, record: Record, seen: Seen) -> Submit | Rejected:
        """The message's submission, or why it is refused: the HTTP API's checks, in its order."""
        if len(record.value) > self.max_message_bytes:
            return Rejected("oversized", f"{len(record.value)} bytes > {self.max_message_bytes}")
        key = api_key(record)
        if key is None:
            return Rejected("unauthenticated", "no API key: send the header 'authorization: Bearer <key>'")
        who = seen.agencies.get(key)
        if who is None:
            return Rejected("unauthenticated", "the API key is unknown, expired or revoked")
        command = header(record, "x-command")
        if command is not None:
            return _command(record, who, command, seen)
        if who.role is not Role.CHANNEL or who.channel is None:
            return Rejected("forbidden", "only a filing channel may file complaints")
        idempotency = _idempotency_key(record)
        if isinstance(idempotency, Rejected):
            return idempotency
        body = _validate(ComplaintRequest, record.value, _reference_errors)
        if isinstance(body, Rejected):
            return body
        return _filing(record, who, idempotency, body)

    async def _submit(self, ready: list[tuple[Record, Submit]]) -> list[tuple[Record, Rejected]]:
        """Hand everything valid to the Submitter at once (it shares commits); the refused, with why."""
        results = await asyncio.gather(*(self.submitter.submit(s) for _, s in ready), return_exceptions=True)
        transient = next((e for e in results if isinstance(e, TRANSIENT)), None)
        if transient is not None:
            raise transient  # the batch comes again; what did commit is answered from its idempotency key then
        refused = []
        for (record, _), result in zip(ready, results, strict=True):
            if isinstance(result, IdempotencyConflict):
                refused.append((record, Rejected("idempotency_conflict", "idempotency-key used with another body")))
            elif isinstance(result, BaseException):
                refused.append((record, Rejected("handler_error", f"{type(result).__name__}: {result}"[:500])))
        return refused


_UNKNOWN = {"category": "unknown category; see docs/intake.md", "unit_id": "unknown unit; see docs/intake.md"}


def _reference_errors(parsed: dict[str, Any]) -> list[dict[str, str]]:
    """A complaint's category and unit that the reference data does not list."""
    unknown = reference().unknown(parsed.get("category"), parsed.get("unit_id"))
    return [{"field": f, "reason": _UNKNOWN[f]} for f in unknown]


def _filing(record: Record, who: Agency, key: str | None, body: ComplaintRequest) -> Submit | Rejected:
    unknown = reference().unknown(body.category, body.unit_id)
    if unknown:
        return Rejected("invalid_fields", "; ".join(f"{f}: {_UNKNOWN[f]}" for f in unknown))
    cref = complainant_ref()
    person = body.complainant

    def command(_: str) -> Command:
        return FileComplaint(
            channel=who.channel,  # type: ignore[arg-type]
            category=body.category,
            unit_id=body.unit_id,
            cadre=body.cadre,
            description=body.description,
            location=body.location,
            happened_on=body.happened_on,
            severity=body.severity,
            complainant_ref=cref,
        )

    return Submit(
        who=who,
        idempotency_key=key or derived_key(record),
        digest=fingerprint(record.value),
        command=command,
        contact=Contact(person.name, person.phone, person.email),
        complainant_ref=cref,
    )


def _command(record: Record, who: Agency, path: str, seen: Seen) -> Submit | Rejected:
    """A lifecycle command: ``x-command`` names the route, ``x-case-id`` the case; the rest as for a filing."""
    route = ROUTES.get(path)
    if route is None:
        return Rejected("unknown_command", f"x-command: one of {', '.join(sorted(ROUTES))}")
    if who.role not in route.roles:
        allowed = " or ".join(sorted(r.value for r in route.roles))
        return Rejected("forbidden", f"only a {allowed} may {path.replace('-', ' ')}")
    idempotency = _idempotency_key(record)
    if isinstance(idempotency, Rejected):
        return idempotency
    case_id = header(record, "x-case-id") or ""
    access = seen.cases.get(case_id)
    if access is None or not may_access(
        who.role, who.agency_id, who.unit_id, access.filed_by, access.responsible_unit_id
    ):
        return Rejected("not_found", f"x-case-id: no case {case_id[:40]!r} for this agency")
    body = _validate(route.command, record.value)
    if isinstance(body, Rejected):
        return body
    return Submit(
        who=who,
        idempotency_key=idempotency or derived_key(record),
        digest=fingerprint(record.value),
        command=lambda _: body,
        case_id=case_id,
    )


def _validate(
    model: type[B], value: bytes, more: Callable[[dict[str, Any]], list[dict[str, str]]] | None = None
) -> B | Rejected:
    """The message's value validated strictly; else why not, every field wrong named (``more``: as for
    ``http.field_errors``)."""
    try:
        return model.model_validate_json(value, strict=True)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return Rejected("bad_json", "the value is not valid JSON")
        described = "; ".join(f"{e['field']}: {e['reason']}" for e in http.field_errors(exc, value, more))
        return Rejected("invalid_fields", described[:1000])


def _idempotency_key(record: Record) -> str | Rejected | None:
    key = header(record, "idempotency-key")
    if key is not None and not TOKEN.match(key):
        return Rejected("invalid_header", "idempotency-key: 1 to 200 printable ASCII characters")
    return key


def header(record: Record, name: str) -> str | None:
    """A header's value (names are case-insensitive), or None; a value that is not UTF-8 counts as absent."""
    for key, value in record.headers:
        if key.lower() == name:
            try:
                return value.decode().strip()
            except UnicodeDecodeError:
                return None
    return None


def api_key(record: Record) -> str | None:
    authorization = header(record, "authorization") or ""
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return header(record, "x-api-key") or None


def derived_key(record: Record) -> str:
    """The idempotency key of a message sent without one: what it asks for, hashed."""
    parts = (header(record, "x-command") or "", header(record, "x-case-id") or "")
    digest = hashlib.sha256("\n".join(parts).encode() + b"\n" + record.value).hexdigest()
    return f"kafka:{digest}"


def redacted(record: Record) -> Record:
    """The record as it may be dead-lettered: without the complainant, whose data belongs in the vault only."""
    try:
        data = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return record._replace(value=b"", headers=())
    if "complainant" in data:
        data["complainant"] = "[removed: personal data is kept only in intake's vault]"
    return record._replace(value=orjson.dumps(data), headers=())
