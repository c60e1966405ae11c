"""The report's figures, built from runs' records: losses per domain against tokens and wall
time, training loss, learning rate, throughput (and MFU against a known peak), gradient norm,
accuracy, the budget plan, where the time went, and mixture weights. One run's figures colour
its domains; a comparison colours runs and dashes domains, on shared axes."""

from __future__ import annotations

from typing import Any

from budgetlm.evaluate.stability import continual_summary
from budgetlm.report.figure import DASHES, Bar, Figure, Marker, Reference, Series
from budgetlm.report.rundata import Run, finite, timeline
from budgetlm.report.usage import OUTSIDE_SHARES, TIME_SHARES, budget_use, throughput

MAX_DOTS = 40
"""Series with at most this many points get a dot (and a tooltip) per point."""
SMOOTH_FROM = 50
"""A training loss logged more often than this is drawn pale, under a smoothed copy."""
SMOOTHING = 0.9


def build_figures(runs: list[Run], peak_flops: float | None = None) -> list[Figure]:
    """Every figure that has data, in page order; empty ones are left out."""
    style = Style(runs)
    figures = [
        loss_figure(runs, style, "tokens"),
        loss_figure(runs, style, "elapsed"),
        accuracy_figure(runs, style),
        train_figure(runs, style, "loss", "train-loss", "Training loss", "loss (nats/token)"),
        train_figure(runs, style, "lr", "lr", "Learning rate", "learning rate"),
        train_figure(runs, style, "grad_norm", "grad-norm", "Gradient norm", "norm (before clip)"),
        throughput_figure(runs, style),
        mfu_figure(runs, style, peak_flops),
        plan_figure(runs, style),
        time_figure(runs),
        *[mixture_figure(run, style, i if len(runs) > 1 else None) for i, run in enumerate(runs)],
    ]
    return [f for f in figures if f is not None and not f.is_empty()]


class Style:
    """Colours and dashes: one run colours its domains; several runs get a colour each and
    their domains a dash pattern each (the same domain, the same dash, in every run)."""

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs
        self.domains: dict[str, int] = {}
        for run in runs:
            for domain in run.domains:
                self.domains.setdefault(domain, len(self.domains))

    @property
    def single(self) -> bool:
        return len(self.runs) == 1

    def domain(self, index: int, domain: str) -> tuple[str, int, int]:
        """(label, colour, dash) of one run's domain."""
        d = self.domains.setdefault(domain, len(self.domains))
        if self.single:
            return domain, d, 0
        return f"{self.runs[index].name} · {domain}", index, d % len(DASHES)

    def run(self, index: int, what: str = "") -> tuple[str, int]:
        """(label, colour) of a whole-run series."""
        name = self.runs[index].name
        if self.single:
            return what or name, 0
        return f"{name} · {what}" if what else name, index


def x_of(run: Run, record: dict[str, Any], axis: str) -> float:
    """Tokens (recorded, else step x tokens per step) or wall time of a record."""
    if axis == "elapsed":
        return float(record.get("elapsed", 0.0))
    if "tokens" in record:
        return float(record["tokens"])
    return float(record.get("step", 0)) * run.tokens_per_step


def _xlabel(axis: str) -> str:
    return "wall time of training (evaluation included)" if axis == "elapsed" else "tokens"


def loss_figure(runs: list[Run], style: Style, axis: str) -> Figure:
    """Validation loss per domain, with the stability gap's peak and recovery marked on
    continual runs and (one run) the parent model's final losses as references."""
    fig = Figure(
        id="loss-tokens" if axis == "tokens" else "loss-time",
        title="Validation loss per domain against "
        + ("tokens" if axis == "tokens" else "wall time"),
        xlabel=_xlabel(axis),
        ylabel="loss (nats/token)",
        xunit="tokens" if axis == "tokens" else "seconds",
        caption="Held-out loss of each domain at every evaluation (metrics.jsonl 'eval' records).",
    )
    for i, run in enumerate(runs):
        for domain in run.domains:
            label, color, dash = style.domain(i, domain)
            points = [
                (x_of(run, r, axis), finite(r["val_loss"].get(domain)))
                for r in run.evals
                if domain in r.get("val_loss", {})
            ]
            fig.series.append(_series(label, points, color, dash))
        if run.is_continual:
            fig.markers += gap_markers(run, style, i, axis)
            fig.caption += (
                " On continual runs, a labelled dot marks the top of each stability gap (the "
                "loss rising above its start value when training shifts) and a vertical line "
                "where the domain came back to its start value."
            )
            if style.single:
                for domain, loss in (run.start.get("parent_final_val_loss") or {}).items():
                    _, color, _ = style.domain(i, domain)
                    fig.references.append(Reference(float(loss), f"parent final · {domain}", color))
    return fig


