"""End-to-end ``python -m dvbstats.fit`` on the published-scale synthetic example.

Target (issue 2): ingest + fit (4 chains x 1000 draws) + summaries under 60 s median, peak memory
under 2 GB, every diagnostic passing with bulk ESS >= 1000 for every DVGR and SD.
Usage: python benchmarks/bench_fit.py [--runs 3] [--extra "--no-scaling"]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import polars as pl
from _common import describe, stamp, timed_runs

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--extra", default="--no-scaling", help="extra CLI arguments (default: the fit alone)")
    args = p.parse_args()
    from dvbstats.simulate import example

    example.write_example(ROOT / "data/raw/example")  # generate once, outside the timed runs
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "dvbstats.fit", "--no-report", "--quiet", "--out", str(out), *shlex.split(args.extra)]
        print(f"[{stamp()}] {' '.join(cmd[1:])}")
        rows = timed_runs(cmd, args.runs, cwd=str(ROOT))
        manifest = json.loads((out / "manifest.json").read_text())
        diag = pl.read_csv(out / "diagnostics.csv")
    wall = [r["seconds"] for r in rows]
    rss = [r["peak_rss_mib"] for r in rows]
    keyed = diag.filter(pl.col("parameter").str.starts_with("dvgr") | pl.col("parameter").str.starts_with("sd["))
    print(f"wall time: {describe(wall, 's')}   target < 60 s")
    print(f"peak RSS:  {describe(rss, 'MiB')}   target < 2048 MiB")
    print("stages of the last run: " + ", ".join(f"{k} {v:.1f} s" for k, v in manifest["timing"].items()))
    print(f"cells: {manifest['counts']['cells']:,}, trials used: {manifest['counts']['trials_used']:,}")
    print(f"diagnostics: max R-hat {diag['r_hat'].max():.4f}, min bulk ESS (DVGR and SDs) {keyed['ess_bulk'].min():.0f}, "
          f"min tail ESS {diag['ess_tail'].min():.0f}, divergences {manifest['diagnostics']['divergences']}")


if __name__ == "__main__":
    main()
