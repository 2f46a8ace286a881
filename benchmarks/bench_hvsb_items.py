"""Sampler cost of HVSB's formula with item effects ``(1|item)``, per parametrisation and tuning setting.

The embedded synthetic HVSB example (12 models x 2,000 items x 3 conditions, ~67,700 single-trial
cells) is loaded once; each configuration is sampled with nutpie through the hand-written density
(``fastlogp``) in this process, one after the other, so the figures of one run are comparable.
Per configuration: CPU seconds (process time: nutpie's threads included) and wall seconds of
sampling, leapfrog steps per draw during tuning and after it, the final step sizes, ms of CPU per
gradient, and the checks of the fit (max R-hat, min bulk/tail ESS, divergences) as the CLI reads
them. Forms are given per term: ``item=zerosum_noncentered,rest=zerosum`` etc.; ``auto`` is the
package's rule.

    .venv/bin/python benchmarks/bench_hvsb_items.py --config auto --config "item=zerosum,rest=zerosum"
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._common import stamp  # noqa: E402

ITEM_FORMULA = "misaligned ~ 1 + condition + (1 + condition | model) + (1|scenario_type) + (1|item)"


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def parse_config(text: str, d) -> tuple[dict[str, str], dict]:
    """``key=value`` pairs: term names (or ``rest``) -> form; ``ta``, ``tune``, ``lowrank``, ``gamma``,
    ``switch``, ``earlyswitch``, ``maxdepth`` -> sampler options; ``auto`` alone is the package's rule."""
    from dvbstats.model.design import term_parametrizations

    pairs = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    forms = term_parametrizations(d, "auto")
    rest = pairs.pop("rest", None)
    for name in forms:
        if name in pairs:
            forms[name] = pairs.pop(name)
        elif rest:
            forms[name] = rest
    return forms, pairs


def run(d, priors, forms: dict[str, str], opts: dict, draws: int, chains: int, seed: int) -> dict:
    import nutpie

    from dvbstats.model import fastlogp
    from dvbstats.model.sample import SamplerSettings
    from dvbstats.results.fitted import Fit

    ta = float(opts.get("ta", 0.95 if any("noncentered" in f for f in forms.values()) else 0.8))
    tune = int(opts.get("tune", 500))
    kwargs = {}
    if "lowrank" in opts:
        kwargs["low_rank_modified_mass_matrix"] = True
    for key, name, cast in (("gamma", "mass_matrix_gamma", float), ("switch", "mass_matrix_switch_freq", int),
                            ("earlyswitch", "early_mass_matrix_switch_freq", int), ("maxdepth", "maxdepth", int),
                            ("gradmm", "use_grad_based_mass_matrix", lambda v: v == "1")):
        if key in opts:
            kwargs[name] = cast(opts[key])
    compiled = fastlogp.compile_model(d, priors, forms)
    c0, t0 = cpu(), time.perf_counter()
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, target_accept=ta,
                          save_warmup=True, progress_bar=False, **kwargs)
    c1, t1 = cpu(), time.perf_counter()
    warm, post = idata.warmup_sample_stats, idata.sample_stats
    steps_tune, steps_draw = int(warm["n_steps"].sum()), int(post["n_steps"].sum())
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, seed=seed, target_accept=ta)
    fit = Fit(d, priors, settings, "auto", idata)
    dg = fit.diagnostics.summary()
    worst = fit.diagnostics.table.sort("ess_bulk").row(0, named=True)
    return {
        "cpu_s": c1 - c0, "wall_s": t1 - t0, "ta": ta, "tune": tune,
        "steps_per_draw_tune": steps_tune / (chains * tune), "steps_per_draw": steps_draw / (chains * draws),
        "ms_per_grad": 1000 * (c1 - c0) / (steps_tune + steps_draw),
        "step_size": [round(float(x), 4) for x in post["step_size"].isel(draw=-1).values],
        "max_r_hat": dg["max_r_hat"], "min_ess_bulk": dg["min_ess_bulk"], "min_ess_tail": dg["min_ess_tail"],
        "divergences": dg["divergences"], "ok": dg["ok"], "worst": worst["parameter"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", default=[], help="per-term forms and sampler options (repeatable)")
    p.add_argument("--formula", default=ITEM_FORMULA)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args()

    import dvbstats as dvb
    from dvbstats.model.design import design
    from dvbstats.model.formula import parse
    from dvbstats.model.priors import Priors

    data = dvb.load(None, benchmark="hvsb")
    formula = parse(args.formula)
    d = design(formula, data.cells(formula))
    n = d.cells.data["n_trials"].to_numpy()
    print(f"{stamp()}  {args.formula}: {d.cells.data.height:,} cells, {int(n.sum()):,} trials; "
          f"{args.chains} chains x {args.draws} draws", flush=True)
    for text in args.config or ["auto"]:
        forms, opts = parse_config(text, d)
        r = run(d, Priors({}), forms, opts, args.draws, args.chains, args.seed)
        print(f"{stamp()}  [{text}] forms {forms}", flush=True)
        print("    " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
              flush=True)


if __name__ == "__main__":
    main()
