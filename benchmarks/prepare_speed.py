"""Tokenization throughput of `prepare` against what a user would write with `datasets`.

One generated JSONL corpus (benchmarks/corpus.py: distinct documents recombined from the
built-in prose and code), one budgetlm tokenizer (vocab 4096, trained once by `prepare` on a
small sample) used by every contender, so all produce the same ids (checked: token count and
id sum must match across contenders that do not clean):

- hf-tf: `load_dataset("json", ...)`, then `.map(lambda b: {"ids": tok(b["text"])["input_ids"]},
  batched=True, remove_columns=["text"])` with `PreTrainedTokenizerFast(tokenizer_file=...)`,
  num_proc=None (one process; the Rust tokenizer uses every core) and num_proc=cores;
- hf-tk: the same with `tokenizers.Tokenizer.encode_batch` (no transformers wrapper);
- budgetlm: `prepare_dataset([jsonl], out, tokenizer=..., cleaning=CleaningConfig(
  normalize=None, exact_dedup=False), workers=k)` for k = 1 (in-process) and cores, and the
  same with the default cleaning (NFC + exact dedup), reported separately ("+clean").

Every contender runs in a fresh process (the timing excludes interpreter start and imports,
includes reading the JSONL and writing the result to disk) against a corpus already in the page
cache. MB/s counts the UTF-8 bytes of the documents' text; "x best HF" is the speed-up over the
fastest `datasets` contender of the same run.

    python benchmarks/prepare_speed.py               # 200 MB corpus, ~5 minutes on 2 cores
    python benchmarks/prepare_speed.py --mb 50       # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import DocumentMaker, write_jsonl  # noqa: E402

CORES = os.cpu_count() or 1
SAMPLE_BYTES = 8 << 20  # JSONL the shared tokenizer is trained on (a different seed)


def contenders(cores: int) -> dict[str, dict]:
    """Name -> what the child process runs."""
    hf = {
        f"hf-tf num_proc={p}": {"kind": "hf", "tokenizer": "transformers", "num_proc": p}
        for p in (None, cores)
    }
    hf |= {
        f"hf-tk num_proc={p}": {"kind": "hf", "tokenizer": "tokenizers", "num_proc": p}
        for p in (None, cores)
    }
    ours = {
        f"budgetlm workers={k}": {"kind": "budgetlm", "workers": k, "clean": False}
        for k in sorted({1, cores})
    }
    ours |= {
        f"budgetlm workers={k} +clean": {"kind": "budgetlm", "workers": k, "clean": True}
        for k in sorted({1, cores})
    }
    return hf | ours


# --- contenders (each runs in a child process) ---------------------------------------------


def run_hf(spec: dict, corpus: Path, tokenizer: Path, work: Path) -> dict:
    """load_dataset("json") + batched map with the tokenizer; ids counted from the Arrow table."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets
    import pyarrow.compute as pc

    datasets.disable_progress_bars()
    if spec["tokenizer"] == "transformers":
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer))
        tok.backend_tokenizer.encode_special_tokens = True  # as budgetlm encodes

        def encode(batch: dict) -> dict:
            return {"ids": tok(batch["text"])["input_ids"]}
    else:
        from tokenizers import Tokenizer

        tk = Tokenizer.from_file(str(tokenizer))
        tk.encode_special_tokens = True

        def encode(batch: dict) -> dict:
            return {"ids": [e.ids for e in tk.encode_batch(batch["text"])]}

    start = time.perf_counter()
    ds = datasets.load_dataset(
        "json", data_files=str(corpus), split="train", cache_dir=str(work / "hf-cache")
    )
    loaded = time.perf_counter()
    out = ds.map(encode, batched=True, num_proc=spec["num_proc"], remove_columns=["text"])
    seconds = time.perf_counter() - start
    ids = out.data.column("ids")
    return {
        "seconds": seconds,
        "map_seconds": seconds - (loaded - start),
        "documents": len(out),
        "tokens": int(pc.sum(pc.list_value_length(ids)).as_py()),
        "id_sum": int(pc.sum(pc.cast(pc.list_flatten(ids), "int64")).as_py()),
    }


def run_budgetlm(spec: dict, corpus: Path, tokenizer: Path, work: Path) -> dict:
    """prepare_dataset into a fresh folder; ids counted from the shards (EOS removed)."""
    from budgetlm.data.config import CleaningConfig
    from budgetlm.data.dataset import PreparedDataset
    from budgetlm.data.prepare import prepare_dataset

    cleaning = CleaningConfig() if spec["clean"] else CleaningConfig(None, exact_dedup=False)
    out = work / "budgetlm-out"
    start = time.perf_counter()
    prepare_dataset(
        [str(corpus)], out, tokenizer=tokenizer, cleaning=cleaning, workers=spec["workers"]
    )
    seconds = time.perf_counter() - start
    dataset = PreparedDataset(out)
    eos = dataset.tokenizer.eos_id
    documents = tokens = id_sum = 0
    for domain in dataset.domains:
        for split in ("train", "val"):
            shard = dataset.shard(split, domain)
            documents += shard.num_documents
            tokens += len(shard.tokens) - shard.num_documents
            id_sum += int(shard.tokens.sum(dtype=np.int64)) - eos * shard.num_documents
    return {"seconds": seconds, "documents": documents, "tokens": tokens, "id_sum": id_sum}


