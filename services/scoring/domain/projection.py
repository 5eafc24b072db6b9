"""The projection as a pure function: case facts and a batch of events in, the change to every table out.

For each case the batch's events are applied in stream order; an event at or below the case's version was
applied before and is skipped. The change to the figures is the difference of the case's contributions
(``figures.contributions``) before and after, so an update costs O(1) per event whatever the history.

Settling. An event counts with its *effective* recorded time, the latest ``recorded_at`` of its case so far
(so a case's counted events are always a prefix of its stream). Its change to a month's figures is dropped
when it was recorded after that month's cutoff (``periods.cutoff``): a settled month never changes again, and
anyone can recompute it from the events recorded up to the cutoff. The events are also tallied per *epoch*,
the first month whose cutoff they fall before, which gives the count and id hash of the events a ranking covers.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter, itemgetter, methodcaller

from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.facts import CASE_STEPS, MOVING, SPELL_STEPS, CaseFacts, facts_to_json, iso, start
from services.scoring.domain.figures import WIDTH, Contributions, DurationKey, RowKey, contributions, unpack
from services.scoring.domain.hashing import digest
from services.scoring.domain.periods import cutoff, epoch_of, previous_month

ID_HASH_MODULUS = 2**256
try:  # CPython's own SHA-256: the same digests as hashlib's (OpenSSL), without an OpenSSL context per 16-byte id
    from _sha256 import sha256 as _sha256  # Python 3.11
except ImportError:  # pragma: no cover
    _sha256 = hashlib.sha256
_digest = methodcaller("digest")
_id_bytes = attrgetter("bytes")
_SLOT = 288  # bits: a digest's 256 and 32 of headroom, so that up to 2**32 digests add up inside one slot
_SLOT_MODULUS = 2**_SLOT - 1
_GAP = bytes((_SLOT - 256) // 8)


def digest_sum(digests: Iterable[bytes]) -> int:
    """The sum of 32-byte digests read as big-endian numbers, without a Python integer per digest.

    Joined with four zero bytes between them, the digests read as one number, the sum of d_k * 2**(288 * k). As
    2**288 = 1 modulo 2**288 - 1, that number is congruent to the plain sum of the digests, which is below
    2**288 - 1 for fewer than 2**32 digests: so the sum is the number modulo 2**288 - 1, worked out by folding its
    upper half onto its lower one (at a multiple of 288 bits) until it fits in one slot.
    """
    x = int.from_bytes(_GAP.join(digests), "big")
    n = x.bit_length()
    while n > _SLOT:
        k = max(1, n // _SLOT // 2) * _SLOT
        x = (x >> k) + (x & ((1 << k) - 1))
        n = x.bit_length()
    return 0 if x == _SLOT_MODULUS else x


_VERSION = itemgetter(2)  # ScoredEvent.version (a named tuple's field, by index: cheaper than a function)


def id_hash(event_id: uuid.UUID) -> int:
    """An event's share of a set hash: its id's sha256 as a number. A set's hash is their sum mod 2**256."""
    return int.from_bytes(hashlib.sha256(event_id.bytes).digest(), "big")


@dataclass
class EpochTally:
    events: int = 0
    id_hash_sum: int = 0
    last_recorded_at: datetime | None = None

    def add(self, other: EpochTally) -> None:
        self.events += other.events
        self.id_hash_sum = (self.id_hash_sum + other.id_hash_sum) % ID_HASH_MODULUS
        if other.last_recorded_at is not None and (
            self.last_recorded_at is None or other.last_recorded_at > self.last_recorded_at
        ):
            self.last_recorded_at = other.last_recorded_at


