"""Writing the report's Quarto source (``report.qmd``) and its figures from a run folder.

The ``.qmd`` is plain Quarto markdown: a YAML header, numbered sections with ``{#sec-...}``
ids, figures ``![caption](figures/x.png){#fig-x}``, pipe tables with ``: caption {#tbl-x}``,
``@fig-x`` / ``@tbl-x`` / ``@sec-x`` cross-references and ``::: {.callout-...}`` callouts. It
embeds no code, so a user can edit the text and ``quarto render`` it again. This module only
reshapes the run's tables (pivots, sorts, sums of counts); every statistic comes from the run.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePath

import pandas as pd

from dvbstats.constants import CHANCE, CREDIBLE
from dvbstats.input.runfolder import SUMMARY_COLUMNS, RunFolder, RunFolderError
from dvbstats.model import plan
from dvbstats.report import markup, narrative
from dvbstats.report import plots
from dvbstats.report.markup import text as escape
from dvbstats.report.narrative import dvgr as fmt_dvgr
from dvbstats.report.narrative import interval as fmt_interval
from dvbstats.report.wording import Wording, wording
from dvbstats.results import bounds, population

FIGURES = "figures"
CSS = "report.css"
#: Diagnostics rows listed in the report (worst R-hat first); the full table is in the run folder.
WORST_ROWS = 10
#: Input files listed one by one up to this many; more are counted per folder (all are in manifest.json).
MAX_LISTED = 12
#: A run's own section (``sections/*.md``) whose file name starts with this opens the report.
LEAD = "00_"


# --- markdown helpers (every string from the run enters through dvbstats.report.markup) ---------


def fmt_p(p: float) -> str:
    """A p-value: three decimals, scientific below 0.001, a bound where it underflowed to 0."""
    if math.isnan(p):
        return "–"
    if p == 0:
        return "<1e-300"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_int(x: float) -> str:
    """A count with thousands separators (``–`` when missing)."""
    return "–" if pd.isna(x) else f"{int(x):,}"


def fmt_num(x: float, digits: int = 2) -> str:
    """A number with ``digits`` decimals (``–`` when missing)."""
    return "–" if pd.isna(x) else f"{float(x):.{digits}f}"


def fmt_date(stamp: object) -> str:
    """An ISO 8601 time stamp for readers: ``23 November 2026, 11:25 UTC`` (as given when not ISO).

    A stamp with a UTC offset is converted to UTC; one without an offset is printed without a zone.
    """
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    zone = ""
    if when.tzinfo is not None:
        when, zone = when.astimezone(UTC), " UTC"
    return f"{when.day} {when:%B %Y, %H:%M}{zone}"


def fmt_timing(timing: dict) -> str:
    """Stage timings ``{"sample_s": 41.49, ...}`` as ``sample 41.5 s · ...`` (other values as given)."""
    return " · ".join(
        f"{escape(k.removesuffix('_s'))} {v:.1f} s" if k.endswith("_s") and isinstance(v, int | float)
        else f"{escape(k)} {escape(v)}" for k, v in timing.items()
    )


def md_table(rows: pd.DataFrame, *, caption: str, label: str, align: str | None = None) -> str:
    """A pipe table with a Quarto table caption ``: caption {#tbl-label}``.

    ``rows`` holds the cell texts (already formatted); ``align`` gives one of ``l r c`` per column
    (default: first column left, the rest right).
    """
    align = align or "l" + "r" * (rows.shape[1] - 1)
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(escape(c) for c in rows.columns) + " |",
        "|" + "|".join(rule[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows.itertuples(index=False)]
    return "\n".join(lines) + f"\n\n: {caption} {{#tbl-{label}}}"


def callout(kind: str, title: str, body: str) -> str:
    """A Quarto callout block (``note``, ``warning``, ``important``, ``tip``, ``caution``)."""
    return f"::: {{.callout-{kind}}}\n## {title}\n\n{body}\n:::"


def absent(what: str) -> str:
    """The one line a section shows when its inputs are not in the run."""
    return f"*Not available for this run: {what}.*"


def bounded(what: str, shown: int, total: int, where: str) -> str:
    """The line that says a table lists only ``shown`` of ``total`` rows, and where the rest are."""
    return (f"*{escape(what)}: {shown:,} of {total:,} rows shown (a report lists at most "
            f"{bounds.MAX_PAIR_ROWS} pairs); every row is in {where}.*")


def section(title: str, label: str, *blocks: str) -> str:
    """A top-level section ``# title {#sec-label}`` followed by its blocks."""
    return "\n\n".join([f"# {title} {{#sec-{label}}}", *[b for b in blocks if b]])


class Figures:
    """Saves figures under ``<report>/figures`` and returns their Quarto markdown."""

    def __init__(self, report_dir: Path) -> None:
        self.report_dir = report_dir

    def __call__(self, draw: Callable[[], plots.Figure], label: str, caption: str, alt: str) -> str:
        with plots.style():
            fig = draw()
        plots.save(fig, self.report_dir / FIGURES / f"{label}.png")
        return f'![{caption}]({FIGURES}/{label}.png){{#fig-{label} fig-alt="{markup.attribute(alt)}"}}'


def frame(run: RunFolder, name: str) -> pd.DataFrame | None:
    """The run's table ``name`` as pandas (what the plots and the markdown tables take), or None if absent."""
    table = run.table(name)
    return None if table is None else table.to_pandas()


# --- sections ------------------------------------------------------------------------------


def _split_dvgr(run: RunFolder) -> tuple[pd.DataFrame, pd.Series]:
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


def banners(run: RunFolder) -> str:
    """Callouts at the top: synthetic data, failed sampler checks (main fit and size-slope model)."""
    blocks = []
    if run.synthetic:
        blocks.append(callout(
            "warning", "Synthetic data",
            "This run was fitted to **synthetic data** generated by `dvbstats.simulate`; its numbers "
            "illustrate the method and say nothing about real models.",
        ))
    empty = (run.manifest.get("empty_models") or {}).get("models") or []
    if empty:
        note = (run.manifest.get("empty_models") or {}).get("note", "")
        blocks.append(callout(
            "important", "Models without a usable trial",
            f"{_count_models(len(empty))} had no usable trial (every row failed or could not be parsed): "
            f"{', '.join(f'**{escape(m)}**' for m in empty)}; {escape(note)}. Their rows are counted in "
            "@sec-data-quality.",
        ))
    failed = [] if run.diagnostics.get("ok", False) else failures(run) or ["(no reason recorded)"]
    slope = slope_failures(run)
    if failed or slope:
        items = [f"- {escape(f)}" for f in failed] + [f"- pooled size-slope model: {escape(f)}" for f in slope]
        where = ["@sec-diagnostics"] * bool(failed) + ["@sec-scaling"] * bool(slope)
        what = "The posterior below" if failed else "The pooled size slope and its Bayes factor"
        blocks.append(callout(
            "important", "Sampler diagnostics failed",
            f"{what} may not be trustworthy:\n\n" + "\n".join(items)
            + f"\n\nSee {' and '.join(where)}; refit with more tuning, more draws or a higher target acceptance.",
        ))
    return "\n\n".join(blocks)


def _count_models(n: int) -> str:
    return f"{n} model" + ("" if n == 1 else "s")


def headline(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 1: the overall rate and, with a reference line, the count of models credibly below it."""
    w = wording(run.manifest)
    rate = w.rate_for(_rate_condition(run))
    k = int(narrative.below_chance(models).sum())
    hdi = f"{run.hdi_prob:.0%} HDI"
    below = (f" · **{k} of {len(models)}** models credibly below {escape(w.reference_short)} "
             f"(P({escape(rate)} < {w.reference:g}) > {CREDIBLE:.2f})" if w.reference is not None else "")
    key = (f"**Overall {escape(rate)} {fmt_dvgr(float(overall['dvgr_mean']))}** ({hdi} "
           f"{fmt_interval(float(overall['dvgr_hdi_low']), float(overall['dvgr_hdi_high']))}){below}")
    return key


def rate_headline(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 1 without a reading: the key line (:func:`headline`) and where the numbers are."""
    return section("Headline", "headline", f"::: {{.headline}}\n{headline(run, models, overall)}\n:::",
                   "Per-model numbers are in @tbl-models and @fig-forest.")


def reading_headline(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 1 with the plain-language reading of :func:`dvbstats.report.narrative.reading` (worded for a
    rate set against chance: the DVGR)."""
    text = narrative.reading(
        models, overall, hdi_prob=run.hdi_prob, diagnostics_ok=bool(run.diagnostics.get("ok")),
        failures=run.diagnostics.get("failures") or (), synthetic=run.synthetic,
    )
    return section("Headline", "headline", f"::: {{.headline}}\n{headline(run, models, overall)}\n:::", escape(text),
                   "Per-model numbers are in @tbl-models and @fig-forest.")


def model_table(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 2: the per-model table, one row per model plus the overall row. The binomial test and
    P(rate < reference) appear only when the benchmark has a reference line."""
    rows = pd.concat([models, overall.to_frame().T], ignore_index=True)
    hdi = f"{run.hdi_prob:.0%} HDI"
    w = wording(run.manifest)
    rate = w.rate_for(_rate_condition(run))
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
        f"Population {rate} ({hdi})": [
            "–" if pd.isna(m) else f"{fmt_dvgr(float(m))} ({fmt_interval(float(a), float(b))})"
            for m, a, b in zip(rows["pop_dvgr_mean"], rows["pop_dvgr_hdi_low"], rows["pop_dvgr_hdi_high"], strict=True)],
        **({f"P({rate} < {w.reference:g})": [fmt_dvgr(float(x)) for x in rows["p_below_half"]]} if tested else {}),
    })
    note = (w.texts["model_note"].format(hdi=hdi) if "model_note" in w.texts
            else _model_table_note(w, rate, hdi, _rate_condition(run)))
    condition = _rate_condition(run)
    over = f" (condition {escape(condition)} only)" if condition else ""
    title = escape(rate[:1].upper() + rate[1:])
    table = md_table(cells, caption=f"{title} by model{over}, raw and posterior; models sorted by posterior "
                     f"{escape(rate)}.", label="models")
    return section(f"{title} by model", "models", table, note)


def _rate_condition(run: RunFolder) -> str | None:
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


def forest(run: RunFolder, models: pd.DataFrame, overall: pd.Series, figures: Figures) -> str:
    """Section 3: forest plot of posterior and raw DVGR by model."""
    w = wording(run.manifest)
    rate = w.rate_for(_rate_condition(run))
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


def _raw_rates(cells: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
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
        wide = plots.as_wide(_raw_rates(cells, ["model", "value"]), index="model", columns="value",
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
        per_model = _raw_rates(cells, ["n_train", "model"]).rename(columns={"model": "group"})
        pooled = _raw_rates(cells, ["n_train"]).assign(group="overall")
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
    condition = _rate_condition(run)
    rate = w.rate_for(condition)
    question = w.texts.get("scaling_question", "")
    return rate, models, question.format(rate=escape(rate), condition=escape(condition or "")) if question else ""


def _pvalue_column(table: pd.DataFrame, column: str) -> dict[str, list[str]]:
    """The frequentist p-value column ``column`` as a table column, when the table has it."""
    return {"χ² p": [fmt_p(float(p)) for p in table[column]]} if column in table.columns else {}


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


def ppc(run: RunFolder, figures: Figures) -> str:
    """Section 7: posterior predictive check by model and by value."""
    table = frame(run, "ppc")
    if table is None or table.empty:
        return section("Posterior predictive check", "ppc", absent("no posterior predictive summaries (ppc.csv)"))
    return _predictive(run, table, figures, "ppc", "Posterior predictive check", "posterior predictive distribution",
                       "the model misses these groups.")


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


def agreement(run: RunFolder, figures: Figures) -> str:
    """Agreement between models and paired tests (``agreement.csv``, ``paired_tests.csv``,
    ``agreement_model.csv``, ``agreement_methods.json``; :mod:`dvbstats.results.agreement`); only when the
    run has them (a trial table with at least two models; the manifest's ``agreement`` says why not)."""
    pairs, tests, fitted = frame(run, "agreement"), frame(run, "paired_tests"), frame(run, "agreement_model")
    if pairs is None or pairs.empty:
        return ""
    notes = run.record("agreement")
    group = escape(pairs["group"].iloc[0])
    condition = notes.get("condition")  # HVSB: judgments under one condition (benchmarks/consistency.py)
    title = "Judgment consistency" if condition else "Agreement between models"
    rate_name = wording(run.manifest).rate_for(condition) if condition else "rate"
    tested = escape(rate_name)
    order = list(dict.fromkeys([*pairs["model1"], *pairs["model2"]]))
    of = dict(zip(pairs["model1"], pairs["group1"], strict=True)) | dict(zip(pairs["model2"], pairs["group2"], strict=True))
    square = pd.concat([pairs, pairs.rename(columns={"model1": "model2", "model2": "model1"})])
    panels = {label: square.pivot(index="model1", columns="model2", values=col).reindex(index=order, columns=order)
              for label, col in (("raw agreement", "agreement"), ("Cohen's kappa", "kappa"))}
    blocks = [(f"Do models of one {group} judge alike? Every pair of models is compared on the items both judged "
               f"under the {escape(condition)} condition (their own judgments, no attack prompt pulling both): "
               f"agreement of the BIASED/UNBIASED judgments and Cohen's kappa (agreement beyond what each model's "
               f"share of BIASED answers gives by chance), then same-{group} against cross-{group} pairs.")
              if condition else ""]
    if bounds.heatmap_allowed(len(order)):
        blocks.append(figures(
            lambda: plots.pair_heatmaps(panels, groups=[str(of[m]) for m in order]), "agreement",
            f"Share of shared items on which two models gave the same answer (top) and Cohen's kappa, agreement "
            f"beyond what the two models' rates give by chance (bottom); models ordered by {group}, black rules "
            f"between {plural(group)}.", "Heatmaps of pairwise agreement and kappa"))
    else:
        blocks += _agreement_extremes(pairs, len(order))
    if fitted is not None and not fitted.empty:
        row = fitted.iloc[0]
        blocks.append(
            f"Same-{group} pairs agreed on {fmt_num(row['same_mean'])}% of shared items on average "
            f"({fmt_int(row['n_same_pairs'])} pairs), cross-{group} pairs on {fmt_num(row['cross_mean'])}% "
            f"({fmt_int(row['n_cross_pairs'])} pairs). The difference by method (@tbl-agreement-model):")
        blocks.append(md_table(pd.DataFrame({
            "Method": [escape(m) for m in fitted["method"]],
            "Scale": [escape(s) for s in fitted["scale"]],
            "Estimate": [fmt_num(x) if s != "log-odds" else fmt_num(x, 3) for x, s in zip(fitted["estimate"], fitted["scale"], strict=True)],
            "Interval": [f"{fmt_num(a, 3 if s == 'log-odds' else 2)} to {fmt_num(b, 3 if s == 'log-odds' else 2)} ({escape(i)})"
                         for a, b, s, i in zip(fitted["low"], fitted["high"], fitted["scale"], fitted["interval"], strict=True)],
            "p / P(>0)": [fmt_p(float(p)) if pd.notna(p) else f"P = {fmt_num(q, 3)}"
                          for p, q in zip(fitted["p_value"], fitted["p_positive"], strict=True)],
        }), caption=f"Same-{group} minus cross-{group} agreement.", label="agreement-model", align="llrll"))
        diag = notes.get("diagnostics") or {}
        if diag and not diag.get("ok", True):
            blocks.append(callout("important", "Agreement model: sampler diagnostics failed",
                                  "\n".join(f"- {escape(f)}" for f in diag.get("failures", []))))
    if notes.get("statement"):
        blocks.append(callout("note", "What these pairs can show", escape(notes["statement"])))
    if notes.get("not_run"):
        blocks.append(absent(f"the agreement model ({escape(notes['not_run'])})"))
    if tests is not None and not tests.empty:
        ratio = tests["se_paired"] / tests["se_unpaired"]
        blocks.append(
            (f"Paired tests of the {tested} of two models on their shared items: " if condition else "Paired tests: ")
            + f"McNemar's exact test uses only the items on which two models differ; the paper's "
            f"chi-square treats the two models' answers as independent samples. Pairing changed the standard error "
            f"of a difference in rates by a factor {fmt_num(ratio.min())} to {fmt_num(ratio.max())} "
            f"(median {fmt_num(ratio.median())}); {int((tests['mcnemar_p_holm'] < 0.05).sum())} of {len(tests)} pairs "
            f"differ at Holm-adjusted p < 0.05 paired, {int((tests['chi2_p_holm'] < 0.05).sum())} unpaired.")
        blocks.append(figures(lambda: plots.paired_p_values(tests), "paired-p",
                              "Per pair of models, the paired McNemar test against the unpaired chi-square "
                              "(-log10 p; above the diagonal the paired test is clearer).", "Scatter of p-values"))
        if len(tests) > bounds.MAX_PAIR_ROWS:
            blocks.append(bounded("Paired tests, the pairs with the smallest McNemar p first", bounds.MAX_PAIR_ROWS,
                                  len(tests), "paired_tests.csv"))
            ratio = ratio[tests["mcnemar_p"].sort_values(kind="stable").index[:bounds.MAX_PAIR_ROWS]]
            tests = tests.loc[ratio.index]
        blocks.append(md_table(pd.DataFrame({
            "Model 1": [escape(m) for m in tests["model1"]], "Model 2": [escape(m) for m in tests["model2"]],
            "Shared items": [fmt_int(x) for x in tests["n_shared"]],
            ("Rate 1 − rate 2" if not condition else f"{rate_name}: 1 − 2"): [fmt_num(x, 3) for x in tests["diff"]],
            "SE paired / unpaired": [fmt_num(x) for x in ratio],
            "McNemar p (Holm)": [fmt_p(float(x)) for x in tests["mcnemar_p_holm"]],
            "McNemar p (BH)": [fmt_p(float(x)) for x in tests["mcnemar_p_bh"]],
            "Chi-square p (Holm)": [fmt_p(float(x)) for x in tests["chi2_p_holm"]],
        }), caption="Every pair of models on the items both answered: paired and unpaired tests, adjusted across "
           "all pairs (Holm: family-wise; BH: false discovery rate).", label="paired-tests", align="ll" + "r" * 6))
    return section(title, "agreement", *blocks)


def _agreement_extremes(pairs: pd.DataFrame, n_models: int) -> list[str]:
    """Instead of the agreement heatmaps past :data:`dvbstats.results.bounds.MAX_HEATMAP_MODELS` models: the pairs of
    highest and lowest kappa (:data:`dvbstats.results.bounds.MAX_PAIR_ROWS` in all)."""
    ranked = pairs.dropna(subset=["kappa"]).sort_values("kappa", ascending=False, kind="stable")
    half = bounds.MAX_PAIR_ROWS // 2
    shown = ranked if len(ranked) <= 2 * half else pd.concat([ranked.head(half), ranked.tail(half)])
    note = (f"With {n_models} models ({len(pairs):,} pairs) the agreement heatmaps are not drawn (they are drawn "
            f"for at most {bounds.MAX_HEATMAP_MODELS} models); @tbl-agreement-extremes lists the pairs that agree "
            "most and least beyond chance.")
    table = md_table(pd.DataFrame({
        "Model 1": [escape(m) for m in shown["model1"]], "Model 2": [escape(m) for m in shown["model2"]],
        "Same group": ["yes" if s else "no" for s in shown["same_group"]],
        "Agreement": [fmt_num(x, 3) for x in shown["agreement"]],
        "Kappa [95% CI]": [f"{fmt_num(k, 3)} [{fmt_num(lo, 3)}, {fmt_num(hi, 3)}]"
                           for k, lo, hi in zip(shown["kappa"], shown["kappa_low"], shown["kappa_high"], strict=True)],
    }), caption="Pairs of models with the highest and the lowest Cohen's kappa.", label="agreement-extremes",
        align="lllrr")
    return [note, table, bounded("Agreement per pair", len(shown), len(pairs), "agreement.csv")]


def _section_title(path: Path) -> str:
    stem = re.sub(r"^\d+[-_ ]*", "", path.stem) or path.stem
    return stem.replace("_", " ").replace("-", " ").strip().capitalize()


def _own_file(run: RunFolder, path: Path) -> Path:
    """``path`` when it is a regular file inside the run folder (after following links)."""
    if not (path.is_file() and path.resolve().is_relative_to(run.path.resolve())):
        raise RunFolderError(f"{path}: not a file inside the run folder (a link to {path.resolve()}?); a report "
                             "embeds only its run's own files")
    return path


def extra_sections(run: RunFolder, report_dir: Path, *, lead: bool = False) -> list[str]:
    """The run's ``sections/*.md``, each its own section (its first ``#`` heading, else its file name): with
    ``lead``, those whose file name starts with :data:`LEAD` (they open the report: an analysis's findings),
    else the others (after the benchmark's sections).

    Figures a section links as ``figures/<name>.png`` live in the run's ``sections/figures/`` and are
    copied beside the report's own figures. A section or figure that is not a file inside the run
    folder (a link pointing elsewhere) is refused: a report carries only its run's own files."""
    for png in sorted((run.path / "sections" / FIGURES).glob("*.png")):
        (report_dir / FIGURES).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_own_file(run, png), report_dir / FIGURES / png.name)
    out = []
    for path in (p for p in run.extra_sections() if p.name.startswith(LEAD) == lead):
        text = _own_file(run, path).read_text(encoding="utf-8").strip()
        if not text.startswith("# "):
            label = re.sub(r"[^a-z0-9]+", "-", _section_title(path).lower()).strip("-")
            text = f"# {escape(_section_title(path))} {{#sec-{label}}}\n\n{text}"
        out.append(text)
    return out


def estimands(w: Wording) -> tuple[tuple[str, str], ...]:
    """The estimands the report names, in the benchmark's words (its own list when it words one: DVB's)."""
    if w.estimands:
        return w.estimands
    rate = w.rate
    named = tuple((name, f"the {w.rate} under the {escape(level)} condition.")
                  for level, name in w.rate_by_condition.items())
    reference = (f"{w.reference:g} is {escape(w.reference_label)}." if w.reference is not None else
                 "The benchmark has no reference rate: no test against one, no P(rate below it).")
    direction = {"higher": "Higher is better", "lower": "Lower is better"}.get(
        w.direction, "The benchmark states no direction: ranks order models by the highest rate, no rate is called best")
    return (
        (rate, f"{escape(w.rate_long)}: the probability that the model {escape(w.outcome_phrase)}. {reference} "
               f"{direction}."),
        *((("Primary estimands", escape(w.primary[:1].upper() + w.primary[1:]) + "."),) if w.primary else ()),
        *named,
        (f"Raw {rate}", "trials with the outcome / used trials, with the Wilson score interval."),
        (f"Posterior {rate}", "the rate averaged over the design cells of the data (per model, or per model and "
                              "condition), computed per posterior draw; reported as mean and HDI."),
        ("Condition contrast", "the posterior difference of two conditions' rates for one model, per draw "
                               "(paired: the same items under both conditions)."),
        ("Random-effect SD", "the standard deviation between levels of a grouping factor on the log-odds scale."),
    )


def methods(run: RunFolder) -> str:
    """Section 10: everything needed to reproduce the run."""
    m = run.manifest
    sampler = m.get("sampler", {})
    blocks = [f"Formula:\n\n{markup.code_block(m['formula'])}"]
    priors = m.get("priors") or {}
    if priors:
        blocks.append(md_table(pd.DataFrame({"Parameter": [escape(k) for k in priors],
                                             "Prior": [markup.code(v) for v in priors.values()]}),
                               caption="Priors.", label="priors", align="ll"))
    terms = (m.get("parametrization") or {}).get("terms", {})
    settings = {**sampler, "hdi_prob": m["hdi_prob"], **{f"parametrisation of ({t.replace('__', ':')})": k
                                                          for t, k in terms.items()},
                **dict(plan.describe(m["sampling"]) if m.get("sampling") else ())}
    blocks.append(md_table(
        pd.DataFrame({"Setting": [escape(k) for k in settings], "Value": [escape(v) for v in settings.values()]}),
        caption=f"Sampler settings (seed {escape(sampler.get('seed', 'not recorded'))}).", label="sampler", align="ll"))
    blocks.append("Estimands:\n\n" + "\n".join(f"- **{escape(name)}**: {text}"
                                                for name, text in estimands(wording(run.manifest))))
    blocks.append(input_files(m.get("inputs") or []))
    versions = m.get("versions") or {}
    if versions:
        blocks.append(md_table(pd.DataFrame({"Package": [escape(k) for k in versions],
                                             "Version": [escape(v) for v in versions.values()]}),
                               caption="Package versions.", label="versions", align="ll"))
    command = m.get("command")
    details = [("Command", markup.code(shlex.join(map(str, command)) if isinstance(command, list) else command)
                if command else None),
               ("Created", escape(fmt_date(m["created"])) if m.get("created") else None),
               ("Run folder", markup.code(run.path)),
               ("Timing", fmt_timing(m["timing"]) if m.get("timing") else None)]
    blocks.append("\n".join(f"- **{k}**: {v}" for k, v in details if v))
    return section("Methods", "methods", *blocks)


def combined_sha256(inputs: Sequence[dict]) -> str:
    """One hash for all input files: the SHA-256 of their SHA-256 hashes, sorted, one per line (independent of
    where the files lie; ``jq -r '.inputs[].sha256' manifest.json | sort | sha256sum`` gives it again)."""
    lines = "".join(f"{h}\n" for h in sorted(str(i.get("sha256", "")) for i in inputs))
    return hashlib.sha256(lines.encode()).hexdigest()


def input_folders(inputs: Sequence[dict], max_rows: int = MAX_LISTED) -> pd.DataFrame:
    """Input files counted by folder below their common folder: ``folder, files, sub_folders, rows``, at the
    shallowest folder level giving the most rows up to ``max_rows`` (``sub_folders``: distinct folders holding files
    at or below it, e.g. an HVSB dataset's model x condition folders)."""
    parents = [PurePath(str(i.get("path", ""))).parent for i in inputs]
    root = PurePath(os.path.commonpath([str(p) for p in parents])) if parents else PurePath()
    relative = [p.relative_to(root).parts for p in parents]
    table = pd.DataFrame({"parts": relative, "rows": [i.get("n_rows") for i in inputs]})
    counts = {d: len({r[:d] for r in relative}) for d in range(1, max(map(len, relative), default=0) + 1)}
    fits = [d for d, n in counts.items() if n <= max_rows] or [1]
    depth = min(fits, key=lambda d: (-counts.get(d, 1), d)) if counts else 0
    table["folder"] = ["/".join(r[:depth]) or "." for r in relative]
    table["leaf"] = ["/".join(r) for r in relative]
    return (table.groupby("folder", sort=True)
            .agg(files=("leaf", "size"), sub_folders=("leaf", "nunique"), rows=("rows", "sum"))
            .reset_index())


def input_files(inputs: Sequence[dict]) -> str:
    """The input files: listed with their hashes when few, else counted per folder with one combined hash (the
    full list is in the run's ``manifest.json``, key ``inputs``)."""
    if not inputs:
        return ""
    if len(inputs) <= MAX_LISTED:
        return md_table(pd.DataFrame({
            "File": [markup.code(i.get("path", "")) for i in inputs],
            "Format": [escape(i.get("format", "")) for i in inputs],
            "Rows": [fmt_int(i.get("n_rows", float("nan"))) for i in inputs],
            "SHA-256": [markup.code(i.get("sha256", "")) for i in inputs],
        }), caption="Input files and their SHA-256 hashes.", label="inputs", align="llrl")
    folders = input_folders(inputs)
    parents = [str(PurePath(str(i.get("path", ""))).parent) for i in inputs]
    root = os.path.commonpath(parents)
    formats = ", ".join(sorted({escape(i.get("format", "")) for i in inputs}))
    total = sum(i.get("n_rows") or 0 for i in inputs)
    summary = (f"{len(inputs):,} input files ({formats}) under {markup.code(root)}, {fmt_int(total)} rows in all; "
               f"combined SHA-256 {markup.code(combined_sha256(inputs))} (the SHA-256 of the files' hashes, sorted, one per "
               "line). Every file with its own hash and row count is in the run folder's `manifest.json` "
               "(key `inputs`).")
    return summary + "\n\n" + md_table(pd.DataFrame({
        "Folder": [markup.code(f) for f in folders["folder"]],
        "Files": [fmt_int(n) for n in folders["files"]],
        "Folders": [fmt_int(n) for n in folders["sub_folders"]],
        "Rows": [fmt_int(n) for n in folders["rows"]],
    }), caption=f"Input files per folder below {markup.code(root)} (Folders: the folders holding them).", label="inputs")


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
    rate = w.rate_for(_rate_condition(run))
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


def plural(noun: str) -> str:
    """``family`` -> ``families``, ``developer`` -> ``developers``."""
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def safe_label(text: str) -> str:
    """A cross-reference label from any level name."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def yaml_header(run: RunFolder) -> str:
    """The Quarto YAML header; the html options are honoured by both render engines."""
    title = markup.yaml_text(f"{wording(run.manifest).title}: {run.name}")
    date = markup.yaml_text(fmt_date(run.manifest.get("created", "")))
    return (
        "---\n"
        f"title: {title}\n"
        'subtitle: "dvbstats report"\n'
        f"date: {date}\n"
        "lang: en\n"
        "format:\n"
        "  html:\n"
        "    embed-resources: true\n"
        "    toc: true\n"
        "    toc-depth: 2\n"
        "    number-sections: true\n"
        f"    css: {CSS}\n"
        "---"
    )


def report_markdown(run: RunFolder, report_dir: Path) -> str:
    """Write the figures under ``report_dir/figures`` and return the report's ``.qmd`` text: the run's leading
    sections (:data:`LEAD`), the sections the run's benchmark lists (``Benchmark.report``), in its order, from
    :func:`sections`; then the run's other sections and the methods."""
    figures = Figures(report_dir)
    models, overall = _split_dvgr(run)
    registry = sections(run, figures, models, overall)
    parts: Iterable[str] = [
        yaml_header(run),
        banners(run),
        *extra_sections(run, report_dir, lead=True),
        *(registry[name]() for name in wording(run.manifest).sections),
        *extra_sections(run, report_dir),
        methods(run),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


#: The names a benchmark's ``report`` may list (:func:`sections`).
SECTIONS: tuple[str, ...] = (
    "headline", "reading_headline", "condition_headline", "models", "forest", "values", "variance", "training_size",
    "scaling", "contrasts", "conditions", "attack", "scenarios", "refusals", "prior_predictive", "ppc", "diagnostics", "quality",
    "agreement",
)


def sections(run: RunFolder, figures: Figures, models: pd.DataFrame, overall: pd.Series) -> dict[str, Callable[[], str]]:
    """Every report section by name (:data:`SECTIONS`), each drawn when called (figures are numbered in call
    order). A section whose tables the run lacks says so or is empty."""
    from dvbstats.report import conditions  # imports this module's helpers

    by_condition = conditions.sections(run, figures)
    quality = by_condition.get("quality")
    return {
        "headline": lambda: rate_headline(run, models, overall),
        "reading_headline": lambda: reading_headline(run, models, overall),
        "condition_headline": lambda: by_condition.get("headline") or rate_headline(run, models, overall),
        "models": lambda: model_table(run, models, overall),
        "forest": lambda: forest(run, models, overall, figures),
        "values": lambda: values(run, models, figures),
        "variance": lambda: variance(run, figures),
        "training_size": lambda: training_size(run, models, figures),
        "scaling": lambda: scaling(run, models, figures),
        "contrasts": lambda: contrasts_and_ranks(run, figures),
        "conditions": lambda: condition_effects(run, figures),
        "attack": lambda: by_condition.get("attack", ""),
        "scenarios": lambda: by_condition.get("scenarios", ""),
        "refusals": lambda: by_condition.get("refusals", ""),
        "prior_predictive": lambda: prior_predictive(run, figures),
        "ppc": lambda: ppc(run, figures),
        "diagnostics": lambda: diagnostics(run, figures),
        "quality": lambda: data_quality(run, figures) + (f"\n\n{quality}" if quality else ""),
        "agreement": lambda: agreement(run, figures),
    }
