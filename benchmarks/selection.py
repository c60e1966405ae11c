"""Data selection against no selection at equal training tokens, on a pool of useful text mixed
with junk and near-duplicates; the target is the clean prose domain's validation loss.

For each seed a corpus is generated from the built-in corpora (the seed shuffles and edits it):
- clean: a fifth of the built-in prose, cut into passages (the target: its train split teaches
  the target reference, its validation split is the target loss);
- pool: the other prose passages, code passages, and junk: random characters, boilerplate
  (web-page chrome with changing numbers), prose with its words shuffled, and near-duplicates
  (prose passages copied with a few words replaced).
Every contender trains the same model on the pool alone (data.weights clean 0, pool 1) for the
same token budget: the whole pool ("none"), the pool after `budgetlm select --keep K` by each
method ("loss", "loss-diff"), and the whole pool with online loss-based reweighting
(train.sample_weighting). Reported: the final clean validation loss per seed, and what each
selection kept of each kind of document.

    OMP_NUM_THREADS=1 python benchmarks/selection.py              # 3 seeds, ~25 minutes
    OMP_NUM_THREADS=1 python benchmarks/selection.py --seeds 0 --budget 300Ktok   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import string
import sys
import time
from pathlib import Path

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.data.clean.filters import normalize  # noqa: E402
from budgetlm.data.ingest.builtin import builtin_documents  # noqa: E402
from budgetlm.data.store.dataset import PreparedDataset  # noqa: E402
from budgetlm.workflows.select import select_data  # noqa: E402

PASSAGE = (800, 2000)  # characters per passage cut from the built-in documents
BOILERPLATE = [
    "Home | About us | Products | Blog | Contact | Login | Register",
    "Copyright (c) {year} {name} Inc. All rights reserved. Terms of use | Privacy policy",
    "Click here to subscribe to our newsletter and get {n}% off your next order!",
    "Item #{n} - {name} deluxe edition - only ${n}.99 - free shipping on orders over ${m}",
    "Share this page: Facebook | Twitter | LinkedIn | Email | Print",
    "You are here: Home > Catalog > {name} > Item {n}",
]


def passages(texts: list[str], rng: random.Random) -> list[str]:
    """Texts cut at line ends into passages of PASSAGE characters (shorter tails dropped)."""
    out = []
    for text in texts:
        start = 0
        while len(text) - start >= PASSAGE[0]:
            end = text.find("\n", start + rng.randint(*PASSAGE))
            end = len(text) if end < 0 else end + 1
            out.append(text[start:end].strip() + "\n")
            start = end
    return [p for p in out if len(p) >= PASSAGE[0] // 2]


def junk_random(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + string.punctuation + "     \n"
    return "".join(rng.choices(alphabet, k=rng.randint(600, 1500)))


def junk_boilerplate(rng: random.Random, names: list[str]) -> str:
    lines = []
    for _ in range(rng.randint(8, 20)):
        line = rng.choice(BOILERPLATE)
        lines.append(
            line.format(
                year=rng.randint(1998, 2024),
                name=rng.choice(names).title(),
                n=rng.randint(1, 999),
                m=rng.randint(10, 99),
            )
        )
    return "\n".join(lines) + "\n"


def shuffled_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words) + "\n"


def near_duplicate(text: str, rng: random.Random, vocabulary: list[str], p: float = 0.03) -> str:
    return " ".join(rng.choice(vocabulary) if rng.random() < p else w for w in text.split(" "))


def make_corpus(folder: Path, seed: int) -> dict[str, str]:
    """Write clean/ and pool/ JSONL files; returns the kind of every document by its text."""
    rng = random.Random(seed)
    prose = passages([d.text for d in builtin_documents("prose")], rng)
    code = passages([d.text for d in builtin_documents("code")], rng)
    rng.shuffle(prose)
    rng.shuffle(code)
    cut = len(prose) // 5
    clean, pool_prose = prose[:cut], prose[cut:]
    vocabulary = sorted(set(re.findall(r"[A-Za-z]{3,12}", " ".join(pool_prose))))
    n = len(pool_prose)
    pool = [(t, "prose") for t in pool_prose]
    pool += [(t, "code") for t in code[: n // 4]]
    pool += [(junk_random(rng), "junk: random characters") for _ in range(n // 4)]
    pool += [(junk_boilerplate(rng, vocabulary), "junk: boilerplate") for _ in range(n // 4)]
    pool += [(shuffled_words(t, rng), "junk: shuffled words") for t in rng.sample(prose, n // 4)]
    for original in rng.sample(pool_prose, n // 12):
        pool += [(near_duplicate(original, rng, vocabulary), "near-duplicate") for _ in range(3)]
    rng.shuffle(pool)
    kinds = {}
    for name, docs in (("clean", [(t, "clean") for t in clean]), ("pool", pool)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        with (folder / name / "docs.jsonl").open("w", encoding="utf-8") as f:
            for text, kind in docs:
                f.write(json.dumps({"text": text}) + "\n")
                kinds[normalize(text)] = kind  # the text as prepare stores it
    return kinds


def composition(dataset: PreparedDataset, kinds: dict[str, str]) -> dict[str, dict[str, int]]:
    """Documents and tokens of each kind in the pool's train split."""
    shard = dataset.shard("train", "pool")
    counts: dict[str, dict[str, int]] = {}
    for i in range(shard.num_documents):
        tokens = shard.document(i)
        kind = kinds.get(dataset.tokenizer.decode(tokens[:-1].tolist()), "unknown")
        entry = counts.setdefault(kind, {"documents": 0, "tokens": 0})
        entry["documents"] += 1
        entry["tokens"] += len(tokens)
    return dict(sorted(counts.items()))