@dataclass
class Change:
    facts: dict[str, CaseFacts] = field(default_factory=dict)  # the new facts of every case that moved
    contributions: dict[str, Contributions] = field(default_factory=dict)  # and what they now contribute
    previous_versions: dict[str, int] = field(default_factory=dict)  # their versions before (0: new case)
    versions: dict[str, int] = field(default_factory=dict)  # cases with no facts: the version applied up to
    counts: dict[RowKey, int] = field(default_factory=dict)  # (unit, month) -> deltas, packed (figures.pack)
    durations: dict[DurationKey, int] = field(default_factory=dict)  # +1 added, -1 removed
    epochs: dict[str, EpochTally] = field(default_factory=dict)
    tallied: dict[str, tuple[list[uuid.UUID], list[datetime]]] = field(default_factory=dict)  # not yet in epochs
    skipped: int = 0  # events at or below their case's applied version: applied before
    sealed: set[str] = field(default_factory=set)  # cases that reached the ``until`` position
    unscorable: list[ScoredEvent] = field(default_factory=list)  # with ``lenient``: events left out

    def merge_difference(self, before: Contributions, after: Contributions, epoch: str) -> None:
        """Add ``after - before`` to the change, leaving out the months settled before ``epoch`` (once per case and
        batch: a row's change is one subtraction of packed rows, a duration's is whether it is in both)."""
        if before == after:
            return
        before_rows, before_durations = before
        after_rows, after_durations = after
        if before_rows != after_rows:
            counts = self.counts
            for key, packed in after_rows.items():
                if key[1] >= epoch:  # else that month had settled before these events were recorded
                    delta = packed - before_rows.get(key, 0)
                    if delta:
                        counts[key] = counts.get(key, 0) + delta
            for key, packed in before_rows.items():
                if key not in after_rows and key[1] >= epoch:
                    counts[key] = counts.get(key, 0) - packed
        if before_durations != after_durations:
            durations = self.durations
            for dkey in after_durations:
                if dkey not in before_durations and dkey[0] >= epoch:
                    net = durations.get(dkey, 0) + 1
                    if net:
                        durations[dkey] = net
                    else:
                        del durations[dkey]
            for dkey in before_durations:
                if dkey not in after_durations and dkey[0] >= epoch:
                    net = durations.get(dkey, 0) - 1
                    if net:
                        durations[dkey] = net
                    else:
                        del durations[dkey]

    def tally(self, epoch: str, event: ScoredEvent, recorded_at: datetime) -> None:
        """Count an applied event in its epoch (in ``epochs`` once ``settle_hashes`` has run): how many, their id
        hash, the latest recorded time."""
        pending = self.tallied.get(epoch)
        if pending is None:
            pending = self.tallied[epoch] = ([], [])
        pending[0].append(event.event_id)
        pending[1].append(recorded_at)

    def settle_hashes(self) -> None:
        """Fold what was tallied into ``epochs``: the ids hashed in one pass per epoch, without Python per id."""
        for epoch, (ids, times) in self.tallied.items():
            tally = self.epochs.get(epoch)
            if tally is None:
                tally = self.epochs[epoch] = EpochTally()
            tally.events += len(ids)
            hashes = digest_sum(map(_digest, map(_sha256, map(_id_bytes, ids))))  # the sum of their id_hash
            tally.id_hash_sum = (tally.id_hash_sum + hashes) % ID_HASH_MODULUS
            latest = max(times)
            if tally.last_recorded_at is None or latest > tally.last_recorded_at:
                tally.last_recorded_at = latest
        self.tallied.clear()

    def nonzero_counts(self) -> dict[RowKey, list[int]]:
        """The counter deltas of each (unit, month) that moved, unpacked."""
        return {key: unpack(packed) for key, packed in self.counts.items() if packed}

    def add(self, other: Change) -> None:
        """Fold in the change of *other* cases: a batch worked out a few cases at a time adds up to the same change
        as the batch worked out at once (no case may be in both)."""
        self.facts.update(other.facts)
        self.contributions.update(other.contributions)
        self.previous_versions.update(other.previous_versions)
        self.versions.update(other.versions)
        counts = self.counts
        for key, packed in other.counts.items():
            counts[key] = counts.get(key, 0) + packed
        for dkey, n in other.durations.items():
            net = self.durations.get(dkey, 0) + n
            if net:
                self.durations[dkey] = net
            else:
                del self.durations[dkey]
        for epoch, tally in other.epochs.items():
            mine = self.epochs.get(epoch)
            if mine is None:
                self.epochs[epoch] = tally
            else:
                mine.add(tally)
        self.skipped += other.skipped
        self.sealed |= other.sealed
        self.unscorable += other.unscorable


_NO_SPAN = (datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC), "")  # holds no instant


class _EpochClock:
    """``epoch_of`` remembering the bounds of the epochs it has answered, since a batch's events share a few."""

    def __init__(self) -> None:
        self.known: list[tuple[datetime, datetime, str]] = []
        self.last: tuple[datetime, datetime, str] | None = None  # most events fall where the one before did

    def __call__(self, recorded_at: datetime) -> str:
        last = self.last
        if last is not None and last[0] < recorded_at <= last[1]:
            return last[2]
        for bounds in self.known:
            if bounds[0] < recorded_at <= bounds[1]:
                self.last = bounds
                return bounds[2]
        epoch = epoch_of(recorded_at)
        zone = recorded_at.tzinfo  # bounds in the events' own zone object: comparing them skips ``utcoffset``
        self.last = (cutoff(previous_month(epoch)).astimezone(zone), cutoff(epoch).astimezone(zone), epoch)
        self.known.append(self.last)
        return epoch


