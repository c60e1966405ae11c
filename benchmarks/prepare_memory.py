"""Peak memory of `prepare` against corpus size: it must stay bounded, not grow with the data.

Generates a multi-GB JSONL corpus in /tmp (benchmarks/corpus.py: distinct documents, so exact
dedup keeps them all) as files of 250 MB; each size is a folder of hard links to the first files,
so the sizes share one copy on disk. For a tiny corpus (the baseline: interpreter, tokenizer,
worker pool) and for each size it runs `prepare_dataset` as a user would (tokenizer trained on
its capped sample, default cleaning: NFC + exact dedup) in a child process, and measures:

- main peak: the main process's VmHWM per phase (tokenizer training, streaming the sources,
  `_finish`: hashing and token statistics), reset between phases through /proc/self/clear_refs;
  "anon" is its anonymous memory (RssAnon) at the end of the streaming phase, without the
  file-backed pages of memory-mapped shards, which the kernel can drop at any time;
- worker peak: the largest VmHWM of a worker process (polled every --poll seconds);
- total peak: the largest sum of VmRSS over the main process and its workers at one poll;

and compares them with `memory_bound(cleaning, workers)` plus the tiny run's peak.
Disk needed: the largest size (corpus) + ~0.6x it (token shards of one run at a time); the
corpus and every prepared folder are deleted at the end (--keep keeps the corpus).

    python benchmarks/prepare_memory.py                   # 0.25, 1 and 3 GB, ~15 minutes
    python benchmarks/prepare_memory.py --gb 0.25,1       # quicker
    python benchmarks/prepare_memory.py --workers 1       # in-process (Rust threads only)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import DocumentMaker, write_corpus, write_jsonl  # noqa: E402

FILE_BYTES = 250_000_000
TINY_BYTES = 1_000_000
MB = 1 << 20


def status(pid: int | str = "self") -> dict[str, int]:
    """The memory fields (kB) of /proc/PID/status; {} when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith(("Vm", "Rss")):
            fields[key] = int(value.split()[0])
    return fields


def descendants(root: int) -> list[int]:
    """`root` and every process below it (from the ppid field of /proc/*/stat)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += frontier
    return found


# --- the child: one prepare run, peaks per phase ------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Run prepare_dataset on args.child (a folder) with per-phase peak measurement."""
    from budgetlm.data.config import CleaningConfig
    from budgetlm.data.prepare import build as prepare

    phases: dict[str, dict[str, int]] = {}

    def reset_peak() -> None:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS

    def timed_phase(name: str, function):
        def wrapper(*a, **k):
            result = function(*a, **k)
            phases[name] = status()
            reset_peak()
            return result

        return wrapper

    original_finish = prepare._finish

    def finish(*a, **k):
        phases["stream"] = status()
        reset_peak()
        original_finish(*a, **k)
        phases["finish"] = status()

    prepare._train_tokenizer = timed_phase("tokenizer", prepare._train_tokenizer)
    prepare._finish = finish
    start = time.perf_counter()
    manifest = prepare.prepare_dataset(
        [args.child], args.out, cleaning=CleaningConfig(), workers=args.workers
    )
    seconds = time.perf_counter() - start
    entry = manifest["sources"][0]
    result = {
        "seconds": seconds,
        "phases": phases,
        "documents": entry["documents"],
        "kept": entry["kept"],
        "bytes": entry["bytes"],
        "tokens": entry["tokens"],
        "bound": prepare.memory_bound(CleaningConfig(), args.workers),
    }
    print("RESULT " + json.dumps(result))


# --- orchestration -------------------------------------------------------------------------