def stability(run: Run) -> dict[str, Any]:
    """The continual record (stability gap, forgetting, accuracy gaps), or the same computed
    from the evaluations of a run that has not finished."""
    record = run.last("continual")
    if record is not None:
        return record
    start = run.start
    return continual_summary(
        run.evals,
        [d for d in start.get("new_domains", []) if d in run.domains],
        [d for d in start.get("old_domains", []) if d in run.domains],
        start.get("parent_final_val_loss"),
    )


def gap_markers(run: Run, style: Style, index: int, axis: str) -> list[Marker]:
    """A dot at the top of each domain's loss gap and a line where it recovered."""
    summary = stability(run)
    markers = []
    by_step = {r["step"]: r for r in run.evals}
    for group in ("new", "old"):
        for domain, gap in summary.get(group, {}).items():
            if not gap.get("depth") or gap.get("peak_step") is None:
                continue
            _, color, _ = style.domain(index, domain)
            peak = by_step.get(gap["peak_step"])
            if peak is None:
                continue
            who = domain if style.single else f"{run.name} · {domain}"
            markers.append(
                Marker(
                    x_of(run, peak, axis),
                    f"gap {gap['depth']:+.3f} · {who}",
                    y=finite(peak["val_loss"].get(domain)),
                    color=color,
                )
            )
            back = by_step.get(gap.get("recover_step"))
            if back is not None:
                markers.append(Marker(x_of(run, back, axis), f"recovered · {who}", color=color))
    return markers


def accuracy_figure(runs: list[Run], style: Style) -> Figure:
    """Exact-match accuracy of the downstream tasks measured at each evaluation (e.g.
    builtin:arith); per-skill numbers are in the evaluation table."""
    fig = Figure(
        id="accuracy",
        title="Downstream accuracy",
        xlabel="tokens",
        ylabel="exact match",
        xunit="tokens",
        yunit="percent",
        ymin=0.0,
        caption="Exact-match accuracy at each evaluation, over all of a task's skills.",
    )
    for i, run in enumerate(runs):
        tasks = sorted({t for r in run.evals for t in r.get("accuracy", {}) if "/" not in t})
        for k, task in enumerate(tasks):
            label, color = style.run(i, task)
            points = [
                (x_of(run, r, "tokens"), finite(r["accuracy"][task]))
                for r in run.evals
                if task in r.get("accuracy", {})
            ]
            fig.series.append(_series(label, points, color + (k if style.single else 0), k % 4))
    return fig


def train_figure(runs: list[Run], style: Style, key: str, id: str, title: str, ylabel: str):
    """One quantity of the 'train' records against tokens; rollbacks and resumes marked."""
    fig = Figure(
        id=id,
        title=title,
        xlabel="tokens",
        ylabel=ylabel,
        xunit="tokens",
        caption={
            "loss": "Mean training loss over each logging interval.",
            "lr": "The learning rate of the schedule at each logged step.",
            "grad_norm": "Global gradient norm at each logged step, before clipping.",
        }[key],
        ymin=0.0 if key == "lr" else None,
    )
    for i, run in enumerate(runs):
        label, color = style.run(i, title.lower() if style.single else "")
        points = [(x_of(run, r, "tokens"), finite(r.get(key))) for r in run.train if key in r]
        fig.series.append(_series(label, points, color, 0))
        if key == "loss" and len(points) > SMOOTH_FROM:
            fig.series[-1].faint = True
            fig.series.append(_series(f"{label} (smoothed)", smoothed(points), color, 0))
        if key == "loss":
            fig.markers += event_markers(run, style, i)
    if any(m.label.startswith("rollback") for m in fig.markers):
        fig.caption += " Vertical lines: rollbacks after a loss spike (the batches were skipped)."
    return fig