def child(args: argparse.Namespace) -> None:
    spec = json.loads(args.child)
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    try:
        run = run_hf if spec["kind"] == "hf" else run_budgetlm
        result = run(spec, Path(args.corpus), Path(args.tokenizer), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("RESULT " + json.dumps(result))


# --- orchestration -------------------------------------------------------------------------


def train_tokenizer(workdir: Path) -> Path:
    """A budgetlm tokenizer (vocab 4096) trained by prepare on an 8 MB sample."""
    from budgetlm.data.prepare import prepare_dataset

    sample = workdir / "sample.jsonl"
    write_jsonl(sample, SAMPLE_BYTES, DocumentMaker(seed=1))
    out = workdir / "tokenizer-data"
    prepare_dataset([str(sample)], out, vocab_size=4096, workers=1)
    return out / "tokenizer.json"


def run_child(spec: dict, corpus: Path, tokenizer: Path, workdir: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        json.dumps(spec),
        "--corpus",
        str(corpus),
        "--tokenizer",
        str(tokenizer),
        "--workdir",
        str(workdir),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{spec} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200, help="JSONL corpus size in MB")
    parser.add_argument("--cores", type=int, default=CORES, help="num_proc / workers to compare")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a /tmp dir)")
    parser.add_argument("--only", default=None, help="run contenders whose name contains this")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="prepare-speed-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        corpus = workdir / "corpus.jsonl"
        counts = write_jsonl(corpus, int(args.mb * 1e6), DocumentMaker(seed=0))
        text_mb = counts["text_bytes"] / 1e6
        print(
            f"corpus: {counts['bytes'] / 1e6:.0f} MB JSONL, {text_mb:.0f} MB of text, "
            f"{counts['documents']:,} documents ({time.perf_counter() - t0:.0f}s)"
        )
        t0 = time.perf_counter()
        tokenizer = train_tokenizer(workdir)
        print(f"tokenizer: {tokenizer} ({time.perf_counter() - t0:.0f}s)")
        print(f"{CORES} cores; contenders run one after another in fresh processes\n")

        results = {}
        for name, spec in contenders(args.cores).items():
            if args.only and args.only not in name:
                continue
            results[name] = run_child(spec, corpus, tokenizer, workdir)
            r = results[name]
            print(f"  {name}: {r['seconds']:.1f}s", flush=True)
        print_table(results, text_mb, args.cores)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(results: dict[str, dict], text_mb: float, cores: int) -> None:
    hf = {n: r for n, r in results.items() if n.startswith("hf")}
    best = min(hf.values(), key=lambda r: r["seconds"]) if hf else None
    reference = next((r for n, r in results.items() if "+clean" not in n), None)
    print()
    header = f"{'contender':<30} {'wall s':>7} {'map s':>6} {'MB/s':>6} {'x best HF':>9}"
    print(header + f" {'tokens':>12} {'ids':>5}")
    print("-" * (len(header) + 19))
    for name, r in results.items():
        ratio = f"{best['seconds'] / r['seconds']:.2f}" if best else "-"
        same = "-"
        if "+clean" not in name and reference is not None:
            match = (r["tokens"], r["id_sum"]) == (reference["tokens"], reference["id_sum"])
            same = "same" if match else "DIFF"
        map_s = f"{r['map_seconds']:.1f}" if "map_seconds" in r else ""
        print(
            f"{name:<30} {r['seconds']:>7.1f} {map_s:>6} {text_mb / r['seconds']:>6.1f} "
            f"{ratio:>9} {r['tokens']:>12,} {same:>5}"
        )
    for suffix in ("", " +clean"):
        one = results.get(f"budgetlm workers=1{suffix}")
        many = results.get(f"budgetlm workers={cores}{suffix}")
        if one and many and cores > 1:
            print(
                f"scaling{suffix}: budgetlm workers=1 -> {cores}: "
                f"{one['seconds'] / many['seconds']:.2f}x"
            )
    print()
    print("map s: the datasets .map alone (wall s also includes load_dataset's JSON -> Arrow)")
    print("ids: token count and id sum equal to the first contender's (cleaning off)")


if __name__ == "__main__":
    main()
