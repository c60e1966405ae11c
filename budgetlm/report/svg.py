"""Figures drawn as inline SVG by hand: no plotting library, no script, nothing fetched, so
a report opens anywhere, offline. Point tooltips are SVG <title> elements."""

from __future__ import annotations

import math
from html import escape

from budgetlm.report.figure import DASHES, PALETTE, Figure, Series, format_value

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 18, 14, 46
MAX_POINTS = 1500
"""Longer series are thinned to this many points for drawing (every k-th point, and the last)."""
SECOND_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200)


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def dash(index: int) -> str:
    return DASHES[index % len(DASHES)]


def render_svg(fig: Figure) -> str:
    """The figure as an <svg> element that scales to the width of its container."""
    return _bars(fig) if fig.kind == "bars" else _lines(fig)


def nice_ticks(lo: float, hi: float, unit: str = "number", count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: 1-2-5 steps, or whole minutes/hours for seconds."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    if unit == "seconds" and raw >= 1:
        step = next((s for s in SECOND_STEPS if s >= raw), SECOND_STEPS[-1])
        while step < raw:
            step *= 2
    else:
        power = 10 ** math.floor(math.log10(raw))
        step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, k = [], 0
    while first + k * step <= hi + 1e-9 * step:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def _lines(fig: Figure) -> str:
    xs = [x for s in fig.series for x, y in zip(s.x, s.y, strict=True) if y is not None]
    ys = [y for s in fig.series for y in s.y if y is not None]
    xs += [m.x for m in fig.markers]
    ys += [m.y for m in fig.markers if m.y is not None] + [r.y for r in fig.references]
    if fig.ymin is not None:
        ys.append(fig.ymin)
    if fig.xunit in ("tokens", "seconds"):
        xs.append(0.0)  # tokens and training time start at zero
    x0, x1 = _span(xs, pad=0.0)
    y0, y1 = _span(ys, pad=0.06)
    if fig.ymin is not None:
        y0 = max(y0, fig.ymin) if min(ys) >= fig.ymin else y0
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    out = [_open(fig, HEIGHT), _axes(fig, x0, x1, y0, y1, sx, sy, pw, ph)]
    out.append(f'<g clip-path="url(#clip-{escape(fig.id)})">')
    for ref in fig.references:
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{sy(ref.y):.1f}" y2="{sy(ref.y):.1f}" '
            f'stroke="{color(ref.color)}" stroke-width="1" stroke-dasharray="1 3">'
            f"<title>{escape(ref.label)}: {ref.y:.4g}</title></line>"
        )
    for series in fig.series:
        out.append(_path(series, sx, sy, fig))
    for number, marker in enumerate(fig.markers, 1):
        out.append(_marker(number, marker, sx, sy, ph))
    out.append("</g></svg>")
    return "".join(out)


def _path(series: Series, sx, sy, fig: Figure) -> str:
    points = list(zip(series.x, series.y, strict=True))
    if len(points) > MAX_POINTS:
        stride = math.ceil(len(points) / MAX_POINTS)
        points = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    parts, pen, last = [], "M", None
    for x, y in points:
        if y is None:
            pen = "M"
            continue
        if series.step and last is not None and pen == "L":
            parts.append(f"L{sx(x):.1f},{sy(last):.1f}")
        parts.append(f"{pen}{sx(x):.1f},{sy(y):.1f}")
        pen, last = "L", y
    stroke = color(series.color)
    style = f' stroke-dasharray="{dash(series.dash)}"' if dash(series.dash) else ""
    look = 'stroke-width="1" stroke-opacity="0.35"' if series.faint else 'stroke-width="1.8"'
    out = [
        f'<path d="{"".join(parts)}" fill="none" stroke="{stroke}" {look}'
        f'{style} stroke-linejoin="round"><title>{escape(series.label)}</title></path>'
    ]
    if series.points:
        for x, y in points:
            if y is not None:
                tip = (
                    f"{series.label}: {format_value(y, fig.yunit)} at "
                    f"{fig.xlabel.split(' ')[0]} {format_value(x, fig.xunit)}"
                )
                out.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.6" fill="{stroke}">'
                    f"<title>{escape(tip)}</title></circle>"
                )
    return "".join(out)


def _marker(number: int, marker, sx, sy, ph: float) -> str:
    x, c = sx(marker.x), color(marker.color)
    tip = f"<title>{number}: {escape(marker.label)}</title>"
    if marker.y is not None:
        y = sy(marker.y)
        return (
            f'<g><circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="none" stroke="{c}" '
            f'stroke-width="2"/>{tip}<text x="{x + 8:.1f}" y="{y - 7:.1f}" font-size="12.5" '
            f'fill="{c}" font-weight="600">{number}</text></g>'
        )
    return (
        f'<g><line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="{c}" '
        f'stroke-width="1.2" stroke-dasharray="4 3"/>{tip}<text x="{x + 3:.1f}" y="{TOP + 11}" '
        f'font-size="12.5" fill="{c}" font-weight="600">{number}</text></g>'
    )


