"""Charts as inline SVG, drawn on the server: they need no JavaScript and no file of their own.

Pure functions of the figures. Every label is escaped here, so a chart may be placed in a page as markup.
Each chart is an image with a title and a description for screen readers (``role="img"``); the page puts
the same figures in a table beside it. Colours are SVG presentation attributes, not inline styles, so the
pages' Content-Security-Policy (no inline styles) holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

INK = "#1a1a1a"
GRID = "#767676"
PALETTE = ("#0b4f9c", "#a4161a", "#2d6a1f", "#6b3fa0")  # each at least 3:1 against white (WCAG 1.4.11)
MIN_WIDTH = 480
FONT = 'font-family="system-ui, Noto Sans CJK SC, sans-serif"'


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[int, ...]


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above ``value`` (at least 1), for an axis that ends on a round number."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return max(1, step * factor)
        step *= 10


def _open(chart_id: str, title: str, description: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" {FONT} font-size="14">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar], *, width: int = 480) -> Markup:
    """Horizontal bars, largest first as given, each label on its own line above its bar (reads at phone width)."""
    row, top = 36, 6
    height = top + row * max(1, len(bars)) + 8
    scale_to = _nice_ceiling(max((b.value for b in bars), default=0))
    track = width - 60
    description = "; ".join(f"{b.label}: {b.value}" for b in bars) or "—"
    parts = _open(chart_id, title, description, width, height)
    for i, b in enumerate(bars):
        y = top + i * row
        length = round(track * b.value / scale_to, 1)
        parts.append(f'<text x="0" y="{y + 14}" fill="{INK}">{escape(b.label)}</text>')
        parts.append(f'<rect x="0" y="{y + 19}" width="{length}" height="12" fill="{PALETTE[0]}"/>')
        parts.append(f'<text x="{length + 6}" y="{y + 30}" fill="{INK}" font-size="13">{b.value}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    short_labels: Sequence[str] | None = None,
    height: int = 260,
) -> Markup:
    """Grouped columns per label (e.g. per month), one colour per series, with a legend and a y axis.

    ``short_labels`` are drawn under the columns (``labels`` go into the description).
    """
    shown = short_labels if short_labels is not None else labels
    left, bottom, top = 44, 40, 34
    slots = max(1, len(labels))
    group = max(12 * len(series) + 12, min(80, (MIN_WIDTH - left - 8) // slots))
    width = max(MIN_WIDTH, left + group * slots + 8)
    plot = height - bottom - top
    scale_to = _nice_ceiling(max((v for s in series for v in s.values), default=0))
    description = "; ".join(
        f"{label}: " + ", ".join(f"{s.name} {s.values[i]}" for s in series) for i, label in enumerate(labels)
    )
    parts = _open(chart_id, title, description or "—", width, height)
    for k, s in enumerate(series):  # legend
        x = left + k * 150
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 18}" y="17" fill="{INK}">{escape(s.name)}</text>')
    for tick in (0, scale_to // 2, scale_to):
        y = top + plot - round(plot * tick / scale_to, 1)
        parts.append(f'<line x1="{left - 4}" y1="{y}" x2="{width - 4}" y2="{y}" stroke="{GRID}" stroke-width="0.5"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 5}" text-anchor="end" fill="{INK}">{tick}</text>')
    bar_w = (group - 12) / max(1, len(series))
    for i in range(len(labels)):
        x0 = left + i * group + 6
        for k, s in enumerate(series):
            h = round(plot * s.values[i] / scale_to, 1)
            parts.append(
                f'<rect x="{round(x0 + k * bar_w, 1)}" y="{round(top + plot - h, 1)}" width="{round(bar_w - 1, 1)}" '
                f'height="{h}" fill="{PALETTE[k % len(PALETTE)]}"/>'
            )
        parts.append(
            f'<text x="{round(x0 + (group - 12) / 2, 1)}" y="{height - bottom + 18}" text-anchor="middle" '
            f'fill="{INK}" font-size="12">{escape(shown[i])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
