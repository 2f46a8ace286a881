"""Report sections on size: the training-set size effect and the scaling tests with model size."""

from __future__ import annotations

import math

import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report import markup
from dvbstats.report import plots
from dvbstats.report.markdown import Figures, absent, callout, fmt_int, fmt_num, fmt_p, frame, md_table, section
from dvbstats.report.markup import text as escape
from dvbstats.report.narrative import dvgr as fmt_dvgr
from dvbstats.report.narrative import interval as fmt_interval
from dvbstats.report.sections import register
from dvbstats.report.sections.rates import raw_rates, rate_condition, slope_failures
from dvbstats.report.wording import Wording, wording
from dvbstats.results import population


@register("training_size")
def training_size(run: RunFolder, models: pd.DataFrame, figures: Figures) -> str:
    """Section 6: the training-set size effect (fitted slope, DVGR by size, observed rates per model)."""
    blocks = []
    hdi = f"{run.hdi_prob:.0%} HDI"
    fixed = frame(run, "fixed")
    slopes = fixed[fixed["term"].astype(str).str.contains("n_train")] if fixed is not None else fixed
    for _, row in (slopes.iterrows() if slopes is not None else []):
        term = str(row["term"]).removeprefix("b_")
        text = (f"The fitted slope on {markup.code(term)} is {fmt_num(row['mean'], 3)} ({hdi} "
                f"{fmt_num(row['hdi_low'], 3)} to {fmt_num(row['hdi_high'], 3)}) on the log-odds scale")
        if row.get("estimand") == population.LEVEL_MEAN:
            text += (f", the mean over the fitted models (population slope, as lme4 and brms report it: "
                     f"{fmt_num(row['pop_mean'], 3)}, {hdi} {fmt_num(row['pop_hdi_low'], 3)} to "
                     f"{fmt_num(row['pop_hdi_high'], 3)})")
        if term == "log_n_train":
            factors = [math.exp(math.log(2) * float(row[c])) for c in ("mean", "hdi_low", "hdi_high")]
            text += (f": doubling the number of in-context examples multiplies the odds of a deep-value "
                     f"choice by {factors[0]:.2f} ({factors[1]:.2f}–{factors[2]:.2f})")
        blocks.append(text + ".")
    margins = frame(run, "margins")
    by_size = margins[margins["factor"] == "n_train"] if margins is not None else margins
    if by_size is not None and not by_size.empty:
        blocks.append(md_table(pd.DataFrame({
            "Training examples": [escape(x) for x in by_size["level"]],
            "Trials": [fmt_int(x) for x in by_size["n_trials"]],
            "Raw DVGR": [fmt_dvgr(float(x)) for x in by_size["raw_dvgr"]],
            "Posterior DVGR": [fmt_dvgr(float(x)) for x in by_size["dvgr_mean"]],
            hdi: [fmt_interval(float(a), float(b)) for a, b in zip(by_size["dvgr_hdi_low"], by_size["dvgr_hdi_high"], strict=True)],
        }), caption="DVGR by number of in-context training examples, averaged over the rest of the design.",
            label="training-size"))
    cells = frame(run, "cells")
    size = _training_size(cells)
    if size is not None:
        cells = cells.assign(n_train=size)
        per_model = raw_rates(cells, ["n_train", "model"]).rename(columns={"model": "group"})
        pooled = raw_rates(cells, ["n_train"]).assign(group="overall")
        rates = pd.concat([per_model, pooled], ignore_index=True)
        blocks.append(figures(
            lambda: plots.rate_lines(rates, x="n_train", xlabel="in-context training examples", log_x=True,
                                     order=[*models["model"], "overall"]),
            "training-size", "Observed DVGR by number of in-context training examples, per model and pooled.",
            "Line plot of DVGR against training-set size",
        ))
    if not blocks:
        blocks.append(absent("the data have no training-set size (n_train)"))
    return section("Training-set size", "training-size", *blocks)


def _training_size(cells: pd.DataFrame | None) -> pd.Series | None:
    """The cells' number of training examples (``n_train``, or recovered from ``log_n_train``)."""
    if cells is None:
        return None
    if "n_train" in cells.columns:
        return cells["n_train"]
    if "log_n_train" in cells.columns:
        return cells["log_n_train"].map(math.exp).round().astype(int)
    return None


#: The pooled-slope model's fitted DVGR per model (``scaling_models.csv``), drawn with the points.
FITTED_COLUMNS = ("fitted_mean", "fitted_hdi_low", "fitted_hdi_high")


