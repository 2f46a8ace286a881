"""Time reading an HVSB judgment tree (``read_judgments`` + ``JudgmentTable.write``).

The tree is the embedded synthetic example (12 models x 3 conditions x 48 scenario-type files,
4 datasets x ``--items`` items; 500 is the paper's size), generated once into a temporary folder.
Each run is a fresh process. The baseline, timed the same way in the same session, only walks the
tree and splits every file with Python's csv module (what any reader must do at least), so the
ratio is the cost of layout parsing, response parsing, validation, reconciliation and Parquet.

    .venv/bin/python benchmarks/bench_hvsb_ingest.py [--runs 5] [--items 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

from benchmarks._common import describe, stamp, timed_runs  # noqa: E402

READ = (
    "import sys, warnings; from dvbstats.benchmarks.hvsb import read_judgments\n"
    "from dvbstats.simulate.hvsb import example_models\n"
    "t = read_judgments(sys.argv[1], models=example_models()); t.write(sys.argv[2]); print(t.data.height)\n"
)
BASELINE = (
    "import csv, sys; from pathlib import Path\n"
    "n = 0\n"
    "for p in sorted(Path(sys.argv[1]).rglob('*.tsv')):\n"
    "    with open(p, newline='', encoding='utf-8') as f: n += sum(1 for _ in csv.reader(f, delimiter='\\t')) - 1\n"
    "print(n)\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--items", type=int, default=500)
    args = parser.parse_args()
    from dvbstats.simulate.hvsb import EXAMPLE_FAMILIES, EXAMPLE_SEED, HvsbDesign, draw_hvsb_effects, simulate_hvsb

    with tempfile.TemporaryDirectory() as tmp:
        design = HvsbDesign(families=EXAMPLE_FAMILIES, n_items=args.items)
        t = time.perf_counter()
        sim = simulate_hvsb(draw_hvsb_effects(design, EXAMPLE_SEED), design, Path(tmp) / "tree", seed=EXAMPLE_SEED)
        simulate_seconds = time.perf_counter() - t
        n_rows = int(sim.counts["n_rows"].sum())
        size = sum(p.stat().st_size for p in sim.paths) / 2**20
        print(f"{stamp()}  tree: {len(sim.paths)} files, {n_rows} rows, {size:.1f} MiB; simulated in "
              f"{simulate_seconds:.1f} s", flush=True)
        print("baseline (csv split only):", flush=True)
        base = timed_runs([sys.executable, "-c", BASELINE, str(Path(tmp) / "tree")], args.runs, cwd=str(ROOT))
        print("read_judgments + write:", flush=True)
        full = timed_runs([sys.executable, "-c", READ, str(Path(tmp) / "tree"), str(Path(tmp) / "t.parquet")],
                          args.runs, cwd=str(ROOT))
    for rows in (base, full):
        if any(r["returncode"] for r in rows):
            raise SystemExit(f"a run failed: {next(r['stderr'] for r in rows if r['returncode'])}")
    b, f = ([r["seconds"] for r in rows] for rows in (base, full))
    print(f"baseline: {describe(b, 's')}")
    print(f"read:     {describe(f, 's')}; peak RSS median {statistics.median(r['peak_rss_mib'] for r in full):.0f} MiB")
    print(f"ratio read / baseline (medians): {statistics.median(f) / statistics.median(b):.2f}")


if __name__ == "__main__":
    main()
