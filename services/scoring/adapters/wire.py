"""Reading case events off the wire into ``ScoredEvent``.

``read_event`` is the tolerant reader at the door: it checks the envelope and the fields scoring reads
against the contract and ignores the rest, so it costs a JSON parse instead of a full model validation
(scoring reads every case event, so this is its hot path). A message of an older schema version goes
through the contract's decoder and upcasters. A message that breaks what scoring relies on raises
``ContractError``, and the inbox dead-letters it. Event ids are parsed with asyncpg's C UUID type (a
``uuid.UUID``), ten times faster than the standard one.

The JSON is parsed by msgspec into a struct of just the fields read (the actor, correlation ids, the payload's
other fields are skipped, never built as Python objects): half the cost of parsing the whole message into
dicts. The checks are the same functions either way; a message msgspec refuses (not JSON, not an object, a
payload that is not an object) is read again with orjson, whose path names the exact fault.

The times are parsed by msgspec too (``_TimedEnvelope``): in C, and every time with the same offset shares one
``tzinfo`` object, which makes comparing two of them ~20 times cheaper than for times parsed by
``datetime.fromisoformat`` (a new zone each, so every comparison calls ``utcoffset`` on both). The fold compares
times several times per event. A message msgspec refuses is read again untyped, and ``_time`` parses each time
with msgspec first and ``fromisoformat`` only for what msgspec refuses, so both readers read a time alike.
(msgspec rounds a 7th fractional digit where ``fromisoformat`` and pydantic truncate; the contracts encode at
most 6, so only a hand-made message can tell.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as FastUUID

from services.common.contracts import (
    LATEST,
    REGISTRY,
    CaseEvent,
    ContractError,
    DeadlineKind,
    EventEnvelope,
    Satisfaction,
    decode_event,
)
from services.scoring.domain.events import ScoredEvent

_MINUTE = timedelta(minutes=1)
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$").match
_HOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$").match
_WHICH = frozenset(k.value for k in DeadlineKind)
_RATINGS = frozenset(s.value for s in Satisfaction)


Extra = tuple[datetime | None, str | None, bool | None, str | None, str | None, str | None]
NOTHING: Extra = (None, None, None, None, None, None)


def _bad(where: str, why: str) -> ContractError:
    return ContractError("invalid_payload" if where.startswith("payload") else "invalid_envelope", f"{where}: {why}")


def _time(value: object, where: str) -> datetime:
    if type(value) is datetime:  # parsed by msgspec (the typed first try): only the zone is left to check
        if value.tzinfo is None:  # msgspec's zones are ``timezone`` objects, whose offset is never None
            raise _bad(where, "the time has no timezone")
        return value
    if type(value) is not str:
        raise _bad(where, "a timezone-aware ISO 8601 time is required")
    try:  # msgspec first, as the typed first try reads it, so that both readers give the same time
        moment = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        try:  # what RFC 3339 does not allow but ISO 8601 does, e.g. a space for the T or no seconds
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(where, f"not an ISO 8601 time: {value[:40]!r}") from None
    offset = moment.utcoffset()
    if offset is None:
        raise _bad(where, "the time has no timezone")
    if offset % _MINUTE:  # an offset with seconds (ISO 8601 allows it, RFC 3339 does not): stored facts keep
        return moment.astimezone(UTC)  # whole minutes only, so keep the instant in UTC rather than shift it
    return moment


_MATCHED: set[str] = set()  # identifiers that matched _IDENT: a case's id comes on each of its events, units recur
_MATCHED_MAX = 100_000  # then it starts afresh


def _ident(value: object, where: str, match: Callable[[str], object] = _IDENT) -> str:
    if type(value) is not str:
        raise _bad(where, "a valid identifier is required")
    if match is _IDENT:
        if value in _MATCHED:  # a set lookup instead of the pattern (~25 ns against ~230 here)
            return value
        if not match(value):
            raise _bad(where, "a valid identifier is required")
        if len(_MATCHED) >= _MATCHED_MAX:
            _MATCHED.clear()
        _MATCHED.add(value)
    elif not match(value):
        raise _bad(where, "a valid identifier is required")
    return value


def _flag(value: object, where: str) -> bool:
    if type(value) is not bool:
        raise _bad(where, "a boolean is required")
    return value


def _choice(value: object, allowed: frozenset[str], where: str) -> str:
    if type(value) is not str or value not in allowed:
        raise _bad(where, f"one of {sorted(allowed)} is required")
    return value


class Payload(msgspec.Struct, gc=False):
    """The payload fields scoring reads, of every kind that has them; the others are skipped when parsing.
    (``gc=False``: parsed JSON holds no cycles, and the collector need not track two more objects per event.)"""

    at: Any = None
    filed_at: Any = None
    unit_id: Any = None
    responsible_unit_id: Any = None
    to_unit_id: Any = None
    on_time: Any = None
    which: Any = None
    holder: Any = None
    rating: Any = None


class _Envelope(msgspec.Struct, gc=False):
    event_id: Any = None
    event_type: Any = None
    schema_version: Any = None
    stream_id: Any = None
    stream_version: Any = None
    recorded_at: Any = None
    payload: Payload | None = None  # not an object: msgspec refuses, and the orjson path says why


class _TimedPayload(Payload, gc=False):
    at: datetime | None = None
    filed_at: datetime | None = None


class _TimedEnvelope(_Envelope, gc=False):
    recorded_at: datetime | None = None
    payload: _TimedPayload | None = None


_TIMED = msgspec.json.Decoder(_TimedEnvelope)
_new = tuple.__new__
_ENVELOPE = msgspec.json.Decoder(_Envelope)


# The readers take what is regular inline (a time msgspec parsed with its zone, an identifier matched before, a
# boolean) and call the checks only for anything else, which give the verdicts: the same values, the same refusals.


def _filed(p: Payload) -> Extra:
    at = p.filed_at
    if type(at) is not datetime or at.tzinfo is None:
        at = _time(at, "payload.filed_at")
    unit = p.unit_id
    if type(unit) is not str or unit not in _MATCHED:
        unit = _ident(unit, "payload.unit_id")
    return (at, unit, None, None, None, None)


def _assigned(p: Payload) -> Extra:
    at = p.at
    if type(at) is not datetime or at.tzinfo is None:
        at = _time(at, "payload.at")
    unit = p.responsible_unit_id
    if type(unit) is not str or unit not in _MATCHED:
        unit = _ident(unit, "payload.responsible_unit_id")
    return (at, unit, None, None, None, None)


def _transferred(p: Payload) -> Extra:
    at = p.at
    if type(at) is not datetime or at.tzinfo is None:
        at = _time(at, "payload.at")
    unit = p.to_unit_id
    if type(unit) is not str or unit not in _MATCHED:
        unit = _ident(unit, "payload.to_unit_id")
    return (at, unit, None, None, None, None)


def _timed(p: Payload) -> Extra:
    at = p.at
    if type(at) is not datetime or at.tzinfo is None:
        at = _time(at, "payload.at")
    on_time = p.on_time
    if type(on_time) is not bool:
        on_time = _flag(on_time, "payload.on_time")
    return (at, None, on_time, None, None, None)


def _deadline(p: Payload) -> Extra:
    which = p.which
    if type(which) is not str or which not in _WHICH:
        which = _choice(which, _WHICH, "payload.which")
    return (None, None, None, which, _ident(p.holder, "payload.holder", _HOLDER), None)


def _rated(p: Payload) -> Extra:
    rating = p.rating
    if type(rating) is not str or rating not in _RATINGS:
        rating = _choice(rating, _RATINGS, "payload.rating")
    return (None, None, None, None, None, rating)


READERS: dict[str, Callable[[Payload], Extra]] = {
    "CaseFiled": _filed,
    "CaseAssigned": _assigned,
    "CaseTransferred": _transferred,
    "CaseAcknowledged": _timed,
    "RectificationSubmitted": _timed,
    "DeadlinePassed": _deadline,
    "SatisfactionRated": _rated,
}
"""The kinds whose payload scoring reads; every other case event only moves the case's version."""

