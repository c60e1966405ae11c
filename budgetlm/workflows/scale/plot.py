"""The PNG plot of a scaling sweep: each size's measured final losses against training tokens,
the fitted law's curve through them, and the predicted runs with their intervals."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from budgetlm.budget.scaling_law import ScalingLaw


def plot_sweep(
    law: ScalingLaw, runs: Sequence[Any], predictions: Sequence[Any], path: str | Path
) -> tuple[Path | None, str]:
    """Write the plot to `path`; returns (path, "") or (None, why not) when matplotlib is not
    installed (it is in the "report" and "dev" extras). `runs` have size, n_params, tokens and
    loss; `predictions` spec, n_params, tokens, loss and interval."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None, 'no plot: matplotlib is not installed (pip install -e ".[report]")'
    path = Path(path)
    fig = Figure(figsize=(7.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    all_tokens = [r.tokens for r in runs] + [p.tokens for p in predictions]
    grid = np.geomspace(min(all_tokens) / 1.5, max(all_tokens) * 1.5, 100)
    sizes: dict[str, list[Any]] = {}
    for run in runs:
        sizes.setdefault(run.size, []).append(run)
    for size, group in sorted(sizes.items(), key=lambda kv: kv[1][0].n_params):
        n = group[0].n_params
        line = ax.plot(grid, [law.predict(n, d) for d in grid], lw=1.2)[0]
        ax.scatter(
            [r.tokens for r in group],
            [r.loss for r in group],
            color=line.get_color(),
            zorder=3,
            label=f"{size} ({n / 1e6:.2f}M params)",
        )
    for p in predictions:
        line = ax.plot(grid, [law.predict(p.n_params, d) for d in grid], lw=1, ls="--")[0]
        low, high = p.interval
        ax.errorbar(
            [p.tokens],
            [p.loss],
            yerr=[[p.loss - low], [high - p.loss]],
            fmt="*",
            ms=11,
            color=line.get_color(),
            capsize=4,
            zorder=4,
            label=f"predicted {p.spec} ({p.n_params / 1e6:.2f}M): {p.loss:.3f}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title(law.describe(), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")  # opened normally: umask applies
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path, ""
