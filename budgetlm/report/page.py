"""The self-contained HTML page of one run or of several compared: inline CSS and SVG, no
script, no font or file fetched, so it opens offline from a file:// path or an e-mail."""

from __future__ import annotations

from datetime import datetime
from html import escape

from budgetlm import __version__
from budgetlm.report.figure import Figure, format_seconds, format_value
from budgetlm.report.rundata import Run, finite
from budgetlm.report.svg import legend_html, render_svg
from budgetlm.report.tables import (
    budget_table,
    checkpoints_table,
    continual_table,
    evaluation_tables,
    events_table,
    final_table,
    mixture_table,
    samples_block,
)
from budgetlm.report.usage import budget_use, throughput

SECTIONS = (
    ("loss", "Loss", ("loss-tokens", "loss-time", "accuracy", "train-loss")),
    ("optimisation", "Optimisation", ("lr", "grad-norm")),
    ("budget", "Speed and budget", ("throughput", "mfu", "budget-plan", "time-split")),
    ("mixture", "Data mixture", ("mixture",)),
)
"""Page sections and the figures (by id, or id prefix for per-run figures) they hold."""

CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#dfe1e5;--bg:#f5f6f8;--accent:#0072b2}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:20px 18px 64px}
header.top,section,figure.plot{background:#fff;border:1px solid var(--line);border-radius:10px}
header.top{padding:18px 22px}
h1{margin:0 0 4px;font-size:26px;word-break:break-word}
h2{margin:0 0 12px;font-size:20px}
h3{margin:18px 0 8px;font-size:16px}
.sub{color:var(--muted);margin:0 0 12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
background:#fde8e8;color:#a00;margin-left:8px;vertical-align:middle}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:8px 0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;word-break:break-word}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:140px}
.card .k{color:var(--muted);font-size:13px}
.card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.card .d{color:var(--muted);font-size:12px}
nav{margin:14px 0;display:flex;flex-wrap:wrap;gap:6px 14px;font-size:14px}
nav a{color:var(--accent);text-decoration:none}
section{margin-top:16px;padding:16px 18px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,470px),1fr));gap:14px}
figure.plot{margin:0;padding:10px 12px}
figure.plot figcaption{font-weight:600;margin-bottom:4px}
svg.chart{display:block;width:100%;height:auto}
ul.legend{list-style:none;margin:6px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:2px 14px;
font-size:12.5px}
ul.legend li{display:flex;align-items:center;gap:5px}
p.caption{color:var(--muted);font-size:12.5px;margin:6px 0 0}
.table-wrap{overflow-x:auto;margin:6px 0 10px}
table{border-collapse:collapse;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;background:#fafbfc}
td.num,th.num{text-align:right}
pre{white-space:pre-wrap;word-break:break-word;background:#fafbfc;border:1px solid var(--line);
border-radius:6px;padding:10px 12px;font-size:12.5px;max-height:560px;overflow-y:auto}
code{font-size:13px;word-break:break-all}
details{margin:8px 0}
summary{cursor:pointer;font-weight:600}
footer{color:var(--muted);font-size:12px;margin-top:24px}
"""


def render_page(runs: list[Run], figures: list[Figure], peak_flops: float | None = None) -> str:
    """The whole page: header, figure sections, tables, samples and config."""
    placed: list[str] = []
    title = runs[0].name if len(runs) == 1 else "Comparison: " + " vs ".join(r.name for r in runs)
    sections = []
    for anchor, name, prefixes in SECTIONS:
        chosen = [
            f for f in figures if any(f.id == p or f.id.startswith(p + "-") for p in prefixes)
        ]
        placed += [f.id for f in chosen]
        extra = ""
        if anchor == "budget":
            extra = budget_table(runs)
        elif anchor == "mixture":
            extra = _per_run(runs, mixture_table)
        if chosen or extra:
            sections.append((anchor, name, _figures(chosen) + extra))
    for anchor, name, render in (
        ("continual", "Continual pre-training: stability gap and forgetting", continual_table),
        ("evaluation", "Evaluation", evaluation_tables),
        ("events", "Rollbacks, skipped batches and resumes", events_table),
        ("checkpoints", "Checkpoints", checkpoints_table),
    ):
        body = _per_run(runs, render)
        if body:
            sections.append((anchor, name, body))
    details = _per_run(runs, samples_block, collapsed=True, what="samples.txt")
    if details:
        sections.append(("samples", "Samples", details))
    config = _per_run(
        runs, lambda r: f"<pre>{escape(r.config_text)}</pre>", collapsed=True, what="config.yaml"
    )
    sections.append(("config", "Config", config))
    nav = "".join(f'<a href="#{a}">{escape(n)}</a>' for a, n, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{escape(n)}</h2>{b}</section>' for a, n, b in sections)
    header = _header(runs[0], peak_flops) if len(runs) == 1 else _compare_header(runs, peak_flops)
    made = f"{datetime.now():%Y-%m-%d %H:%M}"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<link rel=icon href="data:,">'
        f'<meta name="budgetlm-plots" content="{escape(",".join(placed))}">'
        f"<title>{escape(title)} · budgetlm report</title><style>{CSS}</style></head>"
        f"<body><main>{header}<nav>{nav}</nav>{body}"
        f"<footer>Made by budgetlm {escape(__version__)} report on {made} from the run "
        "director"
        + ("y" if len(runs) == 1 else "ies")
        + " "
        + ", ".join(f"<code>{escape(str(r.path.resolve()))}</code>" for r in runs)
        + " alone.</footer></main></body></html>\n"
    )


def _figures(figures: list[Figure]) -> str:
    blocks = [
        f'<figure class="plot" id="fig-{escape(f.id)}" data-plot="{escape(f.id)}">'
        f"<figcaption>{escape(f.title)}</figcaption>{render_svg(f)}{legend_html(f)}"
        + (f'<p class="caption">{escape(f.caption)}</p>' if f.caption else "")
        + "</figure>"
        for f in figures
    ]
    return f'<div class="plots">{"".join(blocks)}</div>' if blocks else ""


def _per_run(runs: list[Run], render, collapsed: bool = False, what: str = "") -> str:
    """One run's block as is; several runs' blocks under a heading (or a fold) each."""
    parts = []
    for run in runs:
        body = render(run)
        if not body:
            continue
        label = escape(" · ".join(x for x in (run.name if len(runs) > 1 else "", what) if x))
        if collapsed:
            parts.append(f"<details><summary>{label or 'show'}</summary>{body}</details>")
        elif len(runs) > 1:
            parts.append(f"<h3>{escape(run.name)}</h3>{body}")
        else:
            parts.append(body)
    return "".join(parts)


def _header(run: Run, peak_flops: float | None) -> str:
    start = run.start
    use = budget_use(run)
    speed = throughput(run, peak_flops)
    model = run.config.get("model") or {}
    params = start.get("parameters") or {}
    shape = ", ".join(
        f"{k.replace('_', ' ')} {model[k]}"
        for k in ("d_model", "n_layers", "n_heads", "n_kv_heads", "seq_len", "vocab_size")
        if k in model
    )
    data = run.config.get("data") or {}
    train_tokens = start.get("train_tokens") or {}
    domains = ", ".join(
        f"{d} ({format_value(n, 'tokens')} tokens)" for d, n in train_tokens.items()
    )
    sources = data.get("prepared") or " ".join(map(str, data.get("sources") or []))
    kind = "continued" if run.is_continual else "pre-trained"
    sub = f"{escape(str(start.get('model_size', '?')))} model {kind}"
    if run.is_continual:
        sub += (
            f" from <code>{escape(str(start.get('parent')))}</code> with recipe "
            f"<b>{escape(str(start.get('recipe')))}</b>"
        )
    badge = "" if use.finished else '<span class="badge">unfinished</span>'
    mfu = (
        f"MFU {100 * speed.mfu:.1f}% of {speed.peak_flops:.3g} FLOP/s ({speed.peak_source})"
        if speed.mfu is not None
        else "MFU unknown: no measured peak FLOP/s (pass --peak-flops)"
    )
    rate = "?" if speed.tokens_per_s is None else f"{speed.tokens_per_s:,.0f} tokens/s"
    flops = "" if speed.flops_per_s is None else f", {speed.flops_per_s / 1e12:.3g} TFLOP/s"
    facts = [
        (
            "model",
            f"{_int(params.get('total'))} parameters ({_int(params.get('non_embedding'))} "
            f"non-embedding); {shape}; {format_value(start.get('flops_per_token', 0), 'number')} "
            "FLOP/token",
        ),
        ("data", f"{domains} from {sources}"),
        (
            "budget",
            f"{use.budget}: used {use.format(use.used)}"
            + (f" ({100 * use.share:.0f}%)" if use.share is not None else "")
            + f"; {use.steps:,} steps, {use.tokens:,} tokens in "
            + format_seconds(use.training_seconds),
        ),
        (
            "hardware",
            f"{start.get('device', '?')}, {start.get('precision', '?')}, "
            f"{start.get('threads', '?')} threads, {start.get('processes', 1)} process(es)",
        ),
        ("speed", f"{rate}{flops} in training steps; {mfu}"),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    cards = _loss_cards(run)
    return (
        f'<header class="top"><h1>{escape(run.name)}{badge}</h1><p class="sub">{sub}</p>'
        f'<dl class="facts">{dl}</dl><div class="cards">{cards}</div></header>'
    )


def _loss_cards(run: Run) -> str:
    """A card per domain: final validation loss, from its first value."""
    cards = []
    first = run.evals[0].get("val_loss", {}) if run.evals else {}
    entropy = run.start.get("unigram_entropy") or {}
    bpb = run.final_val_loss("val_bpb")
    for domain, loss in run.final_val_loss().items():
        value = finite(loss)
        start = finite(first.get(domain))
        detail = f"from {start:.3f}" if start is not None else ""
        if finite(bpb.get(domain)) is not None:
            detail += f" · {bpb[domain]:.3f} bits/byte"
        if finite(entropy.get(domain)) is not None:
            detail += f" · unigram entropy {entropy[domain]:.2f}"
        cards.append(
            f'<div class="card"><div class="k">final loss · {escape(domain)}</div>'
            f'<div class="v">{"?" if value is None else f"{value:.3f}"}</div>'
            f'<div class="d">{escape(detail)}</div></div>'
        )
    accuracy = (
        (run.evaluation or {}).get("accuracy")
        or (run.evals[-1].get("accuracy") if run.evals else None)
        or {}
    )
    for task, value in accuracy.items():
        if "/" not in task and finite(value) is not None:
            cards.append(
                f'<div class="card"><div class="k">{escape(task)} exact match</div>'
                f'<div class="v">{100 * value:.1f}%</div><div class="d"></div></div>'
            )
    return "".join(cards)


def _compare_header(runs: list[Run], peak_flops: float | None) -> str:
    names = ", ".join(r.name for r in runs)
    return (
        f'<header class="top"><h1>Comparison of {len(runs)} runs</h1>'
        f'<p class="sub">{escape(names)}: same tokenizer, so their losses in nats/token '
        "compare directly.</p>"
        f"{final_table(runs, peak_flops)}</header>"
    )


def _int(value) -> str:
    return "?" if value is None else f"{int(value):,}"
