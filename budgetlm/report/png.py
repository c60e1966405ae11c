"""Figures as PNG files for papers, drawn with matplotlib from the same Figure objects the
HTML page draws as SVG (`pip install -e ".[report]"` provides matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

from budgetlm.errors import UserError
from budgetlm.report.figure import DASHES, PALETTE, Figure, format_value

DPI = 200
SIZE = (6.4, 3.6)


def write_pngs(figures: list[Figure], out_dir: str | Path) -> list[Path]:
    """One PNG per figure in out_dir (created), named by figure id; returns the paths."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise UserError(
            '--png needs matplotlib, which is not installed; pip install -e ".[report]" '
            "(or leave out --png: the HTML page needs no plotting library)"
        ) from None
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--png {out_dir} is a file; pass a directory for the PNG plots")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fig in figures:
        height = SIZE[1] if fig.kind == "lines" else 1.8 + 0.45 * len(fig.bars)
        figure, ax = plt.subplots(figsize=(SIZE[0], height), dpi=DPI, layout="constrained")
        try:
            _draw(fig, ax)
            ax.xaxis.set_major_formatter(
                FuncFormatter(lambda v, _p, u=fig.xunit: format_value(v, u))
            )
            if fig.kind == "lines":
                ax.yaxis.set_major_formatter(
                    FuncFormatter(lambda v, _p, u=fig.yunit: format_value(v, u))
                )
            ax.set_title(fig.title, fontsize=10)
            ax.set_xlabel(fig.xlabel, fontsize=9)
            ax.set_ylabel(fig.ylabel, fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(True, color="#e6e6e6", linewidth=0.6)
            ax.set_axisbelow(True)
            handles, _ = ax.get_legend_handles_labels()
            if handles and fig.kind == "bars":  # below the bars, which fill the plot
                figure.legend(fontsize=7, frameon=False, loc="outside lower center", ncol=4)
            elif handles:
                ax.legend(fontsize=7, frameon=False, loc="best")
            path = out_dir / f"{fig.id}.png"
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            figure.savefig(tmp, format="png")
            os.replace(tmp, path)
            paths.append(path)
        finally:
            plt.close(figure)
    return paths


def _draw(fig: Figure, ax) -> None:
    if fig.kind == "bars":
        names = list(dict.fromkeys(name for bar in fig.bars for name, _ in bar.segments))
        for bar in fig.bars:
            left = 0.0
            for name, value in bar.segments:
                if value > 0:
                    color = PALETTE[names.index(name) % len(PALETTE)]
                    label = None if name in _labels(ax) else name
                    ax.barh(bar.label, value, left=left, color=color, label=label, height=0.6)
                    left += value
        if fig.limit:
            ax.axvline(fig.limit[1], color="#c00", linestyle="--", linewidth=1, label=fig.limit[0])
        ax.invert_yaxis()
        return
    for s in fig.series:
        xs = [x for x, y in zip(s.x, s.y, strict=True)]
        ys = [float("nan") if y is None else y for y in s.y]
        ax.plot(
            xs,
            ys,
            color=PALETTE[s.color % len(PALETTE)],
            linestyle=_linestyle(s.dash),
            linewidth=0.8 if s.faint else 1.4,
            alpha=0.35 if s.faint else 1.0,
            marker="o" if s.points else None,
            markersize=2.5,
            drawstyle="steps-post" if s.step else "default",
            label=s.label,
        )
    for ref in fig.references:
        ax.axhline(
            ref.y,
            color=PALETTE[ref.color % len(PALETTE)],
            linestyle=":",
            linewidth=1,
            label=f"{ref.label} ({ref.y:.3f})",
        )
    for number, m in enumerate(fig.markers, 1):
        color = PALETTE[m.color % len(PALETTE)]
        if m.y is None:
            ax.axvline(
                m.x, color=color, linestyle="--", linewidth=0.9, label=f"{number}: {m.label}"
            )
        else:
            ax.plot([m.x], [m.y], "o", mfc="none", mec=color, ms=7, label=f"{number}: {m.label}")
    if fig.ymin is not None and all(
        y >= fig.ymin for s in fig.series for y in s.y if y is not None
    ):
        ax.set_ylim(bottom=fig.ymin)


def _linestyle(index: int):
    pattern = DASHES[index % len(DASHES)]
    if not pattern:
        return "-"
    return (0, tuple(float(v) for v in pattern.split()))


def _labels(ax) -> set[str]:
    return set(ax.get_legend_handles_labels()[1])