def measure(folder: Path, out: Path, workers: int, poll: float) -> dict:
    """Run the child on `folder`, polling the memory of it and its workers."""
    command = [sys.executable, __file__, "--child", str(folder), "--out", str(out)]
    command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = dict.fromkeys(("worker_peak", "total_peak", "total_anon", "main_anon", "main_file"), 0)
    while proc.poll() is None:
        fields = [status(pid) for pid in descendants(proc.pid)]
        main, workers_ = fields[0], fields[1:]
        seen = {
            "worker_peak": max([f.get("VmHWM", 0) for f in workers_], default=0),
            "total_peak": sum(f.get("VmRSS", 0) for f in fields),
            "total_anon": sum(f.get("RssAnon", 0) for f in fields),
            "main_anon": main.get("RssAnon", 0),
            "main_file": main.get("RssFile", 0),
        }
        peaks = {k: max(v, seen[k]) for k, v in peaks.items()}
        time.sleep(poll)
    stdout, stderr = proc.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"prepare of {folder} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    return result | peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", default="0.25,1,3", help="corpus sizes in GB, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", default="/tmp", help="where the corpus is generated")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between memory polls")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sizes = sorted(float(s) for s in args.gb.split(","))
    work = Path(tempfile.mkdtemp(prefix="prepare-memory-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        corpus = work / "corpus"
        file_bytes = min(FILE_BYTES, int(sizes[0] * 1e9))
        made = write_corpus(corpus, int(sizes[-1] * 1e9), file_bytes)
        print(
            f"corpus: {made['bytes'] / 1e9:.2f} GB in {made['files']} files, "
            f"{made['documents']:,} documents ({time.perf_counter() - t0:.0f}s) in {corpus}"
        )
        files = sorted(corpus.iterdir())
        tiny = work / "tiny"
        tiny.mkdir()
        write_jsonl(tiny / "tiny.jsonl", TINY_BYTES, DocumentMaker(seed=2))
        runs = {"tiny": tiny}
        for gb in sizes:
            folder = work / f"size-{gb:g}GB"
            folder.mkdir()
            for path in files[: max(1, round(gb * 1e9 / file_bytes))]:
                os.link(path, folder / path.name)
            runs[f"{gb:g} GB"] = folder

        results = {}
        for name, folder in runs.items():
            out = work / "prepared"
            results[name] = measure(folder, out, args.workers, args.poll)
            results[name]["shard_bytes"] = sum(
                p.stat().st_size for p in out.rglob("*") if p.is_file()
            )
            shutil.rmtree(out)
            r = results[name]
            print(f"  {name}: {r['seconds']:.0f}s, total peak {r['total_peak'] / 1024:.0f} MB")
        print_table(results, args.workers)
        largest = max(results.values(), key=lambda r: r["bytes"])
        print(
            f"\ndisk: corpus {made['bytes'] / 1e9:.2f} GB + prepared output "
            f"{largest['shard_bytes'] / 1e9:.2f} GB at once (largest size)"
        )
        print(
            "ru_maxrss of the largest single process, all runs (RUSAGE_CHILDREN): "
            f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB"
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def print_table(results: dict[str, dict], workers: int) -> None:
    tiny = results["tiny"]
    bound = tiny["bound"]
    in_flight_mb, per_doc = (float(x) for x in re.findall(r"[\d.]+", bound)[:2])
    print(f"\nworkers={workers}; memory_bound: {bound}")
    print(
        "MB; main process: VmHWM per phase (tokenizer training, streaming, finish), and the\n"
        "largest anonymous / file-backed RSS polled; worker: largest worker VmHWM; total: "
        "largest\nsum over main + workers of VmRSS (all) and RssAnon (anon) at one poll"
    )
    header = (
        f"{'corpus':>8} {'JSONL GB':>8} {'kept docs':>10} {'time s':>6} {'MB/s':>5} | "
        f"{'tok':>4} {'stream':>6} {'finish':>6} {'anon':>5} {'file':>5} | {'worker':>6} | "
        f"{'total':>5} {'anon':>5} | {'bound':>5}"
    )
    print(header)
    print("-" * len(header))
    base_total = tiny["total_peak"] / 1024
    for name, r in results.items():
        phases = {k: v.get("VmHWM", 0) / 1024 for k, v in r["phases"].items()}
        # the stated bound on top of what the tiny run needs
        bound_mb = base_total + in_flight_mb + per_doc * r["kept"] / MB
        print(
            f"{name:>8} {r['bytes'] / 1e9:>8.2f} {r['kept']:>10,} {r['seconds']:>6.0f} "
            f"{r['bytes'] / 1e6 / r['seconds']:>5.1f} | {phases.get('tokenizer', 0):>4.0f} "
            f"{phases['stream']:>6.0f} {phases['finish']:>6.0f} {r['main_anon'] / 1024:>5.0f} "
            f"{r['main_file'] / 1024:>5.0f} | {r['worker_peak'] / 1024:>6.0f} | "
            f"{r['total_peak'] / 1024:>5.0f} {r['total_anon'] / 1024:>5.0f} | {bound_mb:>5.0f}"
        )
    print(
        "bound = the tiny run's total peak + text in flight + dedup bytes per kept document "
        "(from memory_bound)"
    )


if __name__ == "__main__":
    main()
