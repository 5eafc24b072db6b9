"""The composite score, tie-breaks, 十佳 and bottom flags, formula files, periods, settling and hashes."""

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from services.common.contracts import RankingPublished
from services.rectification.domain.calendar import SHANGHAI, ConfigError
from services.scoring.domain.figures import INDEX, WIDTH
from services.scoring.domain.formula import available_formulas, load_formula, read_formula
from services.scoring.domain.hashing import canonical, digest, fixed
from services.scoring.domain.periods import Period, PeriodError, cutoff, epoch_of
from services.scoring.domain.projection import ID_HASH_MODULUS, id_hash
from services.scoring.domain.ranking import Position, RankingInput, UnitInput, rank
from services.scoring.service import ranking_event
from tests.unit.test_scoring_stories import CALENDAR, Story, nov, ranking_of, row, tables_of

V1 = load_formula("v1")
NO_POSITION = Position(cutoff("2026-11"), 0, "0" * 64, "test")


def unit(unit_id: str, **counts: int) -> UnitInput:
    row = [0] * WIDTH
    for name, n in counts.items():
        row[INDEX[name]] = n
    return UnitInput(unit_id, tuple(row), {"response": (), "rectification": ()})


def ranked(*units: UnitInput, formula=V1):  # type: ignore[no-untyped-def]
    inputs = RankingInput(Period.parse("2026-11"), "township", "units-1", NO_POSITION, tuple(units))
    return rank(inputs, formula, CALENDAR)


def perfect(unit_id: str, cases: int = 10, **more: int) -> UnitInput:
    full = dict(assigned=cases, ack_on_time=cases, closed=cases, closed_on_time=cases, inspected=cases)
    full |= dict(first_pass=cases, resolved=cases, rated=cases, satisfied=cases)
    return unit(unit_id, **(full | more))


# ---------------------------------------------------------------------------- composite score


def test_the_composite_renormalises_over_the_rates_that_exist_and_takes_off_deductions() -> None:
    # response 1/2, on time 1/1, first pass 1/1, resolution 1/2, no rating; 1 exposure in 2 cases
    u = unit("meiwan", assigned=2, ack_on_time=1, closed=1, closed_on_time=1, inspected=1, first_pass=1)
    u = unit("meiwan", **{**{k: v for k, v in zip(INDEX, u.counts, strict=True) if v}, "resolved": 1, "exposed": 1})
    ranking = ranked(u, formula=V1.model_copy(update={"min_cases": 1}))
    # (0.15 × 0.5 + 0.20 × 1 + 0.15 × 1 + 0.20 × 0.5) / 0.70 = 0.75 → 75, less 20 × 1/2 = 10
    assert row(ranking, "meiwan")["composite"] == "65.0000"


def test_the_composite_stays_within_0_and_100() -> None:
    u = unit("meiwan", assigned=5, exposed=5, inspected=5)
    assert row(ranked(u), "meiwan")["composite"] == "0.0000"
    assert row(ranked(perfect("renwan")), "renwan")["composite"] == "100.0000"


def test_a_unit_needs_the_minimum_number_of_cases_to_be_ranked() -> None:
    ranking = ranked(perfect("meiwan", cases=4), perfect("renwan", cases=5))
    assert row(ranking, "meiwan")["rank"] is None and not row(ranking, "meiwan")["eligible"]
    assert row(ranking, "renwan")["rank"] == 1
    assert [r["unit_id"] for r in ranking.rows] == ["renwan", "meiwan"]  # ranked first, then the rest by id


# ---------------------------------------------------------------------------- ties


def test_an_exact_tie_is_broken_by_the_unit_id() -> None:
    stories = [Story(f"RC-{u}-{i}", u, nov(2, 9)).on_time() for u in ("renwan", "meiwan") for i in range(5)]
    ranking = ranking_of(stories)
    assert (row(ranking, "meiwan")["rank"], row(ranking, "renwan")["rank"]) == (1, 2)
    assert row(ranking, "renwan")["decided_by"] == "unit_id" and row(ranking, "meiwan")["decided_by"] is None


