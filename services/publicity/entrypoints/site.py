"""What every public page and feed shares: templates, the reader's language, and HTTP caching.

Caching. Every answer says how long it may be kept (``Cache-Control: public, max-age``) and carries a
validator: a case page its case's version, everything else the projection's change counter (one row, read
by primary key) and ``Last-Modified`` from it. A conditional request that still matches gets ``304`` before
any page query runs. Validators include the build (a hash of the templates, styles and code), so a new
release never answers ``304`` with an old page. The language is part of the URL (``?lang=en``), so no page
varies on request headers except the encoding. Since a validator names everything a page is made of, the
site also keeps the last pages it rendered, by URL and validator, and serves them again without querying.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.common.reference import Reference, reference
from services.publicity import i18n, views
from services.publicity.adapters import store
from services.publicity.adapters.store import Watermark, watermark
from services.publicity.periods import CHINA
from services.publicity.rankings import RankingsCache

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
T = TypeVar("T")
PAGE_AGE = 15  # seconds a page or answer may be reused without asking
CASE_AGE = 60
REFERENCE_AGE = 3600
WATERMARK_TTL = 1.0  # seconds a read of the change counter is reused
NAV = (
    ("/", "cases"),
    ("/rankings", "rankings"),
    ("/exposure", "exposure"),
    ("/stalled", "stalled"),
    ("/statistics", "statistics"),
    ("/data", "open_data"),
    ("/ledger", "ledger"),
)


def _build_id() -> str:
    digest = hashlib.sha256()
    for folder in (TEMPLATES, STATIC, HERE):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".html", ".css", ".py"):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _static_version() -> str:
    return hashlib.sha256((STATIC / "site.css").read_bytes()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Validators:
    """What a cache needs to keep and revalidate one answer."""

    etag: str
    last_modified: datetime | None
    max_age: int
    changes: int | None = None  # the projection's change counter it was made from, if any

    def headers(self) -> dict[str, str]:
        out = {"Cache-Control": f"public, max-age={self.max_age}", "ETag": self.etag}
        if self.last_modified is not None:
            out["Last-Modified"] = format_datetime(
                self.last_modified.astimezone(UTC).replace(microsecond=0), usegmt=True
            )
        return out

    def matches(self, request: Request) -> bool:
        """The client's copy is still good: If-None-Match names our tag, or (without it) If-Modified-Since is recent."""
        tags = request.headers.get("if-none-match")
        if tags is not None:
            wanted = self.etag.removeprefix("W/")
            return any(tag.strip().removeprefix("W/") in (wanted, "*") for tag in tags.split(","))
        since = request.headers.get("if-modified-since")
        if since is None or self.last_modified is None:
            return False
        try:
            client = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return client.tzinfo is not None and self.last_modified.replace(microsecond=0) <= client

    def not_modified(self) -> Response:
        return Response(status_code=304, headers=self.headers())


