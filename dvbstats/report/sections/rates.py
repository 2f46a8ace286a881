"""Report sections of the per-model rate: the headline, the model table, the forest plot, the model x design
factor effects and the variance components.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from dvbstats.constants import CHANCE, CREDIBLE
from dvbstats.input.runfolder import SUMMARY_COLUMNS, RunFolder, RunFolderError
from dvbstats.report import narrative
from dvbstats.report import plots
from dvbstats.report.markdown import Figures, absent, fmt_int, fmt_num, fmt_p, frame, md_table, plural, section
from dvbstats.report.markup import text as escape
from dvbstats.report.narrative import dvgr as fmt_dvgr
from dvbstats.report.narrative import interval as fmt_interval
from dvbstats.report.sections import register
from dvbstats.report.wording import Wording, wording


def split_rates(run: RunFolder) -> tuple[pd.DataFrame, pd.Series]:
    table = frame(run, "dvgr")
    is_overall = table["model"].astype(str) == "overall"
    if is_overall.sum() != 1:
        raise RunFolderError(
            f"{run.path / 'dvgr.csv'}: expected exactly one row with model = 'overall', found {int(is_overall.sum())}"
        )
    models = table[~is_overall].sort_values("dvgr_mean", kind="stable").reset_index(drop=True)
    return models, table[is_overall].iloc[0]


_DVGR_QUANTITY = re.compile(r"\bdvgr(?=\[|_overall\b)")


def quantity(run: RunFolder, text: object) -> str:
    """A diagnosed quantity's name (or a message naming one) in the benchmark's words: the fit calls its
    per-model rates ``dvgr[model]`` and ``dvgr_overall`` whatever the benchmark; the benchmark says what to call
    them (``Wording.quantity``: DVB ``dvgr``, others ``rate``)."""
    return _DVGR_QUANTITY.sub(wording(run.manifest).quantity, str(text))


def failures(run: RunFolder) -> list[str]:
    """The run's failed sampler checks, worded by :func:`quantity`."""
    return [quantity(run, f) for f in run.diagnostics.get("failures") or ()]


def slope_failures(run: RunFolder) -> list[str]:
    """The failed sampler checks of the pooled size-slope model (its ``Diagnostics``, as for the main fit)."""
    checks = run.scaling_diagnostics()
    return [] if checks is None or checks.get("ok", False) else checks.get("failures") or ["(no reason recorded)"]


