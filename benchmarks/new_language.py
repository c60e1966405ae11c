"""A new language: continue an English base model on real French (or Spanish, ...) text at an
equal token budget, keeping its vocabulary or extending it (`--extend-vocab N`, each
initialisation), over several seeds.

The text is Debian's translated manual pages: real, licensed, installable text, rendered to
plain UTF-8 with groff:

    apt-get install manpages-fr groff-base
    python benchmarks/new_language.py                      # fr, 3 seeds, ~25 minutes on 2 cores
    python benchmarks/new_language.py --lang es --seeds 1

The base model is pre-trained on builtin:prose and builtin:code (English text and Python).
Each continuation trains on the manual pages with the default recipe, which replays the
base's data. Measured per variant, mean ± sd over seeds:
- bits per byte on the new language's held-out pages;
- forgetting on English prose and code, in bits per byte, against the base model;
- the new language's bytes per token (the tokenizer's compression);
- generation speed: new tokens per second (greedy, the same prompts and number of new tokens),
  and bytes of text per second at the new language's held-out bytes per token. The bytes that
  greedy decoding of a small model happens to write (often long runs of one token) are kept
  in results.json but vary too much with the output to compare.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.run.records import read_metrics, records_of  # noqa: E402

PROMPTS = {
    "fr": ["La commande", "Cette option permet", "Le fichier de configuration"],
    "es": ["La orden", "Esta opción permite", "El archivo de configuración"],
}


def records(run_dir: Path, kind: str) -> list[dict]:
    return records_of(read_metrics(run_dir), kind)


def finished(run_dir: Path) -> bool:
    return (run_dir / "metrics.jsonl").is_file() and bool(records(run_dir, "end"))


def render_pages(lang: str, out: Path) -> Path:
    """Every manual page of /usr/share/man/LANG as a UTF-8 text file (one document each)."""
    folder = out / f"man-{lang}"
    if (folder / ".done").is_file():
        return folder
    pages = sorted(Path(f"/usr/share/man/{lang}").glob("**/*.gz"))
    if not pages:
        raise SystemExit(
            f"no manual pages in /usr/share/man/{lang}: apt-get install manpages-{lang}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for page in pages:
        rendered = subprocess.run(
            ["groff", "-man", "-Tutf8", "-Kutf8", "-P-cbou"],
            input=gzip.decompress(page.read_bytes()), capture_output=True,
        )  # fmt: skip
        text = rendered.stdout.decode("utf-8", "replace").strip()
        if rendered.returncode == 0 and len(text) > 200:
            (folder / f"{page.name.removesuffix('.gz')}.txt").write_text(text, encoding="utf-8")
    (folder / ".done").write_text("")
    return folder


def base_model(args: argparse.Namespace, out: Path) -> Path:
    run = out / "base"
    if not finished(run):
        values = {
            "data.sources": ["builtin:prose", "builtin:code"],
            "budget": args.base_budget,
            "model.size": args.model,
            "eval.tokens_per_domain": args.eval_tokens,
            "out_dir": str(out),
            "name": "base",
        }
        api.pretrain(load_config(None, list(values.items())), log=print)
    return run


def continued(args, base: Path, pages: Path, out: Path, variant: str, seed: int) -> Path:
    run = out / f"{variant}-seed{seed}"
    if finished(run):
        return run
    command = [
        sys.executable, "-m", "budgetlm", "continue", "--from", str(base),
        "--data", f"{args.lang}={pages}", "--budget", args.budget, "--out", str(run),
        "--train.seed", str(seed), "--eval.tokens_per_domain", str(args.eval_tokens),
        "--samples.prompts_per_domain", "1", "--checkpoint.every", "0",
    ]  # fmt: skip
    if variant != "keep":
        command += ["--extend-vocab", str(args.extend), "--continual.vocab_init", variant]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return run


def generation_speed(run: Path, lang: str, tokens: int) -> tuple[float, float]:
    """Generated tokens per second and bytes of generated text per second: the model loaded
    once, `tokens` new tokens greedily from each of the language's prompts (no stop at EOS, so
    every variant makes as many tokens), after one warm-up call."""
    import torch

    from budgetlm.model.generate import generate
    from budgetlm.workflows.trained import load_model, load_tokenizer

    model, tokenizer = load_model(run), load_tokenizer(run)
    torch.set_num_threads(2)
    generate(model, tokenizer.encode(PROMPTS[lang][0]), 8, temperature=0.0)
    nbytes, seconds = 0, 0.0
    for prompt in PROMPTS[lang]:
        t0 = time.perf_counter()
        new = generate(model, tokenizer.encode(prompt), tokens, temperature=0.0)
        seconds += time.perf_counter() - t0
        nbytes += tokenizer.text_bytes(new)
    return tokens * len(PROMPTS[lang]) / seconds, nbytes / seconds


def stat(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="fr")
    parser.add_argument("--model", default="nano")
    parser.add_argument("--base-budget", default="3Mtok")
    parser.add_argument("--budget", default="600ktok")
    parser.add_argument("--extend", type=int, default=1000, help="tokens --extend-vocab adds")
    parser.add_argument("--variants", default="keep,mean,focus,random")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-tokens", type=int, default=16384)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--out", default="runs/bench-new-language")
    args = parser.parse_args()
    out = Path(args.out)
    pages = render_pages(args.lang, out)
    base = base_model(args, out)
    base_bpb = records(base, "eval")[-1]["val_bpb"]
    rows = {}
    for variant in args.variants.split(","):
        result = {"new": [], "prose": [], "code": [], "bytes_per_token": [], "tok_s": [],
                  "text_bytes_s": [], "gen_bytes_s": [], "sec": []}  # fmt: skip
        for seed in range(args.seeds):
            run = continued(args, base, pages, out, variant, seed)
            final = records(run, "eval")[-1]["val_bpb"]
            start = records(run, "start")[0]
            forgetting = records(run, "continual")[-1]["bpb"]["forgetting"]
            result["new"].append(final[args.lang])
            result["prose"].append(forgetting["prose"])
            result["code"].append(forgetting["code"])
            result["bytes_per_token"].append(start["bytes_per_token"][args.lang])
            tok_s, gen_bytes_s = generation_speed(run, args.lang, args.gen_tokens)
            result["tok_s"].append(tok_s)
            result["gen_bytes_s"].append(gen_bytes_s)  # of what greedy decoding wrote
            # tokens/s times the held-out text's bytes per token: bytes/s of text like the pages
            result["text_bytes_s"].append(tok_s * start["bytes_per_token"][args.lang])
            result["sec"].append(records(run, "end")[-1]["seconds"]["steps"])
        rows[variant] = result
    first = records(out / f"{args.variants.split(',')[0]}-seed0", "eval")[0]["val_bpb"]
    print(
        f"English base {args.model} {args.base_budget} (bits/byte: prose {base_bpb['prose']:.3f}, "
        f"code {base_bpb['code']:.3f}; {args.lang} before continuing {first[args.lang]:.3f}); "
        f"continue {args.budget} on manpages-{args.lang} with replay; extension "
        f"{args.extend} tokens; {args.seeds} seeds (mean ± sd)"
    )
    header = ("new bits/byte", "prose forget", "code forget", "bytes/token", "gen tokens/s",
              "gen text bytes/s", "train s")  # fmt: skip
    print(f"{'variant':<8} " + " ".join(f"{h:>18}" for h in header))
    for variant, r in rows.items():
        keys = ("new", "prose", "code", "bytes_per_token", "tok_s", "text_bytes_s", "sec")
        cells = [r[k] for k in keys]
        print(f"{variant:<8} " + " ".join(f"{stat(c):>18}" for c in cells), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
