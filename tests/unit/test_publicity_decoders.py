"""Publicity's doors: each subscription accepts its one payload and refuses everything else (dead letter)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.common.contracts import (
    Actor,
    CaseFiled,
    Channel,
    ContractError,
    PublicCaseChangedV2,
    RankedRate,
    RankingPosition,
    RankingPublished,
    RankingRow,
    Role,
    Severity,
    TimelineEntry,
    encode_event,
    wrap_event,
)
from services.publicity.entrypoints.public_facts import decode_public_fact
from services.publicity.entrypoints.ranking_facts import decode_ranking_fact

AT = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
SYSTEM = Actor(agency_id="rectification", role=Role.SYSTEM)


def wrapped(payload, stream_id: str = "RC-1") -> bytes:  # type: ignore[no-untyped-def]
    return encode_event(
        wrap_event(
            payload,
            stream_id=stream_id,
            stream_version=1,
            occurred_at=AT,
            recorded_at=AT,
            actor=SYSTEM,
            correlation_id=uuid.uuid4(),
            causation_id=None,
        )
    )


def public_fact() -> PublicCaseChangedV2:
    return PublicCaseChangedV2(
        case_id="RC-1",
        status="filed",
        category="inaction",
        unit_id="meiwan",
        filed_at=AT,
        entry=TimelineEntry(step="filed", at=AT),
        overdue=False,
        reopen_count=0,
        escalations=0,
        holds=(),
    )


def ranking() -> RankingPublished:
    rate = RankedRate(num=1, den=1, value="1.0000")
    row = RankingRow(
        unit_id="meiwan",
        rank=1,
        eligible=True,
        cases=5,
        counts={"assigned": 5},
        rates=dict.fromkeys(("response", "on_time", "first_pass", "resolution", "satisfaction"), rate),
        median_response_days="0.5000",
        median_rectification_days="3.0000",
        composite="100.0000",
        decided_by=None,
        top_ten=True,
        flags=(),
    )
    return RankingPublished(
        period="2025-03",
        tier="township",
        formula_version="v1",
        calendar_version="cal-1",
        reference_version="units-1",
        position=RankingPosition(
            cutoff="2025-04-10T16:00:00.000000Z", events=10, events_hash="0" * 64, settle_rule="month+10d"
        ),
        input_hash="1" * 64,
        result_hash="2" * 64,
        rows=(row,),
        top_ten=("meiwan",),
        bottom_flags=(),
    )


def case_filed() -> CaseFiled:
    return CaseFiled(
        channel=Channel.HOTLINE_12345,
        category="inaction",
        unit_id="meiwan",
        description="PRIVATE words the public must never see",
        severity=Severity.GENERAL,
        complainant_refs=("cp-1",),
        filed_at=AT,
    )


def test_the_public_door_takes_public_facts_only() -> None:
    assert decode_public_fact(wrapped(public_fact())).payload.case_id == "RC-1"  # type: ignore[attr-defined]
    for other in (case_filed(), ranking()):
        with pytest.raises(ContractError) as refused:
            decode_public_fact(wrapped(other))
        assert refused.value.code == "not_public"


def test_the_rankings_door_takes_published_rankings_only() -> None:
    env = decode_ranking_fact(wrapped(ranking(), "ranking-2025-03-township"))
    assert isinstance(env.payload, RankingPublished) and env.payload.rows[0].unit_id == "meiwan"
    for other in (case_filed(), public_fact()):
        with pytest.raises(ContractError) as refused:
            decode_ranking_fact(wrapped(other))
        assert refused.value.code == "not_ranking"
    with pytest.raises(ContractError):
        decode_ranking_fact(b"not json")
