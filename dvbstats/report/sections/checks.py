"""Report sections that check the fit and the data: the posterior and prior predictive checks, the sampler
diagnostics and the data quality (rows per status).
"""

from __future__ import annotations

import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report import plots
from dvbstats.report.markdown import Figures, absent, fmt_int, fmt_num, frame, md_table, section
from dvbstats.report.markup import text as escape
from dvbstats.report.sections import register
from dvbstats.report.sections.rates import failures, quantity
from dvbstats.report.wording import wording


#: Diagnostics rows listed in the report (worst R-hat first); the full table is in the run folder.
WORST_ROWS = 10


@register("ppc")
def ppc(run: RunFolder, figures: Figures) -> str:
    """Section 7: posterior predictive check by model and by value."""
    table = frame(run, "ppc")
    if table is None or table.empty:
        return section("Posterior predictive check", "ppc", absent("no posterior predictive summaries (ppc.csv)"))
    return _predictive(run, table, figures, "ppc", "Posterior predictive check", "posterior predictive distribution",
                       "the model misses these groups.")


@register("prior_predictive")
def prior_predictive(run: RunFolder, figures: Figures) -> str:
    """The prior predictive check (only when the run was asked for one: ``prior_predictive.csv``)."""
    table = frame(run, "prior_predictive")
    if table is None or table.empty:
        return ""
    return _predictive(run, table, figures, "prior-predictive", "Prior predictive check",
                       "distribution the priors alone predict",
                       "the priors rule these rates out, so they are not weakly informative here.")


def _predictive(run: RunFolder, table: pd.DataFrame, figures: Figures, label: str, title: str, what: str,
                miss: str) -> str:
    """Observed rates against a predictive distribution, by model and by value: a verdict and a plot."""
    outside = (table["observed"] < table["predicted_low"]) | (table["observed"] > table["predicted_high"])
    groups = ", ".join(f"{escape(g)}" for g in dict.fromkeys(table["by"]))
    verdict = (
        f"All {len(table)} observed rates (by {groups}) fall inside their predictive intervals."
        if not outside.any() else
        f"{int(outside.sum())} of {len(table)} observed rates fall outside their predictive intervals: "
        + ", ".join(f"{escape(b)} *{escape(lv)}*" for b, lv in zip(table.loc[outside, "by"], table.loc[outside, "level"], strict=True))
        + "; " + miss
    )
    fig = figures(lambda: plots.posterior_predictive(table, interval_label=f"{run.hdi_prob:.0%} interval",
                                                     xlabel=wording(run.manifest).rate,
                                                     reference=wording(run.manifest).reference), label,
                  f"Observed rate (cross) against the {what} (dot: mean; bar: interval).", f"{title} plot")
    return section(title, label, verdict, fig)


@register("diagnostics")
def diagnostics(run: RunFolder, figures: Figures) -> str:
    """Section 8: R-hat, ESS, divergences, the worst parameters, rank plots."""
    d = run.diagnostics
    summary = pd.DataFrame({
        "Check": ["all checks passed", "max R-hat", "min bulk ESS", "min tail ESS", "divergences"],
        "Value": ["yes" if d.get("ok") else "**no**", fmt_num(d.get("max_r_hat", float("nan")), 3),
                  fmt_int(d.get("min_ess_bulk", float("nan"))), fmt_int(d.get("min_ess_tail", float("nan"))),
                  fmt_int(d.get("divergences", float("nan")))],
    })
    blocks = [md_table(summary, caption="Sampler diagnostics.", label="diagnostics", align="lr")]
    if d.get("failures"):
        blocks.append("Failed checks:\n\n" + "\n".join(f"- {escape(f)}" for f in failures(run)))
    table = frame(run, "diagnostics")
    if table is not None and not table.empty:
        worst = table.sort_values(["r_hat", "ess_bulk"], ascending=[False, True]).head(WORST_ROWS)
        cells = pd.DataFrame({
            "Parameter": [escape(quantity(run, p)) for p in worst["parameter"]],
            "R-hat": [fmt_num(x, 3) for x in worst["r_hat"]],
            "Bulk ESS": [fmt_int(x) for x in worst["ess_bulk"]],
            "Tail ESS": [fmt_int(x) for x in worst["ess_tail"]],
        })
        blocks.append(md_table(cells, label="rhat", caption=(
            f"The {len(worst)} reported quantities with the highest R-hat (of {len(table)}; all are in "
            "diagnostics.csv).")))
    draws = run.posterior_draws()
    if draws:
        blocks.append(figures(lambda: plots.rank_plot(draws), "rank",
                              "Rank plots of the top-level parameters, one line per chain; flat and "
                              "overlapping means the chains mixed.", "Rank plots"))
    else:
        blocks.append(absent("no posterior draws (posterior.nc) for rank plots"))
    return section("Diagnostics", "diagnostics", *blocks)


@register("quality")
def data_quality(run: RunFolder, figures: Figures) -> str:
    """Section 9: unparseable rate per model, reconciled duplicates, excluded rows."""
    quality = frame(run, "data_quality")
    if quality is None:
        return section("Data quality", "data-quality", absent(
            "the run was fitted to aggregated counts, so there are no per-trial status counts"))
    rate = quality["n_unparsed"] / quality["n_prompts"]
    cells = pd.DataFrame({
        "Model": [escape(m) for m in quality["model"]],
        "Rows": [fmt_int(x) for x in quality["n_rows"]],
        "Prompts": [fmt_int(x) for x in quality["n_prompts"]],
        "Used": [fmt_int(x) for x in quality["n_used"]],
        "Unparsed": [fmt_int(x) for x in quality["n_unparsed"]],
        "Unparsed (% of prompts)": [f"{100 * r:.1f}%" for r in rate],
        **{label: [fmt_int(x) for x in quality[col]] for col, label in
           (("n_superseded", "Superseded duplicates"), ("n_conflict", "Conflicting duplicates")) if col in quality},
    })
    blocks = [md_table(cells, caption="Trial status per model: every harness row is counted once.", label="quality")]
    blocks.append(figures(
        lambda: plots.bar_rates(pd.Series(rate.to_numpy(), index=quality["model"]), xlabel="unparsed responses (% of prompts)"),
        "unparsed", "Share of prompts whose response could not be parsed (or whose API call failed), per model.",
        "Bar chart of unparsed rates",
    ))
    reconciliation = frame(run, "reconciliation")
    if reconciliation is not None and not reconciliation.empty:
        actions = reconciliation.groupby("action").agg(prompts=("n_copies", "size"), copies=("n_copies", "sum")).reset_index()
        blocks.append(md_table(
            pd.DataFrame({"Action": [escape(a) for a in actions["action"]], "Prompts": [fmt_int(x) for x in actions["prompts"]],
                          "Copies": [fmt_int(x) for x in actions["copies"]]}),
            caption="Prompts seen more than once and how their copies were reconciled (details in reconciliation.csv).",
            label="reconciliation", align="lrr"))
    else:
        blocks.append("No prompt was seen more than once: there were no duplicates to reconcile.")
    return section("Data quality", "data-quality", *blocks)
