"""The server-drawn SVG charts: well-formed, accessible, escaped, and to scale."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from services.publicity.charts import Bar, Series, _nice_ceiling, bar_chart, column_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def test_nice_ceiling_ends_axes_on_round_numbers() -> None:
    assert [_nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 240, 501, 2001)] == [1, 1, 5, 10, 10, 20, 500, 1000, 5000]


def test_a_bar_chart_is_an_image_with_a_title_and_the_figures_described() -> None:
    svg = parse(bar_chart("c1", "按问题类别", [Bar("窗口服务", 30), Bar("廉洁", 15)]))
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "c1-title c1-desc"
    assert svg.find(f"{SVG}title").text == "按问题类别"  # type: ignore[union-attr]
    assert svg.find(f"{SVG}desc").text == "窗口服务: 30; 廉洁: 15"  # type: ignore[union-attr]
    widths = [float(r.get("width", 0)) for r in svg.iter(f"{SVG}rect")]
    assert widths[0] == 2 * widths[1] > 0  # to scale
    assert "style=" not in str(bar_chart("c1", "t", [Bar("a", 1)]))  # the pages' CSP forbids inline styles


def test_labels_are_escaped() -> None:
    markup = str(bar_chart("c2", "<script>", [Bar('<img src=x onerror="1">', 3)]))
    assert "<script>" not in markup and "<img" not in markup
    assert "&lt;img" in markup
    parse(markup)


def test_an_empty_chart_still_draws() -> None:
    svg = parse(bar_chart("c3", "空", []))
    assert svg.find(f"{SVG}desc").text == "—"  # type: ignore[union-attr]
    parse(column_chart("c4", "空", [], []))


def test_a_column_chart_groups_series_per_label_with_a_legend() -> None:
    markup = column_chart(
        "trend",
        "月度趋势",
        ["2025-01", "2025-02", "2025-03"],
        [Series("受理", (10, 20, 40)), Series("已办结", (5, 20, 0))],
        short_labels=["01", "02", "03"],
    )
    svg = parse(markup)
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert {"受理", "已办结", "01", "02", "03"} <= set(texts)
    assert "2025-01: 受理 10, 已办结 5" in svg.find(f"{SVG}desc").text  # type: ignore[operator, union-attr]
    heights = [float(r.get("height", 0)) for r in svg.iter(f"{SVG}rect") if float(r.get("height", 0)) != 12]
    assert max(heights) == heights[4]  # the tallest column is March's filed
    assert float(svg.get("viewBox").split()[2]) >= 480  # type: ignore[union-attr]
