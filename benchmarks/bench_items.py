"""Item effects ``(1|prompt)`` at published scale (issue 9 §1): cost and mixing of one sampler configuration.

The default formula plus ``(1|prompt)`` on 9 models x ``--prompts`` prompts (108,000 cells of one
trial each at 12,000 prompts), either simulated from the example's effects with a per-prompt
effect of SD ``--item-sd`` (``--data sim``) or the embedded example itself (``--data example``,
no item-level variation in its truth). One fit with the hand-written density and nutpie at the
package's sampler defaults (4 chains x 1000 draws, default tuning, the target acceptance and mass
matrix the package chooses for the forms) unless told otherwise; every
lever the issue asks about is an option: the form of the item term and of the other terms, the
tuning length, the target acceptance, nutpie's low-rank mass matrix, the SD prior.

Prints one JSON line: CPU seconds of sampling (all threads), wall seconds, leapfrog steps per draw
(after tuning) and in all (tuning included), CPU ms per gradient (CPU / steps) beside the median
of timed single evaluations, step size, divergences, R-hat and bulk/tail ESS of ``sd[prompt]``
and the worst over every checked quantity (the package's diagnostics), and the posterior of
``sd[prompt]``. End-to-end times of the CLI come from ``bench_scale.py --item-effects``.

    python benchmarks/bench_items.py --data sim [--item-sd 1.0] [--item-form zerosum_noncentered]
    python benchmarks/bench_items.py --data example [--no-low-rank] [--tune 300] [--prior sd_prompt=...]
    python benchmarks/bench_items.py --chains 1 --nutpie cores=1 --nutpie mass_matrix_switch_freq=200
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from dvbstats.constants import CHAINS, DRAWS, SEED, TUNE
from dvbstats.input import cells
from dvbstats.input.ingest import load
from dvbstats.model import fastlogp, formula
from dvbstats.model.design import design
from dvbstats.model.plan import default_target_accept, term_parametrizations
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings, complete
from dvbstats.results.fitted import Fit
from dvbstats.simulate import example

FORMULA = formula.DEFAULT_FORMULA + " + (1|prompt)"


def item_cells(data: str, n_prompts: int, item_sd: float, seed: int) -> cells.CellTable:
    f = formula.parse(FORMULA)
    if data == "example":
        return cells.from_trials(load(example.write_example()).data, f.variables)
    return example.at_depth(n_prompts, seed, f.variables, item_sd=item_sd)


def gradient_ms(model: fastlogp.CellModel, evals: int = 100, rounds: int = 5) -> float:
    """Median over rounds of the CPU time of one log-density gradient (ms)."""
    x = np.random.default_rng(0).normal(0, 0.1, model.ndim)
    model.logp_and_grad(x)
    times = []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(evals):
            model.logp_and_grad(x)
        times.append((time.process_time() - t) / evals * 1e3)
    return statistics.median(times)


def _option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--nutpie`` with VALUE read as a bool, int or float where it is one."""
    key, value = text.split("=", 1)
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["sim", "example"], default="sim")
    p.add_argument("--prompts", type=int, default=12000)
    p.add_argument("--item-sd", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--item-form", default=None, help="parametrisation of (1|prompt) (default: auto's)")
    p.add_argument("--rest-form", default=None, help="parametrisation of the other terms (default: auto's)")
    p.add_argument("--draws", type=int, default=DRAWS)
    p.add_argument("--tune", type=int, default=TUNE)
    p.add_argument("--chains", type=int, default=CHAINS)
    p.add_argument("--target-accept", type=float, default=None)
    p.add_argument("--low-rank", action=argparse.BooleanOptionalAction, default=None,
                   help="nutpie's low-rank modified mass matrix (default: the package's choice for the forms)")
    p.add_argument("--nutpie", action="append", default=[], metavar="KEY=VALUE",
                   help="another nutpie.sample option (e.g. use_grad_based_mass_matrix=false, maxdepth=8)")
    p.add_argument("--prior", action="append", default=[], help="as the CLI's --prior")
    p.add_argument("--label", default="")
    args = p.parse_args()

    t0 = time.perf_counter()
    table = item_cells(args.data, args.prompts, args.item_sd, args.seed)
    d = design(formula.parse(FORMULA), table)
    priors = Priors.from_specs(args.prior)
    forms = term_parametrizations(d, "auto")
    for t in d.terms:
        wanted = args.item_form if t.name == "prompt" else args.rest_form
        forms[t.name] = wanted or forms[t.name]
    target = args.target_accept or (0.95 if any("noncentered" in v for v in forms.values())
                                     else default_target_accept(d, "auto"))
    low_rank = (any(v == "zerosum_signed" for v in forms.values()) if args.low_rank is None else args.low_rank)
    model = fastlogp.CellModel(d, priors, forms)
    ms = gradient_ms(model)
    compiled = fastlogp.pyfunc_model(model, {k: list(v) for k, v in d.coords().items()})
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=SEED,
                               target_accept=target)
    build_s = time.perf_counter() - t0

    import nutpie

    extra = {"low_rank_modified_mass_matrix": low_rank, **dict(_option(o) for o in args.nutpie)}
    wall, cpu = time.perf_counter(), time.process_time()
    idata = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune, chains=settings.chains,
                          seed=settings.seed, target_accept=target, save_warmup=True, progress_bar=False, **extra)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps_all = int(idata.warmup_sample_stats["n_steps"].sum() + idata.sample_stats["n_steps"].sum())
    stats = idata.sample_stats
    import arviz as az

    idata = complete(az.InferenceData(**{g: idata[g] for g in idata.groups() if not g.startswith("warmup_")}),
                      settings)
    result = Fit(d, priors, settings, "auto", idata)
    diag = result.diagnostics
    row = diag.table.filter(diag.table["parameter"] == "sd[prompt]").row(0, named=True)
    sd = idata.posterior["sd_prompt"].values.ravel()
    print(json.dumps({
        "label": args.label, "data": args.data, "item_sd": args.item_sd if args.data == "sim" else 0.0,
        "seed": args.seed, "cells": int(d.observed.sum()), "forms": forms, "target_accept": target,
        "tune": args.tune, "draws": args.draws, "chains": args.chains, "low_rank": low_rank, "nutpie": args.nutpie,
        "priors": args.prior, "build_s": round(build_s, 1), "sample_wall_s": round(wall, 1),
        "sample_cpu_s": round(cpu, 1), "steps_per_draw": round(float(stats["n_steps"].mean()), 1),
        "steps_all": steps_all, "cpu_ms_per_gradient": round(cpu / steps_all * 1e3, 3),
        "timed_ms_per_gradient": round(ms, 3), "step_size": round(float(stats["step_size"].mean()), 4),
        "divergences": diag.divergences, "sd_prompt": {
            "r_hat": round(row["r_hat"], 4), "ess_bulk": round(row["ess_bulk"]), "ess_tail": round(row["ess_tail"]),
            "mean": round(float(sd.mean()), 4), "q05": round(float(np.quantile(sd, 0.05)), 4),
            "q95": round(float(np.quantile(sd, 0.95)), 4)},
        "max_r_hat": round(float(diag.table["r_hat"].max()), 4),
        "min_ess_bulk": round(float(diag.table["ess_bulk"].min())),
        "min_ess_tail": round(float(diag.table["ess_tail"].min())),
        "ok": diag.ok, "failures": diag.failures,
    }), flush=True)


if __name__ == "__main__":
    main()
