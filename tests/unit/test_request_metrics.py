"""Request metrics by route template and status (children cached per pair) and correlation ids on every answer."""

from __future__ import annotations

import os
import uuid

import httpx
from fastapi import FastAPI

from services.common import http
from services.common.metrics import HTTP_REQUESTS, HTTP_SECONDS


def app() -> FastAPI:
    api = FastAPI()
    http.install(api, "metrics-test")

    @api.get("/things/{n}")
    async def thing(n: int) -> dict[str, int]:
        if n == 0:
            raise http.Problem(404, "Not found", "no thing 0")
        return {"n": n}

    return api


def requests(route: str, status: str) -> float:
    return HTTP_REQUESTS.labels("metrics-test", route, status)._value.get()


def observed(route: str) -> float:
    return sum(b.get() for b in HTTP_SECONDS.labels("metrics-test", route)._buckets)


async def test_each_route_and_status_is_counted_and_timed_apart() -> None:
    before = requests("/things/{n}", "200"), requests("/things/{n}", "404"), requests("unmatched", "404")
    timed = observed("/things/{n}")
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for n in (1, 2, 0, 3):
            await client.get(f"/things/{n}")
        await client.get("/nowhere")
    after = requests("/things/{n}", "200"), requests("/things/{n}", "404"), requests("unmatched", "404")
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 1]
    assert observed("/things/{n}") - timed == 4


async def test_correlation_ids_are_echoed_or_new_and_unique() -> None:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        given = await client.get("/things/1", headers={"X-Correlation-ID": "c-42"})
        bad = await client.get("/things/1", headers={"X-Correlation-ID": "not one; drop it"})
        fresh = [(await client.get("/things/1")).headers["x-correlation-id"] for _ in range(50)]
    assert given.headers["x-correlation-id"] == "c-42"
    assert bad.headers["x-correlation-id"] not in ("", "not one; drop it")
    assert len(set(fresh)) == 50
    assert all(str(uuid.UUID(c)) == c for c in fresh)  # UUID-shaped, as log readers expect


def test_correlation_ids_stay_unique_over_many() -> None:
    ids = {http.correlation_id() for _ in range(100_000)}
    assert len(ids) == 100_000


def test_a_forked_process_draws_its_own_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, http.correlation_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child[:24] != http.correlation_id()[:24]
