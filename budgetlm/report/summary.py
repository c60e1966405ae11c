"""The printed end-of-run summary, built only from the run directory's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from budgetlm.budget.spec import parse_budget
from budgetlm.errors import UserError
from budgetlm.run.files import REPORT_FILE, SAMPLES_FILE
from budgetlm.run.records import last_of, read_metrics, records_of


def summarize(run_dir: str | Path) -> str:
    """What the run did: tokens, throughput, validation loss per domain against the data's
    unigram entropy, and where the budget went."""
    records = read_metrics(run_dir)
    start = last_of(records, "start")
    end = last_of(records, "end")
    if start is None or end is None:
        raise UserError(
            f"run {run_dir} has not finished; resume it with "
            f"`budgetlm pretrain --resume --out {run_dir}`"
        )
    evals = records_of(records, "eval")
    seconds = end["seconds"]
    budget_time = seconds["steps"] + seconds["eval"] + seconds["checkpoint"]
    lines = [
        f"run {run_dir}: {end['steps']:,} steps, {end['tokens']:,} tokens in "
        f"{_dur(budget_time)} of training (budget {start['budget']})",
        f"model: {start['model_size']}, {start['parameters']['total']:,} parameters "
        f"({start['parameters']['non_embedding']:,} non-embedding), "
        f"{start['flops_per_token'] / 1e6:.1f} MFLOP/token, "
        f"on {start['device']} ({start['precision']})",
        f"throughput: {end['tokens_per_s']:,.0f} tokens/s in training steps, "
        f"{end['flops'] / max(1e-9, seconds['steps']) / 1e12:.2f} TFLOP/s",
    ]
    lines += _validation_lines(evals, start)
    shares = [
        ("training steps", seconds["steps"]),
        ("evaluation", seconds["eval"]),
        ("checkpoints", seconds["checkpoint"]),
    ]
    lines.append(
        "where the budget went: "
        + ", ".join(
            f"{name} {_dur(s)} ({100 * s / max(1e-9, budget_time):.0f}%)" for name, s in shares
        )
    )
    lines.append(
        f"besides: data preparation {_dur(seconds.get('data', 0.0))}, "
        f"model setup and measuring {_dur(seconds.get('setup', 0.0))}, "
        f"samples {_dur(seconds.get('samples', 0.0))}"
        + (" (paid from the budget)" if parse_budget(start["budget"]).kind == "seconds" else "")
    )
    continual = last_of(records, "continual")
    if continual is not None:
        lines += continual_lines(continual, start)
    lines.append(f"samples: {Path(run_dir) / SAMPLES_FILE}")
    lines.append(
        f"plots and tables: `budgetlm report {run_dir}` writes {Path(run_dir) / REPORT_FILE}"
    )
    return "\n".join(lines)


def _validation_lines(evals: list[dict[str, Any]], start: dict[str, Any]) -> list[str]:
    """Per domain: loss in nats per token and in bits per byte (start -> final), the
    tokenizer's bytes per token, and the data's unigram entropy (what a model that ignores
    context would reach); runs from before bits per byte show the loss alone."""
    first, last = evals[0]["val_loss"], evals[-1]["val_loss"]
    bpb_first, bpb_last = evals[0].get("val_bpb", {}), evals[-1].get("val_bpb", {})
    compression = start.get("bytes_per_token") or {}
    entropy = start.get("unigram_entropy", {})
    width = max(12, *(len(d) for d in last))
    lines = [
        f"  {'validation':<{width}}  {'nats/token':^16}  {'bits/byte':^16}  {'bytes/token':>11}"
        f"  {'unigram entropy':>15}"
    ]
    for domain in last:
        bpb = (
            f"{bpb_first[domain]:6.3f} -> {bpb_last[domain]:6.3f}"
            if domain in bpb_first and domain in bpb_last
            else ""
        )
        ratio = compression.get(domain)
        h = entropy.get(domain)
        lines.append(
            f"  {domain:<{width}}  {first[domain]:6.3f} -> {last[domain]:6.3f}  {bpb:^16}"
            f"  {f'{ratio:.2f}' if ratio else '':>11}  {f'{h:.3f}' if h is not None else '':>15}"
        )
    return lines


def continual_lines(record: dict[str, Any], start: dict[str, Any]) -> list[str]:
    """The stability gap on new domains, forgetting on old ones, and downstream accuracy."""
    lines = [
        f"continued from {start.get('parent')} ({start.get('parent_checkpoint')}) with recipe "
        f"'{start.get('recipe')}', replay ratio {start.get('replay_ratio')}"
    ]
    bpb = record.get("bpb", {})
    for domain, gap in record["new"].items():
        recovery = (
            "no gap"
            if gap["depth"] == 0
            else f"recovered at step {gap['recover_step']} ({gap['recover_tokens']:,} tokens)"
            if gap["recovered"]
            else "not recovered"
        )
        new_bpb = bpb.get("new", {}).get(domain)
        lines.append(
            f"  new domain {domain}: loss {gap['start']:.3f} -> {gap['final']:.3f}"
            + (f" ({new_bpb['start']:.3f} -> {new_bpb['final']:.3f} bits/byte)" if new_bpb else "")
            + f", stability gap {gap['depth']:.3f} at step {gap['peak_step']}, {recovery}"
        )
    for domain, change in record["forgetting"].items():
        in_bpb = bpb.get("forgetting", {}).get(domain)
        if start.get("vocab_extension"):  # nats/token were measured against this run's start
            lines.append(
                f"  old domain {domain}: {in_bpb:+.3f} bits/byte against the parent's final model "
                f"(forgetting); loss {change:+.3f} nats/token against this run's start (the "
                "vocabulary grew, so tokens differ from the parent's)"
                if in_bpb is not None
                else f"  old domain {domain}: loss {change:+.3f} against this run's start"
            )
            continue
        lines.append(
            f"  old domain {domain}: loss {change:+.3f}"
            + (f" ({in_bpb:+.3f} bits/byte)" if in_bpb is not None else "")
            + " against the parent's final model (forgetting)"
        )
    for task, gap in record.get("accuracy", {}).items():
        if "/" in task:
            continue
        lines.append(
            f"  {task} accuracy: {gap['start']:.3f} -> {gap['final']:.3f}, largest drop "
            f"{gap['depth']:.3f}"
        )
    return lines


def _dur(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"