def by_case(events: Iterable[ScoredEvent]) -> dict[str, list[ScoredEvent]]:
    """The events of each case, in stream order (a batch's cases in the order they first appear)."""
    grouped: dict[str, list[ScoredEvent]] = {}
    for event in events:
        case_events = grouped.get(event.case_id)
        if case_events is None:
            grouped[event.case_id] = [event]
        else:
            case_events.append(event)
    for case_events in grouped.values():
        if len(case_events) > 1:
            case_events.sort(key=_VERSION)
    return grouped


def apply_events(
    known: Mapping[str, CaseFacts | None],
    events: Iterable[ScoredEvent],
    *,
    known_contributions: Mapping[str, Contributions] | None = None,
    known_versions: Mapping[str, int] | None = None,
    owned: bool = False,
    until: datetime | None = None,
    lenient: bool = False,
) -> Change:
    """Apply ``events`` on top of ``known`` (the facts of every case the events touch that exists).

    Exactly once by stream version: a case's events arrive in stream order, and an event at or below the
    version its case was applied up to (``CaseFacts.version``, of every kind) was applied before and is skipped,
    so a redelivery, a refill of the broker or a duplicate inside the batch changes nothing. An event of a kind
    that changes nothing scoring keeps (``facts.MOVING``) is only counted, at its own recorded time, and moves the
    version. ``known_versions``: the applied version of cases that have no facts (their CaseFiled could not be
    scored), so that their other events are counted once too.
    ``known_contributions``: the contributions of the known facts, when the caller has them (a cache).
    ``owned``: the caller hands the known facts over, so they are changed in place rather than copied.
    ``until``: leave out what was recorded later (see ``Change.sealed``), to rebuild a ranking's position.
    ``lenient``: leave out an event that cannot start its case instead of raising ``UnscorableEvent``.
    """
    return apply_grouped(
        known,
        by_case(events),
        known_contributions=known_contributions,
        known_versions=known_versions,
        owned=owned,
        until=until,
        lenient=lenient,
    )


def apply_grouped(
    known: Mapping[str, CaseFacts | None],
    grouped: Mapping[str, list[ScoredEvent]],
    *,
    known_contributions: Mapping[str, Contributions] | None = None,
    known_versions: Mapping[str, int] | None = None,
    owned: bool = False,
    until: datetime | None = None,
    lenient: bool = False,
) -> Change:
    """``apply_events`` of events already grouped by ``by_case`` (each case's in stream order)."""
    change = Change()
    clock = _EpochClock()
    contributed = known_contributions or {}
    versions = known_versions or {}
    for case_id, case_events in grouped.items():
        _apply_case(
            change,
            clock,
            known.get(case_id),
            contributed.get(case_id),
            versions.get(case_id, 0),
            case_events,
            until,
            lenient,
            owned,
        )
    change.settle_hashes()
    return change


def _apply_case(
    change: Change,
    clock: _EpochClock,
    known: CaseFacts | None,
    before: Contributions | None,
    known_version: int,
    events: list[ScoredEvent],
    until: datetime | None,
    lenient: bool,
    owned: bool,
) -> None:
    """One case's events of a batch, in order. Its contributions are diffed once per epoch ("segment"): before
    its first event of the epoch and after its last. (``Change.tally`` is inlined: this runs once per event.)"""
    facts = known  # unless owned, copied before the first change: the known facts stay as they were
    previous_version = applied = known.version if known is not None else known_version
    segment: str | None = None
    sealed = False
    tallied = change.tallied
    lo, hi, current = clock.last or _NO_SPAN
    tally_epoch: str | None = None
    ids: list[uuid.UUID] = []
    times: list[datetime] = []
    for event in events:
        version = event.version
        if version <= applied:
            change.skipped += 1
            continue
        kind = event.kind
        if kind not in MOVING:  # counted at its own recorded time, changes no facts but the version
            recorded_at = event.recorded_at
            if until is not None and recorded_at > until:
                continue
            if lo < recorded_at <= hi:  # where the event before fell: the clock's own first check, inlined
                epoch = current
            else:
                epoch = clock(recorded_at)
                lo, hi, current = clock.last  # type: ignore[misc]
            applied = version
            if facts is not None:
                if facts is known and not owned:
                    facts = facts.copy()
                facts.version = version
        else:
            if sealed:
                continue
            recorded_at = event.recorded_at
            if facts is not None and recorded_at < facts.recorded_at:
                recorded_at = facts.recorded_at
            if until is not None and recorded_at > until:
                change.sealed.add(event.case_id)
                sealed = True
                continue
            if facts is None and lenient and kind != "CaseFiled":
                change.unscorable.append(event)
                continue
            if lo < recorded_at <= hi:  # where the event before fell: the clock's own first check, inlined
                epoch = current
            else:
                epoch = clock(recorded_at)
                lo, hi, current = clock.last  # type: ignore[misc]
            if epoch != segment:
                if segment is not None:
                    after = contributions(facts)
                    change.merge_difference(before, after, segment)  # type: ignore[arg-type]
                    before = after
                segment = epoch
            if before is None:
                before = contributions(facts)
            if facts is None:
                facts = start(event)
            else:
                if facts is known and not owned:
                    facts = facts.copy()
                step = CASE_STEPS.get(kind)  # facts.apply, inlined: this runs once per event
                if step is not None:
                    step(facts, event)
                elif facts.spell is not None:
                    spell_step = SPELL_STEPS.get(kind)
                    if spell_step is not None:
                        spell_step(facts.spell, event)
                facts.version = version
                if event.recorded_at > facts.recorded_at:
                    facts.recorded_at = event.recorded_at
            applied = version
        if epoch != tally_epoch:
            pending = tallied.get(epoch)
            if pending is None:
                pending = tallied[epoch] = ([], [])
            ids, times = pending
            tally_epoch = epoch
        ids.append(event.event_id)
        times.append(recorded_at)
    if applied == previous_version:
        return
    if facts is None:  # only counted events, on a case with no facts
        change.versions[events[0].case_id] = applied
    elif segment is not None and before is not None:
        after = contributions(facts)
        change.merge_difference(before, after, segment)
        change.contributions[facts.case_id] = after
    else:  # only counted events: the facts moved their version alone
        change.contributions[facts.case_id] = before if before is not None else contributions(facts)
    if facts is not None:
        change.facts[facts.case_id] = facts
    change.previous_versions[events[0].case_id] = previous_version