def event_markers(run: Run, style: Style, index: int) -> list[Marker]:
    """Rollbacks (at the bad step) and resumes, as vertical lines."""
    who = "" if style.single else f" · {run.name}"
    color = 3 if style.single else index
    markers = []
    for r in run.of("rollback"):
        markers.append(
            Marker(
                r["step"] * run.tokens_per_step, f"rollback at step {r['step']}{who}", color=color
            )
        )
    for r in run.of("resume"):
        markers.append(
            Marker(r["step"] * run.tokens_per_step, f"resumed at step {r['step']}{who}", color=6)
        )
    return markers


def throughput_figure(runs: list[Run], style: Style) -> Figure:
    fig = Figure(
        id="throughput",
        title="Throughput",
        xlabel="tokens",
        ylabel="tokens/s",
        xunit="tokens",
        ymin=0.0,
        caption="Tokens per second of wall time over each logging interval (evaluations and "
        "checkpoints inside an interval slow it down).",
    )
    for i, run in enumerate(runs):
        label, color = style.run(i, "tokens/s")
        points = [(x_of(run, r, "tokens"), finite(r.get("tokens_per_s"))) for r in run.train]
        fig.series.append(_series(label, points, color, 0))
    return fig


def mfu_figure(runs: list[Run], style: Style, peak_flops: float | None) -> Figure | None:
    """MFU over training, only for runs with a known (measured) peak FLOP/s."""
    fig = Figure(
        id="mfu",
        title="Model FLOPs utilisation",
        xlabel="tokens",
        ylabel="MFU",
        xunit="tokens",
        yunit="percent",
        ymin=0.0,
        caption="tokens/s x training FLOPs per token (6N + attention; model/flops.py) / peak.",
    )
    for i, run in enumerate(runs):
        speed = throughput(run, peak_flops)
        per_token = finite(run.start.get("flops_per_token"))
        if not speed.peak_flops or not per_token:
            continue
        label, color = style.run(i, "MFU")
        points = [
            (
                x_of(run, r, "tokens"),
                _mul(finite(r.get("tokens_per_s")), per_token / speed.peak_flops),
            )
            for r in run.train
        ]
        fig.series.append(_series(label, points, color, 0))
        fig.caption += f" Peak of {run.name}: {speed.peak_flops:.3g} FLOP/s ({speed.peak_source})."
    return fig if fig.series else None


def plan_figure(runs: list[Run], style: Style) -> Figure:
    """The planned total steps as training went (a time budget re-plans it from measured step
    times) against the steps done."""
    fig = Figure(
        id="budget-plan",
        title="Budget plan: planned total steps against steps done",
        xlabel=_xlabel("elapsed"),
        ylabel="optimizer steps",
        xunit="seconds",
        ymin=0.0,
        caption="Solid: steps done. Dashed: the total the budget controller planned at that "
        "moment; the run ends where they meet.",
    )
    for i, run in enumerate(runs):
        done = [(x_of(run, r, "elapsed"), float(r["step"])) for r in run.train]
        plan = [
            (x_of(run, r, "elapsed"), finite(r.get("total_steps")))
            for r in run.train
            if "total_steps" in r
        ]
        label, color = style.run(i, "steps done")
        fig.series.append(_series(label, done, color, 0))
        label, color = style.run(i, "planned total")
        fig.series.append(_series(label, plan, color, 1))
    return fig


def time_figure(runs: list[Run]) -> Figure:
    """Where each run's wall time went, budgeted parts first; the planned time as a line when
    the budget is a time budget (and the same for every run)."""
    fig = Figure(
        id="time-split",
        title="Where the time went",
        xlabel="seconds",
        ylabel="",
        xunit="seconds",
        caption="Training steps, evaluation and checkpoints are paid from the budget; data "
        "preparation, model setup and samples are outside it.",
    )
    plans = set()
    for run in runs:
        use = budget_use(run)
        plans.add(use.planned if use.kind == "seconds" else None)
        names = TIME_SHARES + OUTSIDE_SHARES
        segments = [(name, use.seconds.get(key, 0.0)) for name, key in names]
        if not use.finished:
            segments = [("training so far (unfinished run)", use.seconds.get("elapsed", 0.0))]
        fig.bars.append(Bar(run.name, segments))
    if len(plans) == 1 and None not in plans:
        fig.limit = ("time budget", float(plans.pop()))
    return fig


