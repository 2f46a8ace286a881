"""The design analysis's approximate analysis against the package's full fits (issue 23).

At several design points, ``--runs`` simulated runs from a stated prior (two models, rates 0.55 and 0.52,
item SD 1 and arm item SD 0.3 on the logit scale), each analysed by the paired normal approximation the
sweep uses and by a full nutpie fit of ``y ~ 1 + model + (1|prompt)`` at the package's defaults
(:func:`dvbstats.planning.check.check_runs`). Prints one JSON line per design point and question with
the agreement (:func:`dvbstats.planning.check.agreement`) and writes every run to
``benchmarks/results/check_design_fits.csv``.

    nice -n 10 python benchmarks/check_design_fits.py --runs 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from dvbstats.planning.check import agreement, check_runs
from dvbstats.planning.prior import stated
from dvbstats.planning.questions import Question

#: (items, repetitions, question kind) checked.
POINTS: tuple[tuple[int, int, str], ...] = ((500, 1, "contrast"), (500, 3, "contrast"), (500, 1, "precision"),
                                            (500, 3, "precision"), (2000, 1, "contrast"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--skip", type=int, default=0, help="leave out the first SKIP design points")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "check_design_fits.csv")
    args = p.parse_args()
    prior = stated({"A": 0.55, "B": 0.52}, tau=1.0, omega=0.3)
    questions = {"contrast": Question("contrast", "A - B", "A", "B"),
                 "precision": Question("precision", "precision A", "A", target=0.03)}
    parts = []
    for n, k, kind in POINTS[args.skip:]:
        t0 = time.perf_counter()
        runs = check_runs(prior, questions[kind], n, k, runs=args.runs, seed=args.seed)
        parts.append(runs.with_columns(kind=pl.lit(kind)))
        print(json.dumps({"items": n, "reps": k, "question": kind, "wall_s": round(time.perf_counter() - t0, 1)}
                         | agreement(runs)), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pl.concat(parts).write_csv(args.out)


if __name__ == "__main__":
    main()
