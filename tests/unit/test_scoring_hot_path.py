"""The scoring projector's hot path gives exactly what the plain path gives: the msgspec reader, a batch worked out
a slice of cases at a time, and the consumer's revocation hook after a failure."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterable
from datetime import datetime

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.batch_consumer import BatchConsumer, ConsumerConfig
from services.common.contracts import ContractError, encode_event
from services.common.periods import CHINA, month_of
from services.scoring.adapters.wire import _read_dict, read_event
from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.facts import MOVING, CaseFacts
from services.scoring.domain.projection import ID_HASH_MODULUS, Change, Tables, apply_events, id_hash
from services.scoring.entrypoints.case_events import FactsCache, case_slices, work_out
from tests.unit.test_scoring_properties import events, interleave, reference_digest, simulated_log

KEYS = ("event_id", "event_type", "schema_version", "stream_id", "stream_version", "recorded_at", "payload")
ODD = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.text(max_size=12)
    | st.lists(st.integers(-(2**40), 2**40), max_size=2)
)


def outcome(raw: bytes, read) -> ScoredEvent | str:  # type: ignore[no-untyped-def]
    try:
        return read(raw)  # type: ignore[no-any-return]
    except ContractError as exc:
        return exc.code


def test_the_fast_reader_reads_every_event_as_the_plain_one() -> None:
    for envelope in simulated_log():
        raw = encode_event(envelope)
        assert read_event(raw) == _read_dict(raw)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_spoilt_event_gets_the_same_verdict_from_both_readers(data: st.DataObject) -> None:
    log = simulated_log()
    message = orjson.loads(encode_event(log[data.draw(st.integers(0, len(log) - 1))]))
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            message[data.draw(st.sampled_from(KEYS))] = data.draw(ODD)
        elif isinstance(message.get("payload"), dict):
            message["payload"][data.draw(st.sampled_from([*message["payload"], "at", "on_time"]))] = data.draw(ODD)
    raw = orjson.dumps(message)
    assert outcome(raw, read_event) == outcome(raw, _read_dict)


TIMES = (
    "2025-03-05T00:29:59.999999+08:00",
    "2025-03-05T00:29:59Z",
    "2025-03-05T00:29:59.5-05:30",
    "2025-03-05 00:29:59+08:00",
    "2025-03-05T00:29:59",  # no zone
    "2025-13-05T00:29:59+08:00",
    "2025-03-05",
    "20250305T002959+0800",
    "2025-03-05T00:29:59.9999996+08:00",  # msgspec rounds a 7th digit, fromisoformat truncates: both readers agree
    "2025-03-05t00:29:59z",  # msgspec takes a lowercase z, fromisoformat does not
    "2025-03-05T00:29:59+05:30:10",  # ISO 8601's offset with seconds: only fromisoformat takes it
    "yesterday",
)


@pytest.mark.parametrize("moment", TIMES)
def test_a_time_gets_the_same_reading_from_both_readers(moment: str) -> None:
    for envelope in simulated_log()[:40]:
        message = orjson.loads(encode_event(envelope))
        message["recorded_at"] = moment
        if "at" in message["payload"]:
            message["payload"]["at"] = moment
        raw = orjson.dumps(message)
        assert outcome(raw, read_event) == outcome(raw, _read_dict)


def test_an_offset_with_seconds_keeps_its_instant_through_the_stored_form() -> None:
    """The stored facts and rows write an offset in whole minutes (msgspec, as orjson did): such a time is read
    as UTC, so storing it does not shift it by the offset's seconds."""
    envelope = simulated_log()[0]
    message = orjson.loads(encode_event(envelope))
    message["recorded_at"] = "2025-03-05T00:29:59.250000+05:30:10"
    read = read_event(orjson.dumps(message))
    assert read.recorded_at == datetime.fromisoformat("2025-03-05T00:29:59.250000+05:30:10")
    assert datetime.fromisoformat(msgspec.json.decode(msgspec.json.encode(read.recorded_at))) == read.recorded_at


def test_times_with_one_offset_share_one_zone_object() -> None:
    """What makes comparing them cheap in the fold (no ``utcoffset`` call): a reader that lost it is slower."""
    read = [read_event(encode_event(envelope)) for envelope in simulated_log()]
    zones = {id(e.recorded_at.tzinfo) for e in read} | {id(e.at.tzinfo) for e in read if e.at is not None}
    offsets = {e.recorded_at.utcoffset() for e in read} | {e.at.utcoffset() for e in read if e.at is not None}
    assert len(zones) == len(offsets)


def as_tables(changes: Iterable[Change]) -> dict[str, str]:
    tables = Tables()
    for change in changes:
        tables.absorb(change)
    return tables.digest()


