"""Properties of the projection and the ranking, over a simulated month of cases and generated figures."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.contracts import ContractError, EventEnvelope, encode_event
from services.common.reference import reference
from services.rectification.domain.calendar import load_calendar
from services.rectification.domain.time_limits import load_time_limits
from services.rectification.service import decide_commands
from services.rectification.simulation import month_of_cases
from services.scoring.adapters.wire import from_envelope, read_event
from services.scoring.domain.events import ScoredEvent
from services.scoring.domain.facts import facts_from_json, facts_to_json, load_stored_facts, stored_facts
from services.scoring.domain.figures import INDEX, WIDTH
from services.scoring.domain.formula import load_formula
from services.scoring.domain.periods import Period
from services.scoring.domain.projection import Tables
from services.scoring.domain.ranking import Position, RankingInput, UnitInput, rank
from services.scoring.service import TIERS, Rules, inputs_from_tables

CALENDAR = load_calendar()
RULES = Rules(calendar=CALENDAR, reference=reference())
V1 = load_formula("v1")
PERIODS = ("2025-03", "2025-04", "2025-Q1", "2025-Q2", "2025")
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def simulated_log() -> tuple[EventEnvelope, ...]:
    """A month of 300 simulated cases (every path of the lifecycle), decided 40 commands at a time."""
    ref = reference()
    units, categories = frozenset(ref.units), frozenset(ref.categories)
    policy = load_time_limits()
    sim = month_of_cases(seed=11, calendar=CALENDAR, policy=policy, units=sorted(units), categories=sorted(categories))
    commands, states, log = sim.envelopes(), {}, []
    for i in range(0, len(commands), 40):
        batch = commands[i : i + 40]
        decided = decide_commands(
            {}, batch, now=batch[-1].issued_at, units=units, categories=categories, calendar=CALENDAR, policy=policy,
            known=states,
        )  # fmt: skip
        states = decided.states
        log += decided.appended
    return tuple(log)


@cache
def events() -> tuple[ScoredEvent, ...]:
    return tuple(from_envelope(e) for e in simulated_log())


@cache
def reference_digest() -> dict[str, str]:
    tables = Tables()
    tables.apply(events())
    return tables.digest()


def interleave(stream: Sequence[ScoredEvent], rng: random.Random) -> list[ScoredEvent]:
    """Another order a consumer could see: each case's events in order, cases interleaved at random."""
    queues: dict[str, list[ScoredEvent]] = {}
    for e in stream:
        queues.setdefault(e.case_id, []).append(e)
    pending = [list(reversed(q)) for q in queues.values()]
    out = []
    while pending:
        i = rng.randrange(len(pending))
        out.append(pending[i].pop())
        if not pending[i]:
            pending.pop(i)
    return out


def ranking(tables: Tables, period: str, tier: str):  # type: ignore[no-untyped-def]
    return rank(inputs_from_tables(tables, Period.parse(period), tier, RULES), V1, CALENDAR)


@FAST
@given(seed=st.integers(0, 2**32), batch=st.integers(50, 1000), redelivered=st.floats(0, 0.1))
def test_redelivery_reordering_and_batching_change_nothing(seed: int, batch: int, redelivered: float) -> None:
    rng = random.Random(seed)
    stream = interleave(events(), rng)
    tables = Tables()
    for i in range(0, len(stream), batch):
        tables.apply(stream[i : i + batch])
        tables.apply([e for e in stream[: i + batch] if rng.random() < redelivered])  # earlier events come again
    assert tables.digest() == reference_digest()


@FAST
@given(seed=st.integers(0, 2**32), share=st.floats(0.05, 1))
def test_rates_stay_within_0_and_1_for_any_set_of_cases(seed: int, share: float) -> None:
    rng = random.Random(seed)
    chosen = {case for case in {e.case_id for e in events()} if rng.random() < share}
    tables = Tables()
    tables.apply([e for e in events() if e.case_id in chosen])
    assert all(n >= 0 for row in tables.counts.values() for n in row)
    for period in PERIODS:
        for tier in TIERS:
            for row in ranking(tables, period, tier).rows:
                for r in row["rates"].values():
                    assert 0 <= r["num"] <= r["den"]
                    assert r["value"] is None or 0 <= float(r["value"]) <= 1
                assert row["composite"] is None or 0 <= float(row["composite"]) <= 100