def _bars(fig: Figure) -> str:
    names = list(dict.fromkeys(name for bar in fig.bars for name, _ in bar.segments))
    totals = [sum(v for _, v in bar.segments) for bar in fig.bars]
    top = max(totals + ([fig.limit[1]] if fig.limit else []) + [1e-9])
    left, row = 150, 30
    height = TOP + row * len(fig.bars) + BOTTOM
    pw = WIDTH - left - RIGHT
    x1 = nice_ticks(0, top, fig.xunit)[-1]
    x1 = x1 if x1 >= top else top

    def sx(x: float) -> float:
        return left + x / x1 * pw

    out = [_open(fig, height)]
    axis_y = TOP + row * len(fig.bars)
    for tick in nice_ticks(0, x1, fig.xunit):
        x = sx(tick)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{axis_y}" stroke="#e3e3e3"/>'
            f'<text x="{x:.1f}" y="{axis_y + 15}" font-size="12.5" text-anchor="middle" '
            f'fill="#444">{escape(format_value(tick, fig.xunit))}</text>'
        )
    for i, bar in enumerate(fig.bars):
        y = TOP + i * row + 5
        label = bar.label if len(bar.label) <= 22 else bar.label[:21] + "…"
        out.append(
            f'<text x="{left - 8}" y="{y + 14}" font-size="13.5" text-anchor="end" fill="#222">'
            f"<title>{escape(bar.label)}</title>{escape(label)}</text>"
        )
        at = 0.0
        for name, value in bar.segments:
            if value <= 0:
                continue
            c = color(names.index(name))
            out.append(
                f'<rect x="{sx(at):.1f}" y="{y}" width="{max(0.5, sx(at + value) - sx(at)):.1f}" '
                f'height="20" fill="{c}"><title>{escape(bar.label)} · {escape(name)}: '
                f"{escape(format_value(value, fig.xunit))}</title></rect>"
            )
            at += value
    if fig.limit:
        name, value = fig.limit
        x = sx(value)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP - 4}" y2="{axis_y}" stroke="#c00" '
            f'stroke-width="1.5" stroke-dasharray="5 3"><title>{escape(name)}: '
            f"{escape(format_value(value, fig.xunit))}</title></line>"
        )
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 8}" font-size="13.5" text-anchor="middle" '
        f'fill="#222">{escape(fig.xlabel)}</text></svg>'
    )
    return "".join(out)


def legend_html(fig: Figure) -> str:
    """The figure's legend as an HTML list (it wraps with the page, unlike text in an SVG)."""
    items = []
    if fig.kind == "bars":
        names = list(dict.fromkeys(name for bar in fig.bars for name, _ in bar.segments))
        for i, name in enumerate(names):
            items.append(
                _swatch(f'<rect x="0" y="2" width="22" height="8" fill="{color(i)}"/>', name)
            )
        if fig.limit:
            line = '<line x1="11" x2="11" y1="0" y2="12" stroke="#c00" stroke-dasharray="3 2"/>'
            items.append(_swatch(line, f"{fig.limit[0]} ({format_value(fig.limit[1], fig.xunit)})"))
    else:
        for s in fig.series:
            pattern = f' stroke-dasharray="{dash(s.dash)}"' if dash(s.dash) else ""
            line = (
                f'<line x1="0" x2="22" y1="6" y2="6" stroke="{color(s.color)}" '
                f'stroke-width="2"{pattern}/>'
            )
            items.append(_swatch(line, s.label))
        for ref in fig.references:
            line = (
                f'<line x1="0" x2="22" y1="6" y2="6" stroke="{color(ref.color)}" '
                'stroke-dasharray="1 3" stroke-width="2"/>'
            )
            items.append(_swatch(line, f"{ref.label} ({ref.y:.3f})"))
        for number, m in enumerate(fig.markers, 1):
            shape = (
                f'<circle cx="11" cy="6" r="4.5" fill="none" stroke="{color(m.color)}" '
                'stroke-width="2"/>'
                if m.y is not None
                else f'<line x1="11" x2="11" y1="0" y2="12" stroke="{color(m.color)}" '
                'stroke-dasharray="3 2" stroke-width="1.5"/>'
            )
            items.append(_swatch(shape, f"{number}: {m.label}"))
    return f'<ul class="legend">{"".join(items)}</ul>'


def _swatch(shape: str, label: str) -> str:
    return (
        f'<li><svg width="22" height="12" viewBox="0 0 22 12" aria-hidden="true">{shape}</svg>'
        f"{escape(label)}</li>"
    )


def _open(fig: Figure, height: int) -> str:
    pw, ph = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(fig.title)}" xmlns="http://www.w3.org/2000/svg" '
        f'preserveAspectRatio="xMidYMid meet"><title>{escape(fig.title)}</title>'
        f'<defs><clipPath id="clip-{escape(fig.id)}"><rect x="{LEFT - 6}" y="{TOP - 6}" '
        f'width="{pw + 12}" height="{ph + 12}"/></clipPath></defs>'
    )


def _axes(fig: Figure, x0, x1, y0, y1, sx, sy, pw: float, ph: float) -> str:
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#bbb"/>']
    for tick in nice_ticks(y0, y1, fig.yunit):
        y = sy(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ececec"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="12.5" text-anchor="end" '
            f'fill="#444">{escape(format_value(tick, fig.yunit))}</text>'
        )
    for tick in nice_ticks(x0, x1, fig.xunit):
        x = sx(tick)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#ececec"/>'
            f'<text x="{x:.1f}" y="{TOP + ph + 15}" font-size="12.5" text-anchor="middle" '
            f'fill="#444">{escape(format_value(tick, fig.xunit))}</text>'
        )
    out.append(
        f'<text x="{LEFT + pw / 2:.1f}" y="{TOP + ph + 36}" font-size="13.5" '
        f'text-anchor="middle" fill="#222">{escape(fig.xlabel)}</text>'
        f'<text transform="translate(14 {TOP + ph / 2:.1f}) rotate(-90)" font-size="13.5" '
        f'text-anchor="middle" fill="#222">{escape(fig.ylabel)}</text>'
    )
    return "".join(out)


def _span(values: list[float], pad: float) -> tuple[float, float]:
    """[lo, hi] of the values with `pad` of the range added on each side; never empty."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        margin = abs(lo) * 0.1 or 1.0
        return lo - margin, hi + margin
    margin = (hi - lo) * pad
    return lo - margin, hi + margin
