"""The design analysis's approximate analysis against the package's full fits (issue 23).

Two uses:

* ``--pilot RUN --contrast A-B [--difference D] --items ... --reps ...`` (the issue's acceptance check): the
  sweep of ``python -m dvbstats.design`` (200 simulated runs per point) finds the recommended design; then
  ``--runs`` fresh simulated runs at that design, with truths drawn independently from the same design
  prior, are each fitted by the package (``y ~ 1 + model + (1|prompt)``, nutpie) and scored by the same rule.
  The full fits' assurance (with its Monte Carlo SE) is compared with the target and with the sweep's.
* without ``--pilot``, fixed design points from a stated prior (rates 0.55 and 0.52, item SD 1, arm item SD
  0.3): the run-by-run agreement of the two analyses.

Every fitted run is appended to ``--out`` as soon as it is done (one CSV row), so a check stopped early
keeps its fits, and ``--start K`` finishes it later (the runs are the same whatever ``--start``). A JSON
line per design point gives :func:`dvbstats.planning.check.agreement` over the rows in ``--out``, also kept
(one row per design point) in ``check_design_summary.csv`` beside ``--out``.

    nice -n 10 python benchmarks/check_design_fits.py --pilot runs/pilot --contrast gpt-4o-gpt-4o-mini \
        --difference 0.03 --items 1000,1250,1500,1750,2000 --reps 2 --runs 250 --out benchmarks/out/check_dvb.csv
    nice -n 10 python benchmarks/check_design_fits.py --runs 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from dvbstats.constants import DRAWS, SEED, TUNE
from dvbstats.planning import prior as priormod
from dvbstats.planning.check import agreement, check_rows
from dvbstats.planning.prior import stated
from dvbstats.planning.questions import Question
from dvbstats.planning.study import ASSURANCE as TARGET
from dvbstats.planning.study import design

#: (items, repetitions, question kind) checked at the stated prior.
POINTS: tuple[tuple[int, int, str], ...] = ((500, 1, "contrast"), (500, 3, "contrast"), (500, 1, "precision"),
                                            (500, 3, "precision"), (2000, 1, "contrast"))


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def pilot_point(args) -> tuple[priormod.DesignPrior, Question, int, int, dict]:
    """The recommended design of the pilot's question (``python -m dvbstats.design``'s sweep)."""
    kind = "condition" if args.condition else "contrast"
    result = design(args.pilot, contrasts=[args.contrast] if args.contrast else [],
                    conditions=[args.condition] if args.condition else [], difference=args.difference,
                    items=args.items, reps=args.reps, sims=200, seed=args.seed)
    entry = next(e for e in result.recommendation["questions"] if e["question"] == args.question or not args.question)
    best = entry["simulation"]
    if best is None:
        raise SystemExit(f"no design point reaches the target: {entry['simulation_note']}")
    question = Question("contrast", entry["question"], entry["a"], entry["b"])
    print(json.dumps({"pilot": str(args.pilot), kind: args.contrast or args.condition, "question": entry["question"],
                      "recommended": best, "closed_form": entry["closed_form"], "target": entry["target"]}), flush=True)
    return result.prior, question, best["items"], best["reps"], best


def run_point(prior, question, n, k, args, *, start: int, append: bool, sweep: dict | None = None) -> None:
    """Fit runs ``start``.. at one design point, each appended to ``args.out`` when done; print the agreement."""
    t0 = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = not (append and args.out.exists())
    with args.out.open("a" if append else "w", encoding="utf-8") as fh:
        for row in check_rows(prior, question, n, k, runs=args.runs, seed=args.seed, start=start,
                              draws=args.draws, tune=args.tune, chains=args.chains):
            row |= {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                    "seconds": round(time.perf_counter() - t0, 1)}
            fh.write(pl.DataFrame([row]).write_csv(include_header=header))
            fh.flush()
            header = False
            t0 = time.perf_counter()
    rows = pl.read_csv(args.out).filter((pl.col("question") == question.label) & (pl.col("items") == n)
                                        & (pl.col("reps") == k))
    summary = ({"prior": args.name or str(args.pilot or "stated: A 0.55, B 0.52, item SD 1, arm item SD 0.3"),
                "question": question.label, "items": n, "reps": k}
               | agreement(rows) | {"target": TARGET if sweep else None,
                                    "sweep_assurance": sweep["assurance"] if sweep else None,
                                    "sweep_mc_se": sweep["mc_se"] if sweep else None,
                                    "draws": args.draws, "tune": args.tune, "chains": args.chains,
                                    "median_fit_s": float(rows["seconds"].median()), "runs_csv": args.out.name})
    print(json.dumps(summary), flush=True)
    path = args.out.parent / "check_design_summary.csv"
    keep = ((pl.read_csv(path).filter((pl.col("runs_csv") != args.out.name) | (pl.col("question") != question.label)
                                      | (pl.col("items") != n) | (pl.col("reps") != k)),) if path.exists() else ())
    pl.concat([*keep, pl.DataFrame([summary])], how="diagonal_relaxed").write_csv(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pilot", type=Path, help="a run folder: check its question's recommended design")
    p.add_argument("--contrast", help="with --pilot: the contrast A-B")
    p.add_argument("--condition", help="with --pilot: the condition effect C1-C0")
    p.add_argument("--name", help="what the summary calls the prior (default: the pilot's path)")
    p.add_argument("--question", help="with --pilot: which of the questions (a label; default: the first)")
    p.add_argument("--difference", type=float, help="with --pilot: the stated true difference")
    p.add_argument("--items", type=numbers, default=[1000, 2000])
    p.add_argument("--reps", type=numbers, default=[1])
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--start", type=int, default=0, help="fit runs START.. of RUNS, appending to --out")
    p.add_argument("--draws", type=int, default=DRAWS)
    p.add_argument("--tune", type=int, default=TUNE)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "check_design_fits.csv")
    args = p.parse_args()
    if args.pilot:
        prior, question, n, k, best = pilot_point(args)
        run_point(prior, question, n, k, args, start=args.start, append=args.start > 0, sweep=best)
        return
    prior = stated({"A": 0.55, "B": 0.52}, tau=1.0, omega=0.3)
    questions = {"contrast": Question("contrast", "A - B", "A", "B"),
                 "precision": Question("precision", "precision A", "A", target=0.03)}
    for i, (n, k, kind) in enumerate(POINTS):
        run_point(prior, questions[kind], n, k, args, start=args.start if i == 0 else 0, append=i > 0 or args.start > 0)


if __name__ == "__main__":
    main()
