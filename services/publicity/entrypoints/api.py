"""The public JSON API: every page's figures under /api/v1, documented at /api/docs. Public fields only."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.common import http
from services.publicity import api_models as m
from services.publicity import rankings, views
from services.publicity.adapters import store
from services.publicity.entrypoints.params import (
    Category,
    Formula,
    Page,
    PeriodText,
    Size,
    Status,
    Unit,
    recompute_command,
)
from services.publicity.entrypoints.site import REFERENCE_AGE, Site, Validators, today_in_china
from services.publicity.periods import PERIOD_PATTERN, optional_period

CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
PERIOD = re.compile(PERIOD_PATTERN)


def json_response(body: Any, validators: Validators) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=validators.headers())


def _doc(model: type, description: str = "OK") -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": description}}


def router(site: Site) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["public data"])
    ref = site.ref

    @r.get("/cases", summary="Search cases (public fields only)", responses=_doc(m.CaseList))
    async def api_cases(
        request: Request,
        unit: Unit = None,
        category: Category = None,
        status: Status = None,
        period: PeriodText = None,
        page: Page = 1,
        size: Size = 50,
    ) -> Response:
        validators = await site.projection_validators(request, "api-cases")
        if validators.matches(request):
            return validators.not_modified()
        f = store.CaseFilter(
            unit_id=unit or None,
            category=category or None,
            status=status or None,
            period=optional_period(period or None),
            limit=size,
            offset=(page - 1) * size,
        )
        rows, total = await store.list_cases(site.pool(request), f)
        body = {"total": total, "page": page, "size": size, "cases": [views.json_case(row) for row in rows]}
        return json_response(body, validators)

    @r.get(
        "/cases/{case_id}",
        summary="One case with its dated timeline and who held it (public fields only)",
        responses=_doc(m.CaseDetail) | {404: {"description": "no published case has this id"}},
    )
    async def api_case(request: Request, case_id: str) -> Response:
        row = await store.get_case(site.pool(request), case_id) if CASE_ID.match(case_id) else None
        if row is None:
            raise http.Problem(404, "Not found", "no published case has this id")
        validators = site.case_validators(row, "api-case", today_in_china())
        if validators.matches(request):
            return validators.not_modified()
        return json_response(views.json_case(row), validators)

    @r.get("/rankings", summary="Every published ranking: period and tier", responses=_doc(m.RankingIndex))
    async def api_rankings(request: Request) -> Response:
        validators = await site.projection_validators(request, "api-rankings")
        if validators.matches(request):
            return validators.not_modified()
        keys = rankings.published_keys(await site.ranking_index(request, validators))
        body = {"rankings": [{"period": p, "tier": t, "url": f"/api/v1/rankings/{p}/{t}"} for p, t in keys]}
        return json_response(body, validators)

    @r.get(
        "/rankings/{period}/{tier}",
        summary="A unit ranking as published: every rate, score, rank, top-ten and bottom marks, versions and hashes",
        responses=_doc(m.RankingAnswer) | {404: {"description": "no ranking was published for this period and tier"}},
    )
    async def api_ranking(request: Request, period: str, tier: str, formula: Formula = None) -> Response:
        if not PERIOD.match(period) or tier not in rankings.TIERS:
            raise http.Problem(404, "Not found", "period is YYYY-MM, YYYY-Qn or YYYY; tier is township or department")
        validators = await site.projection_validators(request, "api-ranking")
        if validators.matches(request):
            return validators.not_modified()
        index = await site.ranking_index(request, validators)
        chosen = rankings.latest(index, period, tier, formula)
        if chosen is None:
            raise http.Problem(404, "Not found", "no ranking was published for this period and tier")
        body = {
            "event_id": chosen.event_id,
            "stream_version": chosen.stream_version,
            "recorded_at": chosen.recorded_at.isoformat(),
            "ranking": await site.rankings.document(site.pool(request), chosen.event_id),
            "history": [
                {
                    "event_id": h.event_id,
                    "stream_version": h.stream_version,
                    "formula_version": h.formula_version,
                    "recorded_at": h.recorded_at.isoformat(),
                    "result_hash": h.result_hash,
                }
                for h in rankings.history(index, period, tier)
            ],
            "recompute": recompute_command(period, tier),
        }
        return json_response(body, validators)

    @r.get("/exposure", summary="The exposure board (曝光台), latest exposure first", responses=_doc(m.ExposureList))
    async def api_exposure(request: Request, page: Page = 1, size: Size = 50) -> Response:
        validators = await site.projection_validators(request, "api-exposure")
        if validators.matches(request):
            return validators.not_modified()
        rows, total = await store.exposure_board(site.pool(request), size, (page - 1) * size)
        body = {"total": total, "page": page, "size": size, "cases": [views.json_case(row) for row in rows]}
        return json_response(body, validators)

    @r.get(
        "/stalled",
        summary="Overdue cases: counts per responsible unit, and the cases, longest overdue first",
        responses=_doc(m.StalledAnswer),
    )
    async def api_stalled(request: Request, unit: Unit = None, page: Page = 1, size: Size = 50) -> Response:
        validators = await site.projection_validators(request, "api-stalled")
        if validators.matches(request):
            return validators.not_modified()
        pool = site.pool(request)
        by_unit = await store.stalled_by_unit(pool)
        rows = await store.stalled_cases(pool, unit or None, size, (page - 1) * size)
        body = {
            "by_unit": [{"unit_id": u, "overdue": n} for u, n in by_unit],
            "unit_id": unit or None,
            "page": page,
            "size": size,
            "cases": [views.json_case(row) for row in rows],
        }
        return json_response(body, validators)

    @r.get(
        "/statistics",
        summary="Case counts: the monthly trend, and by category, unit and status for a period",
        responses=_doc(m.StatisticsAnswer),
    )
    async def api_statistics(request: Request, period: PeriodText = None) -> Response:
        validators = await site.projection_validators(request, "api-statistics")
        if validators.matches(request):
            return validators.not_modified()
        stats = await store.statistics(site.pool(request), optional_period(period))
        body = {
            "period": period or None,
            "months": stats.months,
            "by_category": stats.by_category,
            "by_unit": stats.by_unit,
            "by_status": stats.by_status,
        }
        return json_response(body, validators)

    @r.get("/reference", summary="Units (with tier) and categories, in Chinese and English")
    async def api_reference(request: Request) -> Response:
        validators = Validators(f'W/"{site.build}-reference"', None, REFERENCE_AGE)
        if validators.matches(request):
            return validators.not_modified()
        body = {
            "units_version": ref.units_version,
            "categories_version": ref.categories_version,
            "units": [u.model_dump() for u in ref.units.values()],
            "categories": [c.model_dump() for c in ref.categories.values()],
        }
        return json_response(body, validators)

    return r