CASE_EVENT_VERSIONS: dict[str, int] = {
    kind: version for kind, version in LATEST.items() if issubclass(REGISTRY[(kind, version)], CaseEvent)
}


def read_event(raw: bytes) -> ScoredEvent:
    try:
        env = _TIMED.decode(raw)
    except msgspec.MsgspecError:
        try:
            env = _ENVELOPE.decode(raw)
        except msgspec.MsgspecError:
            return _read_dict(raw)
    # _checked inlined for the regular message (one Python call less per event); anything irregular goes to it
    kind, version, payload = env.event_type, env.stream_version, env.payload
    latest = CASE_EVENT_VERSIONS.get(kind) if type(kind) is str else None
    if latest is None or env.schema_version != latest or payload is None or type(version) is not int or version < 1:
        return _checked(kind, env.schema_version, payload, version, env.event_id, env.stream_id, env.recorded_at, raw)
    try:
        uid = FastUUID(env.event_id)
    except (TypeError, ValueError, AttributeError):  # _checked says why
        return _checked(kind, env.schema_version, payload, version, env.event_id, env.stream_id, env.recorded_at, raw)
    case_id = env.stream_id
    if type(case_id) is not str or case_id not in _MATCHED:
        case_id = _ident(case_id, "envelope.stream_id")
    recorded_at = env.recorded_at
    if type(recorded_at) is not datetime or recorded_at.tzinfo is None:
        recorded_at = _time(recorded_at, "envelope.recorded_at")
    reader = READERS.get(kind)
    extra = reader(payload) if reader is not None else NOTHING
    return _new(ScoredEvent, (uid, case_id, version, recorded_at, kind, *extra))


