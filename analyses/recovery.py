"""Parameter recovery on simulated data: does the default model find the truth it was given?

For each seed: draw effects with known SDs, simulate harness dumps (``dvbstats.simulate``),
ingest them, fit the default formula, and compare. Prints per seed and overall: coverage of
every model's true design-averaged DVGR by its 94% HDI, of the true log_n_train slope, the
posterior mean of each random-effect SD beside its true value and the SD of the drawn levels,
and the sampler diagnostics.

    python analyses/recovery.py [--seeds 5] [--models 6] [--prompts 1500]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from dvbstats.constants import HDI_PROB
from dvbstats.input import cells, ingest
from dvbstats.model import formula
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import estimands
from dvbstats.results.fitted import fit
from dvbstats.simulate import dvb as simulate

SD = {"model": 0.5, "value": 0.4, "feature": 0.3, "context": 0.25}
SLOPE = -0.15
FEATURES = [("Formal", "Colloquial"), ("Tech-savvy", "plain language"), ("data_driven", "intuitive")]


def recover(seed: int, n_models: int, n_prompts: int, hdi: float) -> dict:
    design = simulate.StudyDesign(feature_dims=FEATURES, n_prompts=n_prompts)
    models = [f"model-{i}" for i in range(n_models)]
    effects = simulate.draw_effects(design, models, intercept=-0.8, log_n_train=SLOPE, sd=SD, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate.simulate(effects, design, seed=seed + 1000, out_dir=Path(tmp))
        with_warnings = ingest.read_dumps(sim.paths)
    f = formula.parse(formula.DEFAULT_FORMULA)
    res = fit(f, cells.from_trials(with_warnings.data, f.variables),
              settings=SamplerSettings(seed=seed), progress=False)
    s = estimands.summarize(res.dvgr, hdi, dim="model")
    truth = sim.truth.select(model=pl.col("model_id"), dvgr_true="dvgr_true").join(s, on="model")
    inside = (truth["dvgr_true"] >= truth["hdi_low"]) & (truth["dvgr_true"] <= truth["hdi_high"])
    slope = estimands.summarize(res.idata.posterior["b_log_n_train"], hdi)
    drawn = {"model": effects.model, "value": effects.value, "feature": effects.feature, "context": effects.context}
    return {
        "covered": int(inside.sum()), "models": truth.height,
        "abs_error": float((truth["mean"] - truth["dvgr_true"]).abs().max()),
        "slope_covered": bool(slope["hdi_low"][0] <= SLOPE <= slope["hdi_high"][0]), "slope": float(slope["mean"][0]),
        "sd": {t: float(res.idata.posterior["sd"].sel(term=t).mean()) for t in SD},
        "sd_realised": {t: float(np.std(list(v.values()), ddof=1)) for t, v in drawn.items()},
        "diagnostics": res.diagnostics.summary(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--models", type=int, default=6)
    p.add_argument("--prompts", type=int, default=1500)
    p.add_argument("--hdi", type=float, default=HDI_PROB)
    args = p.parse_args()
    rows = []
    for seed in range(1, args.seeds + 1):
        r = recover(seed, args.models, args.prompts, args.hdi)
        rows.append(r)
        d = r["diagnostics"]
        print(f"seed {seed}: {r['covered']}/{r['models']} model DVGRs in HDI (max |error| {r['abs_error']:.4f}); "
              f"slope {r['slope']:+.3f} (truth {SLOPE}) covered={r['slope_covered']}; "
              + ", ".join(f"sd_{t} {r['sd'][t]:.2f} (drawn {r['sd_realised'][t]:.2f})" for t in SD)
              + f"; max R-hat {d['max_r_hat']:.3f}, min ESS {d['min_ess_bulk']:.0f}, divergences {d['divergences']}",
              flush=True)
    covered, total = sum(r["covered"] for r in rows), sum(r["models"] for r in rows)
    print(f"overall: {covered}/{total} = {covered / total:.0%} of model DVGRs inside their {args.hdi:.0%} HDI; "
          f"slope covered in {sum(r['slope_covered'] for r in rows)}/{len(rows)} seeds; "
          f"fits passing every diagnostic: {sum(r['diagnostics']['ok'] for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
