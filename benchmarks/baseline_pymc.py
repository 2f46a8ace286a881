"""The baseline of ``bench_speed.py``: a hand-written PyMC + nutpie zero-sum fit of the default formula.

``chose_deep ~ 1 + log_n_train + (1|model) + (1|value) + (1|feature) + (1|context)`` on a cell table
(Parquet with n_trials, n_deep per model x value x feature x context x n_train), written the way
a PyMC user would: ZeroSumNormal random intercepts, default priors of docs/model.md, nutpie with
its Numba backend, 4 chains x 1000 draws after 500 tuning. Prints one JSON line (wall seconds of
compile and sampling, minimum bulk ESS, maximum R-hat, divergences).
Usage: python benchmarks/baseline_pymc.py CELLS.parquet [--draws 1000 --tune 500 --chains 4]
"""

from __future__ import annotations

import argparse
import json
import time

t_start = time.perf_counter()

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import nutpie  # noqa: E402
import polars as pl  # noqa: E402
import pymc as pm  # noqa: E402

FACTORS = ("model", "value", "feature", "context")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("cells")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    df = pl.read_parquet(args.cells).filter(pl.col("n_trials") > 0)
    n, k = df["n_trials"].to_numpy(), df["n_deep"].to_numpy()
    x = df["log_n_train"].to_numpy()
    x = x - np.average(x, weights=n)
    coords, idx = {}, {}
    for f in FACTORS:
        levels, codes = np.unique(df[f].to_numpy().astype(str), return_inverse=True)
        coords[f], idx[f] = levels, codes
    t0 = time.perf_counter()
    with pm.Model(coords=coords) as model:
        intercept = pm.Normal("Intercept", 0, 1.5)
        b = pm.Normal("b_log_n_train", 0, 1)
        eta = intercept + b * x
        for f in FACTORS:
            sd = pm.HalfNormal(f"sd_{f}", 1)
            eta = eta + pm.ZeroSumNormal(f"r_{f}", sigma=sd, dims=f)[idx[f]]
        pm.Binomial("n_deep", n=n, logit_p=eta, observed=k)
    compiled = nutpie.compile_pymc_model(model)
    t1 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                          progress_bar=False)
    t2 = time.perf_counter()
    summary = az.summary(idata, kind="diagnostics")  # every parameter
    print(json.dumps({
        "import_s": t0 - t_start, "compile_s": t1 - t0, "sample_s": t2 - t1, "cells": df.height,
        "min_ess_bulk": float(summary["ess_bulk"].min()), "max_r_hat": float(summary["r_hat"].max()),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }))


if __name__ == "__main__":
    main()
