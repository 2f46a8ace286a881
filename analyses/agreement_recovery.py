"""Does the agreement model recover a known same-group effect? And what does pairing change?

Simulates, per seed, 9 models in groups of 2, 5 and 2 (the DVB developers' shape) answering the
same items, with group-level item propensities (``dvbstats.simulate.dvb.shared_propensity_trials``):
once with a same-group effect of about the paper's size and once with none. Each data set is
analysed four ways (:data:`dvbstats.results.agreement.METHODS`); the table and figure show each interval
against the truth of the population of pairs the simulator draws from
(:func:`dvbstats.simulate.population_agreement_effect`, as ``analyses/calibration.py`` scores the agreement
model): the Bayesian model's pair effects are a distribution, so its effect is that population's. The effect
of the 36 simulated pairs themselves (from their probabilities, no sampling noise) stays beside it (``finite_pp``,
``finite_logit`` in ``recovery.csv``; ``coverage_finite`` in ``summary.csv``). The paired McNemar test is set
beside the unpaired chi-square on the same simulated trials (items differ in difficulty, so
pairing matters here, unlike in the synthetic example where choices vary only with the design).

    .venv/bin/python analyses/agreement_recovery.py [--seeds 8] [--out runs/agreement_recovery]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from dvbstats.input.registry import ModelTable
from dvbstats.model.sample import SamplerSettings
from dvbstats.report import plots
from dvbstats.results import agreement
from dvbstats.simulate import dvb as simulate

GROUPS = {**{f"a{i}": "A" for i in range(2)}, **{f"b{i}": "B" for i in range(5)}, **{f"c{i}": "C" for i in range(2)}}
SCENARIOS = {"same-group effect": 0.8, "no effect": 0.0}  # sd of the group-level item propensities
N_ITEMS = 3000


def model_table() -> ModelTable:
    return ModelTable(pl.DataFrame({
        "model_id": list(GROUPS), "short_name": list(GROUPS), "developer": list(GROUPS.values()),
        "family": list(GROUPS.values()), "size_rank_in_family": [None] * len(GROUPS), "params_b": [None] * len(GROUPS)}))


def one(seed: int, sd_group_item: float, settings: SamplerSettings) -> tuple[list[dict], dict]:
    sim = simulate.shared_propensity_trials(GROUPS, n_items=N_ITEMS, seed=seed, sd_group_item=sd_group_item)
    res = agreement.agreement_analysis(sim.trials, model_table(), group="developer", settings=settings)
    rows = [{**r, "seed": seed, "truth_pp": sim.population_pp, "truth_logit": sim.population_logit,
             "finite_pp": sim.effect_pp, "finite_logit": sim.effect_logit,
             "divergences": res.notes["diagnostics"]["divergences"], "max_r_hat": res.notes["diagnostics"]["max_r_hat"]}
            for r in res.models.to_dicts()]
    t = res.tests
    tests = {"seed": seed, "se_ratio_median": float((t["se_paired"] / t["se_unpaired"]).median()),
             "mcnemar_holm_sig": int((t["mcnemar_p_holm"] < 0.05).sum()),
             "chi2_holm_sig": int((t["chi2_p_holm"] < 0.05).sum()), "n_pairs": t.height}
    return rows, tests


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("runs/agreement_recovery"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = SamplerSettings(seed=1)
    rows, tests = [], []
    for scenario, sd in SCENARIOS.items():
        for seed in range(1, args.seeds + 1):
            r, t = one(seed, sd, settings)
            rows += [{**x, "scenario": scenario} for x in r]
            tests.append({**t, "scenario": scenario})
            print(f"{scenario} seed {seed}: truth {r[0]['truth_pp']:+.2f} pp (these pairs {r[0]['finite_pp']:+.2f}); "
                  + "; ".join(f"{x['method']} {x['estimate']:+.2f} [{x['low']:+.2f}, {x['high']:+.2f}]"
                              for x in r if x["scale"] == "percentage points"), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "recovery.csv", index=False)
    pd.DataFrame(tests).to_csv(args.out / "paired.csv", index=False)
    summary = summarise(table)
    summary.to_csv(args.out / "summary.csv", index=False)
    print(summary.to_string(index=False))
    print(pd.DataFrame(tests).groupby("scenario")[["se_ratio_median", "mcnemar_holm_sig", "chi2_holm_sig"]].mean())
    pp = table[table["scale"] == "percentage points"]
    with plots.style():
        plots.save(recovery_figure(pp), args.out / "recovery.png")


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Coverage, mean interval width and mean error (estimate - truth) per scenario, method and scale, against the
    population truth; ``coverage_finite``: coverage of the simulated pairs' own effect."""
    logit = table["scale"] == "log-odds"
    truth = np.where(logit, table["truth_logit"], table["truth_pp"])
    finite = np.where(logit, table["finite_logit"], table["finite_pp"])
    t = table.assign(covered=(table["low"] <= truth) & (truth <= table["high"]), width=table["high"] - table["low"],
                     covered_finite=(table["low"] <= finite) & (finite <= table["high"]), error=table["estimate"] - truth)
    return (t.groupby(["scenario", "method", "scale"], sort=False)
            .agg(n=("covered", "size"), coverage=("covered", "mean"), coverage_finite=("covered_finite", "mean"),
                 mean_width=("width", "mean"), mean_error=("error", "mean"),
                 rmse=("error", lambda e: float(np.sqrt(np.mean(e**2)))))
            .reset_index())


def recovery_figure(pp: pd.DataFrame):
    """Per scenario and seed, each method's interval (percentage points) against the truth (cross)."""
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(pp["scenario"]))
    methods = list(dict.fromkeys(pp["method"]))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(plots.WIDTH + 2, 4.6), sharey=True, squeeze=False)
    colours = list(plots.OKABE_ITO.values())
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        rows = pp[pp["scenario"] == scenario]
        seeds = sorted(rows["seed"].unique())
        for k, method in enumerate(methods):
            m = rows[rows["method"] == method].set_index("seed").loc[seeds]
            x = np.arange(len(seeds)) + (k - (len(methods) - 1) / 2) * 0.18
            ax.errorbar(x, m["estimate"], yerr=[m["estimate"] - m["low"], m["high"] - m["estimate"]], fmt="o",
                        color=colours[k], markersize=3.5, elinewidth=1.3, label=method)
        truth = rows.drop_duplicates("seed").set_index("seed").loc[seeds, "truth_pp"]
        ax.scatter(np.arange(len(seeds)), truth, marker="x", color="black", s=50, zorder=4, label="truth (population)")
        ax.axhline(0, color=plots.REFERENCE, linewidth=0.8)
        ax.set_xticks(np.arange(len(seeds)), [str(s) for s in seeds])
        ax.set_xlabel("seed")
        ax.set_title(scenario, loc="left")
    axes[0, 0].set_ylabel("same-group minus cross-group agreement (points)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=3)
    return fig


if __name__ == "__main__":
    main()
