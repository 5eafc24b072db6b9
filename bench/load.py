"""Open-loop filing and a watcher on the public JSON API: the time from intake's 202 to a case being public.

The generator sends complaints at a fixed rate from a schedule (request ``i`` is due at ``start + i / rate``) and
never waits for an answer before sending the next, so a slow system cannot slow the load down and hide its own
latency (coordinated omission). Intake's latency is taken from the scheduled moment, not from the actual send.

What becomes public, and when: rectification sends ``PublicCaseChanged`` for every change the public may see,
filing included (``public_view`` in services/rectification/domain/case.py), so a filed case is on the public
JSON API at once with its category, unit, status ``filed`` and timeline; its summaries stay empty until the
supervisor approves them at publication (DOMAIN.md: the public sees cases with status and dated timeline, and
approved text only). Visibility is therefore the case appearing in ``GET /api/v1/cases``, the public listing,
newest filed first: every 10 ms its first page of 50 (and the next while they show awaited cases), every 250 ms
every page of 200 down to the oldest case still awaited (see ``watch``). A case is visible at the moment the answer
that first lists it arrived: the resolution is 10 ms for a case that appears among the 50 newest, 250 ms behind
them (under load, add the time an answer takes). The watcher's requests are load on publicity-web (about 100
small listings a second), as real readers would be. A case listed before its own 202 came back counts as 0.

The watcher sends no ``If-None-Match``: publicity-web reads its projection's change counter at most once a second
for its validators, so a conditional request may be answered 304 for up to a second after a change; the figures
here are when the data is public, which an unconditional request sees.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import orjson

BODY = orjson.dumps(
    {
        "category": "service_window",
        "unit_id": "meiwan",
        "description": "梅湾街道便民服务中心窗口工作人员上班时间玩手机，群众排队一小时无人办理。",
        "location": "梅湾街道便民服务中心",
        "severity": "general",
        "complainant": {"name": "张某某", "phone": "13800000000"},
    }
)


@dataclass
class Tally:
    """Everything one run saw; times are ``time.monotonic()``."""

    scheduled: int = 0
    answered: int = 0
    errors: int = 0
    accepted: dict[str, float] = field(default_factory=dict)  # case id -> when its 202 arrived
    intake_ms: list[float] = field(default_factory=list)  # scheduled moment -> 202
    seen: dict[str, float] = field(default_factory=dict)  # case id -> first public listing of it
    pending: dict[str, float] = field(default_factory=dict)  # accepted, not yet listed; oldest first
    late_s: float = 0.0  # the generator's worst delay behind its own schedule
    oldest_wall: float = 0.0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, sent, visible)
    sending: tuple[float, float] = (0.0, 0.0)  # when the generator started and stopped
    watch_errors: int = 0  # listing requests that failed or timed out (the sweep starts again)

    def samples_while_sending(self) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if self.sending[0] <= s[0] <= self.sending[1]]

    def visible_ms(self) -> list[float]:
        return [max(0.0, self.seen[c] - t) * 1000 for c, t in self.accepted.items() if c in self.seen]

    def waiting(self) -> list[str]:
        return list(self.pending)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)

    def rank(q: float) -> float:  # nearest rank: a value that was measured
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50": rank(0.50), "p99": rank(0.99), "max": ordered[-1]}


async def _file_one(session: aiohttp.ClientSession, url: str, key: str, due: float, tally: Tally) -> None:
    try:
        async with session.post(
            url, data=BODY, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        ) as response:
            body = await response.read()
            now = time.monotonic()
            tally.answered += 1
            if response.status != 202:
                tally.errors += 1
                return
    except (aiohttp.ClientError, TimeoutError):  # a timeout is an answer that never came: an error too
        tally.errors += 1
        return
    tally.intake_ms.append((now - due) * 1000)
    case_id = orjson.loads(body).get("case_id") if body else None
    if case_id:
        tally.accepted[case_id] = now
        if case_id not in tally.seen:
            tally.pending[case_id] = now


async def generate(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    rate: float,
    seconds: float,
    tally: Tally,
    sent: Callable[[], None] | None = None,
) -> None:
    """Send ``rate * seconds`` complaints on schedule; returns once every answer is in."""
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            tally.late_s = max(tally.late_s, -delay)
        tally.scheduled += 1
        task = asyncio.create_task(_file_one(session, url, key, due, tally))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    tally.sending = (start, time.monotonic())
    if sent is not None:
        sent()
    if tasks:
        await asyncio.gather(*tasks)


async def watch(session: aiohttp.ClientSession, public: str, tally: Tally, stop: asyncio.Event) -> None:
    """Sweep the public listing until ``stop`` is set; record when each of our cases is first listed.

    Every 10 ms the first page of 50, and the next ones while they still show cases it waited for; every 250 ms a
    full sweep (pages of 200) down to the oldest case still awaited. So the watcher's own load stays small when the
    system keeps up (one page), and a case made public behind newer ones is still found, within 250 ms."""
    last_full = 0.0
    while not stop.is_set():
        began = time.monotonic()
        full = began - last_full >= 0.25
        if full:
            last_full = began
        waiting_since = next(iter(tally.pending.values()), None)
        # cases filed before this wall-clock moment are history, or already seen: stop paging there
        if waiting_since is None:
            floor = time.time() - 2
        else:
            floor = max(tally.oldest_wall, time.time() - (began - waiting_since) - 2)
        size = 200 if full else 50  # the frequent sweep asks for less: its answers are the watcher's own load
        for page in range(1, 201):
            try:
                async with session.get(f"{public}/api/v1/cases", params={"size": size, "page": page}) as r:
                    body = await r.read()
                    arrived = time.monotonic()
                cases = orjson.loads(body)["cases"]
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, KeyError):
                tally.watch_errors += 1
                break
            found = 0
            for case in cases:
                tally.seen.setdefault(case["case_id"], arrived)
                found += tally.pending.pop(case["case_id"], None) is not None
            if len(cases) < size or datetime.fromisoformat(cases[-1]["filed_at"]).timestamp() < floor:
                break
            if not full and not found:
                break
        await asyncio.sleep(max(0.0, began + 0.01 - time.monotonic()))


async def run_rate(
    intake: str,
    public: str,
    key: str,
    rate: float,
    seconds: float,
    drain_s: float = 30.0,
    sent: Callable[[], None] | None = None,
) -> Tally:
    """File at ``rate`` for ``seconds`` while watching; then wait up to ``drain_s`` for the rest to be public.
    ``sent`` is called when the last complaint has been sent (before the answers are all in)."""
    tally = Tally(oldest_wall=time.time() - 1)
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        watcher = asyncio.create_task(watch(session, public, tally, stop))
        sampler = asyncio.create_task(_sample(tally, stop))
        await generate(session, f"{intake}/v1/complaints", key, rate, seconds, tally, sent)
        deadline = time.monotonic() + drain_s
        while tally.pending and time.monotonic() < deadline and not watcher.done():  # noqa: ASYNC110 - polls a dict
            await asyncio.sleep(0.05)
        stop.set()
        await watcher
        await sampler
    return tally


async def _sample(tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        visible = len(tally.accepted) - len(tally.pending)
        tally.samples.append((time.monotonic(), tally.scheduled, visible))
        await asyncio.sleep(0.5)


async def bare_rate(url: str, rate: float, seconds: float) -> Tally:
    """The same generator against a bare endpoint (bench/bare_app.py): the floor of the HTTP part."""
    tally = Tally()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024)) as session:
        await generate(session, url, "bare", rate, seconds, tally)
    return tally
