"""How mlmagic draws for people, in one place: HTML tables and links, and line charts.

Charts: :func:`chart` makes the one choice between a PNG drawn by matplotlib (what a saved
notebook keeps best, when matplotlib is installed) and an inline SVG (no library, cheap to
redraw, so what a live view uses); :func:`svg_chart` draws the SVG itself, of at most
``MAX_CHART_POINTS`` points a line, whatever the history's length. :func:`shortened` keeps a
long value from swelling an output (notebook front ends, Databricks' above all, cut or refuse
big cell outputs).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Collection, Iterable, Mapping, Sequence

CELL = "text-align:left;padding-right:1em"
MARKED = "background:#fff3b0;font-weight:bold"


def shortened(text: str, limit: int) -> str:
    """``text``, or its start and how long it was when it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    tail = f"… ({len(text)} characters)"
    return text[:max(limit - len(tail), 0)] + tail


def html_value(value: str) -> str:
    """``value`` escaped for HTML; a web address becomes a link that opens a new tab."""
    escaped = html.escape(value)
    if value.startswith(("http://", "https://")):
        return f"<a href='{escaped}' target='_blank'>{escaped}</a>"
    return escaped


def link(label: str, url: str | None) -> str:
    """``label`` as a link to ``url`` (plain text without one)."""
    if not url:
        return html.escape(label)
    return f"<a href='{html.escape(url)}' target='_blank'>{html.escape(label)}</a>"


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
               css_class: str = "mlmagic-table", row_headers: bool = False,
               marked: Collection[int] = ()) -> str:
    """An HTML table; cells that are web addresses become links. ``row_headers``: each row's
    first cell labels it; ``marked``: the indexes of rows to highlight."""
    head = "".join(f"<th style='{CELL}'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        (f"<tr style='{MARKED}'>" if index in marked else "<tr>")
        + "".join(_cell(cell, row_headers and column == 0) for column, cell in enumerate(row))
        + "</tr>"
        for index, row in enumerate(rows)
    )
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    return f"<table class='{css_class}'>{thead}<tbody>{body}</tbody></table>"


def _cell(value: object, header: bool) -> str:
    tag = "th" if header else "td"
    return f"<{tag} style='{CELL}'>{html_value('' if value is None else str(value))}</{tag}>"


Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def chart(title: str, series: Series, *, live: bool = False) -> str:
    """A line chart of ``series`` (label: (steps, values)) as HTML: a matplotlib PNG when
    matplotlib is installed and the chart is not ``live``, otherwise an SVG."""
    png = None if live else _png_chart(title, series)
    if png is None:
        return svg_chart(title, series)
    encoded = base64.b64encode(png).decode()
    return f"<img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'/>"


def _png_chart(title: str, series: Series) -> bytes | None:
    drawn = {label: points for label, points in series.items() if len(points[0])}
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    if not drawn:
        return None
    figure = Figure(figsize=(6, 3.2))
    axes = figure.subplots()
    for label, (steps, values) in drawn.items():
        axes.plot(steps, values, marker=".", label=label)
    axes.set_xlabel("step")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 60, 150, 24, 30
MAX_CHART_POINTS = 400  # a line's points in an SVG chart: more than its width in pixels
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def svg_chart(title: str, series: Series) -> str:
    """An SVG chart with one line per entry of ``series`` (label: (steps, values)), its
    axes' ranges and a legend; a note instead when there is nothing to draw."""
    drawn = {label: _thinned(*points) for label, points in series.items() if len(points[0])}
    if not drawn:
        return f"<div class='mlmagic-chart-empty'>{html.escape(title)}: no points yet</div>"
    steps = [s for xs, _ in drawn.values() for s in xs]
    values = [v for _, ys in drawn.values() for v in ys]
    scale = _Scale(min(steps), max(steps), min(values), max(values))
    lines = "".join(
        _line(label, xs, ys, COLORS[i % len(COLORS)], scale, i)
        for i, (label, (xs, ys)) in enumerate(drawn.items())
    )
    return (
        f"<svg class='mlmagic-chart' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
        f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' font-family='sans-serif' "
        f"font-size='11'><title>{html.escape(title)}</title>"
        f"<text x='{LEFT}' y='14' font-weight='bold'>{html.escape(title)}</text>"
        f"{_axes(scale)}{lines}</svg>"
    )


def _thinned(steps: Sequence[float], values: Sequence[float]
             ) -> tuple[Sequence[float], Sequence[float]]:
    """At most MAX_CHART_POINTS of a line's points: in each of equal runs of points, the
    lowest and the highest (so peaks stay), and the first and last points."""
    if len(steps) <= MAX_CHART_POINTS:
        return steps, values
    buckets = (MAX_CHART_POINTS - 2) // 2
    size = -(-len(steps) // buckets)
    kept = {0, len(steps) - 1}
    for start in range(0, len(steps), size):
        chunk = range(start, min(start + size, len(steps)))
        kept |= {min(chunk, key=values.__getitem__), max(chunk, key=values.__getitem__)}
    order = sorted(kept)
    return [steps[i] for i in order], [values[i] for i in order]


class _Scale:
    def __init__(self, x0: float, x1: float, y0: float, y1: float) -> None:
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        self.y0, self.y1 = y0, y1 if y1 > y0 else y0 + 1

    def x(self, step: float) -> float:
        return LEFT + (step - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (value - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)


def _axes(scale: _Scale) -> str:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    return (
        f"<path d='M{LEFT},{TOP} V{bottom} H{right}' fill='none' stroke='#888'/>"
        f"<text x='{LEFT - 4}' y='{TOP + 4}' text-anchor='end'>{scale.y1:.4g}</text>"
        f"<text x='{LEFT - 4}' y='{bottom}' text-anchor='end'>{scale.y0:.4g}</text>"
        f"<text x='{LEFT}' y='{bottom + 14}'>{scale.x0:g}</text>"
        f"<text x='{right}' y='{bottom + 14}' text-anchor='end'>{scale.x1:g}</text>"
        f"<text x='{(LEFT + right) / 2}' y='{bottom + 14}' text-anchor='middle'>step</text>"
    )


def _line(label: str, xs, ys, color: str, scale: _Scale, index: int) -> str:
    points = " ".join(f"{scale.x(x):.1f},{scale.y(y):.1f}" for x, y in zip(xs, ys, strict=True))
    legend_y = TOP + 14 * index
    last_x, last_y = scale.x(xs[-1]), scale.y(ys[-1])  # a one-point run shows as a dot
    return (
        f"<polyline data-label='{html.escape(label)}' points='{points}' fill='none' "
        f"stroke='{color}' stroke-width='1.5'/>"
        f"<circle cx='{last_x:.1f}' cy='{last_y:.1f}' r='2.5' fill='{color}'/>"
        f"<rect x='{WIDTH - RIGHT + 10}' y='{legend_y - 8}' width='10' height='10' "
        f"fill='{color}'/><text x='{WIDTH - RIGHT + 24}' y='{legend_y + 1}'>"
        f"{html.escape(label[:22])}</text>"
    )