def _size_ladder(tables: dict[str, pd.DataFrame], dvgr: pd.DataFrame) -> pd.DataFrame | None:
    """Family, size rank (and the fitted DVGR, when present) per model: from a scaling table that
    has them, else from the pairs.

    Without explicit columns, each chain of (smaller, larger) pairs is one family, ranked along
    the chain and named after its largest model.
    """
    for table in tables.values():
        rank = next((c for c in ("size_rank", "size_rank_in_family") if c in table.columns), None)
        if rank and {"model", "family"} <= set(table.columns):
            fitted = [c for c in FITTED_COLUMNS if c in table.columns]
            ladder = table[["model", "family", rank, *fitted]].rename(columns={rank: "size_rank"})
            ladder = ladder.dropna(subset=["model", "family", "size_rank"])
            break
    else:
        pairs = tables.get("pairs")
        if pairs is None:
            return None
        larger_of = dict(zip(pairs["smaller"].astype(str), pairs["larger"].astype(str), strict=True))
        smallest = [m for m in larger_of if m not in set(larger_of.values())]
        rows = []
        for start in smallest:
            chain = [start]
            while chain[-1] in larger_of and len(chain) <= len(larger_of):
                chain.append(larger_of[chain[-1]])
            rows += [{"model": m, "family": chain[-1], "size_rank": i + 1} for i, m in enumerate(chain)]
        ladder = pd.DataFrame(rows, columns=["model", "family", "size_rank"])
    return ladder.merge(dvgr, on="model", how="inner")


def slope_diagnostics(run: RunFolder) -> str:
    """The size-slope model's sampler checks: one sentence, and a red callout when they fail."""
    d = run.scaling_diagnostics()
    if d is None:
        return absent("sampler diagnostics of the size-slope model (scaling_methods.json records none)")
    limit = {k: float(v) for k, v in d["thresholds"].items()}
    text = (f"Sampler checks of the slope model: max R-hat {fmt_num(d['max_r_hat'], 3)}, min bulk ESS "
            f"{fmt_int(d['min_ess_bulk'])}, {fmt_int(d['divergences'])} divergent transitions (limits: R-hat "
            f"≤ {limit['max_r_hat']:g}, ESS ≥ {limit['min_ess']:g}, "
            + ("no divergences" if limit["max_divergences"] == 0 else f"divergences ≤ {limit['max_divergences']:g}")
            + ")")
    failures = slope_failures(run)
    if not failures:
        return text + ": all pass."
    return text + ".\n\n" + callout(
        "important", "Slope-model diagnostics failed",
        "The pooled slope and its Bayes factor may not be trustworthy:\n\n"
        + "\n".join(f"- {escape(f)}" for f in failures)
        + "\n\nRerun the scaling analysis with more draws or tuning.",
    )


def _pooled_logit(table: pd.DataFrame | None) -> str:
    """The frequentist counterpart of the pooled slope (``scaling_frequentist.csv``), as a sentence."""
    if table is None or table.empty:
        return ""
    row = table.iloc[0]
    text = (f"Frequentist counterpart: a logistic regression of the choice on the same standardised size "
            f"with {escape(row['fixed_effects'])} fixed effects and standard errors "
            f"clustered by {escape(row['cluster'])} gives {fmt_num(row['coef'], 3)} (95% CI "
            f"{fmt_num(row['ci_low'], 3)} to {fmt_num(row['ci_high'], 3)}, p = {fmt_p(float(row['p_value']))}; "
            f"{fmt_int(row['n_trials'])} trials, {fmt_int(row['n_clusters'])} clusters).")
    if str(row.get("few_clusters", False)).lower() == "true":
        text += (f" With only {fmt_int(row['n_clusters'])} clusters the cluster-robust standard errors are "
                 "too small, so this p-value is optimistic.")
    return text


def _scaled_rate(run: RunFolder, w: Wording, models: pd.DataFrame) -> tuple[str, pd.DataFrame, str]:
    """The rate the scaling tests compared across sizes (the per-model rate of ``rates.csv``: DVB's DVGR, HVSB's
    MR under its ``primary_condition``), its per-model posterior (``dvgr_*`` columns) and the benchmark's
    question in a sentence (``scaling_question``; none when it words none)."""
    condition = rate_condition(run)
    rate = w.rate_for(condition)
    question = w.texts.get("scaling_question", "")
    return rate, models, question.format(rate=escape(rate), condition=escape(condition or "")) if question else ""


def _pvalue_column(table: pd.DataFrame, column: str) -> dict[str, list[str]]:
    """The frequentist p-value column ``column`` as a table column, when the table has it."""
    return {"χ² p": [fmt_p(float(p)) for p in table[column]]} if column in table.columns else {}


