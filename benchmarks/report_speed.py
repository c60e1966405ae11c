"""Cost of `budgetlm report`: seconds to build the HTML page (median of --repeats), with the
PNG plots too, and the size of what it writes, for given runs (each a case of its own, and all
together as one comparison when they share a tokenizer).

    python benchmarks/report_speed.py RUN [RUN ...] --out benchmarks/results/report.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm.errors import UserError  # noqa: E402
from budgetlm.report.build import make_report  # noqa: E402


def measure(runs: list[str], repeats: int, scratch: Path) -> dict:
    """Build the report of `runs` `repeats` times (HTML only), then once with PNG plots."""
    html = scratch / "report.html"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        files = make_report(runs, out=html, markdown="-")
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    pngs = make_report(runs, out=html, png_dir=scratch / "png").pngs
    with_png = time.perf_counter() - t0
    records = sum(len((Path(r) / "metrics.jsonl").read_text().splitlines()) for r in runs)
    return {
        "runs": runs,
        "metrics_records": records,
        "plots": len(files.figures),
        "html_seconds_median": round(statistics.median(times), 4),
        "html_bytes": html.stat().st_size,
        "with_png_seconds": round(with_png, 3),
        "png_files": len(pngs),
        "png_bytes": sum(p.stat().st_size for p in pngs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args()
    cases = [[r] for r in args.runs] + ([args.runs] if len(args.runs) > 1 else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, runs in enumerate(cases):
            try:
                row = measure(runs, args.repeats, Path(tmp) / str(i))
            except UserError as e:
                print(f"{' + '.join(runs)}: {e}")
                continue
            rows.append(row)
            print(
                f"{' + '.join(Path(r).name for r in runs)}: {row['metrics_records']} records, "
                f"{row['plots']} plots; HTML {row['html_seconds_median']:.3f}s, "
                f"{row['html_bytes'] / 1e3:.0f} kB; with PNGs {row['with_png_seconds']:.2f}s, "
                f"{row['png_bytes'] / 1e3:.0f} kB"
            )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