def train(prepared: Path, out: Path, args: argparse.Namespace, seed: int, **extra) -> dict:
    """One training run on the pool alone; its final validation losses and seconds."""
    values = {
        "data.prepared": str(prepared),
        "data.weights": {"clean": 0.0, "pool": 1.0},
        "model.size": args.model,
        "model.seq_len": args.seq_len,
        "budget": args.budget,
        "train.seed": seed,
        "out_dir": str(out.parent),
        "name": out.name,
        "eval.count": 4,
        "eval.tokens_per_domain": 16384,
        "checkpoint.every": 0,
        "checkpoint.pre_decay": False,
        "samples.prompts_per_domain": 0,
        **extra,
    }
    t0 = time.perf_counter()
    result = api.pretrain(load_config(None, list(values.items())), log=lambda _: None)
    return {
        "val_loss": result.val_loss,
        "tokens": result.tokens,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_seed(args: argparse.Namespace, root: Path, seed: int) -> dict:
    work = root / f"seed{seed}"
    if work.exists():
        shutil.rmtree(work)
    kinds = make_corpus(work / "corpus", seed)
    prepared = work / "prepared"
    api.prepare(
        [f"clean={work / 'corpus' / 'clean'}", f"pool={work / 'corpus' / 'pool'}"],
        prepared,
        vocab_size=args.vocab_size,
        val_fraction=0.1,
        seed=seed,
        log=lambda _: None,
    )
    source = PreparedDataset(prepared)
    result: dict = {
        "tokens": {split: source.token_counts(split) for split in ("train", "val")},
        "pool": composition(source, kinds),
        "runs": {},
        "selected": {},
    }
    print(f"seed {seed}: pool {result['pool']}", flush=True)
    result["runs"]["none"] = train(prepared, work / "runs" / "none", args, seed)
    reference = None
    for method in args.methods:
        t0 = time.perf_counter()
        out = work / f"selected-{method}"
        select_data(
            out,
            args.keep,
            prepared=prepared,
            target="clean",
            method=method,
            reference=reference,  # the target reference of the first method, once trained
            proxy=args.model,
            proxy_budget=args.proxy_budget,
            proxy_seq_len=args.seq_len,
            score_tokens=args.score_tokens,
            seed=seed,
            log=lambda _: None,
        )
        seconds = round(time.perf_counter() - t0, 1)
        reference = reference or out / "references" / "target"
        selected = PreparedDataset(out)
        result["selected"][method] = {
            "pool": composition(selected, kinds),
            "seconds": seconds,
            "references": selected.manifest["selection"]["references"],
        }
        result["runs"][method] = train(out, work / "runs" / method, args, seed)
    for strategy in args.reweight:
        result["runs"][f"reweight-{strategy}"] = train(
            prepared,
            work / "runs" / f"reweight-{strategy}",
            args,
            seed,
            **{"train.sample_weighting": strategy},
        )
    for name, run in result["runs"].items():
        print(f"seed {seed} {name}: clean val loss {run['val_loss']['clean']:.4f}", flush=True)
    return result


def summary(results: dict) -> list[str]:
    """Markdown table: clean validation loss per contender and seed, mean and change."""
    seeds = sorted(results["seeds"])
    names = list(results["seeds"][seeds[0]]["runs"])
    lines = [
        "| contender | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | vs none |",
        "|---" * (len(seeds) + 3) + "|",
    ]
    base = statistics.mean(results["seeds"][s]["runs"]["none"]["val_loss"]["clean"] for s in seeds)
    for name in names:
        losses = [results["seeds"][s]["runs"][name]["val_loss"]["clean"] for s in seeds]
        mean = statistics.mean(losses)
        lines.append(
            f"| {name} | "
            + " | ".join(f"{v:.4f}" for v in losses)
            + f" | {mean:.4f} | {mean - base:+.4f} |"
        )
    return lines


def kept_table(results: dict) -> list[str]:
    """Markdown table: share of each kind of pool document (by tokens) before and after."""
    seeds = sorted(results["seeds"])
    kinds = sorted(results["seeds"][seeds[0]]["pool"])
    columns = ["pool"] + list(results["seeds"][seeds[0]]["selected"])
    lines = [
        "| kind (share of pool train tokens, mean of seeds) | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for kind in kinds:
        cells = []
        for column in columns:
            shares = []
            for s in seeds:
                data = results["seeds"][s]
                counts = data["pool"] if column == "pool" else data["selected"][column]["pool"]
                total = sum(c["tokens"] for c in counts.values())
                shares.append(counts.get(kind, {"tokens": 0})["tokens"] / total)
            cells.append(f"{100 * statistics.mean(shares):.1f}%")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=float, default=0.3)
    parser.add_argument("--methods", nargs="*", default=["loss", "loss-diff"])
    parser.add_argument("--reweight", nargs="*", default=["linupper"])
    parser.add_argument("--model", default="nano")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--budget", default="1Mtok", help="training tokens of every contender")
    parser.add_argument("--proxy-budget", default="300Ktok", help="tokens of each reference")
    parser.add_argument("--score-tokens", type=int, default=512)
    parser.add_argument("--work", default="/tmp/budgetlm-selection")
    parser.add_argument("--out", default="benchmarks/results/selection.json")
    args = parser.parse_args()
    t0 = time.perf_counter()
    results = {"args": vars(args), "seeds": {}}
    for seed in args.seeds:
        results["seeds"][seed] = run_seed(args, Path(args.work), seed)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["table"] = summary(results)
    results["kept"] = kept_table(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(results["table"]))
    print()
    print("\n".join(results["kept"]))
    print(f"\n{results['seconds']:.0f}s; results in {args.out}")


if __name__ == "__main__":
    main()
