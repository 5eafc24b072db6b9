"""The public ledger's pure parts (canonical facts, chaining, verification); a ranking recomputed from its evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.common.contracts import PublicHold, decode_event
from services.publicity.ledger import EMPTY, GENESIS, canonical, chain, entry_hash, fact_text, verify
from services.scoring.domain.evidence import check, evidence_of
from services.scoring.service import ranking_event
from tests.unit.test_publicity_decoders import public_fact, wrapped
from tests.unit.test_scoring_stories import CALENDAR, Story, nov, ranking_of

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def facts(n: int) -> list[tuple[str, str, str]]:
    return [(f"id-{i}", "case", canonical({"event_id": f"id-{i}", "kind": "case", "n": i})) for i in range(n)]


def test_a_chain_starts_at_genesis_and_links_each_entry_to_the_one_before() -> None:
    entries = chain(EMPTY, facts(3), T0)
    assert [e.seq for e in entries] == [1, 2, 3] and entries[0].prev_hash == GENESIS == "0" * 64
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash
    first = entries[0]
    assert first.appended_at == "2026-11-23T08:00:00.000000Z"
    assert first.hash == entry_hash(1, first.appended_at, GENESIS, first.fact)
    assert verify([e.to_json() for e in entries]).ok
    more = chain(EMPTY.__class__(3, entries[-1].hash, first.appended_at), facts(5)[3:], T0 - timedelta(hours=1))
    assert more[0].seq == 4 and more[0].appended_at == first.appended_at  # the clock never goes back in the ledger
    assert verify([e.to_json() for e in entries + more]).ok


def test_verification_names_the_first_broken_link() -> None:
    good = [e.to_json() for e in chain(EMPTY, facts(6), T0)]
    altered = [dict(e) for e in good]
    altered[3]["fact"] = altered[3]["fact"].replace('"n":3', '"n":4')
    assert str(verify(altered).broken).startswith("entry 4: hash")
    assert "entry 3 is missing" in str(verify(good[:2] + good[3:]).broken)
    assert "prev_hash" in str(verify([*good[:2], dict(good[3], seq=3), dict(good[2], seq=4)]).broken)
    spaced = [dict(good[0], fact='{"event_id": "x"}')]
    spaced[0]["hash"] = entry_hash(1, spaced[0]["appended_at"], GENESIS, spaced[0]["fact"])
    assert verify(spaced).broken.problem == "the fact is not in canonical JSON"  # type: ignore[union-attr]
    assert verify(good, expect_head=good[2]["hash"]).ok
    assert not verify(good, expect_head="f" * 64).ok


def test_a_public_fact_is_canonical_utc_and_without_floats() -> None:
    hold = PublicHold(step="triage", holder="supervisor", started_at=T0, ended_at=T0 + timedelta(hours=30),
                      working_days=1.25)  # fmt: skip
    envelope = decode_event(wrapped(public_fact().model_copy(update={"holds": (hold,)})))
    text = fact_text(envelope)
    doc = json.loads(text)
    assert canonical(doc) == text and "actor" not in doc and "correlation_id" not in doc
    assert doc["kind"] == "case" and doc["recorded_at"].endswith("Z")
    assert doc["payload"]["filed_at"].endswith(".000000Z")
    assert doc["payload"]["holds"][0]["working_days"] == "1.2500"
    assert doc["payload"]["holds"][0]["ended_at"] == "2026-11-24T14:00:00.000000Z"


def test_a_ranking_recomputes_from_its_evidence_alone_and_a_changed_input_is_named() -> None:
    ranking = ranking_of([Story(f"RC-{i}", "meiwan", nov(2, 9)).on_time() for i in range(6)])
    assert ranking.basis is not None
    payload = ranking_event(ranking, 1, T0).payload.model_dump(mode="json")
    assert payload["evidence"] == json.loads(json.dumps(evidence_of(*ranking.basis)))
    assert check(payload) is None
    assert payload["evidence"]["calendar"]["version"] == CALENDAR.version
    changed = json.loads(json.dumps(payload))
    changed["evidence"]["inputs"]["units"][0]["counts"]["closed"] += 1
    assert "input_hash" in (check(changed) or "")
    stricter = json.loads(json.dumps(payload))
    stricter["evidence"]["formula"]["min_cases"] = 7  # meiwan's 6 cases would no longer be ranked
    assert "differs in" in (check(stricter) or "")
    assert "without evidence" in (check({**payload, "evidence": None}) or "")