def headline(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 1: the overall rate and, with a reference line, the count of models credibly below it."""
    w = wording(run.manifest)
    rate = w.rate_for(rate_condition(run))
    k = int(narrative.below_chance(models).sum())
    hdi = f"{run.hdi_prob:.0%} HDI"
    below = (f" · **{k} of {len(models)}** models credibly below {escape(w.reference_short)} "
             f"(P({escape(rate)} < {w.reference:g}) > {CREDIBLE:.2f})" if w.reference is not None else "")
    key = (f"**Overall {escape(rate)} {fmt_dvgr(float(overall['dvgr_mean']))}** ({hdi} "
           f"{fmt_interval(float(overall['dvgr_hdi_low']), float(overall['dvgr_hdi_high']))}){below}")
    return key


@register("headline")
def rate_headline(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 1 without a reading: the key line (:func:`headline`) and where the numbers are."""
    return section("Headline", "headline", f"::: {{.headline}}\n{headline(run, models, overall)}\n:::",
                   "Per-model numbers are in @tbl-models and @fig-forest.")


@register("reading_headline")
def reading_headline(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 1 with the plain-language reading of :func:`dvbstats.report.narrative.reading` (worded for a
    rate set against chance: the DVGR)."""
    text = narrative.reading(
        models, overall, hdi_prob=run.hdi_prob, diagnostics_ok=bool(run.diagnostics.get("ok")),
        failures=run.diagnostics.get("failures") or (), synthetic=run.synthetic,
    )
    return section("Headline", "headline", f"::: {{.headline}}\n{headline(run, models, overall)}\n:::", escape(text),
                   "Per-model numbers are in @tbl-models and @fig-forest.")


@register("models")
def model_table(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 2: the per-model table, one row per model plus the overall row. The binomial test and
    P(rate < reference) appear only when the benchmark has a reference line; the population rate only
    when the fit defines one (not under one condition: a column of dashes says nothing)."""
    rows = pd.concat([models, overall.to_frame().T], ignore_index=True)
    hdi = f"{run.hdi_prob:.0%} HDI"
    w = wording(run.manifest)
    rate = w.rate_for(rate_condition(run))
    tested = w.reference is not None
    cells = pd.DataFrame({
        "Model": [escape(m) for m in rows["model"]],
        "Used": [fmt_int(x) for x in rows["n_used"]],
        "Excluded": [fmt_int(x) for x in rows["n_excluded"]],
        f"Raw {rate}": [fmt_dvgr(float(x)) for x in rows["raw_dvgr"]],
        "Wilson 95% CI": [fmt_interval(float(a), float(b)) for a, b in zip(rows["wilson_low"], rows["wilson_high"], strict=True)],
        **({"Binomial p": [fmt_p(float(p)) for p in rows["binom_p"]]} if tested else {}),
        f"Posterior {rate}": [fmt_dvgr(float(x)) for x in rows["dvgr_mean"]],
        hdi: [fmt_interval(float(a), float(b)) for a, b in zip(rows["dvgr_hdi_low"], rows["dvgr_hdi_high"], strict=True)],
        **({f"Population {rate} ({hdi})": [
            "–" if pd.isna(m) else f"{fmt_dvgr(float(m))} ({fmt_interval(float(a), float(b))})"
            for m, a, b in zip(rows["pop_dvgr_mean"], rows["pop_dvgr_hdi_low"], rows["pop_dvgr_hdi_high"], strict=True)]}
           if rows["pop_dvgr_mean"].notna().any() else {}),
        **({f"P({rate} < {w.reference:g})": [fmt_dvgr(float(x)) for x in rows["p_below_half"]]} if tested else {}),
    })
    note = (w.texts["model_note"].format(hdi=hdi) if "model_note" in w.texts
            else _model_table_note(w, rate, hdi, rate_condition(run)))
    condition = rate_condition(run)
    over = f" (condition {escape(condition)} only)" if condition else ""
    title = escape(rate[:1].upper() + rate[1:])
    table = md_table(cells, caption=f"{title} by model{over}, raw and posterior; models sorted by posterior "
                     f"{escape(rate)}.", label="models")
    return section(f"{title} by model", "models", table, note)


def rate_condition(run: RunFolder) -> str | None:
    """The condition the per-model rate table is taken under (HVSB: ``none``), or None (over the design)."""
    rates = run.table("rates")
    if rates is None or "condition" not in rates.columns or rates["condition"].is_null().all():
        return None
    return str(rates["condition"][0])


def _model_table_note(w: Wording, rate: str, hdi: str, condition: str | None) -> str:
    """The model table's column notes for a benchmark other than DVB."""
    rate = escape(rate)
    test = (f", with its Wilson interval and the exact two-sided binomial test against {w.reference:g} "
            f"({escape(w.reference_label)})" if w.reference is not None else
            ", with its Wilson interval (the benchmark has no reference rate, so there is no test against one)")
    where = (f"the model's rate under condition {escape(condition)} alone, averaged over its design cells "
             "(the other conditions' rates are in their own tables: no rate here is pooled over conditions)"
             if condition else "the model's rate averaged over the design cells of the data")
    population = ("" if condition else f" *Population {rate}*: the same for a new draw of every design factor "
                  "other than the model (what to expect on items not tested).")
    return (
        "*Used*: parsed trials in the likelihood; *Excluded*: rows not in it (unparsed or conflicting "
        f"responses; superseded duplicate rows are counted apart in @tbl-quality). *Raw {rate}*: share of used trials "
        f"in which the model {escape(w.outcome_phrase)}{test}. *Posterior {rate}*: {where}, posterior mean and "
        f"{hdi}.{population}"
    )


@register("forest")
def forest(run: RunFolder, models: pd.DataFrame, overall: pd.Series, figures: Figures) -> str:
    """Section 3: forest plot of posterior and raw DVGR by model."""
    w = wording(run.manifest)
    rate = w.rate_for(rate_condition(run))
    xlabel = w.texts.get("rate_axis", f"{rate} = P({w.outcome_phrase})")
    fig = figures(
        lambda: plots.forest(models, hdi_prob=run.hdi_prob, overall=overall, xlabel=xlabel,
                             reference=w.reference_line), "forest",
        f"Posterior {escape(rate)} by model (blue, {run.hdi_prob:.0%} HDI) and raw rate (orange, Wilson 95% CI)"
        + (f"; dashed line: {escape(w.reference_caption)}." if w.reference_line else "."),
        f"Forest plot of {rate} by model",
    )
    return section("Forest plot", "forest", fig)


def _other_factor(run: RunFolder, table: pd.DataFrame) -> str:
    extra = [c for c in table.columns if c != "model" and c not in SUMMARY_COLUMNS]
    if len(extra) != 1:
        raise RunFolderError(
            f"{run.path / 'interaction_dvgr.csv'}: expected one factor column besides model, found {extra or 'none'}"
        )
    return extra[0]


def raw_rates(cells: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Pooled raw rates: summed deep-value choices over summed trials per group of cells."""
    sums = cells.groupby(list(by), observed=True)[["n_deep", "n_trials"]].sum().reset_index()
    sums["rate"] = sums["n_deep"] / sums["n_trials"]
    return sums


#: Design factors that have their own section (or are the rows of every table).
OWN_SECTION = frozenset({"model", "n_train", "log_n_train"})


def _effects(run: RunFolder) -> tuple[pd.DataFrame | None, str]:
    """Per-level effects of the non-model factors: design-averaged DVGRs (``margins.csv``) when the
    run has them, else the random-effect deviations on the log-odds scale."""
    margins = frame(run, "margins")
    if margins is not None:
        rows = margins[~margins["factor"].isin(OWN_SECTION)]
        if not rows.empty:
            return rows.rename(columns={"factor": "term", "dvgr_mean": "mean", "dvgr_hdi_low": "hdi_low",
                                        "dvgr_hdi_high": "hdi_high"}), "dvgr"
    effects = frame(run, "random_effects")
    if effects is not None:
        effects = effects[~effects["term"].isin(OWN_SECTION) & ~effects["term"].astype(str).str.contains(":")]
        if not effects.empty:
            return effects, "logit"
    return None, ""


@register("values")
def values(run: RunFolder, models: pd.DataFrame, figures: Figures) -> str:
    """Section 4: model x value heatmap and the value / feature / context effects."""
    order = models["model"].tolist()
    interaction, cells = frame(run, "interaction_dvgr"), frame(run, "cells")
    blocks, shown = [], []
    if interaction is not None:
        factor = _other_factor(run, interaction)
        shown.append(factor)
        wide = plots.as_wide(interaction, index="model", columns=factor, values="dvgr_mean", index_order=order)
        blocks.append(figures(
            lambda: plots.heatmap(wide, colorbar_label="posterior DVGR"), "heatmap",
            f"Posterior mean DVGR by model and {escape(factor)} (from the model x {escape(factor)} "
            "interaction); blue below chance, red above.",
            f"Heatmap of posterior DVGR by model and {factor}",
        ))
    elif cells is not None and "value" in cells.columns:
        shown.append("value")
        wide = plots.as_wide(raw_rates(cells, ["model", "value"]), index="model", columns="value",
                             values="rate", index_order=order)
        blocks.append(figures(
            lambda: plots.heatmap(wide, colorbar_label="raw DVGR"), "heatmap",
            "Raw DVGR by model and value (the formula has no model x value interaction, so these "
            "are observed rates, not posterior estimates).",
            "Heatmap of raw DVGR by model and value",
        ))
    else:
        blocks.append(absent("the data have no value column, so there is no model x value table"))

    effects, scale = _effects(run)
    if effects is None:
        blocks.append(absent("no value, feature or context effects in the formula"))
    else:
        effects = effects.sort_values(["term", "mean"], ascending=[True, False], kind="stable")
        terms = ", ".join(escape(t) for t in dict.fromkeys(effects["term"]))
        shown += list(effects["term"])
        on_dvgr = scale == "dvgr"
        blocks.append(figures(
            lambda: plots.effects(
                effects, hdi_prob=run.hdi_prob, reference=CHANCE if on_dvgr else 0.0,
                xlabel="design-averaged posterior DVGR" if on_dvgr else
                "deviation from the average (log-odds of a deep-value choice)"),
            "effects",
            f"DVGR by {terms}, averaged over the rest of the design ({run.hdi_prob:.0%} HDI); dashed: chance."
            if on_dvgr else
            f"Effects of {terms} on the log-odds of a deep-value choice ({run.hdi_prob:.0%} HDI); 0 is the average level.",
            "Dot-and-interval plot of effects by level",
        ))
        unit = "" if on_dvgr else " log-odds"
        blocks.append(" ".join(
            f"By {escape(term)}, models follow the value most for *{escape(rows['level'].iloc[0])}* "
            f"({fmt_num(rows['mean'].iloc[0], 2)}{unit}) and least for *{escape(rows['level'].iloc[-1])}* "
            f"({fmt_num(rows['mean'].iloc[-1], 2)}{unit})."
            for term, rows in effects.groupby("term", sort=False) if len(rows) > 1
        ))
    return section(values_title(shown), "values", *blocks)


def values_title(factors: Sequence[str]) -> str:
    """The title of the model x design-factor section naming what it shows: "Models, values and contexts"."""
    names = [escape(plural(str(f))) for f in dict.fromkeys(factors)]
    if not names:
        return "Models and design factors"
    return "Models and " + names[0] if len(names) == 1 else "Models, " + ", ".join(names[:-1]) + " and " + names[-1]


@register("variance")
def variance(run: RunFolder, figures: Figures) -> str:
    """Section 5: random-effect SDs on one axis."""
    sd = frame(run, "sd")
    if sd is None or sd.empty:
        return section("Variance components", "variance", absent("the formula has no random effects"))
    top = sd.sort_values("mean", ascending=False).iloc[0]
    hdi = f"{run.hdi_prob:.0%} HDI"
    text = (
        f"Choices vary most across levels of **{escape(top['term'])}** (SD {fmt_num(top['mean'])} on the "
        f"log-odds scale, {hdi} {fmt_num(top['hdi_low'])}–{fmt_num(top['hdi_high'])}); see @fig-variance."
    )
    fig = figures(lambda: plots.variance_components(sd, hdi_prob=run.hdi_prob), "variance",
                  f"Standard deviation of each random effect (posterior mean, {hdi}).",
                  "Posterior standard deviations of the random effects")
    return section("Variance components", "variance", text, fig)