@pytest.mark.parametrize("size", [1, 7, 300])
def test_a_batch_worked_out_in_slices_adds_up_to_the_whole(size: int) -> None:
    log = list(events())
    batches = [log[i : i + 1000] for i in range(0, len(log), 1000)]
    whole: dict[str, CaseFacts] = {}
    sliced: dict[str, CaseFacts] = {}
    whole_changes, sliced_changes = [], []
    for batch in batches:
        change = apply_events(whole, batch)
        whole.update(change.facts)
        whole_changes.append(change)
        parts = Change()
        slices = list(case_slices(batch, size))
        assert sorted(e.event_id for part in slices for e in part) == sorted(e.event_id for e in batch)
        for part in slices:
            parts.add(apply_events(sliced, part))
        sliced.update(parts.facts)
        assert parts.nonzero_counts() == change.nonzero_counts()
        assert parts.durations == change.durations
        assert {e: (t.events, t.id_hash_sum) for e, t in parts.epochs.items()} == {
            e: (t.events, t.id_hash_sum) for e, t in change.epochs.items()
        }
        sliced_changes.append(parts)
    assert as_tables(sliced_changes) == as_tables(whole_changes)


class NoStore:
    async def load_facts(self, case_ids: Iterable[str]) -> tuple[dict[str, CaseFacts], dict[str, int]]:
        return {}, {}


async def test_a_paced_work_out_equals_the_plain_one() -> None:
    log = list(events())
    random.Random(5).shuffle(log)  # any order: each case's events are sorted by version in the batch
    log.sort(key=lambda e: e.recorded_at)  # but batches in recorded order, so every case starts with CaseFiled
    plain, paced = FactsCache(10_000), FactsCache(10_000)
    for i in range(0, len(log), 2500):
        batch = log[i : i + 2500]
        one = await work_out(NoStore(), plain, batch)  # type: ignore[arg-type]
        two = await work_out(NoStore(), paced, batch, paced=True)  # type: ignore[arg-type]
        plain.put(one)
        paced.put(two)
        assert two.facts == one.facts
        assert two.nonzero_counts() == one.nonzero_counts() and two.durations == one.durations


async def test_what_was_cached_is_dropped_when_the_consumer_fails_and_joins_again() -> None:
    with socket.socket() as s:  # a port nobody listens on: every start of the consumer fails
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dropped: list[int] = []
    config = ConsumerConfig(f"127.0.0.1:{port}", "t", "g", "c", retry_pause_s=0.05)
    consumer = BatchConsumer(config, None, on_revoked=lambda: dropped.append(1))  # type: ignore[arg-type]
    running = asyncio.ensure_future(consumer.run())
    try:
        for _ in range(400):
            if len(dropped) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await asyncio.wait_for(running, 30)
    assert len(dropped) >= 2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), batch=st.integers(50, 1000), redelivered=st.floats(0, 0.2))
def test_exactly_once_by_version_alone(seed: int, batch: int, redelivered: float) -> None:
    """The consumer keeps no event ids: each case's applied version (events of every kind) skips what came before,
    whether it comes again in a later batch or twice in one."""
    rng = random.Random(seed)
    stream = interleave(events(), rng)
    tables = Tables()
    for i in range(0, len(stream), batch):
        again = [e for e in stream[: i + batch] if rng.random() < redelivered]
        tables.absorb(apply_events(tables.facts, stream[i : i + batch] + again, known_versions=tables.versions))
    assert tables.digest() == reference_digest()
    assert {c: f.version for c, f in tables.facts.items()} == {e.case_id: e.version for e in events()}


def test_a_case_without_facts_counts_its_other_events_once() -> None:
    """A case whose CaseFiled was dead-lettered: its events that move no facts are counted, once, by version."""
    case = next(e.case_id for e in events() if e.kind not in MOVING)
    counted = [e for e in events() if e.case_id == case and e.kind not in MOVING]
    first = apply_events({}, counted)
    assert first.versions == {case: counted[-1].version} and not first.facts
    assert sum(t.events for t in first.epochs.values()) == len(counted)
    again = apply_events({}, counted, known_versions=first.versions)
    assert (again.skipped, again.epochs, again.versions) == (len(counted), {}, {})


@settings(max_examples=500, deadline=None)
@given(st.datetimes(timezones=st.timezones()))
def test_the_month_of_an_instant_is_what_strftime_gives(at: datetime) -> None:
    assert month_of(at) == f"{at.astimezone(CHINA):%Y-%m}"


def test_an_epochs_id_hash_is_the_sum_of_its_events_id_hashes() -> None:
    """Hashed once per batch: the same figure as ``id_hash`` event by event, reduced mod 2**256."""
    change = apply_events({}, events())
    assert sum(t.events for t in change.epochs.values()) == len(events())
    assert (
        sum(t.id_hash_sum for t in change.epochs.values()) % ID_HASH_MODULUS
        == sum(id_hash(e.event_id) for e in events()) % ID_HASH_MODULUS
    )
    assert not change.tallied
