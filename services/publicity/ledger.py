"""The public ledger: every public fact publicity applied, hash-chained. Pure: no database, clock or network.

docs/public-ledger.md is the specification; in short:

* A **fact** is the canonical JSON of ``fact_document(envelope)``: the fact's kind (``case`` or ``ranking``), its
  event id, stream, version, recorded time, message type, schema version and payload. Canonical JSON: keys
  sorted, no insignificant whitespace (``,`` and ``:``), UTF-8 without escaping non-ASCII, integers, strings,
  booleans and null only (the one non-integer number of the public facts, a hold's ``working_days``, is written
  as text with exactly four decimals); every instant as UTC text with microseconds (``2026-11-03T01:02:03.000000Z``),
  every date as ``YYYY-MM-DD``.
* An **entry** is ``seq`` (1, 2, 3, ... without gaps), ``appended_at`` (UTC text as above, never decreasing),
  ``prev_hash`` (the previous entry's ``hash``; for entry 1 the genesis hash, 64 zeros), ``fact`` (the canonical
  text) and ``hash``: the lowercase hex SHA-256 of the UTF-8 bytes of
  ``f"{seq}\\n{appended_at}\\n{prev_hash}\\n{fact}"``.
* The chain holds each event id once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from services.common.contracts import EventEnvelope, PublicCaseChangedV2, RankingPublished

GENESIS = "0" * 64
KINDS = {PublicCaseChangedV2: "case", RankingPublished: "ranking"}


class NotALedgerFact(ValueError):
    """A message that is neither a public case fact nor a published ranking."""


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    """``value`` with every instant, date, decimal, id and enum as text, and the one float with four decimals."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return _plain(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime cannot go into the ledger")
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no place in a ledger fact")


