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
  normalize=None, exact_dedup=False), workers=k)` for k = 1 (in-process: the Rust tokenizer
  threads over every core) and k = cores, and the same with the default cleaning (NFC + exact
  dedup), reported separately ("+clean"); "1 core" is workers=1 pinned to one CPU, the base
  of the scaling line.

Every contender runs in a fresh process (the timing excludes interpreter start and imports,
includes reading the JSONL and writing the result to disk) against a corpus already in the page
cache; contenders alternate over --repeat rounds and the fastest round counts (other processes
can only slow a run down). On a shared machine each run first waits (up to --patience seconds)
for other processes to go idle, and the "other" column says how many cores' worth of CPU they
still used during the run (0.00 = a clean measurement). MB/s counts the UTF-8 bytes of the
documents' text; "x best HF" is the speed-up over the fastest `datasets` contender.

    python benchmarks/prepare_speed.py                        # 100 MB, 2 rounds, ~8 minutes
    python benchmarks/prepare_speed.py --mb 20 --repeat 1     # quick check

The ceiling line measures the bare tokenizer in 1 and in `cores` single-threaded processes
running at once: how far *any* pipeline can scale with cores on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
IDLE_CORES = 0.1  # other processes' load under which the machine counts as idle


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
    ours = {"budgetlm 1 core": {"kind": "budgetlm", "workers": 1, "clean": False, "cpus": 1}}
    ours |= {
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
    from budgetlm.data.prepare.build import prepare_dataset
    from budgetlm.data.store.dataset import PreparedDataset

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


def run_ceiling(spec: dict, corpus: Path, tokenizer: Path, work: Path) -> dict:
    """The bare tokenizer on one thread, on the first spec["mb"] MB of text, starting at wall
    time spec["start_at"] (so that several copies run at once)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(tokenizer))
    texts, size = [], 0
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            size += len(texts[-1].encode("utf-8"))
            if size >= spec["mb"] * 1e6:
                break
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    start = time.perf_counter()
    tk.encode_batch_fast(texts, add_special_tokens=False)
    return {"seconds": time.perf_counter() - start, "text_bytes": size}


def child(args: argparse.Namespace) -> None:
    spec = json.loads(args.child)
    if "cpus" in spec:  # pin before the tokenizer's thread pool sizes itself from the affinity
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: spec["cpus"]]))
    run = {"hf": run_hf, "budgetlm": run_budgetlm, "ceiling": run_ceiling}[spec["kind"]]
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    try:
        result = run(spec, Path(args.corpus), Path(args.tokenizer), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("RESULT " + json.dumps(result))


# --- orchestration -------------------------------------------------------------------------


class LoadMeter:
    """CPU time the rest of the machine used while our child processes ran (other sessions'
    jobs), in cores: 0.0 on an idle machine. Busy time comes from /proc/stat, ours from the
    rusage of waited-for children (their workers included)."""

    def __enter__(self) -> LoadMeter:
        self.start = (time.perf_counter(), _machine_busy(), _children_cpu())
        self.other_cores = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, ours = (
            now - then
            for now, then in zip(
                (time.perf_counter(), _machine_busy(), _children_cpu()), self.start, strict=True
            )
        )
        self.other_cores = max(0.0, busy - ours) / max(wall, 1e-9)


def wait_until_idle(max_other: float, patience: float) -> float:
    """Wait (up to `patience` seconds) until other processes use under `max_other` cores over
    a 2-second sample; returns the last sample, in cores."""
    deadline = time.perf_counter() + patience
    while True:
        before = _machine_busy()
        time.sleep(2)
        other = (_machine_busy() - before) / 2
        if other < max_other or time.perf_counter() > deadline:
            return other


def _machine_busy() -> float:
    """Seconds of CPU time spent on every core since boot, idle and iowait excluded."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_tokenizer(workdir: Path) -> Path:
    """A budgetlm tokenizer (vocab 4096) trained by prepare on an 8 MB sample."""
    from budgetlm.data.prepare.build import prepare_dataset

    sample = workdir / "sample.jsonl"
    write_jsonl(sample, SAMPLE_BYTES, DocumentMaker(seed=1))
    out = workdir / "tokenizer-data"
    prepare_dataset([str(sample)], out, vocab_size=4096, workers=1)
    return out / "tokenizer.json"


def ceiling(corpus: Path, tokenizer: Path, workdir: Path, copies: int, mb: float) -> dict:
    """MB/s of text the bare tokenizer reaches in `copies` single-threaded processes running
    at once (each on the same `mb` MB): what this machine's cores can give any pipeline."""
    spec = {"kind": "ceiling", "mb": mb, "start_at": time.time() + 4}  # after reading the text
    with LoadMeter() as load:
        procs = [start_child(spec, corpus, tokenizer, workdir) for _ in range(copies)]
        results = [finish_child(proc, spec) for proc in procs]
    seconds = max(r["seconds"] for r in results)
    return {
        "mb_s": sum(r["text_bytes"] for r in results) / 1e6 / seconds,
        "other": load.other_cores,
    }


def run_child(spec: dict, corpus: Path, tokenizer: Path, workdir: Path) -> dict:
    """Run one contender in a fresh process; its result, with the machine's other load."""
    with LoadMeter() as load:
        result = finish_child(start_child(spec, corpus, tokenizer, workdir), spec)
    return result | {"other": load.other_cores}


def start_child(spec: dict, corpus: Path, tokenizer: Path, workdir: Path) -> subprocess.Popen:
    command = [sys.executable, __file__, "--child", json.dumps(spec), "--corpus", str(corpus)]
    command += ["--tokenizer", str(tokenizer), "--workdir", str(workdir)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_child(proc: subprocess.Popen, spec: dict) -> dict:
    stdout, stderr = proc.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{spec} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100, help="JSONL corpus size in MB")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the fastest counts")
    parser.add_argument("--ceiling-mb", type=float, default=20, help="text for the ceiling test")
    parser.add_argument("--cores", type=int, default=CORES, help="num_proc / workers to compare")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a /tmp dir)")
    parser.add_argument("--only", default=None, help="run contenders whose name contains this")
    parser.add_argument(
        "--patience",
        type=float,
        default=120,
        help="seconds to wait before each run for other processes to go idle (shared machines)",
    )
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

        cores = args.cores
        limits: dict[int, dict] = {}
        results: dict[str, dict] = {}
        for round_ in range(args.repeat):
            for k in sorted({1, cores}):
                wait_until_idle(IDLE_CORES, args.patience)
                r = ceiling(corpus, tokenizer, workdir, k, args.ceiling_mb)
                print(f"  round {round_ + 1} ceiling x{k}: {r['mb_s']:.1f} MB/s", flush=True)
                if k not in limits or r["mb_s"] > limits[k]["mb_s"]:
                    limits[k] = r
            for name, spec in contenders(cores).items():
                if args.only and args.only not in name:
                    continue
                wait_until_idle(IDLE_CORES, args.patience)
                r = run_child(spec, corpus, tokenizer, workdir)
                print(
                    f"  round {round_ + 1} {name}: {r['seconds']:.1f}s "
                    f"(other load {r['other']:.2f} cores)",
                    flush=True,
                )
                if name not in results or r["seconds"] < results[name]["seconds"]:
                    results[name] = r
        print_table(results, text_mb, cores)
        print_ceiling(limits, results, text_mb, cores)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(results: dict[str, dict], text_mb: float, cores: int) -> None:
    hf = {n: r for n, r in results.items() if n.startswith("hf")}
    best = min(hf.values(), key=lambda r: r["seconds"]) if hf else None
    reference = next((r for n, r in results.items() if "+clean" not in n), None)
    print()
    header = (
        f"{'contender':<28} {'wall s':>6} {'map s':>6} {'MB/s':>5} {'x best HF':>9} "
        f"{'tokens':>11} {'ids':>4} {'other':>5}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        ratio = f"{best['seconds'] / r['seconds']:.2f}" if best else "-"
        same = "-"
        if "+clean" not in name and reference is not None:
            match = (r["tokens"], r["id_sum"]) == (reference["tokens"], reference["id_sum"])
            same = "same" if match else "DIFF"
        map_s = f"{r['map_seconds']:.1f}" if "map_seconds" in r else ""
        print(
            f"{name:<28} {r['seconds']:>6.1f} {map_s:>6} {text_mb / r['seconds']:>5.1f} "
            f"{ratio:>9} {r['tokens']:>11,} {same:>4} {r['other']:>5.2f}"
        )
    single = results.get("budgetlm 1 core")
    for name in ("budgetlm workers=1", f"budgetlm workers={cores}"):
        if single and name in results and cores > 1:
            print(
                f"scaling: budgetlm 1 core -> {name} on {cores} cores: "
                f"{single['seconds'] / results[name]['seconds']:.2f}x"
            )
    print()
    print("map s: the datasets .map alone (wall s also includes load_dataset's JSON -> Arrow)")
    print("ids: token count and id sum equal to the first contender's (cleaning off)")
    print("other: cores' worth of CPU other processes on the machine used during that run")


def print_ceiling(
    limits: dict[int, dict], results: dict[str, dict], text_mb: float, cores: int
) -> None:
    """What the bare tokenizer reaches on this machine, and budgetlm's share of it."""
    one, many = limits[1], limits[cores]
    print(
        f"\nceiling: the bare tokenizer in single-threaded processes running at once:\n"
        f"  1 process {one['mb_s']:.1f} MB/s (other load {one['other']:.2f}), {cores} processes "
        f"{many['mb_s']:.1f} MB/s in all (other load {many['other']:.2f}): "
        f"{many['mb_s'] / one['mb_s']:.2f}x"
    )
    for name, r in results.items():
        if name.startswith("budgetlm"):
            limit = one if name == "budgetlm 1 core" else many
            print(
                f"  {name}: {100 * text_mb / r['seconds'] / limit['mb_s']:.0f}% of the "
                f"{'1-process' if limit is one else f'{cores}-process'} ceiling"
            )


if __name__ == "__main__":
    main()