def test_equal_composites_are_decided_by_satisfaction_then_the_next_rates() -> None:
    # no case closed or inspected: the weights of response (0.15), resolution (0.20, all 0) and satisfaction (0.30)
    # count: (0.15 × 1 + 0.30 × 0.5) / 0.65 = (0.15 × 0 + 0.30 × 1) / 0.65 → 46.1538
    prompt = unit("meiwan", assigned=10, ack_on_time=10, rated=10, satisfied=5)
    liked = unit("renwan", assigned=10, rated=10, satisfied=10)
    also_liked = unit("caishi", assigned=10, rated=10, satisfied=10)
    ranking = ranked(prompt, liked, also_liked)
    assert {row(ranking, u)["composite"] for u in ("meiwan", "renwan", "caishi")} == {"46.1538"}
    assert [r["unit_id"] for r in ranking.rows] == ["caishi", "renwan", "meiwan"]
    assert row(ranking, "renwan")["decided_by"] == "unit_id"
    assert row(ranking, "meiwan")["decided_by"] == "satisfaction"


def test_more_cases_rank_first_when_every_rate_ties() -> None:
    ranking = ranked(perfect("caishi", cases=6), perfect("renwan", cases=9))
    assert [r["unit_id"] for r in ranking.rows] == ["renwan", "caishi"]
    assert row(ranking, "caishi")["decided_by"] == "cases"


# ---------------------------------------------------------------------------- 十佳 and bottom flags

TOWNS = ("caishi", "fenghuang", "gaoxishi", "huangyangsi", "lanjiaoshan", "lingjiaoshan")
TOWNS += ("maping", "meiwan", "niujiaoba", "puliqiao", "renwan", "shanhu")


def test_top_ten_is_capped_at_half_the_ranked_units_and_bottom_flags_skip_them() -> None:
    # unit i resolves 10 - i of 10 cases (everything else perfect): scores 100, 98, 96, ... 78
    units = [perfect(u, resolved=10 - i) for i, u in enumerate(TOWNS)]
    ranking = ranked(*units)
    assert [r["unit_id"] for r in ranking.rows] == list(TOWNS)
    assert ranking.document["top_ten"] == list(TOWNS[:6])  # min(10, 12 × 0.5)
    assert ranking.document["bottom_flags"] == [
        {"unit_id": u, "reasons": ["last_places"]} for u in ("puliqiao", "renwan", "shanhu")
    ]


def test_a_low_score_is_flagged_wherever_it_ranks_outside_the_top() -> None:
    units = [perfect(u) for u in TOWNS[:8]] + [unit("maping", assigned=10, ack_on_time=10, resolved=2)]
    flags = {f["unit_id"]: f["reasons"] for f in ranked(*units).document["bottom_flags"]}
    assert flags["maping"] == ["last_places", "below_score"]
    assert len(ranked(*units).document["top_ten"]) == 4  # 9 ranked: floor(4.5)


# ---------------------------------------------------------------------------- the formula files


def test_the_shipped_formulas_load_and_differ() -> None:
    assert {"v1", "v2"} <= set(available_formulas())
    assert load_formula("v2").weights.satisfaction > load_formula("v1").weights.satisfaction


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ('  satisfaction: "0.40"', "weights"),  # the weights add up to 1.1
        ('  loyalty: "0.1"', "weights.loyalty"),
        ("min_cases: 0", "min_cases"),
    ],
)
def test_a_bad_formula_file_names_the_field(tmp_path: Path, change: str, field: str) -> None:
    text = Path("services/scoring/config/formula.v1.yaml").read_text(encoding="utf-8")
    key = change.strip().split(":")[0]
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith(f"{key}:")]
    at = lines.index("weights:") + 1 if change.startswith("  ") else len(lines)
    lines.insert(at, change)
    bad = tmp_path / "formula.v9.yaml"
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ConfigError, match=field):
        read_formula(bad)