def mixture_figure(run: Run, style: Style, index: int | None) -> Figure | None:
    """Mixture weights over training: the sampler's targets (from 'mixture' records when the
    run logged them, else the configured schedule or weights) and, dashed, the share of
    sequences actually drawn between checkpoints."""
    final = float(run.train[-1]["tokens"]) if run.train else 0.0
    if run.end:
        final = float(run.end["tokens"])
    targets, source = mixture_targets(run, final)
    served = served_shares(run)
    if not targets and not served:
        return None
    domains = list(dict.fromkeys([*targets, *served]))
    fig = Figure(
        id="mixture" if index is None else f"mixture-{index}",
        title="Mixture weights" + ("" if index is None else f" · {run.name}"),
        xlabel="tokens",
        ylabel="share of sequences",
        xunit="tokens",
        yunit="percent",
        ymin=0.0,
        caption=f"Solid: the weights the sampler aimed at ({source}). Dashed: the share of "
        "sequences actually drawn between checkpoints (checkpoints/*/state.json).",
    )
    for domain in domains:
        d = style.domains.setdefault(domain, len(style.domains))
        if domain in targets:
            fig.series.append(_series(domain, targets[domain], d, 0, step=True))
        if domain in served:
            fig.series.append(_series(f"drawn · {domain}", served[domain], d, 1, step=True))
    return fig


def mixture_targets(run: Run, final: float) -> tuple[dict[str, list], str]:
    """Per domain the (tokens, weight) steps the sampler aimed at, and where they came from."""
    records = [r for r in timeline(run.records, "mixture") if r.get("weights")]  # not skipped
    if records:
        out: dict[str, list] = {}
        for r in records:
            for domain, w in r.get("weights", {}).items():
                out.setdefault(domain, []).append((x_of(run, r, "tokens"), finite(w)))
        for points in out.values():
            if points and final > points[-1][0]:
                points.append((final, points[-1][1]))
        return out, "the run's 'mixture' records"
    schedule = (run.config.get("data") or {}).get("schedule")
    if schedule:
        steps = (
            run.end["steps"]
            if run.end
            else (run.train[-1].get("total_steps", 0) if run.train else 0)
        )
        total = steps * run.tokens_per_step
        out, before = {}, 0.0
        for stage in schedule:
            weights = stage.get("weights", {})
            norm = sum(weights.values()) or 1.0
            for domain, w in weights.items():
                out.setdefault(domain, []).append((before * total, w / norm))
            before = float(stage.get("until", 1.0))
        for points in out.values():
            points.append((total, points[-1][1]))
        return out, "the configured data.schedule"
    weights = run.start.get("weights") or {}
    ratio = run.start.get("replay_ratio")
    if run.is_continual and ratio and run.start.get("old_domains"):
        source = f"the new data's token shares, with {ratio:g} of each batch replayed"
    elif (run.config.get("data") or {}).get("weights") and not run.is_continual:
        source = "the configured data.weights"
    else:
        source = "each domain's share of tokens"
    return {d: [(0.0, float(w)), (final, float(w))] for d, w in weights.items()}, source


def served_shares(run: Run) -> dict[str, list]:
    """Per domain the (tokens, share) of sequences drawn between consecutive checkpoints."""
    out: dict[str, list] = {}
    before, at = {}, 0.0
    for state in sorted(run.checkpoints, key=lambda s: s.get("step", 0)):
        served = (state.get("sampler") or {}).get("served")
        tokens = float((state.get("train") or {}).get("tokens", 0))
        if not served or tokens <= at:
            continue
        drawn = {d: served[d] - before.get(d, 0) for d in served}
        total = sum(drawn.values())
        if total > 0:
            for d, n in drawn.items():
                out.setdefault(d, []).append((at, n / total))
        before, at = served, tokens
    for points in out.values():
        points.append((at, points[-1][1]))
    return out


def smoothed(points: list[tuple[float, float | None]], decay: float = SMOOTHING) -> list:
    """An exponential moving average of the y values, bias-corrected so it starts at the first
    value (as TensorBoard smooths); non-finite values are skipped."""
    out, average, weight = [], 0.0, 0.0
    for x, y in points:
        if y is not None:
            average = decay * average + (1 - decay) * y
            weight = decay * weight + (1 - decay)
        out.append((x, average / weight if weight else None))
    return out


def _series(
    label: str, points: list[tuple[float, float | None]], color: int, dash: int, step: bool = False
) -> Series:
    return Series(
        label,
        [p[0] for p in points],
        [p[1] for p in points],
        color=color,
        dash=dash,
        points=len(points) <= MAX_DOTS and not step,
        step=step,
    )


def _mul(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor
