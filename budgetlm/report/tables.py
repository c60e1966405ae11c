"""The HTML tables of a run report: budget, mixture, continual-learning measures, events,
checkpoints, evaluation results; each returns '' when the run has nothing to show there."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from budgetlm.report.figure import format_seconds, format_value
from budgetlm.report.markdown import final_numbers
from budgetlm.report.plots import stability
from budgetlm.report.rundata import Run, finite
from budgetlm.report.usage import OUTSIDE_SHARES, TIME_SHARES, budget_use

SAMPLE_CHARS = 20_000
"""samples.txt is shown up to this many characters."""


def table(header: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    """An HTML table; cells are escaped, columns from `numeric_from` on are right-aligned."""
    if not rows:
        return ""
    head = "".join(
        f"<th{' class=num' if i >= numeric_from else ''}>{escape(str(h))}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i >= numeric_from else ''}>{escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def final_table(runs: list[Run], peak_flops: float | None) -> str:
    """One row per run: what it cost and the final loss per domain (the comparison header)."""
    rows = [final_numbers(run, peak_flops) for run in runs]
    domains = list(dict.fromkeys(d for row in rows for d in row["val_loss"]))
    tasks = list(dict.fromkeys(t for row in rows for t in row["accuracy"]))
    header = ["run", "model", "params", "budget", "used", "tokens", "time", "tokens/s", "MFU"]
    bpb = [d for d in domains if any(d in row["val_bpb"] for row in rows)]
    header += [f"loss · {d}" for d in domains] + [f"bits/byte · {d}" for d in bpb]
    header += [f"{t} acc." for t in tasks]
    body = []
    for row in rows:
        body.append(
            [
                row["run"] + ("" if row["finished"] else " (unfinished)"),
                row["model"] or "?",
                _n(row["parameters"]),
                row["budget"],
                _pct(row["budget_used"]),
                _n(row["tokens"]),
                format_seconds(row["seconds"]),
                _n(row["tokens_per_s"]),
                "unknown" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%",
                *[_f(row["val_loss"].get(d)) for d in domains],
                *[_f(row["val_bpb"].get(d)) for d in bpb],
                *[_pct(row["accuracy"].get(t)) for t in tasks],
            ]
        )
    return table(header, body, numeric_from=2)


def budget_table(runs: list[Run]) -> str:
    """Planned against used in each budget's unit, and the wall-time split; a column per run."""
    uses = [budget_use(run) for run in runs]

    def share(value: float, use) -> str:
        spent = use.training_seconds
        return f"{format_seconds(value)} ({_pct(value / spent if spent else None)})"

    rows = [
        ["budget", *[u.budget for u in uses]],
        ["used", *[f"{u.format(u.used)} ({_pct(u.share)})" for u in uses]],
        [
            "steps planned at the start → done",
            *[f"{u.first_plan:,} → {u.steps:,}" if u.first_plan else f"{u.steps:,}" for u in uses],
        ],
        ["tokens", *[f"{u.tokens:,}" for u in uses]],
        ["time paid from the budget", *[format_seconds(u.training_seconds) for u in uses]],
    ]
    for name, key in TIME_SHARES:
        rows.append(
            [f"· {name}", *[share(u.seconds[key], u) if key in u.seconds else "?" for u in uses]]
        )
    for name, key in OUTSIDE_SHARES:
        rows.append(
            [
                f"{name} (besides the steps)",
                *[format_seconds(u.seconds[key]) if key in u.seconds else "?" for u in uses],
            ]
        )
    names = [
        run.name + ("" if u.finished else " (unfinished)")
        for run, u in zip(runs, uses, strict=True)
    ]
    return table(["", *names], rows)


def mixture_table(run: Run) -> str:
    """Per domain: training tokens, the weight aimed at, the share drawn and the epochs made
    (from the newest checkpoint's sampler state)."""
    weights = run.start.get("weights") or {}
    train_tokens = run.start.get("train_tokens") or {}
    seq_len = int((run.config.get("model") or {}).get("seq_len") or 0)
    served = {}
    if run.checkpoints:
        newest = max(run.checkpoints, key=lambda s: s.get("step", 0))
        served = (newest.get("sampler") or {}).get("served") or {}
    total = sum(served.values())
    rows = []
    for domain in dict.fromkeys([*train_tokens, *weights, *served]):
        windows = (train_tokens.get(domain, 0) - 1) // seq_len if seq_len else 0
        n = served.get(domain)
        rows.append(
            [
                domain,
                _n(train_tokens.get(domain)),
                _pct(weights.get(domain)),
                _pct(n / total if n is not None and total else None),
                f"{n / windows:.2f}" if n is not None and windows > 0 else "?",
            ]
        )
    return table(["domain", "train tokens", "weight aimed at", "share drawn", "epochs"], rows)


def continual_table(run: Run) -> str:
    """The stability gap of each domain and forgetting of old ones against the parent."""
    if not run.is_continual:
        return ""
    summary = stability(run)
    start = run.start
    facts = (
        f"<p>Continued from <code>{escape(str(start.get('parent')))}</code> "
        f"({escape(str(start.get('parent_checkpoint')))}) with recipe "
        f"<b>{escape(str(start.get('recipe')))}</b>, replay ratio "
        f"{escape(str(start.get('replay_ratio')))}.</p>"
    )
    rows = []
    for group, role in (("new", "new"), ("old", "old (replayed)")):
        for domain, gap in summary.get(group, {}).items():
            depth = gap.get("depth") or 0.0
            if depth == 0:
                recovery = "no gap"
            elif gap.get("recover_step") is not None:
                tokens = format_value(gap["recover_tokens"], "tokens")
                recovery = f"step {gap['recover_step']:,} ({tokens} tokens)"
            else:
                recovery = "not recovered"
            forgetting = summary.get("forgetting", {}).get(domain)
            rows.append(
                [
                    domain,
                    role,
                    _f(gap.get("start")),
                    _f(gap.get("final")),
                    f"{depth:.3f}",
                    "–" if gap.get("peak_step") is None else f"{gap['peak_step']:,}",
                    recovery,
                    "–" if forgetting is None else f"{forgetting:+.3f}",
                ]
            )
    header = [
        "domain",
        "role",
        "start loss",
        "final loss",
        "gap depth",
        "gap peak at step",
        "recovered",
        "forgetting vs parent",
    ]
    accuracy = [
        [task, _pct(gap.get("start")), _pct(gap.get("final")), _pct(gap.get("depth"))]
        for task, gap in summary.get("accuracy", {}).items()
        if "/" not in task
    ]
    return (
        facts
        + table(header, rows, numeric_from=2)
        + table(["task", "start accuracy", "final accuracy", "largest drop"], accuracy)
    )


def events_table(run: Run) -> str:
    """Rollbacks after loss spikes (and the batches skipped) and resumes of a killed run."""
    rows = [
        [
            "rollback",
            f"{r.get('step', 0):,}",
            f"back to step {r.get('to_step', 0):,}: {r.get('reason', '')}",
            f"{r.get('skipped_batches', 0):,}",
        ]
        for r in run.of("rollback")
    ]
    rows += [
        ["resume", f"{r.get('step', 0):,}", "resumed from a checkpoint", "0"]
        for r in run.of("resume")
    ]
    skipped = sum(int(r.get("skipped_batches", 0)) for r in run.of("rollback"))
    counts = [
        _count(len(run.of("rollback")), "rollback"),
        _count(skipped, "skipped batch", "skipped batches"),
        _count(len(run.of("resume")), "resume"),
    ]
    summary = f"<p>{', '.join(counts)}.</p>"
    return summary + table(["event", "step", "what", "skipped batches"], rows, numeric_from=3)


def checkpoints_table(run: Run) -> str:
    """Every checkpoint written (metrics.jsonl) and whether it is still on disk."""
    on_disk = {s["name"]: s for s in run.checkpoints}
    rows = []
    for r in run.of("checkpoint"):
        name = str(r.get("path", "")).split("/")[-1]
        state = on_disk.get(name)
        tokens = (
            (state or {}).get("train", {}).get("tokens", r.get("step", 0) * run.tokens_per_step)
        )
        rows.append(
            [
                name,
                f"{r.get('step', 0):,}",
                _n(tokens),
                ", ".join(r.get("tags") or []) or "periodic",
                "yes" if state else "pruned",
            ]
        )
    return table(["checkpoint", "step", "tokens", "kind", "on disk"], rows, numeric_from=1)


def evaluation_tables(run: Run) -> str:
    """eval.json (from `budgetlm eval`) and the accuracy per skill at the last evaluation."""
    out = []
    result = run.evaluation
    if result:
        out.append(
            f"<p><code>eval.json</code>: {escape(str(result.get('checkpoint', '?')))} "
            f"(step {result.get('step', '?')})</p>"
        )
        rows = [
            [
                d,
                _f(v),
                _f(math.exp(v)) if finite(v) is not None and v < 50 else "?",
                _n(result.get("val_tokens", {}).get(d)),
            ]
            for d, v in (result.get("val_loss") or {}).items()
        ]
        out.append(table(["domain", "loss", "perplexity", "tokens"], rows))
        rows = [[name, _pct(value)] for name, value in (result.get("accuracy") or {}).items()]
        out.append(table(["task", "exact match"], rows))
        rows = [
            [task, name, _f(value)]
            for task, metrics in (result.get("tasks") or {}).items()
            for name, value in metrics.items()
            if name != "items" and not name.endswith("_stderr")
        ]
        out.append(table(["lm-eval task", "metric", "value"], rows, numeric_from=2))
    with_accuracy = [r for r in run.evals if r.get("accuracy")]
    if with_accuracy:
        first, last = with_accuracy[0], with_accuracy[-1]
        out.append(
            f"<p>Exact match during training, at steps {first['step']:,} and {last['step']:,}:</p>"
        )
        rows = [
            [task, _pct(first["accuracy"].get(task)), _pct(value)]
            for task, value in last["accuracy"].items()
        ]
        out.append(table(["task", "first evaluation", "last evaluation"], rows))
    return "".join(out)


def samples_block(run: Run) -> str:
    if not run.samples:
        return ""
    text = run.samples[:SAMPLE_CHARS]
    more = len(run.samples) - len(text)
    note = (
        f"<p>(the first {SAMPLE_CHARS:,} characters; {more:,} more in samples.txt)</p>"
        if more > 0
        else ""
    )
    return f"<pre class=samples>{escape(text)}</pre>{note}"


def _n(value: Any) -> str:
    number = finite(value)
    if number is None:
        return "?"
    return f"{number:,.0f}" if abs(number) < 1e6 else format_value(number, "number")


def _f(value: Any) -> str:
    number = finite(value)
    return "–" if number is None else f"{number:.3f}"


def _pct(value: Any) -> str:
    number = finite(value)
    return "–" if number is None else f"{100 * number:.1f}%"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"
