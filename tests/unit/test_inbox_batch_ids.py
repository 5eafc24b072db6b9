"""``batch_ids``: the ids a batch's log lines carry, found without a pass per message over a batch of many cases."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass

from services.common.inbox import CASE_KEYED, Decoded, Record, batch_ids
from services.common.topics import CASE_EVENTS


@dataclass(frozen=True)
class WithCorrelation:
    correlation_id: object


@dataclass(frozen=True)
class WithoutCorrelation:
    n: int


def by_sets(good: list[Decoded[object]]) -> dict[str, str | None]:
    """The definition: every distinct value collected, kept when there is exactly one."""
    correlations = {str(c) for d in good if (c := getattr(d.message, "correlation_id", None)) is not None}
    cases = {d.record.key.decode(errors="replace") for d in good if d.record.key and d.record.topic in CASE_KEYED}
    ids: dict[str, str | None] = {}
    if len(correlations) == 1:
        ids["correlation_id"] = correlations.pop()
    if len(cases) == 1:
        ids["case_id"] = cases.pop()
    return ids


def test_batch_ids_agrees_with_collecting_every_distinct_value() -> None:
    rng = random.Random(5)
    one = uuid.uuid4()
    correlations = [None, one, str(one), uuid.uuid4(), "corr-2"]  # a UUID and its text are one id
    keys = [None, b"", b"RC-1", b"RC-2", b"\xff"]
    topics = [CASE_EVENTS.name, "rectify.dead.letters.v1"]
    seen = set()
    for _ in range(3000):
        good = []
        for offset in range(rng.randint(0, 6)):
            c = rng.choice(correlations)
            message = WithoutCorrelation(offset) if rng.random() < 0.3 else WithCorrelation(c)
            good.append(Decoded(Record(rng.choice(topics), 0, offset, rng.choice(keys), b"{}"), message))
        got = batch_ids(good)
        assert got == by_sets(good), good
        seen.add(tuple(sorted(got)))
    assert seen == {(), ("correlation_id",), ("case_id",), ("case_id", "correlation_id")}


def test_a_second_case_ends_the_search() -> None:
    good = [Decoded(Record(CASE_EVENTS.name, 0, i, k, b"{}"), WithoutCorrelation(i)) for i, k in
            enumerate(itertools.chain([b"RC-1"] * 3, [b"RC-2"], [b"RC-1"] * 3))]  # fmt: skip
    assert batch_ids(good) == {}
    assert batch_ids(good[:3]) == {"case_id": "RC-1"}
