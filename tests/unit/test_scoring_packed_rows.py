"""A case's counter rows are packed into one integer each (``figures.pack``): the packing adds and subtracts exactly,
and ``contributions`` gives, counter by counter, what the plain definition of each counter gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.scoring.domain.facts import CaseFacts, evolve
from services.scoring.domain.figures import (
    FIELD_BITS,
    INDEX,
    RECTIFICATION,
    RESPONSE,
    WIDTH,
    DurationKey,
    contributions,
    pack,
    unpack,
)
from tests.unit.test_scoring_properties import events

LIMIT = 2 ** (FIELD_BITS - 1)
rows = st.lists(st.integers(-LIMIT // 16, LIMIT // 16), min_size=WIDTH, max_size=WIDTH)  # 8 rows sum within range


@given(rows)
def test_a_packed_row_unpacks_to_its_counters(counters: list[int]) -> None:
    assert unpack(pack(counters)) == counters


@given(st.lists(rows, min_size=1, max_size=4), st.lists(rows, max_size=4))
def test_packed_rows_add_and_subtract_counter_by_counter(added: list[list[int]], taken: list[list[int]]) -> None:
    packed = sum(map(pack, added)) - sum(map(pack, taken))
    expected = [sum(r[i] for r in added) - sum(r[i] for r in taken) for i in range(WIDTH)]
    assert unpack(packed) == expected


def test_the_extremes_of_the_range_unpack() -> None:
    for n in (LIMIT - 1, -LIMIT, -1, 1, 0):
        row = [n] * WIDTH
        assert unpack(pack(row)) == row


def plain(facts: CaseFacts | None) -> tuple[dict[tuple[str, str], list[int]], set[DurationKey]]:
    """Each counter by its definition (docs/scoring.md), one at a time: the reference for ``contributions``."""
    counts: dict[tuple[str, str], list[int]] = {}
    durations: set[DurationKey] = set()
    if facts is None or facts.withdrawn:
        return counts, durations

    def add(unit: str, month: str, name: str, n: int = 1) -> None:
        counts.setdefault((unit, month), [0] * WIDTH)[INDEX[name]] += n

    add(facts.complained_unit, facts.filed_month, "complained")
    s = facts.spell
    if s is not None:
        u, m = s.unit_id, s.month
        add(u, m, "assigned")
        if s.acknowledged_at is not None:
            add(u, m, "acknowledged")
            add(u, m, "ack_on_time", int(s.ack_on_time))
            durations.add((m, u, RESPONSE, facts.case_id, s.assigned_at, s.acknowledged_at))
        add(u, m, "closed", int(s.closed))
        add(u, m, "closed_on_time", int(s.closed and not s.late))
        add(u, m, "open_overdue", int(not s.closed and s.late))
        add(u, m, "inspected", int(s.first_inspection is not None))
        add(u, m, "first_pass", int(s.first_inspection is True))
        add(u, m, "resolved", int(s.resolved_at is not None))
        if s.resolved_at is not None:
            durations.add((m, u, RECTIFICATION, facts.case_id, s.assigned_at, s.resolved_at))
        add(u, m, "rated", s.satisfied + s.basically_satisfied + s.dissatisfied)
        add(u, m, "satisfied", s.satisfied)
        add(u, m, "basically_satisfied", s.basically_satisfied)
        add(u, m, "redo", s.redo)
        add(u, m, "reopened", s.reopened)
        add(u, m, "exposed", int(s.exposed))
        add(u, m, "overdue", int(s.missed))
    for past in facts.past:
        add(past.unit_id, past.month, "transferred_out")
        add(past.unit_id, past.month, "overdue", int(past.missed))
    return counts, durations


def test_contributions_agree_with_the_plain_definition_at_every_step_of_the_simulated_month() -> None:
    facts: dict[str, CaseFacts] = {}
    checked = 0
    for event in events():
        facts[event.case_id] = evolve(facts.get(event.case_id), event)
        packed, durations = contributions(facts[event.case_id])
        expected_counts, expected_durations = plain(facts[event.case_id])
        assert {key: unpack(row) for key, row in packed.items()} == expected_counts
        assert len(durations) == len(set(durations)) and set(durations) == expected_durations
        checked += 1
    transferred = [f for f in facts.values() if f.past]
    assert checked > 1000 and transferred and any(f.withdrawn for f in facts.values())
