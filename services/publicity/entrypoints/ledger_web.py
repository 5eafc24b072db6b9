"""The public ledger on the site: its page with the daily head hashes, the JSON API by sequence, the download.

Anyone can fetch the whole chain (``/data/ledger.jsonl``, one entry per line, oldest first) and check it with
``rectify verify --url`` or a checker of their own (docs/public-ledger.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from services.publicity import api_models as m
from services.publicity import i18n
from services.publicity.adapters import ledger
from services.publicity.entrypoints.params import Lang
from services.publicity.entrypoints.site import Site
from services.publicity.ledger import Head

API_LIMIT = 1000
DAYS_SHOWN = 60
EXPORT_AGE = 60

After = Annotated[
    int, Query(ge=0, le=2**62, description="entries with a sequence number above this (0: from the start)")
]
Limit = Annotated[int, Query(ge=1, le=API_LIMIT, description=f"at most this many entries (up to {API_LIMIT})")]


def head_json(head: Head) -> dict[str, Any]:
    return {"seq": head.seq, "hash": head.hash, "appended_at": head.appended_at}


def day_json(day: dict[str, Any]) -> dict[str, Any]:
    return {"day": day["day"].isoformat(), "seq": day["seq"], "hash": day["hash"]}


def router(site: Site) -> APIRouter:
    r = APIRouter()

    @r.get(
        "/api/v1/ledger",
        tags=["public ledger"],
        summary="The public ledger's entries by sequence number, and its head",
        description="Every public fact applied here, hash-chained: see docs/public-ledger.md for how to check it. "
        "Page with `after` = the last `seq` you have; `next` is the following page (null at the head).",
        responses={200: {"model": m.LedgerPage, "description": "OK"}},
    )
    async def api_ledger(request: Request, after: After = 0, limit: Limit = API_LIMIT) -> Response:
        validators = await site.projection_validators(request, f"api-ledger-{after}-{limit}")
        if validators.matches(request):
            return validators.not_modified()
        pool = site.pool(request)
        head = await ledger.head(pool)
        entries = await ledger.entries(pool, after, limit)
        last = entries[-1].seq if entries else after
        body = {
            "head": head_json(head),
            "entries": [e.to_json() for e in entries],
            "next": f"/api/v1/ledger?after={last}&limit={limit}" if last < head.seq else None,
        }
        return Response(orjson.dumps(body), media_type="application/json", headers=validators.headers())

    @r.get(
        "/api/v1/ledger/heads",
        tags=["public ledger"],
        summary="The head hash at the end of each day (China time), newest first, and the current head",
        responses={200: {"model": m.LedgerHeads, "description": "OK"}},
    )
    async def api_heads(request: Request) -> Response:
        validators = await site.projection_validators(request, "api-ledger-heads")
        if validators.matches(request):
            return validators.not_modified()
        pool = site.pool(request)
        body = {
            "head": head_json(await ledger.head(pool)),
            "days": [day_json(d) for d in await ledger.daily_heads(pool, DAYS_SHOWN)],
        }
        return Response(orjson.dumps(body), media_type="application/json", headers=validators.headers())

    @r.get(
        "/data/ledger.jsonl",
        tags=["feeds and open data"],
        summary="The whole public ledger, one JSON entry per line, oldest first",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/jsonl": {}}}},
    )
    async def ledger_jsonl(request: Request) -> Response:
        validators = await site.projection_validators(request, "ledger-jsonl", max_age=EXPORT_AGE)
        if validators.matches(request):
            return validators.not_modified()
        pool = site.pool(request)

        async def lines() -> AsyncIterator[bytes]:
            async for chunk in ledger.every_entry(pool):
                yield b"".join(orjson.dumps(e.to_json()) + b"\n" for e in chunk)

        headers = validators.headers() | {"Content-Disposition": 'attachment; filename="rectify-ledger.jsonl"'}
        return StreamingResponse(lines(), media_type="application/jsonl; charset=utf-8", headers=headers)

    @r.get("/ledger", include_in_schema=False)
    async def ledger_page(request: Request, lang: Lang = None) -> Response:
        language = i18n.lang_of(lang)
        validators = await site.projection_validators(request, "ledger")
        if validators.matches(request):
            return validators.not_modified()
        if hit := site.cached(request, validators):
            return hit
        pool = site.pool(request)
        return site.render(
            request,
            "ledger.html",
            language,
            validators,
            head=await ledger.head(pool),
            days=await ledger.daily_heads(pool, DAYS_SHOWN),
            base_url=str(request.base_url).rstrip("/"),
        )

    return r
