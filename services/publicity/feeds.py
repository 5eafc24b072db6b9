"""Open data formats built from projection rows: the Atom feed, CSV rows and Open311 service requests. Pure.

Public fields only, and free text only as approved for publication (the problem and result summaries).
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.common.reference import Reference
from services.publicity import i18n, views
from services.publicity.periods import CHINA

ATOM = "http://www.w3.org/2005/Atom"
XML = "http://www.w3.org/XML/1998/namespace"
TAG_AUTHORITY = "tag:rectify.example,2025"
OPEN311_GROUP = "作风"
FINISHED = ("closed", "dismissed", "merged")  # what Open311 calls "closed"; every other status is "open"
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 cannot hold


# ---------------------------------------------------------------------------- Atom


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        element.text = NOT_XML.sub("\ufffd", text)  # one control character must not break the feed for everyone
    return element


def atom_feed(rows: list[dict[str, Any]], base_url: str, ref: Reference, lang: str, updated: datetime) -> bytes:
    """Newly published results (向社会公布), newest first: one entry per case and publication."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed", {f"{{{XML}}}lang": "zh-CN" if lang == "zh" else "en"})
    suffix = "" if lang == "zh" else "?lang=en"
    _sub(feed, "id", f"{TAG_AUTHORITY}:feeds/published")
    _sub(feed, "title", f"{i18n.t('site', lang)} · {i18n.step_name('published', lang)}")
    _sub(feed, "subtitle", i18n.t("tagline", lang))
    _sub(feed, "updated", updated.isoformat())
    _sub(feed, "link", rel="self", href=f"{base_url}/feeds/published.atom{suffix}")
    _sub(feed, "link", rel="alternate", type="text/html", href=f"{base_url}/{suffix}")
    author = _sub(feed, "author")
    _sub(author, "name", i18n.t("supervisor", lang))
    for row in rows:
        published_at: datetime = row["published_at"]
        entry = _sub(feed, "entry")
        _sub(entry, "id", f"{TAG_AUTHORITY}:cases/{row['case_id']}/published/{published_at.timestamp():.0f}")
        unit = views.unit_name(ref, row["responsible_unit_id"] or row["unit_id"], lang)
        category = views.category_name(ref, row["category"], lang)
        _sub(entry, "title", f"{unit} · {category} · {row['case_id']}")
        _sub(entry, "updated", published_at.isoformat())
        _sub(entry, "published", published_at.isoformat())
        _sub(entry, "link", rel="alternate", type="text/html", href=f"{base_url}/cases/{row['case_id']}{suffix}")
        _sub(entry, "category", term=row["category"], label=category)
        _sub(entry, "summary", _summary(row, lang), type="text")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8", xml_declaration=False)


def _summary(row: dict[str, Any], lang: str) -> str:
    parts = [
        f"{i18n.t('problem_summary', lang)}: {row['problem_summary'] or '—'}",
        f"{i18n.t('result_summary', lang)}: {row['result_summary'] or i18n.status_name(row['status'], lang)}",
        f"{i18n.t('status', lang)}: {i18n.status_name(row['status'], lang)}",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- CSV

CASE_CSV_COLUMNS: tuple[str, ...] = (
    "case_id",
    "status",
    "category",
    "category_zh",
    "unit_id",
    "unit_zh",
    "responsible_unit_id",
    "responsible_unit_zh",
    "filed_at",
    "deadline",
    "overdue",
    "redo_count",
    "reopen_count",
    "escalations",
    "exposed",
    "exposed_at",
    "published_at",
    "problem_summary",
    "result_summary",
    "updated_at",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(CHINA).isoformat()
    return str(value)


def _text(value: str | None) -> str:
    """Free text, kept from being read as a formula by a spreadsheet (OWASP's CSV injection advice)."""
    if not value:
        return ""
    return f"'{value}" if value.startswith(FORMULA_CHARS) else value


def case_csv_row(row: dict[str, Any], ref: Reference) -> list[str]:
    return [
        row["case_id"],
        row["status"],
        row["category"],
        views.category_name(ref, row["category"], "zh"),
        row["unit_id"],
        views.unit_name(ref, row["unit_id"], "zh"),
        _cell(row["responsible_unit_id"]),
        views.unit_name(ref, row["responsible_unit_id"], "zh"),
        _cell(row["filed_at"]),
        _cell(row["deadline"]),
        _cell(row["overdue"]),
        _cell(row["redo_count"]),
        _cell(row["reopen_count"]),
        _cell(row["escalations"]),
        _cell(row["exposed"]),
        _cell(row["exposed_at"]),
        _cell(row["published_at"]),
        _text(row["problem_summary"]),
        _text(row["result_summary"]),
        _cell(row["updated_at"]),
    ]


def csv_lines(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


RATE_NAMES = ("response", "on_time", "first_pass", "resolution", "satisfaction")
RANKING_CSV_COLUMNS: tuple[str, ...] = (
    "period",
    "tier",
    "formula_version",
    "rank",
    "unit_id",
    "unit_zh",
    "eligible",
    "cases",
    *(f"{rate}_{part}" for rate in RATE_NAMES for part in ("num", "den", "value")),
    "median_response_days",
    "median_rectification_days",
    "composite",
    "decided_by",
    "top_ten",
    "flags",
    "result_hash",
)


def ranking_csv_rows(document: dict[str, Any], ref: Reference) -> list[list[str]]:
    out = []
    for row in document["rows"]:
        rates = [_cell(row["rates"].get(rate, {}).get(part)) for rate in RATE_NAMES for part in ("num", "den", "value")]
        out.append(
            [
                document["period"],
                document["tier"],
                document["formula_version"],
                _cell(row["rank"]),
                row["unit_id"],
                views.unit_name(ref, row["unit_id"], "zh"),
                _cell(row["eligible"]),
                _cell(row["cases"]),
                *rates,
                _cell(row["median_response_days"]),
                _cell(row["median_rectification_days"]),
                _cell(row["composite"]),
                _cell(row["decided_by"]),
                _cell(row["top_ten"]),
                " ".join(row["flags"]),
                document["result_hash"],
            ]
        )
    return out


# ---------------------------------------------------------------------------- Open311 GeoReport v2


def open311_service(code: str, ref: Reference) -> dict[str, Any]:
    category = ref.categories[code]
    return {
        "service_code": code,
        "service_name": category.zh,
        "description": category.en,
        "metadata": False,  # the public side lists requests; filing (with attributes) is intake's Open311
        "type": "realtime",
        "keywords": f"{category.zh},{category.en}",
        "group": OPEN311_GROUP,
    }


def _w3c(when: datetime | None) -> str | None:
    return when.astimezone(CHINA).isoformat(timespec="seconds") if when else None


def open311_request(row: dict[str, Any], ref: Reference) -> dict[str, Any]:
    """A case as a GeoReport v2 service request, public fields only: no address, no coordinates, no media."""
    category = ref.categories.get(row["category"])
    status_zh = i18n.status_name(row["status"], "zh")
    return {
        "service_request_id": row["case_id"],
        "status": "closed" if row["status"] in FINISHED else "open",
        "status_notes": f"{status_zh}：{row['result_summary']}" if row["result_summary"] else status_zh,
        "service_name": category.zh if category else None,
        "service_code": row["category"],
        "description": row["problem_summary"],
        "agency_responsible": views.unit_name(ref, row["responsible_unit_id"], "zh") or None,
        "service_notice": None,
        "requested_datetime": _w3c(row["filed_at"]),
        "updated_datetime": _w3c(row["updated_at"]),
        "expected_datetime": _w3c(row["deadline"]),
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }
