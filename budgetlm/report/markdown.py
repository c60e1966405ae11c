"""The final numbers of runs, one row per run: for the HTML page's header and as a Markdown
table to paste into notes."""

from __future__ import annotations

from typing import Any

from budgetlm.report.figure import format_seconds, format_value
from budgetlm.report.rundata import Run, finite
from budgetlm.report.usage import budget_use, throughput


def final_numbers(run: Run, peak_flops: float | None = None) -> dict[str, Any]:
    """What a run reached and what it cost, as plain values (None when unknown)."""
    use = budget_use(run)
    speed = throughput(run, peak_flops)
    params = run.start.get("parameters") or {}
    accuracy = {}
    if run.evaluation and run.evaluation.get("accuracy"):
        accuracy = run.evaluation["accuracy"]
    elif run.evals and run.evals[-1].get("accuracy"):
        accuracy = run.evals[-1]["accuracy"]
    return {
        "run": run.name,
        "model": run.start.get("model_size"),
        "parameters": params.get("total"),
        "budget": use.budget,
        "budget_used": use.share,
        "finished": use.finished,
        "steps": use.steps,
        "tokens": use.tokens,
        "seconds": use.training_seconds,
        "tokens_per_s": speed.tokens_per_s,
        "flops_per_s": speed.flops_per_s,
        "mfu": speed.mfu,
        "val_loss": run.final_val_loss(),
        "val_bpb": run.final_val_loss("val_bpb"),
        "accuracy": {k: v for k, v in accuracy.items() if "/" not in k},
    }


def markdown_table(runs: list[Run], peak_flops: float | None = None) -> str:
    """A GitHub-flavoured Markdown table of the final numbers, one row per run."""
    rows = [final_numbers(run, peak_flops) for run in runs]
    domains = list(dict.fromkeys(d for row in rows for d in row["val_loss"]))
    tasks = list(dict.fromkeys(t for row in rows for t in row["accuracy"]))
    header = ["run", "model", "params", "budget", "used", "steps", "tokens", "time", "tokens/s"]
    header += ["MFU"] if any(row["mfu"] is not None for row in rows) else []
    bpb = [d for d in domains if any(d in row["val_bpb"] for row in rows)]
    header += [f"val loss {d}" for d in domains] + [f"bits/byte {d}" for d in bpb]
    header += [f"{t} acc" for t in tasks]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [
            row["run"] + ("" if row["finished"] else " (unfinished)"),
            str(row["model"] or "?"),
            _num(row["parameters"]),
            row["budget"],
            "?" if row["budget_used"] is None else f"{100 * row['budget_used']:.0f}%",
            f"{row['steps']:,}",
            _num(row["tokens"]),
            format_seconds(row["seconds"]),
            "?" if row["tokens_per_s"] is None else f"{row['tokens_per_s']:,.0f}",
        ]
        if "MFU" in header:
            cells.append("unknown" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%")
        cells += [_loss(row["val_loss"].get(d)) for d in domains]
        cells += [_loss(row["val_bpb"].get(d)) for d in bpb]
        cells += [_percent(row["accuracy"].get(t)) for t in tasks]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    return "?" if value is None else format_value(float(value), "number")


def _loss(value: Any) -> str:
    number = finite(value)
    return "–" if number is None else f"{number:.3f}"


def _percent(value: Any) -> str:
    number = finite(value)
    return "–" if number is None else f"{100 * number:.1f}%"
