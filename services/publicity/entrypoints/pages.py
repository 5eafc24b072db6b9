"""The public pages, server-rendered: case search, a case, rankings, exposure, overdue cases, statistics, open data.

Each page has a JSON twin under ``/api/v1`` (entrypoints/api.py) with the same figures.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.common.contracts import CaseStatus
from services.publicity import charts, i18n, rankings, views
from services.publicity.adapters import ledger, store
from services.publicity.entrypoints.params import (
    Category,
    Formula,
    Lang,
    Page,
    PeriodText,
    Status,
    Tier,
    Unit,
    recompute_command,
)
from services.publicity.entrypoints.site import REFERENCE_AGE, Site, Validators, today_in_china
from services.publicity.periods import Period, optional_period, period_choices, recent_months

CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
PAGE_SIZE = 50
TREND_MONTHS = 24


def router(site: Site) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    ref = site.ref

    @r.get("/", response_class=HTMLResponse)
    async def cases_page(
        request: Request,
        unit: Unit = None,
        category: Category = None,
        status: Status = None,
        period: PeriodText = None,
        page: Page = 1,
        lang: Lang = None,
    ) -> Response:
        language = i18n.lang_of(lang)
        validators = await site.projection_validators(request, "cases")
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        f = store.CaseFilter(
            unit_id=unit or None,
            category=category or None,
            status=status or None,
            period=optional_period(period or None),
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        pool = site.pool(request)
        rows, total = await store.list_cases(pool, f)
        months = await site.memo(validators, "months", lambda: store.months_with_cases(pool))
        params = {"unit": unit, "category": category, "status": status or None, "period": period}
        return site.render(
            request,
            "cases.html",
            language,
            validators,
            f=f,
            period=period or "",
            cases=rows,
            total=total,
            units=list(ref.units.values()),
            categories=list(ref.categories.values()),
            statuses=[s.value for s in CaseStatus],
            periods=period_choices(months),
            prev_url=views.href("/", language, **params, page=page - 1) if page > 1 else None,
            next_url=views.href("/", language, **params, page=page + 1) if f.offset + len(rows) < total else None,
            ledger_day=await site.memo(validators, "ledger-day", lambda: ledger.daily_heads(pool, 1)),
        )

    @r.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_page(request: Request, case_id: str, lang: Lang = None) -> Response:
        language = i18n.lang_of(lang)
        row = await store.get_case(site.pool(request), case_id) if CASE_ID.match(case_id) else None
        if row is None:
            return site.render_error(404, language, i18n.t("not_found", language))
        today = today_in_china()
        validators = site.case_validators(row, "case-page", today)
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        case_spells = views.spells(row["holds"], today)
        return site.render(
            request,
            "case.html",
            language,
            validators,
            c=row,
            steps=views.timeline_steps(row["timeline"]),
            spells=case_spells,
            totals=views.holder_totals(case_spells),
            was_overdue=row["overdue"] or any(s["step"] == "overdue" for s in row["timeline"]),
        )

    @r.get("/rankings", response_class=HTMLResponse)
    async def rankings_page(
        request: Request, period: PeriodText = None, tier: Tier = None, formula: Formula = None, lang: Lang = None
    ) -> Response:
        language = i18n.lang_of(lang)
        validators = await site.projection_validators(request, "rankings")
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        index = await site.ranking_index(request, validators)
        chosen_period, chosen_tier = rankings.choose(index, period or None, tier or None)
        chosen = rankings.latest(index, chosen_period, chosen_tier, formula) if chosen_period else None
        document = await site.rankings.document(site.pool(request), chosen.event_id) if chosen else None
        return site.render(
            request,
            "rankings.html",
            language,
            validators,
            periods=sorted({p for p, _ in rankings.published_keys(index)}, reverse=True),
            period=chosen_period,
            period_label=Period.parse(chosen_period).label(language) if chosen_period else "",
            tier=chosen_tier,
            tiers=("township", "department"),
            publication=chosen,
            doc=document,
            history=rankings.history(index, chosen_period, chosen_tier) if chosen_period else [],
            rates=("response", "on_time", "first_pass", "resolution", "satisfaction"),
            recompute=recompute_command(chosen_period, chosen_tier) if chosen_period else "",
        )

    @r.get("/rankings/method", response_class=HTMLResponse)
    async def method_page(request: Request, lang: Lang = None) -> Response:
        language = i18n.lang_of(lang)
        validators = Validators(f'W/"{site.build}-method"', None, REFERENCE_AGE)
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        return site.render(request, "method.html", language, validators)

    @r.get("/exposure", response_class=HTMLResponse)
    async def exposure_page(request: Request, page: Page = 1, lang: Lang = None) -> Response:
        language = i18n.lang_of(lang)
        validators = await site.projection_validators(request, "exposure")
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        rows, total = await store.exposure_board(site.pool(request), PAGE_SIZE, (page - 1) * PAGE_SIZE)
        return site.render(
            request,
            "exposure.html",
            language,
            validators,
            cases=rows,
            total=total,
            prev_url=views.href("/exposure", language, page=page - 1) if page > 1 else None,
            next_url=views.href("/exposure", language, page=page + 1) if page * PAGE_SIZE < total else None,
        )

    @r.get("/stalled", response_class=HTMLResponse)
    async def stalled_page(request: Request, unit: Unit = None, page: Page = 1, lang: Lang = None) -> Response:
        language = i18n.lang_of(lang)
        validators = await site.projection_validators(request, f"stalled-{today_in_china():%Y%m%d}")
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        pool = site.pool(request)
        by_unit = await site.memo(validators, "stalled", lambda: store.stalled_by_unit(pool))
        rows = await store.stalled_cases(pool, unit or None, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        total = sum(n for u, n in by_unit if not unit or u == unit)
        today = today_in_china()
        return site.render(
            request,
            "stalled.html",
            language,
            validators,
            by_unit=by_unit,
            unit=unit or "",
            cases=[
                row
                | {
                    "days_overdue": views.overdue_days(row["deadline"], today),
                    "holder_now": next((h["holder"] for h in row["holds"] if not h.get("ended_at")), None),
                }
                for row in rows
            ],
            total=total,
            chart=charts.bar_chart(
                "stalled-chart",
                i18n.t("stalled_by_unit", language),
                [charts.Bar(views.unit_name(ref, u, language), n) for u, n in by_unit],
            )
            if by_unit
            else None,
            prev_url=views.href("/stalled", language, unit=unit, page=page - 1) if page > 1 else None,
            next_url=views.href("/stalled", language, unit=unit, page=page + 1) if page * PAGE_SIZE < total else None,
        )

    @r.get("/statistics", response_class=HTMLResponse)
    async def statistics_page(request: Request, period: PeriodText = None, lang: Lang = None) -> Response:
        language = i18n.lang_of(lang)
        validators = await site.projection_validators(request, "statistics")
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        pool = site.pool(request)
        chosen = optional_period(period)
        stats = await site.memo(validators, ("statistics", chosen), lambda: store.statistics(pool, chosen))
        months = await site.memo(validators, "months", lambda: store.months_with_cases(pool))
        return site.render(
            request,
            "statistics.html",
            language,
            validators,
            period=period or "",
            period_label=chosen.label(language) if chosen else i18n.t("all_time", language),
            periods=period_choices(months),
            stats=stats,
            **_statistics_charts(site, stats, language),
        )

    @r.get("/data", response_class=HTMLResponse)
    async def open_data_page(request: Request, lang: Lang = None) -> Response:
        language = i18n.lang_of(lang)
        validators = Validators(f'W/"{site.build}-data"', None, REFERENCE_AGE)
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        return site.render(
            request,
            "data.html",
            language,
            validators,
            units=list(ref.units.values()),
            categories=list(ref.categories.values()),
        )

    return r


def _statistics_charts(site: Site, stats: store.Statistics, lang: str) -> dict[str, Any]:
    ref = site.ref
    by_month = {m["month"]: m for m in stats.months}
    months = (
        recent_months(max(by_month), min(TREND_MONTHS, _months_span(min(by_month), max(by_month)))) if by_month else []
    )
    empty = {"filed": 0, "closed": 0}
    trend = (
        charts.column_chart(
            "trend-chart",
            i18n.t("trend", lang),
            months,
            [
                charts.Series(i18n.t("filed_n", lang), tuple(by_month.get(m, empty)["filed"] for m in months)),
                charts.Series(i18n.t("closed_n", lang), tuple(by_month.get(m, empty)["closed"] for m in months)),
            ],
            short_labels=[m[2:] for m in months],
        )
        if months
        else None
    )
    category_chart = charts.bar_chart(
        "category-chart",
        i18n.t("by_category", lang),
        [charts.Bar(views.category_name(ref, c["category"], lang), c["filed"]) for c in stats.by_category],
    )
    unit_chart = charts.bar_chart(
        "unit-chart",
        i18n.t("by_unit", lang),
        [charts.Bar(views.unit_name(ref, u["unit_id"], lang), u["filed"]) for u in stats.by_unit],
    )
    return {
        "trend_months": [
            by_month.get(m, {"month": m, "filed": 0, "closed": 0, "overdue": 0, "exposed": 0}) for m in months
        ],
        "trend_chart": trend,
        "category_chart": category_chart if stats.by_category else None,
        "unit_chart": unit_chart if stats.by_unit else None,
    }


def _months_span(first: str, last: str) -> int:
    return (int(last[:4]) - int(first[:4])) * 12 + int(last[5:7]) - int(first[5:7]) + 1