@FAST
@given(seed=st.integers(0, 2**32), cut=st.floats(0.2, 1.0))
def test_recompute_from_the_log_equals_the_projection_that_applied_everything(seed: int, cut: float) -> None:
    """The live projection keeps applying events after a month's cutoff; the log cut at the cutoff agrees."""
    rng = random.Random(seed)
    stream = interleave(events(), rng)[: int(len(events()) * cut)]  # the log as far as it has come
    live = Tables()
    for i in range(0, len(stream), rng.randint(1, 500)):
        live.apply(stream[i : i + 500])
    for period in ("2025-03", "2025-Q1"):
        p = Period.parse(period)
        recomputed = Tables(until=p.cutoff, lenient=True)
        recomputed.apply(stream)
        for tier in TIERS:
            assert ranking(live, period, tier).result_hash == ranking(recomputed, period, tier).result_hash


def counts_strategy() -> st.SearchStrategy[tuple[int, ...]]:
    def build(assigned: int, shares: list[float], exposed: int) -> tuple[int, ...]:
        row = [0] * WIDTH
        row[INDEX["assigned"]] = assigned
        for name, share in zip(("ack_on_time", "closed", "inspected", "resolved", "rated"), shares, strict=False):
            row[INDEX[name]] = int(assigned * share)
        row[INDEX["closed_on_time"]] = int(row[INDEX["closed"]] * shares[5])
        row[INDEX["first_pass"]] = int(row[INDEX["inspected"]] * shares[6])
        row[INDEX["satisfied"]] = int(row[INDEX["rated"]] * shares[7])
        row[INDEX["exposed"]] = min(exposed, assigned)
        return tuple(row)

    shares = st.lists(st.sampled_from([0, 0.25, 0.5, 0.75, 1]), min_size=8, max_size=8)
    return st.builds(build, st.integers(0, 12), shares, st.integers(0, 2))


@FAST
@given(figures=st.lists(counts_strategy(), min_size=1, max_size=20), seed=st.integers(0, 2**32))
def test_the_ranking_is_a_deterministic_total_order(figures: list[tuple[int, ...]], seed: int) -> None:
    towns = sorted(u for u, x in reference().units.items() if x.tier == "township")
    units = [UnitInput(u, c, {"response": (), "rectification": ()}) for u, c in zip(towns, figures, strict=False)]
    position = Position(Period.parse("2026-11").cutoff, 0, "0" * 64, "test")
    first = rank(RankingInput(Period.parse("2026-11"), "township", "u", position, tuple(units)), V1, CALENDAR)
    random.Random(seed).shuffle(units)
    second = rank(RankingInput(Period.parse("2026-11"), "township", "u", position, tuple(units)), V1, CALENDAR)
    assert first.result_hash == second.result_hash
    ranks = [r["rank"] for r in first.rows if r["rank"] is not None]
    assert ranks == list(range(1, len(ranks) + 1))
    eligible = [r for r in first.rows if r["eligible"]]
    assert len(eligible) == len(ranks) and all(r["cases"] >= V1.min_cases for r in eligible)
    assert not set(first.document["top_ten"]) & {f["unit_id"] for f in first.document["bottom_flags"]}
    scores = [float(r["composite"]) for r in eligible]
    assert scores == sorted(scores, reverse=True)


def test_the_wire_reader_agrees_with_the_contract_decoder() -> None:
    for envelope in simulated_log():
        assert read_event(encode_event(envelope)) == from_envelope(envelope)


@settings(max_examples=200, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=20,
        ).map(orjson.dumps),
    )
)
def test_anything_unreadable_is_a_contract_error(data: bytes) -> None:
    with pytest.raises(ContractError):
        read_event(data)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda d: d.update(event_type="SubmissionRefused"), "unknown_type"),
        (lambda d: d.update(stream_version=0), "invalid_envelope"),
        (lambda d: d.update(event_id="nope"), "invalid_envelope"),
        (lambda d: d["payload"].update(on_time="yes"), "invalid_payload"),
        (lambda d: d["payload"].update(at="yesterday"), "invalid_payload"),
        (lambda d: d.update(schema_version=9), "unknown_version"),
    ],
)
def test_poison_is_named(change, code: str) -> None:  # type: ignore[no-untyped-def]
    acknowledged = next(e for e in simulated_log() if e.event_type == "CaseAcknowledged")
    data = orjson.loads(encode_event(acknowledged))
    change(data)
    with pytest.raises(ContractError) as raised:
        read_event(orjson.dumps(data))
    assert raised.value.code == code


def test_stored_facts_read_back_as_they_were() -> None:
    tables = Tables()
    tables.apply(events())
    for facts in tables.facts.values():
        assert load_stored_facts(facts.case_id, stored_facts(facts)) == facts
        assert facts_from_json(facts_to_json(facts)) == facts