@dataclass
class Tables:
    """The projection's tables held in memory: what recompute and the tests fold the log into.

    With ``until`` they hold the log up to that position only (see ``apply_events``); with ``lenient`` an event
    that cannot start its case is left out and counted, as the consumer dead-letters it.
    """

    facts: dict[str, CaseFacts] = field(default_factory=dict)
    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    durations: set[DurationKey] = field(default_factory=set)
    epochs: dict[str, EpochTally] = field(default_factory=dict)
    until: datetime | None = None
    lenient: bool = False
    seen: set[uuid.UUID] = field(default_factory=set)  # the ids applied (a second line: versions decide)
    versions: dict[str, int] = field(default_factory=dict)  # cases with no facts: the version applied up to
    sealed: set[str] = field(default_factory=set)
    unscorable: int = 0

    def apply(self, events: Iterable[ScoredEvent]) -> Change:
        fresh = []
        for event in events:
            if event.event_id in self.seen or (event.case_id in self.sealed and event.kind in MOVING):
                continue
            self.seen.add(event.event_id)
            fresh.append(event)
        change = apply_events(
            self.facts, fresh, known_versions=self.versions, owned=True, until=self.until, lenient=self.lenient
        )
        self.absorb(change)
        return change

    def absorb(self, change: Change) -> None:
        self.facts.update(change.facts)
        self.versions.update(change.versions)
        self.sealed |= change.sealed
        self.unscorable += len(change.unscorable)
        for key, delta in change.nonzero_counts().items():
            row = self.counts.setdefault(key, [0] * WIDTH)
            for i, n in enumerate(delta):
                row[i] += n
            if not any(row):
                del self.counts[key]
        for dkey, n in change.durations.items():
            if n > 0:
                self.durations.add(dkey)
            else:
                self.durations.discard(dkey)
        for epoch, tally in change.epochs.items():
            self.epochs.setdefault(epoch, EpochTally()).add(tally)

    def digest(self) -> dict[str, str]:
        """sha256 of each table's canonical rows in key order (all-zero counter rows left out), and of them all."""
        rows = {
            "case_facts": [facts_to_json(self.facts[case]) for case in sorted(self.facts)]
            + [[case, self.versions[case]] for case in sorted(self.versions)],  # cases with no facts: their version
            "unit_month": [[*key, *self.counts[key]] for key in sorted(self.counts) if any(self.counts[key])],
            "unit_durations": [[m, u, k, c, iso(a), iso(b)] for m, u, k, c, a, b in sorted(self.durations)],
            "log_epochs": [
                [epoch, t.events, f"{t.id_hash_sum:064x}", iso(t.last_recorded_at) if t.last_recorded_at else None]
                for epoch, t in sorted(self.epochs.items())
            ],
        }
        hashes = {table: digest(table_rows) for table, table_rows in rows.items()}
        return {**hashes, "all": digest(hashes)}
