"""What a plot shows, independent of how it is drawn: the HTML page draws it as inline SVG
(svg.py), `--png` with matplotlib (png.py), so both show the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

PALETTE = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#d55e00",
    "#cc79a7",
    "#56b4e9",
    "#7f7f7f",
    "#f0c419",
    "#000000",
    "#8c564b",
)
"""Okabe-Ito's colour-blind-safe colours, then a few more."""
DASHES = ("", "6 3", "2 3", "8 3 2 3")
"""SVG dash patterns: solid, dashed, dotted, dash-dot (one per domain when comparing runs)."""


@dataclass
class Series:
    """One line: y against x, in one colour and dash pattern."""

    label: str
    x: list[float]
    y: list[float | None]
    color: int = 0
    dash: int = 0
    points: bool = False
    """Draw a dot at each point (few points, e.g. evaluations)."""
    step: bool = False
    """Hold each value until the next x (mixture weights)."""
    faint: bool = False
    """Drawn thin and pale, under a smoothed copy of itself."""


@dataclass
class Marker:
    """An event at x: a vertical line, or a labelled dot when y is given."""

    x: float
    label: str
    y: float | None = None
    color: int = 6


@dataclass
class Reference:
    """A horizontal reference line (e.g. the parent model's final loss)."""

    y: float
    label: str
    color: int = 6


@dataclass
class Bar:
    """One stacked horizontal bar: named segments of one quantity (e.g. seconds)."""

    label: str
    segments: list[tuple[str, float]]


@dataclass
class Figure:
    """A line plot (series) or a stacked bar chart (bars), with a caption saying what it is."""

    id: str
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    limit: tuple[str, float] | None = None
    """A labelled vertical line on a bar chart (the planned budget)."""
    xunit: str = "number"
    """How x ticks read: 'number', 'tokens' (1.2M) or 'seconds' (3m20s)."""
    yunit: str = "number"
    caption: str = ""
    ymin: float | None = None
    """Force the y axis to include this value (0 for shares and rates)."""

    @property
    def kind(self) -> str:
        return "bars" if self.bars else "lines"

    def is_empty(self) -> bool:
        if self.bars:
            return not any(v > 0 for bar in self.bars for _, v in bar.segments)
        return not any(y is not None for s in self.series for y in s.y)


def format_value(value: float, unit: str) -> str:
    """A tick or table label: tokens and plain numbers with k/M/G, seconds as a duration."""
    if unit == "seconds":
        return format_seconds(value)
    if unit == "percent":
        return f"{100 * value:.0f}%"
    magnitude = abs(value)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= scale:
            return f"{value / scale:.3g}{suffix}"
    if magnitude == 0:
        return "0"
    if magnitude < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def format_seconds(seconds: float) -> str:
    """90 -> 1m30s; 4000 -> 1h06m; 12.5 -> 12.5s."""
    seconds = float(seconds)
    if abs(seconds) < 60:
        return f"{seconds:.3g}s" if seconds else "0s"
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"
