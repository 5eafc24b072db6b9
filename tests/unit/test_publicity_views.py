"""What the public pages and feeds show, from projection rows: names, holders, timeline, rates, feeds, caching."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request

from services.common.reference import reference
from services.publicity import feeds, views
from services.publicity.entrypoints.site import Validators

REF = reference()
T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)


def case_row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "case_id": "RC-20250303-000001",
        "status": "published",
        "category": "service_window",
        "unit_id": "meiwan",
        "responsible_unit_id": "meiwan",
        "filed_at": T0,
        "deadline": T0 + timedelta(days=9),
        "redo_count": 1,
        "problem_summary": "窗口工作人员态度生硬",
        "result_summary": "已约谈并整改",
        "exposed": False,
        "version": 9,
        "updated_at": T0 + timedelta(days=12),
        "overdue": False,
        "reopen_count": 0,
        "escalations": 0,
        "holds": [],
        "published_at": T0 + timedelta(days=12),
        "exposed_at": None,
    }
    return row | over


def test_links_keep_the_language_and_drop_empty_parameters() -> None:
    assert views.href("/", "zh") == "/"
    assert views.href("/", "en") == "/?lang=en"
    assert views.href("/", "zh", unit="meiwan", category="", period=None, page=2) == "/?unit=meiwan&page=2"
    assert views.href("/cases/X", "en") == "/cases/X?lang=en"


def test_holders_are_named_by_role_or_unit_never_by_person() -> None:
    assert views.holder_name(REF, "unit:meiwan", "zh") == "梅湾街道"
    assert views.holder_name(REF, "unit:meiwan", "en") == "Meiwan Subdistrict"
    assert views.holder_name(REF, "supervisor", "zh").startswith("纠风办")
    assert views.holder_name(REF, "complainant", "en").startswith("The complainant")


def test_the_timeline_numbers_each_rejection_and_reopening() -> None:
    steps = ["filed", "assigned", "rectified", "rejected", "rectified", "rejected", "rectified", "accepted"]
    timeline = [{"step": s, "at": T0 + timedelta(hours=i), "version": i + 1} for i, s in enumerate(steps)]
    numbered = [(s.step, s.nth) for s in views.timeline_steps(timeline)]
    assert ("rejected", 1) in numbered and ("rejected", 2) in numbered and numbered[-1] == ("accepted", 1)


def test_holder_totals_put_the_longest_holder_first_and_age_the_running_spell() -> None:
    def hold(step: str, holder: str, start: timedelta, end: timedelta | None, days: float | None) -> dict[str, object]:
        ended = (T0 + end).isoformat() if end is not None else None
        return {"step": step, "holder": holder, "started_at": (T0 + start).isoformat(), "ended_at": ended,
                "working_days": days}  # fmt: skip

    hours = timedelta(hours=1)
    holds = [
        hold("triage", "supervisor", 0 * hours, 5 * hours, 0.2),
        hold("acknowledgment", "unit:renwan", 5 * hours, 48 * hours, 1.5),
        hold("planning", "unit:renwan", 48 * hours, None, None),
    ]
    spells = views.spells(holds, today=date(2025, 3, 12))
    assert spells[-1].running_days == 7 and spells[0].working_days == 0.2
    totals = views.holder_totals(spells)
    assert [t.holder for t in totals] == ["unit:renwan", "supervisor"]
    assert totals[0].working_days == 1.5 and totals[0].running_days == 7
    assert views.has_running_spell(holds) and not views.has_running_spell(holds[:2])


def test_rates_and_days_are_shown_from_the_published_decimals() -> None:
    assert views.percent("0.8750") == "87.50%"
    assert views.percent("1.0000") == "100.00%"
    assert views.percent(None) == "—"
    assert views.days("2.5000") == "2.50" and views.days(None) == "—"


def test_the_json_case_is_the_stored_public_fields_with_iso_times() -> None:
    row = case_row(timeline=[{"step": "filed", "at": T0, "version": 1}])
    out = views.json_case(row)
    assert out["filed_at"] == T0.isoformat() and out["timeline"] == [
        {"step": "filed", "at": T0.isoformat(), "version": 1}
    ]
    assert set(out) == set(row)


def test_the_atom_feed_is_valid_and_links_each_published_case() -> None:
    body = feeds.atom_feed([case_row()], "https://gongkai.example", REF, "zh", T0 + timedelta(days=12))
    feed = ET.fromstring(body)
    atom = "{http://www.w3.org/2005/Atom}"
    assert feed.tag == f"{atom}feed" and feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-CN"
    entries = feed.findall(f"{atom}entry")
    assert len(entries) == 1
    link = entries[0].find(f"{atom}link").get("href")  # type: ignore[union-attr]
    assert link == "https://gongkai.example/cases/RC-20250303-000001"
    summary = entries[0].find(f"{atom}summary").text  # type: ignore[union-attr]
    assert "窗口工作人员态度生硬" in summary and "已约谈并整改" in summary  # type: ignore[operator]
    english = ET.fromstring(feeds.atom_feed([case_row()], "https://x", REF, "en", T0))
    assert "Meiwan Subdistrict" in english.find(f"{atom}entry/{atom}title").text  # type: ignore[operator, union-attr]


def test_csv_rows_carry_names_and_keep_free_text_from_being_formulas() -> None:
    row = case_row(problem_summary='=HYPERLINK("http://x")', result_summary="-1 整改")
    text = feeds.csv_lines([feeds.CASE_CSV_COLUMNS, feeds.case_csv_row(row, REF)])
    header, values = list(csv.reader(io.StringIO(text)))
    record = dict(zip(header, values, strict=True))
    assert record["unit_zh"] == "梅湾街道" and record["category_zh"] == "窗口服务"
    assert record["problem_summary"].startswith("'=") and record["result_summary"] == "'-1 整改"
    assert record["filed_at"] == "2025-03-03T09:00:00+08:00" and record["overdue"] == "false"


def test_open311_requests_show_public_fields_only() -> None:
    request = feeds.open311_request(case_row(status="closed"), REF)
    assert request["status"] == "closed" and request["service_code"] == "service_window"
    assert request["agency_responsible"] == "梅湾街道" and request["description"] == "窗口工作人员态度生硬"
    assert request["status_notes"] == "已办结：已约谈并整改"
    assert request["lat"] is None and request["address"] is None and request["media_url"] is None
    assert feeds.open311_request(case_row(status="planned", result_summary=None), REF)["status"] == "open"
    service = feeds.open311_service("service_window", REF)
    assert service["service_name"] == "窗口服务" and service["group"] == "作风"


def test_a_ranking_csv_has_a_row_per_unit_with_every_rate() -> None:
    rate = {"num": 3, "den": 4, "value": "0.7500"}
    document = {
        "period": "2025-03",
        "tier": "township",
        "formula_version": "v1",
        "result_hash": "a" * 64,
        "rows": [
            {
                "unit_id": "meiwan",
                "rank": 1,
                "eligible": True,
                "cases": 4,
                "rates": dict.fromkeys(feeds.RATE_NAMES, rate),
                "median_response_days": "0.5000",
                "median_rectification_days": None,
                "composite": "75.0000",
                "decided_by": None,
                "top_ten": True,
                "flags": [],
            }
        ],
    }
    rows = feeds.ranking_csv_rows(document, REF)
    record = dict(zip(feeds.RANKING_CSV_COLUMNS, rows[0], strict=True))
    assert record["satisfaction_value"] == "0.7500" and record["response_den"] == "4" and record["top_ten"] == "true"
    assert record["unit_zh"] == "梅湾街道" and record["median_rectification_days"] == ""


def request_with(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b""})


def test_validators_answer_conditional_requests() -> None:
    changed = datetime(2025, 3, 3, 8, 0, 0, 123456, tzinfo=UTC)
    v = Validators('W/"b-cases-7"', changed, 60)
    headers = v.headers()
    assert headers["Cache-Control"] == "public, max-age=60" and headers["ETag"] == 'W/"b-cases-7"'
    assert headers["Last-Modified"] == "Mon, 03 Mar 2025 08:00:00 GMT"
    assert v.matches(request_with({"If-None-Match": 'W/"b-cases-7"'}))
    assert v.matches(request_with({"If-None-Match": '"x", "b-cases-7"'}))  # weak comparison
    assert not v.matches(request_with({"If-None-Match": 'W/"b-cases-6"'}))
    assert v.matches(request_with({"If-Modified-Since": "Mon, 03 Mar 2025 08:00:00 GMT"}))
    assert not v.matches(request_with({"If-Modified-Since": "Mon, 03 Mar 2025 07:59:59 GMT"}))
    assert not v.matches(request_with({"If-Modified-Since": "yesterday"}))
    # If-None-Match wins over If-Modified-Since
    assert not v.matches(request_with({"If-None-Match": '"old"', "If-Modified-Since": "Tue, 04 Mar 2025 00:00:00 GMT"}))
    assert v.not_modified().status_code == 304
