"""Re-make a run folder's tables from its own posterior with this checkout and a reference checkout, and compare.

    python benchmarks/compare_run_tables.py RUN_FOLDER --reference /tmp/ref-main

Each checkout, in its own process (``PYTHONPATH`` = the checkout), reads the run folder back (``Fit.load``: the same
posterior and trials, nothing refitted), runs the analyses after the fit (scaling, agreement) and writes a new run
folder (``Fit.save``), timing the save. Then every CSV table of the two new folders is compared: identical bytes, or
the largest relative difference of its float columns (any other column must be equal), and each group of the two
``posterior.nc`` files read back with ``Fit.load`` must be identical. A speed-up that moved a number shows here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dvbstats, whichever is installed

from dvbstats.results.fitted import Fit  # noqa: E402

CHILD = r"""
import sys, time
from dvbstats.pipeline import Analysis
from dvbstats.results.fitted import Fit
fit = Fit.load(sys.argv[1])
for group in fit.idata.groups():  # as a fresh fit: no encoding (compression) carried over from the file read
    for variable in fit.idata[group].variables.values():
        variable.encoding = {}
analyses = Analysis().run(fit)
wall, cpu = time.perf_counter(), time.process_time()
fit.save(sys.argv[2], analyses=analyses, overwrite=True)
print(f"save: wall {time.perf_counter() - wall:.2f} s, CPU {time.process_time() - cpu:.2f} s")
"""


def remake(checkout: Path, run: Path, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    res = subprocess.run([sys.executable, "-c", CHILD, str(run), str(out)], env=env, cwd=str(checkout),
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{checkout}: {res.stderr[-2000:]}")
    print(f"{checkout}: {res.stdout.strip()}")


def compare_csv(a: Path, b: Path) -> str:
    """'identical', or the largest relative difference of the float columns (other columns must be equal)."""
    if a.read_bytes() == b.read_bytes():
        return "identical"
    x, y = pl.read_csv(a, infer_schema_length=None), pl.read_csv(b, infer_schema_length=None)
    if x.columns != y.columns or x.height != y.height:
        return f"DIFFERENT SHAPE {x.shape} vs {y.shape}"
    worst, other = 0.0, []
    for c in x.columns:
        if x[c].dtype.is_float() and y[c].dtype.is_float():
            u, v = x[c].to_numpy(), y[c].to_numpy()
            if not np.array_equal(np.isnan(u), np.isnan(v)):
                other.append(c)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.abs(u - v) / np.maximum(np.abs(u), np.finfo(float).tiny)
            worst = max(worst, float(np.nanmax(rel)) if len(rel) else 0.0)
        elif not x[c].equals(y[c]):
            other.append(c)
    return f"max relative difference {worst:.1e}" + (f"; OTHER COLUMNS DIFFER: {other}" if other else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--reference", type=Path, required=True, help="the checkout to compare with (git worktree)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="compare_run_tables_"))
    remake(args.reference, args.run.resolve(), tmp / "reference")
    remake(ROOT, args.run.resolve(), tmp / "this")
    names = sorted({f.name for f in (tmp / "reference").glob("*.csv")} | {f.name for f in (tmp / "this").glob("*.csv")})
    for name in names:
        a, b = tmp / "reference" / name, tmp / "this" / name
        print(f"{name:40s} {compare_csv(a, b) if a.exists() and b.exists() else 'MISSING in one folder'}")
    ref, this = Fit.load(tmp / "reference"), Fit.load(tmp / "this")
    for group in ref.idata.groups():
        print(f"posterior.nc {group:28s} {'identical' if ref.idata[group].identical(this.idata[group]) else 'DIFFERS'}")
    sizes = {k: (tmp / k / "posterior.nc").stat().st_size / 1e6 for k in ("reference", "this")}
    print(f"posterior.nc size: reference {sizes['reference']:.1f} MB, this {sizes['this']:.1f} MB")


if __name__ == "__main__":
    main()
