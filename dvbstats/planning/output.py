"""What a design analysis writes: ``design.csv`` (the sweep), ``recommendation.json`` (the smallest
sufficient design per question, with the prior and the settings), ``design.png`` (assurance against the
number of items, the closed-form curve beside the simulated points) and, after ``--check``, ``check.csv``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import polars as pl
import seaborn as sns

from dvbstats.planning import closed_form
from dvbstats.planning.prior import DesignPrior
from dvbstats.planning.questions import Question
from dvbstats.report import plots

#: Points of the closed-form curve between the smallest and largest number of items of the sweep.
CURVE_POINTS = 60
#: Panels per row of the figure.
PANELS_PER_ROW = 3


def write(out: Path, table: pl.DataFrame, recommendation: dict, figure, checks: pl.DataFrame | None) -> list[Path]:
    """Write the files into ``out`` (created if absent); return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "design.csv", out / "recommendation.json", out / "design.png"]
    table.write_csv(paths[0])
    paths[1].write_text(json.dumps(recommendation, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    plots.save(figure, paths[2])
    if checks is not None:
        paths.append(out / "check.csv")
        checks.write_csv(paths[-1])
    return paths


def figure(prior: DesignPrior, questions: Sequence[Question], table: pl.DataFrame, target: float, seed: int):
    """One panel per question: simulated assurance (points, +-2 MC SE) and the closed form (line) against
    the number of items, one colour per number of repetitions, the target as a dashed line."""
    n = len(questions)
    cols = min(n, PANELS_PER_ROW)
    rows = math.ceil(n / cols)
    draws = prior.resampled(int(table["n_sims"].max()), seed)  # the sweep's draws
    with plots.style():
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
        for ax, q in zip(axes.ravel(), questions):
            part = table.filter(pl.col("question") == q.label)
            grid = np.unique(np.geomspace(part["items"].min(), part["items"].max(), CURVE_POINTS).round().astype(int))
            for colour, k in zip(sns.color_palette(), sorted(set(part["reps"]))):
                curve = [closed_form.power(draws, q, int(m), k).mean() for m in grid]
                ax.plot(grid, curve, color=colour, lw=1.4, label=f"closed form, K={k}")
                s = part.filter((pl.col("reps") == k) & (pl.col("method") == "simulation"))
                ax.errorbar(s["items"], s["assurance"], yerr=2 * s["mc_se"], fmt="o", color=colour, ms=4,
                            capsize=2, label=f"simulated, K={k}")
            ax.axhline(target, ls="--", color="0.4", lw=1)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(sorted(set(part["items"]))))
            ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(q.label, fontsize=9)
            ax.set_xlabel("items")
            ax.set_ylabel("assurance")
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        axes.ravel()[0].legend(fontsize=7, loc="lower right")
    return fig
