"""The public site in a real browser: Debian's Chromium, headless, driven by Playwright, against every process.

The whole system runs as in test_slice.py. A simulated month of cases reaches it the way rectification and
scoring would send it: its public facts on rectify.public.cases.v1 and its two rankings on rectify.rankings.v1.
Then the browser loads every page, follows the links, switches the language, uses the search form without
JavaScript, files a complaint through intake's API and watches it appear, and runs axe-core (npm, pinned in
tests/e2e/axe) inside each page: no serious or critical violation. Screenshots (desktop and phone width) and
the axe reports are kept in $RECTIFY_TEST_ARTIFACTS/public-pages.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from bench.publicity import Month, simulate_month
from services.cli.local import LocalSystem
from services.common.contracts import Role, encode_event
from services.common.kafka import make_producer
from services.common.topics import PUBLIC_CASES, RANKINGS
from services.intake.admin import add_agency
from tests.e2e.conftest import running_system

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = ("/", "/rankings", "/rankings/method", "/exposure", "/stalled", "/statistics", "/data", "/ledger")
T = TypeVar("T")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

if not Path(CHROMIUM).exists():  # `make install` installs it; a bare checkout skips rather than fails
    pytest.skip("Debian's chromium is not installed (make install)", allow_module_level=True)


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from a test: Playwright's sync API keeps an event loop in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("RECTIFY_TEST_ARTIFACTS")
    folder = (Path(root) if root else tmp_path_factory.mktemp("artifacts")) / "public-pages"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def system(servers: dict[str, str], artifacts: Path) -> Iterator[LocalSystem]:
    with running_system(servers, artifacts / "logs") as local:
        yield local


async def publish(bootstrap: str, month: Month) -> None:
    """What rectification's and scoring's relays would send: keyed by case id (and by ranking stream)."""
    producer = make_producer(bootstrap, "e2e-public-pages")
    await producer.start()
    try:
        sent = [await producer.send(PUBLIC_CASES.name, encode_event(e), key=e.stream_id.encode()) for e in month.public]
        sent += [await producer.send(RANKINGS.name, encode_event(e), key=e.stream_id.encode()) for e in month.rankings]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def month(system: LocalSystem) -> Month:
    simulated = asyncio.run(simulate_month(seed=2606, cases=150))
    asyncio.run(publish(system.base_env["KAFKA_BOOTSTRAP_SERVERS"], simulated))
    public = system.url("publicity-web")
    wait_for(
        lambda: httpx.get(f"{public}/api/v1/cases", params={"size": 1}).json()["total"] >= len(simulated.case_ids),
        what="the month's cases on the public API",
    )
    wait_for(lambda: len(httpx.get(f"{public}/api/v1/rankings").json()["rankings"]) == 2, what="the rankings")
    last = max(simulated.public, key=lambda e: (e.stream_id, e.stream_version))
    wait_for(
        lambda: httpx.get(f"{public}/api/v1/cases/{last.stream_id}").json()["version"] >= last.stream_version,
        what="the last facts applied",
    )
    return simulated


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def slug(path: str) -> str:
    return path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-").replace("&", "-") or "cases"


def test_every_page_loads_and_every_link_leads_somewhere(
    system: LocalSystem, month: Month, browser: Any, artifacts: Path
) -> None:
    base = system.url("publicity-web")
    overdue = httpx.get(f"{base}/api/v1/stalled").json()["cases"][0]["case_id"]
    paths = [*PAGES, f"/cases/{month.case_ids[0]}", f"/cases/{overdue}"]
    links: set[str] = set()
    for viewport, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context = browser.new_context(viewport=viewport, locale="zh-CN")
        page = context.new_page()
        for path in paths:
            response = page.goto(base + path)
            assert response is not None and response.status == 200, path
            assert page.locator("h1").count() == 1, path
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} is wider than a {viewport['width']} px screen by {overflow} px"
            shot(page, artifacts, f"{label}-{slug(path)}")
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
                url = urljoin(base + path, href)
                if urlparse(url).netloc == urlparse(base).netloc:
                    links.add(url.split("#")[0])
        context.close()
    # follow every link the pages offer (the API docs page needs its CDN; its HTML must still answer)
    with httpx.Client(timeout=30) as client:
        broken = {url: r.status_code for url in sorted(links) if (r := client.get(url)).status_code >= 400}
    assert not broken, broken
    assert len(links) > 40


def test_following_links_in_the_browser(system: LocalSystem, month: Month, browser: Any, artifacts: Path) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(system.url("publicity-web") + "/")
    for name in ("单位排名", "曝光台", "超期案件", "统计分析", "开放数据", "案件查询"):
        page.get_by_role("navigation", name="栏目").get_by_role("link", name=name).click()
        assert page.locator('nav.sections a[aria-current="page"]').inner_text() == name
    page.locator("table.cases tbody a").first.click()
    assert page.url.split("/")[-2] == "cases" and page.locator("h2", has_text="办理过程").count() == 1
    page.get_by_role("link", name="返回案件查询").click()
    page.goto(system.url("publicity-web") + "/rankings")
    page.get_by_role("link", name="排名如何计算、如何复核").first.click()
    assert "rectify ranking recompute" in page.content()
    shot(page, artifacts, "desktop-method-followed")
    page.close()


def test_switching_the_language(system: LocalSystem, month: Month, browser: Any, artifacts: Path) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(system.url("publicity-web") + "/rankings")
    assert page.locator("html").get_attribute("lang") == "zh-CN" and page.locator("h1").inner_text() == "单位排名"
    page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Unit rankings" and "Top ten" in page.content()
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Statistics").click()
    assert page.locator("h1").inner_text() == "Statistics" and "lang=en" in page.url
    shot(page, artifacts, "desktop-statistics-en")
    page.get_by_role("link", name="中文").click()
    assert page.locator("h1").inner_text() == "统计分析" and "lang=en" not in page.url
    page.close()


def test_the_search_form_works_without_javascript(
    system: LocalSystem, month: Month, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(system.url("publicity-web") + "/")
    page.get_by_label("问题类别").select_option("service_window")
    page.get_by_label("时间段").select_option("2025-03")
    page.get_by_role("button", name="查询").click()
    assert "category=service_window" in page.url and "period=2025-03" in page.url
    expected = httpx.get(
        system.url("publicity-web") + "/api/v1/cases", params={"category": "service_window", "period": "2025-03"}
    ).json()["total"]
    assert page.locator("p[role=status]").inner_text() == f"共 {expected} 件"
    shot(page, artifacts, "phone-search-without-javascript")
    context.close()


def test_a_complaint_filed_through_intake_appears(
    system: LocalSystem, month: Month, browser: Any, artifacts: Path
) -> None:
    key = in_thread(
        add_agency(system.base_env["DATABASE_URL"], "hotline", "12345 热线", Role.CHANNEL, channel="hotline_12345")
    )
    marker = f"PRIVATE{secrets.token_hex(5)}"
    body = {
        "category": "service_window",
        "unit_id": "yangjiaqiao",
        "description": f"便民服务中心窗口无人值守 {marker}",
        "severity": "general",
        "complainant": {"name": f"NAME{marker}", "phone": "13900001111"},
    }
    r = httpx.post(
        f"{system.url('intake-api')}/v1/complaints",
        json=body,
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(8)},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    case_id = r.json()["case_id"]
    page = browser.new_page(viewport=DESKTOP)
    search = f"{system.url('publicity-web')}/?unit=yangjiaqiao"

    page.goto(search)

    def listed() -> bool:
        page.reload()  # revalidates the cached page (If-None-Match): a changed projection answers 200
        return page.get_by_role("link", name=case_id).count() == 1

    wait_for(listed, what="the new case on the search page")
    page.get_by_role("link", name=case_id).click()
    assert page.locator("h1").inner_text() == f"案件 {case_id}"
    assert "杨家桥街道" in page.content() and "已受理" in page.content()
    assert marker not in page.content()
    shot(page, artifacts, "desktop-new-case")
    page.close()


def test_no_serious_accessibility_violations(system: LocalSystem, month: Month, browser: Any, artifacts: Path) -> None:
    assert AXE.exists(), "npm ci --prefix tests/e2e/axe (make install does it)"
    base = system.url("publicity-web")
    zh = [*PAGES, f"/cases/{month.case_ids[2]}"]
    paths = zh + [f"{path}?lang=en" for path in zh]
    # the pages' CSP allows no injected script; the audit's own script is let in by the test browser only
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = context.new_page()
    report: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        page.goto(base + path)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        report[path] = [
            {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"]
        ]
    context.close()
    (artifacts / "axe-report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    serious = {p: [v for v in vs if v["impact"] in ("serious", "critical")] for p, vs in report.items()}
    assert not any(serious.values()), json.dumps(serious, ensure_ascii=False, indent=1)
