"""``python -m dvbstats.compare RUN_A RUN_B ...``: PSIS-LOO of finished runs, best first.

The console half of :mod:`dvbstats.results.compare`, which holds the comparison itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dvbstats.results.compare import ComparisonError, compare, reading
from dvbstats.results.fitted import Fit


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dvbstats.compare RUN_A RUN_B ...``: PSIS-LOO of finished runs, best first."""
    p = argparse.ArgumentParser(prog="python -m dvbstats.compare", description=(
        "Compare fitted runs by PSIS-LOO (ArviZ): ELPD, its difference to the best run with a standard "
        "error, stacking weights, and the cells whose Pareto k is too high. One observation is one design "
        "cell; runs must be fits of the same trials."))
    p.add_argument("runs", nargs="+", help="run folders written by python -m dvbstats.fit or Fit.save")
    p.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    args = p.parse_args(argv)
    try:
        fits = {run: Fit.load(run) for run in args.runs}
        table = compare(fits)
    except (ComparisonError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = table[["formula", "elpd_loo", "p_loo", "elpd_diff", "dse", "weight", "n_bad_k"]].assign(
        weight=table["weight"].map(lambda w: f"{w:.2f}"))  # stacking weights: 1.11e-16 is 0.00
    with pd.option_context("display.width", 160, "display.max_colwidth", 70, "display.precision", 2):
        print(shown.to_string())
    print(f"\nPSIS-LOO over {int(table['n_cells'].iloc[0]):,} cells: one observation is one design cell (all the "
          "trials of one model in one combination of the design variables).")
    print(f"Reading: {reading(table)}")
    if (table["n_bad_k"] > 0).any():
        print("WARNING: some cells have a high Pareto k; their LOO terms are unreliable (see n_bad_k).")
    if args.csv:
        table.rename_axis("run").reset_index().to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
