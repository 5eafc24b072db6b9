"""Feeds and open data: the Atom feed of published results, CSV exports, and Open311 GeoReport v2 (read only).

All cacheable like the pages (entrypoints/site.py). No key is needed: everything here is public.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from services.publicity import feeds, i18n, rankings
from services.publicity.adapters import store
from services.publicity.entrypoints.params import Category, Formula, Lang, PeriodText, Status, Tier, Unit
from services.publicity.entrypoints.site import REFERENCE_AGE, Site, Validators
from services.publicity.periods import optional_period

FEED_ENTRIES = 50
EXPORT_AGE = 300
OPEN311_WINDOW = timedelta(days=90)  # the spec's default (and here the longest) start_date..end_date span
OPEN311_MAX = 1000
BOM = "\ufeff"  # so that spreadsheet programs read the UTF-8 Chinese correctly


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description

    def response(self) -> Response:
        body = [{"code": self.status, "description": self.description}]
        return Response(orjson.dumps(body), self.status, media_type="application/json; charset=utf-8")


def router(site: Site) -> APIRouter:
    r = APIRouter(tags=["feeds and open data"])
    ref = site.ref

    @r.get(
        "/feeds/published.atom",
        summary="Atom feed of newly published results (向社会公布), newest first",
        response_class=Response,
        responses={200: {"content": {"application/atom+xml": {}}}},
    )
    async def published_feed(request: Request, lang: Lang = None) -> Response:
        validators = await site.projection_validators(request, "atom", max_age=EXPORT_AGE)
        if validators.matches(request):
            return validators.not_modified()
        rows = await store.published_results(site.pool(request), FEED_ENTRIES)
        updated = rows[0]["published_at"] if rows else (validators.last_modified or datetime.now(UTC))
        body = feeds.atom_feed(rows, str(request.base_url).rstrip("/"), ref, i18n.lang_of(lang), updated)
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers=validators.headers())

    @r.get(
        "/data/cases.csv",
        summary="Every case matching the filters, as CSV (UTF-8 with BOM), oldest filed first",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def cases_csv(
        request: Request,
        unit: Unit = None,
        category: Category = None,
        status: Status = None,
        period: PeriodText = None,
    ) -> Response:
        validators = await site.projection_validators(request, "cases-csv", max_age=EXPORT_AGE)
        if validators.matches(request):
            return validators.not_modified()
        f = store.CaseFilter(
            unit_id=unit or None,
            category=category or None,
            status=status or None,
            period=optional_period(period or None),
        )
        pool = site.pool(request)

        async def lines() -> AsyncIterator[str]:
            yield BOM + feeds.csv_lines([feeds.CASE_CSV_COLUMNS])
            async for chunk in store.export_cases(pool, f):
                yield feeds.csv_lines(feeds.case_csv_row(row, ref) for row in chunk)

        name = f"rectify-cases{'-' + period if period else ''}.csv"
        headers = validators.headers() | {"Content-Disposition": f'attachment; filename="{name}"'}
        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)

    @r.get(
        "/data/rankings.csv",
        summary="Published rankings as CSV: one row per unit with every rate, the score, rank and marks",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def rankings_csv(
        request: Request, period: PeriodText = None, tier: Tier = None, formula: Formula = None
    ) -> Response:
        validators = await site.projection_validators(request, "rankings-csv", max_age=EXPORT_AGE)
        if validators.matches(request):
            return validators.not_modified()
        index = await site.ranking_index(request, validators)
        rows: list[list[str]] = []
        for p, t in rankings.published_keys(index):
            chosen = rankings.latest(index, p, t, formula)
            if chosen is None or (period and p != period) or (tier and t != tier):
                continue
            rows += feeds.ranking_csv_rows(await site.rankings.document(site.pool(request), chosen.event_id), ref)
        body = BOM + feeds.csv_lines([feeds.RANKING_CSV_COLUMNS, *rows])
        headers = validators.headers() | {"Content-Disposition": 'attachment; filename="rectify-rankings.csv"'}
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

    # ------------------------------------------------------------------ Open311 GeoReport v2, list endpoints

    @r.get("/open311/v2/services.json", summary="Open311: the service list (our complaint categories)")
    async def open311_services(request: Request) -> Response:
        validators = Validators(f'W/"{site.build}-open311-services"', None, REFERENCE_AGE)
        if validators.matches(request):
            return validators.not_modified()
        body = [feeds.open311_service(code, ref) for code in ref.categories]
        return Response(orjson.dumps(body), media_type="application/json; charset=utf-8", headers=validators.headers())

    @r.get(
        "/open311/v2/requests.json",
        summary="Open311: service requests (our cases), public fields only",
        description="Parameters of the GeoReport v2 spec: service_request_id (comma-separated; overrides the rest), "
        "service_code (comma-separated), start_date, end_date (W3C date-times, at most 90 days apart; without them "
        "the last 90 days), status (open, closed or both). jurisdiction_id is accepted and ignored. At most 1000 "
        "requests are returned; page_size and page (ours) page through more.",
    )
    async def open311_requests(request: Request) -> Response:
        try:
            f = _request_filter(request.query_params, ref.categories)
        except Open311Error as error:
            return error.response()
        validators = await site.projection_validators(request, "open311-requests")
        if validators.matches(request):
            return validators.not_modified()
        rows = await store.find_requests(site.pool(request), f)
        body = [feeds.open311_request(row, ref) for row in rows]
        return Response(orjson.dumps(body), media_type="application/json; charset=utf-8", headers=validators.headers())

    @r.get("/open311/v2/requests/{service_request_id}.json", summary="Open311: one service request (a case)")
    async def open311_request(request: Request, service_request_id: str) -> Response:
        rows = await store.find_requests(site.pool(request), store.RequestFilter(case_ids=(service_request_id,)))
        if not rows:
            return Open311Error(404, f"no service request {service_request_id[:64]}").response()
        validators = site.case_validators(rows[0], "open311-request", datetime.now(UTC).date())
        if validators.matches(request):
            return validators.not_modified()
        body = [feeds.open311_request(rows[0], ref)]
        return Response(orjson.dumps(body), media_type="application/json; charset=utf-8", headers=validators.headers())

    return r


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None or not value.strip():
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _date(params: Any, name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise Open311Error(400, f"{name}: a W3C date and time with its zone, e.g. 2026-01-01T00:00:00+08:00")
    return when


def _int(params: Any, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise Open311Error(400, f"{name}: a whole number from {low} to {high}")
    return int(value)


def _request_filter(params: Any, categories: dict[str, Any]) -> store.RequestFilter:
    size = _int(params, "page_size", OPEN311_MAX, 1, OPEN311_MAX)
    offset = (_int(params, "page", 1, 1, 100_000) - 1) * size
    ids = _csv(params.get("service_request_id"))
    if ids is not None:
        return store.RequestFilter(case_ids=ids[:OPEN311_MAX], limit=size, offset=offset)
    codes = _csv(params.get("service_code"))
    unknown = [c for c in codes or () if c not in categories]
    if unknown:
        raise Open311Error(400, f"service_code: unknown service {', '.join(unknown)}; see services.json")
    wanted = set(_csv(params.get("status")) or ("open", "closed"))
    if not wanted <= {"open", "closed"}:
        raise Open311Error(400, "status: open, closed, or both, comma separated")
    start, end = _date(params, "start_date"), _date(params, "end_date")
    if start and end and end - start > OPEN311_WINDOW:
        raise Open311Error(400, "start_date..end_date may span at most 90 days")
    if start is None:
        start = (end or datetime.now(UTC)) - OPEN311_WINDOW
    if end is None and params.get("start_date"):
        end = start + OPEN311_WINDOW
    return store.RequestFilter(
        categories=codes,
        finished=None if wanted == {"open", "closed"} else wanted == {"closed"},
        filed_from=start,
        filed_to=end,
        limit=size,
        offset=offset,
    )
