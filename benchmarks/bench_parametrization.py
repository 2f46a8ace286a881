"""ESS per second of the random-effect parametrisations on the published-scale example.

Fits the default formula to the cells of the synthetic example with each parametrisation
(nutpie, same seed and settings) and reports compile time, sampling time, the minimum bulk ESS
over the reported quantities (intercept, slope, SDs, every model's DVGR) and ESS per second of
sampling. Repeated ``--runs`` times; medians are printed. This is the measurement behind the
default ``--parametrization zerosum`` (docs/model.md).

Usage: python benchmarks/bench_parametrization.py [--runs 2] [--draws 500] [--tune 500]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from dvbstats import cells, example, formula, ingest
from dvbstats.fitting import fit
from dvbstats.model import PARAMETRIZATIONS
from dvbstats.sample import SamplerSettings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--only", nargs="*", default=list(PARAMETRIZATIONS))
    args = p.parse_args()
    trials = ingest.read_dumps(example.write_example(ROOT / "data/raw/example"))
    f = formula.parse(formula.DEFAULT_FORMULA)
    table = cells.from_trials(trials.data, f.variables)
    print(f"{table.data.height:,} cells, {table.n_trials:,} trials; {args.draws} draws + {args.tune} tuning x 4 chains")
    print(f"{'parametrization':<14}{'compile+sample s':>18}{'min bulk ESS':>14}{'ESS/s':>9}{'divergences':>13}{'max R-hat':>11}")
    for name in args.only:
        rows = []
        for run in range(args.runs):
            t = time.perf_counter()
            res = fit(f, table, settings=SamplerSettings(draws=args.draws, tune=args.tune, chains=4, seed=run + 1),
                      parametrization=name, progress=False)
            seconds = time.perf_counter() - t
            diag = res.diagnostics
            ess = float(diag.table["ess_bulk"].min())
            rows.append((seconds, ess, ess / res.timing["sample_s"], diag.divergences, float(diag.table["r_hat"].max())))
        med = [statistics.median(col) for col in zip(*rows)]
        print(f"{name:<14}{med[0]:>18.1f}{med[1]:>14.0f}{med[2]:>9.1f}{med[3]:>13.0f}{med[4]:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
