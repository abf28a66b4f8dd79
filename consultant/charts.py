"""Server-side SVG charts (bars and lines) with escaped labels, axes and a hover title per value."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

COLOURS = ("#1f6fb2", "#d9731a", "#2e9a57", "#8e5ba8", "#b23a48", "#5f6b73")
# Characters XML 1.0 does not allow at all: hostile text must not make the document unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MARGIN = dict(left=52, right=14, top=46, bottom=40)


def esc(text) -> str:
    """Text safe inside an element or a double-quoted attribute."""
    text = _NOT_XML.sub("", str(text))
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, want: int = 5) -> list[float]:
    """Round tick values from low to high (1, 2 or 5 times a power of ten apart), covering both."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, want - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if step < 1 and float(high).is_integer() and float(low).is_integer():
        step = 1  # counts: no half-messages on the axis
    first = math.floor(low / step) * step
    ticks, tick = [], first
    while tick < high + step * 1e-9:
        ticks.append(round(tick, 10))
        tick += step
    if ticks[-1] < high:
        ticks.append(round(tick, 10))
    return ticks


def _check(labels: Sequence[str], series: Mapping[str, Sequence[float]]) -> None:
    if not series:
        raise ValueError("a chart needs at least one series")
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")


class _Frame:
    """The plot area, the y scale and everything drawn around it (title, legend, axes, ticks)."""

    def __init__(self, labels, series, title, width, height, unit):
        self.labels, self.series, self.width, self.height = list(labels), dict(series), width, height
        values = [float(v) for vs in self.series.values() for v in vs] or [0.0]
        self.ticks = nice_ticks(min(0.0, min(values)), max(0.0, max(values)))
        self.x0, self.x1 = MARGIN["left"], width - MARGIN["right"]
        self.y0, self.y1 = height - MARGIN["bottom"], MARGIN["top"]
        self.title, self.unit = title, unit

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return round(self.y0 - (float(value) - low) / (high - low) * (self.y0 - self.y1), 2)

    def slot(self) -> float:
        return (self.x1 - self.x0) / max(1, len(self.labels))

    def describe(self) -> str:
        parts = []
        for name, values in self.series.items():
            total = sum(float(v) for v in values)
            peak = max(range(len(values)), key=lambda i: float(values[i])) if values else None
            at = f", most at {self.labels[peak]} ({fmt(values[peak])})" if peak is not None and total else ""
            parts.append(f"{name}: total {fmt(total)}{at}")
        return "; ".join(parts)

    def open(self) -> list[str]:
        w, h = self.width, self.height
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
               f'role="img" aria-label="{esc(self.title)}" font-family="sans-serif" font-size="11">',
               f"<title>{esc(self.title)}</title>", f"<desc>{esc(self.describe())}</desc>",
               f'<text class="chart-title" x="{self.x0}" y="16" font-size="13" font-weight="bold">'
               f"{esc(self.title)}</text>"]
        x = self.x0
        for i, name in enumerate(self.series):
            out.append(f'<g class="legend"><rect x="{x}" y="26" width="10" height="10" '
                       f'fill="{COLOURS[i % len(COLOURS)]}"/><text x="{x + 14}" y="35">{esc(name)}</text></g>')
            x += 22 + 7 * len(str(name))
        out.append('<g class="y-axis">')
        for tick in self.ticks:
            y = self.y(tick)
            out.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{y}" y2="{y}" stroke="#dde1e4"/>'
                       f'<text x="{self.x0 - 6}" y="{y + 4}" text-anchor="end">{fmt(tick)}{esc(self.unit)}</text>')
        out.append("</g>")
        step = max(1, math.ceil(len(self.labels) * 42 / max(1, self.x1 - self.x0)))
        out.append('<g class="x-axis">'
                   f'<line x1="{self.x0}" x2="{self.x1}" y1="{self.y(0)}" y2="{self.y(0)}" stroke="#6b7378"/>')
        for i in range(0, len(self.labels), step):
            x = round(self.x0 + (i + 0.5) * self.slot(), 2)
            out.append(f'<text x="{x}" y="{self.y0 + 16}" text-anchor="middle">{esc(self.labels[i])}</text>')
        out.append("</g>")
        return out


def bar_chart(labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, *,
              width: int = 720, height: int = 280, unit: str = "") -> str:
    """Grouped bars: one group per label, one bar per series, each with a <title> for hover.

    Every text (title, labels, series names, unit) is escaped. Raises ValueError when a series
    does not have one value per label.
    """
    _check(labels, series)
    frame = _Frame(labels, series, title, width, height, unit)
    out = frame.open()
    slot = frame.slot()
    bar = slot * 0.8 / len(frame.series)
    for s, (name, values) in enumerate(frame.series.items()):
        colour = COLOURS[s % len(COLOURS)]
        out.append(f'<g class="series" data-series="{esc(name)}">')
        for i, value in enumerate(values):
            top, base = frame.y(max(float(value), 0.0)), frame.y(min(float(value), 0.0))
            x = round(frame.x0 + i * slot + slot * 0.1 + s * bar, 2)
            out.append(f'<rect class="bar" x="{x}" y="{top}" width="{round(max(bar - 1, 1), 2)}" '
                       f'height="{round(base - top, 2)}" fill="{colour}" data-label="{esc(labels[i])}" '
                       f'data-value="{fmt(value)}"><title>{esc(name)}, {esc(labels[i])}: '
                       f"{fmt(value)}{esc(unit)}</title></rect>")
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def line_chart(labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, *,
               width: int = 720, height: int = 280, unit: str = "") -> str:
    """One line per series with a point (and a <title> for hover) at every label."""
    _check(labels, series)
    frame = _Frame(labels, series, title, width, height, unit)
    out = frame.open()
    slot = frame.slot()
    for s, (name, values) in enumerate(frame.series.items()):
        colour = COLOURS[s % len(COLOURS)]
        points = [(round(frame.x0 + (i + 0.5) * slot, 2), frame.y(v)) for i, v in enumerate(values)]
        out.append(f'<g class="series" data-series="{esc(name)}">')
        if points:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                       f'points="{" ".join(f"{x},{y}" for x, y in points)}"/>')
        for (x, y), label, value in zip(points, labels, values):
            out.append(f'<circle class="point" cx="{x}" cy="{y}" r="3" fill="{colour}" data-label="{esc(label)}" '
                       f'data-value="{fmt(value)}"><title>{esc(name)}, {esc(label)}: {fmt(value)}{esc(unit)}'
                       "</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