def _read_dict(raw: bytes) -> ScoredEvent:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError("bad_json", f"not JSON: {exc}") from exc
    if type(data) is not dict:
        raise ContractError("bad_json", "a message must be a JSON object")
    payload = data.get("payload")
    return _checked(
        data.get("event_type"), data.get("schema_version"),
        msgspec.convert(payload, Payload) if type(payload) is dict else None,
        data.get("stream_version"), data.get("event_id"), data.get("stream_id"), data.get("recorded_at"), raw,
    )  # fmt: skip


def _checked(
    kind: Any,
    schema_version: Any,
    payload: Payload | None,
    version: Any,
    event_id: Any,
    stream_id: Any,
    recorded_at: Any,
    raw: bytes,
) -> ScoredEvent:
    latest = CASE_EVENT_VERSIONS.get(kind) if type(kind) is str else None
    if latest is None:
        known = type(kind) is str and kind in LATEST
        raise ContractError("unknown_type", f"{kind} is not a case event" if known else f"unknown type {kind!r}")
    if schema_version != latest:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ContractError("bad_json", f"not JSON: {exc}") from exc
        return from_envelope(decode_event(data))
    if payload is None:
        raise ContractError("invalid_payload", "payload must be a JSON object")
    if type(version) is not int or version < 1:
        raise _bad("envelope.stream_version", "a positive integer is required")
    try:
        uid = FastUUID(event_id)
    except (TypeError, ValueError, AttributeError):
        raise _bad("envelope.event_id", "a UUID is required") from None
    case_id = stream_id if type(stream_id) is str and stream_id in _MATCHED else _ident(stream_id, "envelope.stream_id")
    if type(recorded_at) is not datetime or recorded_at.tzinfo is None:  # else parsed by msgspec, with its zone
        recorded_at = _time(recorded_at, "envelope.recorded_at")
    reader = READERS.get(kind)
    extra = reader(payload) if reader is not None else NOTHING
    return _new(ScoredEvent, (uid, case_id, version, recorded_at, kind, *extra))  # ScoredEvent(...), no Python frame


def from_envelope(env: EventEnvelope) -> ScoredEvent:
    """The same view from a fully decoded envelope (older schema versions, tests)."""
    if not isinstance(env.payload, CaseEvent):
        raise ContractError("unknown_type", f"{env.event_type} is not a case event")
    reader = READERS.get(env.event_type)
    extra = reader(msgspec.convert(env.payload.model_dump(mode="json"), Payload)) if reader is not None else NOTHING
    return ScoredEvent(env.event_id, env.stream_id, env.stream_version, env.recorded_at, env.event_type, *extra)
