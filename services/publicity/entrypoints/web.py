"""The public results page and its JSON API. Server-rendered, works without JavaScript."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import asyncpg
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.common import http
from services.common.contracts import CaseStatus
from services.common.db import create_pool
from services.common.reference import reference
from services.publicity import i18n
from services.publicity.adapters.store import CaseFilter, get_case, list_cases

HERE = Path(__file__).parent.parent
CHINA = timezone(timedelta(hours=8))
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
LIST_CACHE = "public, max-age=15"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _local(at: datetime | None) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if at else ""


def _json_case(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "timeline"}
    if "timeline" in row:
        out["timeline"] = [
            {"step": s["step"], "at": s["at"].isoformat(), "version": s["version"]} for s in row["timeline"]
        ]
    return out


def create_app(dsn: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(dsn, "publicity", min_size=2, max_size=16)
        yield
        await app.state.pool.close()

    app = FastAPI(
        title="Rectify public results API",
        version="1.0.0",
        summary="Public facts about complaints against government units and their rectification. No personal data.",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    http.install(app, "publicity")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    ref = reference()
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.globals.update(
        t=i18n.t,
        status_name=i18n.status_name,
        step_name=i18n.step_name,
        local=_local,
        unit_name=lambda uid, lang: ref.units[uid].name(lang) if uid in ref.units else uid,
        category_name=lambda cid, lang: ref.categories[cid].name(lang) if cid in ref.categories else cid,
    )

    @app.middleware("http")
    async def _headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def pool(request: Request) -> asyncpg.Pool:
        p: asyncpg.Pool = request.app.state.pool
        return p

    def render(request: Request, template: str, lang: str, **ctx: Any) -> HTMLResponse:
        params = dict(request.query_params) | {"lang": "en" if lang == "zh" else "zh"}
        html = env.get_template(template).render(
            lang=lang, other_lang_url=f"{request.url.path}?{urlencode(params)}", **ctx
        )
        return HTMLResponse(html, headers={"Cache-Control": LIST_CACHE, "Vary": "Accept-Language"})

    def case_filter(unit: str | None, category: str | None, status: str | None, page: int, size: int) -> CaseFilter:
        return CaseFilter(
            unit_id=unit or None,
            category=category or None,
            status=status or None,
            limit=size,
            offset=(page - 1) * size,
        )

    Unit = Annotated[str | None, Query(max_length=64, description="unit id, see /api/v1/reference")]
    Category = Annotated[str | None, Query(max_length=64, description="category id")]
    Status = Annotated[CaseStatus | None, Query(description="case status")]
    Page = Annotated[int, Query(ge=1, le=100_000)]
    Size = Annotated[int, Query(ge=1, le=200)]
    Lang = Annotated[str | None, Query(pattern="^(zh|en)$", description="zh (default) or en")]

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            await pool(request).fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError):
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def cases_page(
        request: Request,
        unit: Unit = None,
        category: Category = None,
        status: Status = None,
        page: Page = 1,
        lang: Lang = None,
    ) -> HTMLResponse:
        language = i18n.lang_of(lang)
        f = case_filter(unit, category, status.value if status else None, page, 50)
        rows, total = await list_cases(pool(request), f)

        def page_url(n: int) -> str:
            return "/?" + urlencode(dict(request.query_params) | {"page": n, "lang": language})

        return render(
            request,
            "cases.html",
            language,
            f=f,
            cases=rows,
            total=total,
            units=list(ref.units.values()),
            categories=list(ref.categories.values()),
            statuses=[s.value for s in CaseStatus],
            prev_url=page_url(page - 1) if page > 1 else None,
            next_url=page_url(page + 1) if f.offset + len(rows) < total else None,
        )

    @app.get("/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
    async def case_page(request: Request, case_id: str, lang: Lang = None) -> Response:
        row = await get_case(pool(request), case_id) if CASE_ID.match(case_id) else None
        if row is None:
            raise http.Problem(404, "Not found", "no published case has this id")
        etag = f'"{row["case_id"]}-{row["version"]}-{i18n.lang_of(lang)}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        response = render(request, "case.html", i18n.lang_of(lang), c=row)
        response.headers["ETag"] = etag
        return response

    @app.get("/api/v1/cases", summary="Search cases (public fields only)")
    async def api_cases(
        request: Request,
        unit: Unit = None,
        category: Category = None,
        status: Status = None,
        page: Page = 1,
        size: Size = 50,
    ) -> JSONResponse:
        f = case_filter(unit, category, status.value if status else None, page, size)
        rows, total = await list_cases(pool(request), f)
        body = {"total": total, "page": page, "size": size, "cases": [_json_case(r) for r in rows]}
        return JSONResponse(body, headers={"Cache-Control": LIST_CACHE})

    @app.get("/api/v1/cases/{case_id}", summary="One case with its dated timeline (public fields only)")
    async def api_case(request: Request, case_id: str) -> JSONResponse:
        row = await get_case(pool(request), case_id) if CASE_ID.match(case_id) else None
        if row is None:
            raise http.Problem(404, "Not found", "no published case has this id")
        return JSONResponse(_json_case(row), headers={"Cache-Control": LIST_CACHE, "ETag": f'"{row["version"]}"'})

    @app.get("/api/v1/reference", summary="Units (with tier) and categories, in Chinese and English")
    async def api_reference() -> JSONResponse:
        return JSONResponse(
            {
                "units_version": ref.units_version,
                "categories_version": ref.categories_version,
                "units": [u.model_dump() for u in ref.units.values()],
                "categories": [c.model_dump() for c in ref.categories.values()],
            },
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return app
