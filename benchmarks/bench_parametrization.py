"""ESS per second of the random-effect parametrisations on the published-scale example.

Fits the default formula to the cells of the synthetic example with each parametrisation
(nutpie, same seed and settings) and reports compile time, sampling time, the minimum bulk ESS
over the reported quantities (intercept, slope, SDs, every model's DVGR) and ESS per second of
sampling. Repeated ``--runs`` times; medians are printed. This is the measurement behind the
default ``--parametrization zerosum`` (docs/model.md).

``--data small`` repeats the comparison on a thin data set (3 models x 600 prompts simulated by
``dvbstats.simulate``, a few hundred trials per level), where divergences rather than ESS decide.

Usage: python benchmarks/bench_parametrization.py [--data example|small] [--runs 2] [--draws 500] [--tune 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dvbstats.input import cells, ingest
from dvbstats.model import formula
from dvbstats.model.plan import PARAMETRIZATIONS
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit
from dvbstats.simulate import example, dvb as simulate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--only", nargs="*", default=list(PARAMETRIZATIONS))
    p.add_argument("--data", choices=["example", "small"], default="example")
    p.add_argument("--target-accept", type=float, default=None, help="default: as the package chooses")
    args = p.parse_args()
    trials = ingest.read_dumps(_small_dumps() if args.data == "small" else example.write_example(ROOT / "data/raw/example"))
    f = formula.parse(formula.DEFAULT_FORMULA)
    table = cells.from_trials(trials.data, f.variables)
    print(f"{table.data.height:,} cells, {table.n_trials:,} trials; {args.draws} draws + {args.tune} tuning x 4 chains")
    print(f"{'parametrization':<20}{'compile+sample s':>18}{'min bulk ESS':>14}{'ESS/s':>9}{'divergences':>13}{'max R-hat':>11}")
    for name in args.only:
        rows = []
        for run in range(args.runs):
            t = time.perf_counter()
            settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=4, seed=run + 1,
                                       target_accept=args.target_accept)
            res = fit(f, table, settings=settings,
                      parametrization=name, progress=False)
            seconds = time.perf_counter() - t
            diag = res.diagnostics
            ess = float(diag.table["ess_bulk"].min())
            rows.append((seconds, ess, ess / res.timing["sample_s"], diag.divergences, float(diag.table["r_hat"].max())))
        med = [statistics.median(col) for col in zip(*rows)]
        print(f"{name:<20}{med[0]:>18.1f}{med[1]:>14.0f}{med[2]:>9.1f}{med[3]:>13.0f}{med[4]:>11.3f}", flush=True)


def _small_dumps() -> list[Path]:
    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial"), ("Tech-savvy", "plain language")], n_prompts=600)
    models = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gemini/gemini-2.0-flash"]
    effects = simulate.draw_effects(design, models, intercept=-0.8, log_n_train=-0.05,
                                    sd={"model": 0.5, "value": 0.4, "feature": 0.3, "context": 0.2}, seed=1)
    out = Path(tempfile.mkdtemp(prefix="dvbstats-small-"))
    return list(simulate.simulate(effects, design, seed=2, out_dir=out).paths)


if __name__ == "__main__":
    main()
