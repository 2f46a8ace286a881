"""Report sections of contrasts: between levels of a factor, ranks and P(row > column), and the condition
effects per model.
"""

from __future__ import annotations

import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report import plots
from dvbstats.report.markdown import Figures, bounded, fmt_num, frame, md_table, safe_label, section
from dvbstats.report.markup import text as escape
from dvbstats.report.sections import register
from dvbstats.report.sections.rates import rate_condition
from dvbstats.report.wording import wording
from dvbstats.results import bounds


@register("contrasts")
def contrasts_and_ranks(run: RunFolder, figures: Figures) -> str:
    """Contrasts and ranks (only when the run has ``ranks.csv``): P(row > column) heatmap, rank plot,
    the requested contrasts (``contrasts.csv``)."""
    ranks, superior = frame(run, "ranks"), frame(run, "p_superior")
    if ranks is None or superior is None:
        return ""
    ranks = ranks.sort_values("mean_rank")
    order = ranks["level"].astype(str).tolist()
    interval = float(ranks["interval"].iloc[0])
    top = ranks.iloc[0]
    grid = superior.assign(level=superior["level"].astype(str)).set_index("level").reindex(index=order, columns=order)
    grid.index.name, grid.columns.name = "row", "column"
    w = wording(run.manifest)
    rate = w.rate_for(rate_condition(run))
    best, worst = w.best(rate), w.worst(rate)
    blocks = [
        f"Per posterior draw the models are ranked by {escape(rate)} (1 = {escape(best)}"
        + ("" if w.direction else "; the benchmark states no direction, so rank 1 is not called best")
        + "). "
        f"**{escape(top['level'])}** ranks first with probability {top['p_best']:.2f} (mean rank "
        f"{top['mean_rank']:.1f}, {interval:.0%} rank interval {int(top['rank_low'])}–{int(top['rank_high'])}); "
        + ("@fig-p-superior gives P(row > column) for every pair" if bounds.heatmap_allowed(len(order))
           else "@tbl-p-superior compares each model with the next in rank")
        + ", @fig-ranks each model's rank interval (both in ranks.csv and p_superior.csv).",
        *_p_superior(grid, order, rate, figures),
        figures(lambda: plots.rank_intervals(
                    ranks, interval=interval, names=(f"P({best})", f"P({worst})"), xlabel=f"rank (1 = {best})"),
                "ranks",
                f"Posterior rank of each model (mean and {interval:.0%} rank interval), with P({escape(best)}) and "
                f"P({escape(worst)}).",
                "Posterior rank intervals per model"),
    ]
    contrasts = frame(run, "contrasts")
    if contrasts is not None and not contrasts.empty:
        hdi = f"{run.hdi_prob:.0%} HDI"
        rope = "p_in_rope" in contrasts.columns
        rows = pd.DataFrame({
            "Contrast": [escape(f"{f}: {a} − {b}" if f != "model" else f"{a} − {b}")
                         for f, a, b in contrasts[["factor", "a", "b"]].itertuples(index=False)],
            f"Difference [{hdi}]": [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in
                                    contrasts[["diff_mean", "diff_hdi_low", "diff_hdi_high"]].itertuples(index=False)],
            "P(difference > 0)": [f"{x:.3f}" for x in contrasts["p_diff_above_0"]],
            **({f"P(|difference| < {contrasts['rope'].iloc[0]:g})": [f"{x:.3f}" for x in contrasts["p_in_rope"]]}
               if rope else {}),
        })
        blocks.append(md_table(rows, caption=f"Requested contrasts: posterior difference of design-averaged {escape(rate)} "
                               "(contrasts.csv).", label="contrasts"))
    return section("Contrasts and ranks", "contrasts", *blocks)