def canonical(doc: Any) -> str:
    """The canonical JSON text of ``doc`` (which must already be plain: see ``_plain``)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def kind_of(envelope: EventEnvelope) -> str:
    for cls, kind in KINDS.items():
        if isinstance(envelope.payload, cls):
            return kind
    raise NotALedgerFact(f"{envelope.event_type} is not a public fact")


def fact_document(envelope: EventEnvelope) -> dict[str, Any]:
    """What the ledger records of a public fact: its identity, place and payload; never its actor or correlation."""
    return {
        "kind": kind_of(envelope),
        "event_id": str(envelope.event_id),
        "stream_id": envelope.stream_id,
        "stream_version": envelope.stream_version,
        "recorded_at": utc_text(envelope.recorded_at),
        "message_type": envelope.payload.message_type,
        "schema_version": envelope.payload.schema_version,
        "payload": _plain(envelope.payload.model_dump(mode="python")),
    }


def fact_text(envelope: EventEnvelope) -> str:
    return canonical(fact_document(envelope))


def entry_hash(seq: int, appended_at: str, prev_hash: str, fact: str) -> str:
    return hashlib.sha256(f"{seq}\n{appended_at}\n{prev_hash}\n{fact}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    appended_at: str
    event_id: str
    kind: str
    prev_hash: str
    fact: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The public form of an entry (one line of the JSONL download, one item of the API)."""
        return {
            "seq": self.seq,
            "appended_at": self.appended_at,
            "prev_hash": self.prev_hash,
            "fact": self.fact,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Head:
    seq: int  # 0: empty
    hash: str
    appended_at: str | None


EMPTY = Head(0, GENESIS, None)


def chain(head: Head, facts: Iterable[tuple[str, str, str]], appended_at: datetime) -> list[Entry]:
    """Entries after ``head`` for ``facts`` (event id, kind, fact text), in order, all appended at ``appended_at``."""
    when = utc_text(appended_at)
    if head.appended_at is not None and when < head.appended_at:
        when = head.appended_at  # the clock stepped back: time in the ledger never does
    out: list[Entry] = []
    seq, prev = head.seq, head.hash
    for event_id, kind, fact in facts:
        seq += 1
        digest = entry_hash(seq, when, prev, fact)
        out.append(Entry(seq, when, event_id, kind, prev, fact, digest))
        prev = digest
    return out


# ---------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class Broken:
    """The first broken link: the sequence number where the chain stops verifying, and what is wrong there."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Verdict:
    entries: int
    head: Head
    broken: Broken | None
    facts: dict[str, int]  # kind -> how many entries

    @property
    def ok(self) -> bool:
        return self.broken is None


_FIELDS = ("seq", "appended_at", "prev_hash", "fact", "hash")


def _utc_text_ok(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return utc_text(datetime.fromisoformat(text)) == text
    except ValueError:
        return False


def verify(entries: Iterable[Mapping[str, Any]], expect_head: str | None = None) -> Verdict:
    """Check every link of the chain, in order; stop at the first broken one and name it.

    ``entries`` are public entries (``Entry.to_json`` form). ``expect_head``: a head hash seen before (e.g. a daily
    head someone archived); the chain must pass through it.
    """
    prev = EMPTY
    seen: dict[str, int] = {}
    kinds: dict[str, int] = {}
    count = 0
    passed_expected = expect_head is None

    def verdict(broken: Broken | None) -> Verdict:
        return Verdict(count, prev, broken, kinds)

    for entry in entries:
        expected = prev.seq + 1
        missing = [f for f in _FIELDS if f not in entry]
        if missing:
            return verdict(Broken(expected, f"the entry lacks {', '.join(missing)}"))
        seq = entry["seq"]
        if seq != expected:
            what = "is missing" if isinstance(seq, int) and seq > expected else "is out of order"
            return verdict(Broken(expected, f"entry {expected} {what}: found entry {seq!r} in its place"))
        if entry["prev_hash"] != prev.hash:
            return verdict(Broken(seq, f"prev_hash {entry['prev_hash']!r} is not entry {seq - 1}'s hash {prev.hash}"))
        if not _utc_text_ok(entry["appended_at"]):
            return verdict(Broken(seq, f"appended_at {entry['appended_at']!r} is not UTC text with microseconds"))
        if prev.appended_at is not None and entry["appended_at"] < prev.appended_at:
            return verdict(Broken(seq, f"appended at {entry['appended_at']}, before entry {seq - 1}"))
        fact = entry["fact"]
        if not isinstance(fact, str):
            return verdict(Broken(seq, "the fact is not text"))
        computed = entry_hash(seq, entry["appended_at"], entry["prev_hash"], fact)
        if computed != entry["hash"]:
            return verdict(Broken(seq, f"hash {entry['hash']!r} does not match its content (computed {computed})"))
        try:
            doc = json.loads(fact)
        except ValueError:
            return verdict(Broken(seq, "the fact is not JSON"))
        if not isinstance(doc, dict) or canonical(doc) != fact:
            return verdict(Broken(seq, "the fact is not in canonical JSON"))
        event_id = str(doc.get("event_id"))
        if event_id in seen:
            return verdict(Broken(seq, f"event {event_id} is recorded twice (first at entry {seen[event_id]})"))
        seen[event_id] = seq
        kind = str(doc.get("kind"))
        kinds[kind] = kinds.get(kind, 0) + 1
        prev = Head(seq, entry["hash"], entry["appended_at"])
        count += 1
        if entry["hash"] == expect_head:
            passed_expected = True
    if not passed_expected:
        return verdict(Broken(prev.seq + 1, f"the chain never reaches the expected head {expect_head}"))
    return verdict(None)


def facts_of(entries: Iterable[Mapping[str, Any]], kind: str | None = None) -> Iterator[dict[str, Any]]:
    """The fact documents of ``entries`` (of one ``kind``, if given), in ledger order."""
    for entry in entries:
        doc: dict[str, Any] = json.loads(entry["fact"])
        if kind is None or doc["kind"] == kind:
            yield doc