def test_a_formula_file_must_carry_its_own_version(tmp_path: Path) -> None:
    text = Path("services/scoring/config/formula.v1.yaml").read_text(encoding="utf-8")
    (tmp_path / "formula.v7.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="version"):
        load_formula("v7", tmp_path)


# ---------------------------------------------------------------------------- periods and settling


def test_periods() -> None:
    assert [str(Period.parse(p)) for p in ("2026-11", "2026-Q4", "2026")] == ["2026-11", "2026-Q4", "2026"]
    assert Period.parse("2026-Q4").months == ("2026-10", "2026-11", "2026-12")
    assert len(Period.parse("2026").months) == 12
    with pytest.raises(PeriodError):
        Period.parse("2026-13")


def test_a_month_settles_ten_days_after_it_ends() -> None:
    assert cutoff("2026-11") == datetime(2026, 12, 11, tzinfo=SHANGHAI)
    assert cutoff("2026-12") == datetime(2027, 1, 11, tzinfo=SHANGHAI)
    assert Period.parse("2026-Q4").cutoff == Period.parse("2026").cutoff == cutoff("2026-12")
    assert epoch_of(datetime(2026, 12, 11, tzinfo=SHANGHAI)) == "2026-11"
    assert epoch_of(datetime(2026, 12, 11, tzinfo=SHANGHAI) + timedelta(microseconds=1)) == "2026-12"
    assert epoch_of(datetime(2026, 11, 30, 17, tzinfo=UTC)) == "2026-11"  # 1 Dec 01:00 in China: before the cutoff
    assert epoch_of(datetime(2026, 11, 10, 15, tzinfo=UTC)) == "2026-10"  # 23:00 on 10 Nov in China
    assert epoch_of(datetime(2026, 11, 10, 16, 0, 1, tzinfo=UTC)) == "2026-11"


def test_what_happens_after_a_month_settles_does_not_change_it() -> None:
    story = Story("RC-1", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3)).submit(nov(4))
    settled = ranking_of([story])
    story.accept(nov(12, 10, month=12)).publish(nov(12, 11, month=12))  # after the cutoff of 11 Dec 00:00
    assert ranking_of([story]).document["rows"] == settled.document["rows"]
    assert row(settled, "meiwan")["rates"]["resolution"]["num"] == 0


def test_the_position_counts_and_hashes_the_events_up_to_the_cutoff() -> None:
    story = Story("RC-1", "meiwan", nov(2, 9)).on_time()
    later = Story("RC-2", "renwan", nov(20, 9, month=12))
    ranking = ranking_of([story, later])
    ids = [e.event_id for e in story.events]
    assert ranking.document["position"] == {
        "cutoff": "2026-12-10T16:00:00.000000Z",
        "events": len(ids),
        "events_hash": f"{sum(id_hash(i) for i in ids) % ID_HASH_MODULUS:064x}",
        "settle_rule": "month+10d@00:00+08:00",
    }


# ---------------------------------------------------------------------------- hashes


def test_fixed_rounds_half_to_even() -> None:
    assert [fixed(Fraction(n, 100000)) for n in (5, 15, 25, 35)] == ["0.0000", "0.0002", "0.0002", "0.0004"]
    assert fixed(Fraction(5, 6)) == "0.8333" and fixed(Fraction(100)) == "100.0000"


def test_canonical_json_refuses_floats() -> None:
    assert canonical({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()
    with pytest.raises(TypeError, match="float"):
        canonical({"rate": 0.5})


def test_the_published_payload_carries_its_own_result_hash() -> None:
    ranking = ranking_of([Story(f"RC-{i}", "meiwan", nov(2, 9)).on_time() for i in range(6)])
    envelope = ranking_event(ranking, 1, datetime(2026, 12, 12, tzinfo=UTC))
    payload = envelope.payload
    assert isinstance(payload, RankingPublished)
    as_sent = payload.model_dump(mode="json")
    evidence = as_sent.pop("evidence")  # v2: the evidence rides along, outside the result hash
    assert as_sent.pop("result_hash") == ranking.result_hash == digest(as_sent)
    assert as_sent["input_hash"] == ranking.input_hash == digest(evidence["inputs"])
    assert b"cp-RC" not in canonical(as_sent) + canonical(evidence)  # no complainant reference, no personal data


def test_the_ranking_does_not_depend_on_the_order_of_the_units() -> None:
    units = [perfect(u, resolved=10 - i) for i, u in enumerate(TOWNS)]
    assert ranked(*units).result_hash == ranked(*reversed(units)).result_hash
    assert tables_of([]).digest() == tables_of([]).digest()
