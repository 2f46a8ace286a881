"""What a design analysis writes: ``design.csv`` (the sweep), ``recommendation.json`` (the smallest
sufficient design per question, with the prior and the settings), ``design.png`` (assurance against the
number of items, the closed-form curve beside the simulated points), after ``--check`` ``check.csv``, and
with ``--section`` a report section in the pilot's run folder (``sections/design.md`` and its figure)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import polars as pl
import seaborn as sns

from dvbstats.input.runfolder import RunFolder
from dvbstats.planning import closed_form
from dvbstats.planning.prior import DesignPrior
from dvbstats.planning.questions import Question
from dvbstats.report import plots
from dvbstats.report.markdown import md_table
from dvbstats.report.markup import text as escape

#: Points of the closed-form curve between the smallest and largest number of items of the sweep.
CURVE_POINTS = 30
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
    """One panel per contrast and one for every precision question together: simulated assurance (points,
    +-2 MC SE) and the closed form (line) against the number of items, one colour per number of
    repetitions (precision: one line per arm, thin), the target as a dashed line."""
    contrasts = [q for q in questions if q.kind == "contrast"]
    precision = [q for q in questions if q.kind == "precision"]
    panels = [[q] for q in contrasts] + ([precision] if precision else [])
    cols = min(len(panels), PANELS_PER_ROW)
    rows = math.ceil(len(panels) / cols)
    draws = prior.resampled(int(table["n_sims"].max()), seed)  # the sweep's draws
    with plots.style():
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
        for ax, group in zip(axes.ravel(), panels):
            part = table.filter(pl.col("question").is_in([q.label for q in group]))
            grid = np.unique(np.geomspace(part["items"].min(), part["items"].max(), CURVE_POINTS).round().astype(int))
            for q in group:
                mine = part.filter(pl.col("question") == q.label)
                for colour, k in zip(sns.color_palette(), sorted(set(mine["reps"]))):
                    curve = [closed_form.power(draws, q, int(m), k).mean() for m in grid]
                    lines = {"label": f"closed form, K={k}"} if q is group[0] else {}
                    ax.plot(grid, curve, color=colour, lw=1.4 if len(group) == 1 else 0.6, **lines)
                    s = mine.filter((pl.col("reps") == k) & (pl.col("method") == "simulation"))
                    points = {"label": f"simulated, K={k}"} if q is group[0] else {}
                    ax.errorbar(s["items"], s["assurance"], yerr=2 * s["mc_se"], fmt="o", color=colour, ms=4,
                                capsize=2, **points)
            ax.axhline(target, ls="--", color="0.4", lw=1)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(sorted(set(part["items"]))))
            ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_ylim(-0.02, 1.02)
            title = group[0].label if len(group) == 1 else f"precision < {group[0].target:g}, {len(group)} arms"
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("items")
            ax.set_ylabel("assurance")
        for ax in axes.ravel()[len(panels):]:
            ax.set_visible(False)
        axes.ravel()[0].legend(fontsize=7, loc="lower right")
    return fig


def section(recommendation: dict) -> str:
    """The report section (Quarto markdown): the prior, the recommended design per question beside the
    closed form, the figure. Every name from the data is escaped."""
    rows = []
    for q in recommendation["questions"]:
        best, cf = q["simulation"], q["closed_form"]
        rows.append({
            "question": escape(q["question"]), "rule": escape(q["rule"]),
            "smallest design (simulated)": f"{best['items']:,} items x {best['reps']}" if best else "not reached",
            "assurance (MC SE)": f"{best['assurance']:.3f} ({best['mc_se']:.3f})" if best else "–",
            "closed form": f"{cf['items']:,} items x {cf['reps']}" if cf else "not reached",
        })
    target = recommendation["assurance_target"]
    text = (f"The design prior is {escape(recommendation['prior'])} ({recommendation['prior_draws']:,} draws; "
            f"shared item SD {recommendation['item_sd_shared']:.2f}, the arms' own "
            f"{recommendation['item_sd_own']:.2f}, logit scale). For each question, the design with the fewest "
            f"trials per arm among {', '.join(f'{n:,}' for n in recommendation['items'])} items x "
            f"{', '.join(map(str, recommendation['reps']))} repetitions whose simulated assurance "
            f"({recommendation['sims']} simulated runs per design point) reaches {target:g}, beside the "
            "closed form (Miller 2024). See docs/design-analysis.md for the estimands and the design prior.")
    table = md_table(pd.DataFrame(rows), caption="Smallest sufficient design per question", label="design",
                     align="llrrr")
    figure_md = ("![Assurance against the number of items: simulated (points, 2 MC SE) and closed form (lines)]"
                 "(figures/design.png){#fig-design}")
    return f"# Planning the next run {{#sec-design}}\n\n{text}\n\n{table}\n\n{figure_md}\n"


def add_section(run: Path, recommendation: dict, figure_path: Path) -> list[Path]:
    """Add the section and its figure to the run folder ``run`` (``sections/design.md``,
    ``sections/figures/design.png``): ``python -m dvbstats.report RUN`` then shows it."""
    folder = RunFolder.read(run)
    target = run / "sections" / "figures" / "design.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(figure_path.read_bytes())
    return [folder.add_section("design.md", section(recommendation)), target]