@register("scaling")
def scaling(run: RunFolder, models: pd.DataFrame, figures: Figures) -> str:
    """Scaling section (only when the run has ``scaling_*.csv``): trend, plot, pair and big/small tables."""
    tables = {k: None if v is None else v.to_pandas() for k, v in run.scaling_tables().items()}
    if not tables:
        return ""
    w = wording(run.manifest)
    rate, models, intro = _scaled_rate(run, w, models)
    hdi = f"{run.hdi_prob:.0%} HDI"
    blocks = [intro]
    trend = tables.get("trend")
    slope_label = None
    if trend is not None and {"slope_mean", "slope_hdi_low", "slope_hdi_high"} <= set(trend.columns):
        row = trend.iloc[0]
        measure = str(row.get("size_measure", "size"))
        slope_label = (f"pooled slope {fmt_num(row['slope_mean'], 3)} log-odds per SD of size ({hdi} "
                       f"{fmt_num(row['slope_hdi_low'], 3)} to {fmt_num(row['slope_hdi_high'], 3)})")
        text = (f"Pooled within-family trend: the logit {escape(rate)} changes by {fmt_num(row['slope_mean'], 3)} ({hdi} "
                f"{fmt_num(row['slope_hdi_low'], 3)} to {fmt_num(row['slope_hdi_high'], 3)}) per within-family "
                f"standard deviation of size (size measured by {escape(measure)})")
        if "p_slope_below_0" in trend.columns:
            text += f"; P(slope < 0) = {fmt_dvgr(float(row['p_slope_below_0']))}"
        if "bf01" in trend.columns:
            text += f"; Bayes factor for no trend BF01 = {fmt_num(row['bf01'])}"
        blocks += [text + ".", slope_diagnostics(run)]
    blocks.append(_pooled_logit(tables.get("frequentist")))
    ladder = _size_ladder(tables, models)
    if ladder is not None and not ladder.empty:
        fitted = set(FITTED_COLUMNS) <= set(ladder.columns)
        blocks.append(figures(
            lambda: plots.scaling(ladder, hdi_prob=run.hdi_prob, slope_label=slope_label, rate=rate,
                                  reference=w.reference_line), "scaling",
            f"Posterior {escape(rate)} of each model (blue, {hdi}), one panel per family, models from smallest to "
            f"largest" + (f"; orange: the pooled-slope model's fitted {escape(rate)} (dashed) and its {hdi} (band), one "
                          "slope shared by all families" if fitted else "")
            + (f"; dashed grey: {escape(w.reference_caption)}." if w.reference_line else "."),
            f"{rate} against model size, one panel per family",
        ))
    pairs = tables.get("pairs")
    if pairs is not None:
        cells = pd.DataFrame({
            "Smaller": [escape(m) for m in pairs["smaller"]],
            "Larger": [escape(m) for m in pairs["larger"]],
            "Difference (larger − smaller)": [fmt_num(x, 3) for x in pairs["diff_mean"]],
            hdi: [f"{fmt_num(a, 3)} to {fmt_num(b, 3)}" for a, b in zip(pairs["diff_hdi_low"], pairs["diff_hdi_high"], strict=True)],
            "P(difference < 0)": [fmt_dvgr(float(x)) for x in pairs["p_diff_below_0"]],
            **_pvalue_column(pairs, "chi2_p"),
        })
        blocks.append(md_table(cells, caption=f"Within-family size pairs: posterior difference in {escape(rate)} "
                               "(and the paper's chi-square test where computed).", label="scaling-pairs",
                               align="ll" + "r" * (cells.shape[1] - 2)))
    big_small = tables.get("big_small")
    if big_small is not None and "coding" in big_small.columns:
        cells = pd.DataFrame({
            "Coding": [escape(c) for c in big_small["coding"]],
            "DVGR big": [fmt_dvgr(float(x)) for x in big_small["dvgr_big"]],
            "DVGR small": [fmt_dvgr(float(x)) for x in big_small["dvgr_small"]],
            "Difference": [fmt_num(x, 3) for x in big_small["diff_mean"]],
            hdi: [f"{fmt_num(a, 3)} to {fmt_num(b, 3)}" for a, b in zip(big_small["diff_hdi_low"], big_small["diff_hdi_high"], strict=True)],
            "P(difference < 0)": [fmt_dvgr(float(x)) for x in big_small["p_diff_below_0"]],
            **_pvalue_column(big_small, "chi2_p"),
        })
        blocks.append(md_table(cells, caption="Big versus small models (the paper's two codings): posterior "
                               "difference of equal-weighted mean DVGRs.", label="big-small"))
    notes = run.scaling_notes()
    if notes:
        blocks.append("Notes:\n\n" + "\n".join(f"- {escape(n)}" for n in notes))
    return section("Scaling with model size", "scaling", *blocks)