class Site:
    def __init__(self, page_cache: int = 512) -> None:
        self.pages: OrderedDict[tuple[str, str], bytes] = OrderedDict()  # (URL, ETag) -> rendered page
        self.page_cache = page_cache
        self.reads: dict[Hashable, tuple[int, Any]] = {}  # key -> (change counter, answer)
        self._mark: tuple[float, Watermark] | None = None  # (monotonic time read, watermark)
        self.ref: Reference = reference()
        self.rankings = RankingsCache(store.ranking_publications, store.ranking_document)
        self.build = _build_id()
        self.css = f"/static/site.css?v={_static_version()}"
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "xml"]), auto_reload=False
        )
        ref = self.ref
        self.env.globals.update(
            t=i18n.t,
            status_name=i18n.status_name,
            step_name=i18n.step_name,
            hold_step_name=i18n.hold_step_name,
            tier_name=i18n.tier_name,
            rate_name=i18n.rate_name,
            flag_name=i18n.flag_name,
            tie_break_name=i18n.tie_break_name,
            local=views.local_time,
            local_day=views.local_day,
            href=views.href,
            percent=views.percent,
            days=views.days,
            unit_name=lambda uid, lang: views.unit_name(ref, uid, lang),
            category_name=lambda cid, lang: views.category_name(ref, cid, lang),
            holder_name=lambda holder, lang: views.holder_name(ref, holder, lang),
            nav=NAV,
            css=self.css,
        )

    @staticmethod
    def pool(request: Request) -> asyncpg.Pool:
        pool: asyncpg.Pool = request.app.state.pool
        return pool

    async def watermark(self, request: Request) -> Watermark:
        """The projection's change counter, read at most once a second (answers may be kept 15 s anyway)."""
        now = time.monotonic()
        if self._mark is None or now - self._mark[0] >= WATERMARK_TTL:
            self._mark = (now, await watermark(self.pool(request)))
        return self._mark[1]

    async def memo(self, validators: Validators, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``'s answer, kept until the projection changes: for reads many pages share (months, figures)."""
        assert validators.changes is not None, "projection validators carry the change counter"
        kept = self.reads.get(key)
        if kept is not None and kept[0] == validators.changes:
            return kept[1]  # type: ignore[no-any-return]
        value = await read()
        self.reads[key] = (validators.changes, value)
        if len(self.reads) > 256:
            self.reads.pop(next(iter(self.reads)))
        return value

    async def ranking_index(self, request: Request, validators: Validators) -> list[store.Publication]:
        assert validators.changes is not None, "projection validators carry the change counter"
        return await self.rankings.index(self.pool(request), validators.changes)

    async def projection_validators(self, request: Request, scope: str, max_age: int = PAGE_AGE) -> Validators:
        """Validators for an answer that may change with any change to the projection (scope: what else it shows)."""
        mark = await self.watermark(request)
        return Validators(f'W/"{self.build}-{scope}-{mark.changes}"', mark.changed_at, max_age, mark.changes)

    def case_validators(self, row: dict[str, Any], scope: str, today: date) -> Validators:
        """A case's answer changes with its version, and daily while a spell runs (its age in days is shown)."""
        day = f"-{today:%Y%m%d}" if views.has_running_spell(row["holds"]) else ""
        return Validators(
            f'W/"{self.build}-{scope}-{row["case_id"]}-{row["version"]}{day}"', row["updated_at"], CASE_AGE
        )

    def cached(self, request: Request, validators: Validators) -> HTMLResponse | None:
        """The page as rendered before for this URL and validator: the same inputs give the same bytes."""
        html = self.pages.get((str(request.url), validators.etag))
        if html is None:
            return None
        self.pages.move_to_end((str(request.url), validators.etag))
        return HTMLResponse(html, headers=validators.headers())

    def render(self, request: Request, template: str, lang: str, validators: Validators, **ctx: Any) -> HTMLResponse:
        response = self._render(request, template, lang, validators, **ctx)
        if self.page_cache:
            self.pages[(str(request.url), validators.etag)] = bytes(response.body)
            while len(self.pages) > self.page_cache:
                self.pages.popitem(last=False)
        return response

    def _render(self, request: Request, template: str, lang: str, validators: Validators, **ctx: Any) -> HTMLResponse:
        params = dict(request.query_params)
        params.pop("lang", None)
        other = "en" if lang == "zh" else "zh"
        html = self.env.get_template(template).render(
            lang=lang,
            other_lang=other,
            other_lang_url=views.href(request.url.path, other, **params),
            path=request.url.path,
            **ctx,
        )
        return HTMLResponse(html, headers=validators.headers())

    def render_error(self, status: int, lang: str, message: str) -> HTMLResponse:
        html = self.env.get_template("error.html").render(
            lang=lang, other_lang="en" if lang == "zh" else "zh", other_lang_url=None, path="", message=message
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "public, max-age=30"})


def today_in_china(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(CHINA).date()
