"""Inline SVG charts for ``report.html``, built in Python so the page needs no chart library.

Labels often come from endpoints (group names, ECS host names), so every piece of text goes
through ``markupsafe.escape`` before it joins the markup; numbers are formatted by us. The
result is ``Markup`` only because it was built that way, and the template prints it as is.
Colours are SVG presentation attributes, not ``style=`` attributes, which the page's
Content-Security-Policy would block.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

logger = logging.getLogger(__name__)

COLOURS = {"fail": "#c62828", "warn": "#b7791f", "ok": "#2e7d32", "info": "#1f5fa8"}
LABEL_CHARS = 34  # longer labels are cut; the full text stays in the bar's tooltip
_BAR_H = 18
_GAP = 6
_LABEL_W = 230
_PLOT_W = 360
_COUNT_W = 60


@dataclass(frozen=True)
class Bar:
    """One labelled bar, made of segments ``(value, colour key)`` stacked left to right."""

    label: str
    segments: tuple[tuple[float, str], ...]

    @property
    def total(self) -> float:
        return sum(v for v, _ in self.segments)


def _t(value: object) -> str:
    return str(escape(str(value)))


def short(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` cut to ``limit`` characters with an ellipsis."""
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'aria-label="{_t(title)}"><title>{_t(title)}</title>')
    return Markup(head + "".join(body) + "</svg>")


def bar_chart(bars: Sequence[Bar], *, title: str, unit: str = "hosts") -> Markup:
    """Horizontal stacked bars, one row per ``Bar``, longest scale set by the largest total."""
    if not bars:
        return _svg(_LABEL_W + _PLOT_W, 30, title,
                    ['<text x="4" y="20" class="muted">nothing to show</text>'])
    biggest = max(b.total for b in bars) or 1
    height = len(bars) * (_BAR_H + _GAP) + _GAP
    body: list[str] = []
    for row, bar in enumerate(bars):
        y = _GAP + row * (_BAR_H + _GAP)
        tip = f"{bar.label}: " + ", ".join(
            f"{_num(v)} {key}" for v, key in bar.segments if v) + f" ({_num(bar.total)} {unit})"
        body.append(f"<g><title>{_t(tip)}</title>")
        body.append(f'<text x="{_LABEL_W - 6}" y="{y + 13}" text-anchor="end" '
                    f'class="lbl">{_t(short(bar.label))}</text>')
        x = float(_LABEL_W)
        for value, key in bar.segments:
            if value <= 0:
                continue
            w = max(1.0, value / biggest * _PLOT_W)
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{_BAR_H}" '
                        f'fill="{COLOURS.get(key, COLOURS["info"])}"/>')
            x += w
        body.append(f'<text x="{x + 4:.1f}" y="{y + 13}" class="val">'
                    f"{_t(_num(bar.total))}</text></g>")
    return _svg(_LABEL_W + _PLOT_W + _COUNT_W, height, title, body)


def _nice_step(span: float, bins: int) -> float:
    raw = span / bins if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def histogram_bins(values: Sequence[float], bins: int = 12) -> list[tuple[float, float, int]]:
    """``(low, high, count)`` for equal, round-numbered bins from 0 to past the largest value."""
    clean = [v for v in values if v is not None and math.isfinite(v) and v >= 0]
    if not clean:
        return []
    step = _nice_step(max(clean), bins)
    count = max(1, min(bins * 2, math.floor(max(clean) / step) + 1))
    counts = [0] * count
    for v in clean:
        counts[min(count - 1, int(v // step))] += 1
    return [(i * step, (i + 1) * step, n) for i, n in enumerate(counts)]


def histogram(values: Sequence[float], *, title: str, unit: str) -> Markup:
    """Vertical bars of how many values fall in each bin, labelled with the bin's low edge."""
    bins = histogram_bins(values)
    if not bins:
        return _svg(320, 30, title, ['<text x="4" y="20" class="muted">no values</text>'])
    plot_h, top, left, bottom = 140, 14, 36, 34
    col = max(14, min(40, 560 // len(bins)))
    width = left + col * len(bins) + 10
    biggest = max(n for *_, n in bins) or 1
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}" '
            f'stroke="#888"/>',
            f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="val">'
            f"{biggest}</text>"]
    for i, (low, high, n) in enumerate(bins):
        x = left + i * col
        h = n / biggest * plot_h
        body.append(f"<g><title>{_t(f'{_num(low)} to {_num(high)} {unit}: {n}')}</title>")
        body.append(f'<rect x="{x + 1}" y="{top + plot_h - h:.1f}" width="{col - 2}" '
                    f'height="{h:.1f}" fill="{COLOURS["info"]}"/></g>')
        if i % max(1, len(bins) // 6) == 0:
            body.append(f'<text x="{x}" y="{top + plot_h + 14}" class="val">'
                        f"{_t(_num(low))}</text>")
    body.append(f'<text x="{left}" y="{top + plot_h + 30}" class="muted">{_t(unit)}</text>')
    return _svg(width, top + plot_h + bottom, title, body)


@dataclass(frozen=True)
class TrendPoint:
    """One earlier (or this) run's totals, oldest first in a trend."""

    label: str
    ok: int
    warn: int
    fail: int


def trend_chart(points: Sequence[TrendPoint], *, title: str = "Hosts by status per run") -> Markup:
    """Stacked columns (fail at the bottom, then warn, then ok) for each run, oldest left."""
    if not points:
        return _svg(320, 30, title, ['<text x="4" y="20" class="muted">no runs</text>'])
    plot_h, top, left = 150, 16, 40
    col = max(18, min(60, 640 // len(points)))
    width = left + col * len(points) + 10
    biggest = max(p.ok + p.warn + p.fail for p in points) or 1
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}" '
            f'stroke="#888"/>',
            f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="val">'
            f"{biggest}</text>"]
    longest = max(len(short(p.label, 12)) for p in points)
    every = max(1, math.ceil(longest * 7 / col))  # ~7 px a character: labels must not overlap
    for i, p in enumerate(points):
        x = left + i * col
        y = float(top + plot_h)
        tip = f"{p.label}: {p.fail} fail, {p.warn} warn, {p.ok} ok"
        body.append(f"<g><title>{_t(tip)}</title>")
        for value, key in ((p.fail, "fail"), (p.warn, "warn"), (p.ok, "ok")):
            h = value / biggest * plot_h
            if h <= 0:
                continue
            y -= h
            body.append(f'<rect x="{x + 2}" y="{y:.1f}" width="{col - 4}" height="{h:.1f}" '
                        f'fill="{COLOURS[key]}"/>')
        body.append("</g>")
        if i % every == 0:
            body.append(f'<text x="{x + 2}" y="{top + plot_h + 14}" class="val">'
                        f"{_t(short(p.label, 12))}</text>")
    return _svg(width + 40, top + plot_h + 24, title, body)  # room for the last label
