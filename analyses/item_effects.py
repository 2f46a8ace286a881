"""What item effects ``(1|prompt)`` change: model contrasts with and without them, against the truth.

Every model answers the same prompts, so a prompt that is hard for one model tends to be hard for
all: model contrasts are paired. Data are simulated with a per-prompt effect of SD ``--item-sd``
shared by all models (``dvbstats.simulate(..., item_sd=...)``); for every seed both formulas are
fitted to the same trials:

* ``default``: ``chose_deep ~ 1 + log_n_train + (1|model) + (1|value) + (1|feature) + (1|context)``
  (cells pool the prompts of a design cell: no item effects, contrasts unpaired);
* ``items``: the same plus ``(1|prompt)`` (cells are model x prompt: contrasts paired).

For every pair of models the contrast is the difference of their design-averaged rates
(``Fit.dvgr``); its truth is the difference of the true rates averaged over the same prompts
(``Simulation.truth.dvgr_true``). Prints and writes (``--out``) per fit the coverage of the 94%
HDIs and their median width, and a figure of widths and errors.

    python analyses/item_effects.py [--seeds 4] [--models 4] [--prompts 1500] [--item-sd 1.5]
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

import arviz as az
import numpy as np
import polars as pl

from dvbstats.constants import DRAWS, HDI_PROB
from dvbstats.input import cells
from dvbstats.model import formula
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit
from dvbstats.simulate import example, dvb as simulate

FORMULAS = {
    "default": formula.DEFAULT_FORMULA,
    "items": formula.DEFAULT_FORMULA + " + (1|prompt)",
}


def trials(sim: simulate.Simulation) -> pl.DataFrame:
    """The simulated trials in the canonical trial table's terms (model = model id)."""
    return sim.trials.with_columns(
        model=pl.col("model_id"), status=pl.when("parsed").then(pl.lit("used")).otherwise(pl.lit("unparsed")))


def contrasts(seed: int, n_models: int, n_prompts: int, item_sd: float, hdi: float,
              settings: SamplerSettings) -> pl.DataFrame:
    """One row per model pair and formula: posterior mean and HDI of the contrast, its truth, diagnostics."""
    effects, design = example.example_effects()
    models = list(effects.model)[:n_models]
    effects = replace(effects, model={m: effects.model[m] for m in models}, model_value={})
    sim = simulate.simulate(effects, replace(design, n_prompts=n_prompts), seed=seed, unparsed_rate=0.03,
                            item_sd=item_sd)
    truth = dict(zip(sim.truth["model_id"], sim.truth["dvgr_true"]))
    rows = []
    for name, text in FORMULAS.items():
        f = formula.parse(text)
        result = fit(f, cells.from_trials(trials(sim), f.variables), settings=replace(settings, seed=seed),
                     progress=False)
        diag = result.diagnostics
        dvgr = result.dvgr
        for a, b in itertools.combinations(models, 2):
            diff = (dvgr.sel(model=a) - dvgr.sel(model=b)).values.ravel()
            low, high = az.hdi(diff, hdi_prob=hdi)
            rows.append({"seed": seed, "formula": name, "a": a, "b": b, "truth": truth[a] - truth[b],
                         "mean": diff.mean(), "hdi_low": low, "hdi_high": high, "diag_ok": diag.ok, "failures": "; ".join(diag.failures),
                         "sample_s": result.timing["sample_s"], "cells": result.cells.data.height})
    return pl.DataFrame(rows).with_columns(
        width=pl.col("hdi_high") - pl.col("hdi_low"),
        covered=(pl.col("hdi_low") <= pl.col("truth")) & (pl.col("truth") <= pl.col("hdi_high")),
        error=pl.col("mean") - pl.col("truth"),
    )


def summary(table: pl.DataFrame) -> pl.DataFrame:
    return table.group_by("formula", maintain_order=True).agg(
        n_contrasts=pl.len(), coverage=pl.col("covered").mean(), median_width=pl.col("width").median(),
        rmse=(pl.col("error") ** 2).mean().sqrt(), all_diagnostics_ok=pl.col("diag_ok").all(),
        median_sample_s=pl.col("sample_s").median(), cells=pl.col("cells").first(),
    )


def width_ratio(table: pl.DataFrame) -> pl.Series:
    """Per contrast: width with item effects over width without (paired over seed and pair)."""
    wide = table.pivot(on="formula", index=["seed", "a", "b"], values="width")
    return wide["items"] / wide["default"]


def plot(table: pl.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    wide = table.pivot(on="formula", index=["seed", "a", "b"], values="width")
    axes[0].scatter(wide["default"], wide["items"], s=14)
    lim = [0, float(max(wide["default"].max(), wide["items"].max())) * 1.05]
    axes[0].plot(lim, lim, color="grey", lw=1)
    axes[0].set(xlabel="94% HDI width, default formula", ylabel="94% HDI width, + (1|prompt)",
                title="Width of model contrasts", xlim=lim, ylim=lim)
    for name, marker in (("default", "o"), ("items", "s")):
        sub = table.filter(pl.col("formula") == name).with_row_index("i")
        axes[1].errorbar(sub["i"].to_numpy() + (0.2 if name == "items" else 0), sub["error"],
                         yerr=[(sub["mean"] - sub["hdi_low"]).to_numpy(), (sub["hdi_high"] - sub["mean"]).to_numpy()],
                         fmt=marker, ms=3, lw=0.8, label=name)
    axes[1].axhline(0, color="grey", lw=1)
    axes[1].set(xlabel="contrast (seed x model pair)", ylabel="posterior mean - truth (with 94% HDI)",
                title="Errors of model contrasts")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--models", type=int, default=4)
    p.add_argument("--prompts", type=int, default=1500)
    p.add_argument("--item-sd", type=float, default=1.5)
    p.add_argument("--hdi", type=float, default=HDI_PROB)
    p.add_argument("--draws", type=int, default=DRAWS)
    p.add_argument("--out", type=Path, default=Path("analyses/out/item_effects"))
    args = p.parse_args()
    settings = SamplerSettings(draws=args.draws)
    table = pl.concat([contrasts(s, args.models, args.prompts, args.item_sd, args.hdi, settings)
                       for s in range(1, args.seeds + 1)])
    args.out.mkdir(parents=True, exist_ok=True)
    table.write_csv(args.out / "contrasts.csv")
    s = summary(table)
    s.write_csv(args.out / "summary.csv")
    plot(table, args.out / "item_effects.png")
    ratio = width_ratio(table)
    with pl.Config(tbl_cols=-1, tbl_width_chars=200):
        print(s)
    print(f"width with / without (1|prompt), per contrast: median {ratio.median():.3f} "
          f"(min {ratio.min():.3f}, max {ratio.max():.3f}); narrower in {(ratio < 1).mean():.0%} of contrasts")


if __name__ == "__main__":
    main()
