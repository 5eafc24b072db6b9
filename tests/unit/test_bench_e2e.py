"""The end-to-end benchmark's arithmetic: percentiles, queue growth, profiles and the figures `rectify bench` reads."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.e2e import Figure, Report, growth_per_s, hottest, save
from bench.load import Tally, percentiles
from services.cli.ops import bench_figures


def test_percentiles_are_measured_values_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100 ms
    assert percentiles(values) == {"p50": 50.0, "p99": 99.0, "max": 100.0}
    assert percentiles([7.0]) == {"p50": 7.0, "p99": 7.0, "max": 7.0}
    assert all(math.isnan(v) for v in percentiles([]).values())


def test_visibility_is_measured_from_the_202_and_never_negative() -> None:
    tally = Tally(accepted={"a": 10.0, "b": 10.0, "c": 11.0}, seen={"a": 10.25, "b": 9.9})
    assert sorted(tally.visible_ms()) == [0.0, 250.0]  # b was listed before its 202 came back; c never was


def test_a_steady_queue_does_not_grow_and_a_falling_behind_one_does() -> None:
    steady = [(t * 0.5, int(100 * t * 0.5), int(100 * t * 0.5) - 40) for t in range(40)]
    assert abs(growth_per_s(steady)) < 1e-6
    # 300/s sent, 200/s made public: the queue grows by 100 a second
    behind = [(t * 0.5, int(300 * t * 0.5), int(200 * t * 0.5)) for t in range(40)]
    assert abs(growth_per_s(behind) - 100) < 1


def test_hottest_reads_py_spy_collapsed_stacks(tmp_path: Path) -> None:
    raw = tmp_path / "intake-api.txt"
    raw.write_text(
        "run (asyncio/runners.py:118);write (services/intake/service.py:200);_do_execute (asyncpg/connection.py:1) 6\n"
        "run (asyncio/runners.py:118);write (services/intake/service.py:210);encode (orjson.py:3) 2\n"
        "run (asyncio/runners.py:118);__call__ (services/common/http.py:40) 2\n"
    )
    profile = hottest(raw)
    assert profile["self"][0] == ("_do_execute (asyncpg/connection.py)", 0.6)
    assert profile["ours"][0] == ("write (services/intake/service.py)", 0.8)  # lines of one function add up
    assert hottest(tmp_path / "missing.txt") == {"self": [], "ours": []}


def test_rectify_bench_reads_the_figures_of_this_run_only(tmp_path: Path) -> None:
    report = Report(figures=[Figure("p99", 800.0, "ms", "< 1000 ms", True, 20.0, "bare")])
    path = tmp_path / "e2e.json"
    save(report, path)
    figures = bench_figures(path, since=0)
    assert figures[0]["name"] == "p99" and figures[0]["ratio"] == 40.0
    assert bench_figures(path, since=path.stat().st_mtime + 10) == []  # a previous run's file is not shown
    assert json.loads(path.read_text())["figures"][0]["ok"] is True


def test_public_page_figures_judge_the_paced_p99_and_its_growth() -> None:
    from bench.publicity import Load, figures

    def size(n: int, case_p99: float, case_rps: float = 510.0) -> dict[str, object]:
        return {
            "size": n,
            "leaderboard": Load(3000.0, 30.0, 0, 30000),
            "leaderboard_paced": Load(520.0, 5.0, 0, 5200),
            "case": Load(900.0, 90.0, 0, 9000),
            "case_paced": Load(case_rps, case_p99, 0, 5100),
        }

    found = {f.name: f for f in figures([size(10_000, 10.0), size(1_000_000, 16.0)])}
    assert found["case page p99 at 510/s, 10,000 cases"].ok is True
    assert found["case page p99, 1,000,000 vs 10,000 cases"].value == 1.6
    assert found["case page p99, 1,000,000 vs 10,000 cases"].ok is False  # grew more than 1.5x
    assert found["leaderboard p99, 1,000,000 vs 10,000 cases"].ok is True
    slow = {f.name: f for f in figures([size(10_000, 10.0, case_rps=300.0)])}
    assert slow["case page p99 at 300/s, 10,000 cases"].ok is False  # fast, but not at the rate the goal names


def test_scoring_figures_judge_the_ratio_and_only_a_million_event_rebuild() -> None:
    from bench.scoring import figures

    small = {f.name: f for f in figures(200_000, 40_000.0, 60_000.0, 9.0)}
    assert small["scoring projector"].ok is False and round(small["scoring projector"].ratio or 0, 2) == 0.67
    assert small["rebuild of 200,000 events"].ok is None  # a small log says nothing about the 1M goal
    big = {f.name: f for f in figures(1_000_000, 50_000.0, 60_000.0, 44.0)}
    assert big["scoring projector"].ok is True and big["rebuild of 1,000,000 events"].ok is True