def _p_superior(grid: pd.DataFrame, order: list[str], rate: str, figures: Figures) -> list[str]:
    """The P(row > column) heatmap, or past :data:`dvbstats.results.bounds.MAX_HEATMAP_MODELS` models a table of each
    model against the next in rank order (at most :data:`dvbstats.results.bounds.MAX_PAIR_ROWS` rows)."""
    if bounds.heatmap_allowed(len(order)):
        return [figures(lambda: plots.heatmap(grid, colorbar_label=f"P({rate} of row > {rate} of column)"),
                        "p-superior", f"Posterior probability that the row model's design-averaged {escape(rate)} exceeds "
                        "the column model's.", "Heatmap of pairwise probabilities of superiority")]
    shown = list(zip(order, order[1:]))[:bounds.MAX_PAIR_ROWS]
    table = md_table(pd.DataFrame({
        "Model": [escape(a) for a, _ in shown], "Next in rank": [escape(b) for _, b in shown],
        f"P({rate} of model > next)": [fmt_num(grid.loc[a, b], 3) for a, b in shown],
    }), caption=f"Each model against the next one in mean rank: the posterior probability that its {escape(rate)} is "
                "higher (the whole matrix is in p_superior.csv).", label="p-superior", align="llr")
    note = (f"With {len(order)} models the P(row > column) heatmap is not drawn (it is drawn for at most "
            f"{bounds.MAX_HEATMAP_MODELS} models); @tbl-p-superior compares neighbours in rank.")
    more = [bounded("Neighbours in rank", len(shown), len(order) - 1, "p_superior.csv")] if len(order) - 1 > len(shown) else []
    return [note, table, *more]


@register("conditions")
def condition_effects(run: RunFolder, figures: Figures) -> str:
    """Each condition (a categorical fixed effect) minus its reference level on the probability scale,
    for all models and per model (only when the run has ``condition_effects.csv``)."""
    table = frame(run, "condition_effects")
    if table is None or table.empty:
        return ""
    hdi = f"{run.hdi_prob:.0%} HDI"
    w = wording(run.manifest)
    blocks = [w.texts["condition_effects_intro"]] if "condition_effects_intro" in w.texts else []

    def named(factor: str, level: str) -> str:
        return w.rate_for(level) if factor == "condition" and w.rate_by_condition else f"Rate at {level}"

    for (factor, a, b), rows in table.groupby(["factor", "a", "b"], sort=False):
        overall = rows[rows["model"] == "all models"].iloc[0]
        observed = rows["observed"].astype(bool) if "observed" in rows else pd.Series(True, index=rows.index)
        per_model = rows[(rows["model"] != "all models") & observed]
        predicted = rows[~observed]["model"].to_list()
        blocks.append(
            f"**{escape(factor)}: {escape(a)} − {escape(b)}.** Over all models the design-averaged rate moves by "
            f"{overall['diff_mean']:+.3f} ({hdi} {overall['diff_hdi_low']:+.3f} to {overall['diff_hdi_high']:+.3f}; "
            f"P(> 0) = {overall['p_diff_above_0']:.3f}); per model judged under both from "
            f"{per_model['diff_mean'].min():+.3f} to {per_model['diff_mean'].max():+.3f}."
            + (f" Marked *predicted*: {', '.join(escape(m) for m in predicted)}, judged under one of the two only; "
               "their difference sets data against a prediction from the hierarchy (observed = false in "
               "condition_effects.csv)." if predicted else ""))
        display = pd.DataFrame({
            "Model": [escape(m) + ("" if seen else " (predicted)") for m, seen in zip(rows["model"], observed)],
            named(factor, str(b)): [f"{x:.3f}" for x in rows["rate_b"]],
            named(factor, str(a)): [f"{x:.3f}" for x in rows["rate_a"]],
            f"Difference [{hdi}]": [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in
                                    rows[["diff_mean", "diff_hdi_low", "diff_hdi_high"]].itertuples(index=False)],
            "P(difference > 0)": [f"{x:.3f}" for x in rows["p_diff_above_0"]],
        })
        blocks.append(md_table(display, caption=f"{escape(factor)}: {escape(a)} minus {escape(b)} (the reference), "
                               "design-averaged rate per model and for all models (condition_effects.csv).",
                               label=f"condition-{safe_label(factor)}-{safe_label(a)}"))
    return section("Condition effects", "conditions", *blocks)
