"""Sampler cost of HVSB's default formula (item effects ``(1|item)``), per parametrisation and tuning setting.

The embedded synthetic HVSB example (12 models x 2,000 items x 3 conditions, ~67,700 single-trial
cells), or with ``--tree`` simulated smaller trees (one per seed of ``--seeds``), is loaded once;
each configuration is sampled with nutpie through the hand-written density (``fastlogp``) in this
process, one after the other, so the figures of one run are comparable.
Per configuration: CPU seconds (process time: nutpie's threads included) and wall seconds of
sampling, leapfrog steps per draw during tuning and after it, the final step sizes, ms of CPU per
gradient, and the checks of the fit (max R-hat, min bulk/tail ESS, divergences) as the CLI reads
them. Forms are given per term: ``item=zerosum_noncentered,rest=zerosum`` etc., or for the whole
model as ``form=<parametrization>`` (with the package's target acceptance and mass matrix for it);
``auto`` is the package's rule, ``first`` the form a default fit samples first (the rule, or HVSB's
measured form where the data are deep enough: ``model.plan.first_form``).

    .venv/bin/python benchmarks/bench_hvsb_items.py --config auto --config "item=zerosum,rest=zerosum"
    .venv/bin/python benchmarks/bench_hvsb_items.py --tree 4,2,50 --seeds 1,2,3 --config first --config form=zerosum
    .venv/bin/python benchmarks/bench_hvsb_items.py --tree 4,2,200 --config first --prior "cor=lkj(4)"
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._common import stamp  # noqa: E402


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def parse_config(text: str, d, measured: str | None) -> tuple[dict[str, str], dict]:
    """``key=value`` pairs: term names (or ``rest``) -> form; ``form`` -> one parametrisation for the
    model, with the package's target acceptance and mass matrix for it; ``ta``, ``tune``, ``lowrank``,
    ``gamma``, ``switch``, ``earlyswitch``, ``maxdepth``, ``gradmm``, ``windowswitch``, ``earlywindow``, ``initstep``,
    ``mindepth`` -> sampler options (nutpie's settings of those names); ``auto`` is the
    package's rule, ``first`` the form a default fit samples first (either may be followed by options:
    ``first,initstep=0.5``)."""
    from dvbstats.model.plan import default_low_rank, default_target_accept, first_form, term_parametrizations

    pairs = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    rule = text.split(",")[0]
    if rule in ("auto", "first"):  # the rule's forms, with any sampler options after it
        pairs["form"] = first_form(d, "auto", measured) if rule == "first" else "auto"
    if "form" in pairs:
        form = pairs.pop("form")
        pairs.setdefault("ta", str(default_target_accept(d, form)))
        if default_low_rank(d, form):
            pairs.setdefault("lowrank", "1")
        return term_parametrizations(d, form), pairs
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

    ta = float(opts.get("ta", 0.95 if any("noncentered" in f or f.endswith("signed") for f in forms.values()) else 0.8))
    tune = int(opts.get("tune", 500))
    kwargs = {}
    if opts.get("lowrank", "0") != "0":
        kwargs["low_rank_modified_mass_matrix"] = True
    for key, name, cast in (("gamma", "mass_matrix_gamma", float), ("switch", "mass_matrix_switch_freq", int),
                            ("earlyswitch", "early_mass_matrix_switch_freq", int), ("maxdepth", "maxdepth", int),
                            ("gradmm", "use_grad_based_mass_matrix", lambda v: v == "1"),
                            ("windowswitch", "window_switch_freq", int), ("earlywindow", "early_window_switch_freq", int),
                            ("initstep", "initial_step", float), ("mindepth", "mindepth", int)):
        if key in opts:
            kwargs[name] = cast(opts[key])
    compiled = fastlogp.compile_model(d, priors, forms)
    c0, t0 = cpu(), time.perf_counter()
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, target_accept=ta,
                          save_warmup=True, progress_bar=False, **kwargs)
    c1, t1 = cpu(), time.perf_counter()
    warm, post = idata.warmup_sample_stats, idata.sample_stats
    steps_tune, steps_draw = int(warm["n_steps"].sum()), int(post["n_steps"].sum())
    edges = [e for e in (0, 25, 50, 100, 200, 300, 400, tune) if e <= tune]
    windows = {f"{a}-{b}": round(float(warm["n_steps"].isel(draw=slice(a, b)).mean()), 1) for a, b in zip(edges, edges[1:])}
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, seed=seed, target_accept=ta)
    fit = Fit(d, priors, settings, "auto", idata)
    dg = fit.diagnostics.summary()
    worst = fit.diagnostics.table.sort("ess_bulk").row(0, named=True)
    return {
        "cpu_s": c1 - c0, "wall_s": t1 - t0, "ta": ta, "tune": tune,
        "steps_per_draw_tune": steps_tune / (chains * tune), "steps_per_draw": steps_draw / (chains * draws),
        "tuning_steps_by_window": windows,
        "ms_per_grad": 1000 * (c1 - c0) / (steps_tune + steps_draw),
        "step_size": [round(float(x), 4) for x in post["step_size"].isel(draw=-1).values],
        "max_r_hat": dg["max_r_hat"], "min_ess_bulk": dg["min_ess_bulk"], "min_ess_tail": dg["min_ess_tail"],
        "divergences": dg["divergences"], "ok": dg["ok"], "worst": worst["parameter"],
    }


def small_tree(spec: str, seed: int, root: Path):
    """A simulated HVSB tree ``models,datasets,items[,types]``: the first models of the example, the first
    datasets with their first ``types`` (2) scenario types, ``items`` per dataset; the example's effects."""
    import dvbstats as dvb
    from dvbstats.simulate.hvsb import EXAMPLE_FAMILIES, SCENARIO_TYPES, HvsbDesign, draw_hvsb_effects, simulate_hvsb

    n_models, n_datasets, n_items, *types = (int(x) for x in spec.split(","))
    datasets = list(SCENARIO_TYPES.items())[:n_datasets]
    design = HvsbDesign(families=dict(list(EXAMPLE_FAMILIES.items())[:n_models]),
                        scenario_types={k: v[:types[0] if types else 2] for k, v in datasets}, n_items=n_items)
    simulate_hvsb(draw_hvsb_effects(design, seed), design, root / str(seed), seed=seed)
    return dvb.load(root / str(seed), benchmark="hvsb")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", default=[], help="per-term forms and sampler options (repeatable)")
    p.add_argument("--formula", default=None, help="default: HVSB's default formula")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--tree", help="simulate models,datasets,items[,types per dataset] instead of the example")
    p.add_argument("--seeds", default="1", help="with --tree: the trees' seeds, comma-separated")
    p.add_argument("--prior", action="append", default=[], help="NAME=DIST(args) as the CLI's --prior (repeatable)")
    args = p.parse_args()

    import dvbstats as dvb
    from dvbstats.benchmarks.hvsb import HVSB
    from dvbstats.model.design import design
    from dvbstats.model.plan import trials_per_level
    from dvbstats.model.priors import Priors

    text = args.formula or HVSB.default_formula
    passed: dict[str, list[bool]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tree_seed in [int(x) for x in args.seeds.split(",")] if args.tree else [None]:
            data = small_tree(args.tree, tree_seed, Path(tmp)) if args.tree else dvb.load(None, benchmark="hvsb")
            model = dvb.Model(text, data)
            d = design(model.formula, model.cells)
            n = d.cells.data["n_trials"].to_numpy()
            depth = {t.name: float(np.median(trials_per_level(t, n))) for t in d.random}
            print(f"{stamp()}  {text}: {args.tree or 'example'} (tree seed {tree_seed}) {d.cells.data.height:,} "
                  f"cells, {int(n.sum()):,} trials, median trials per level {depth}; "
                  f"{args.chains} chains x {args.draws} draws", flush=True)
            for config in args.config or ["auto"]:
                forms, opts = parse_config(config, d, model.measured_form)
                r = run(d, Priors.from_specs(args.prior), forms, opts, args.draws, args.chains, args.seed)
                passed.setdefault(config, []).append(r["ok"])
                print(f"{stamp()}  [{config}] forms {forms}", flush=True)
                print("    " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
                      flush=True)
    for config, oks in passed.items():
        print(f"[{config}] checks passed in {sum(oks)} of {len(oks)}")


if __name__ == "__main__":
    main()
