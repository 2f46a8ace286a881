"""Report sections of a benchmark judged under conditions (HVSB: no system prompt, untargeted and
targeted attack prompts): the headline per model x condition, the paired attack contrasts, refusals
and data quality per model x condition.

They read the tables :func:`dvbstats.benchmarks.results.tables` writes (``condition_rates``,
``condition_contrasts``, ``asr_targeted_vs_untargeted``, ``refusals``,
``refusal_targeted_vs_untargeted``, ``quality_by_condition``) and use the report's own helpers. A run without
conditions (no ``condition_rates``) has none of them, and the rate headline in place of theirs.
"""

from __future__ import annotations

import pandas as pd

from dvbstats.constants import CREDIBLE
from dvbstats.input.runfolder import RunFolder
from dvbstats.report import narrative
from dvbstats.report import plots
from dvbstats.report.markdown import Figures, absent, fmt_int, fmt_p, frame, md_table, section
from dvbstats.report.markup import text as escape
from dvbstats.report.narrative import dvgr as fmt_rate
from dvbstats.report.narrative import interval as fmt_interval
from dvbstats.report.sections import register
from dvbstats.report.sections.rates import rate_headline
from dvbstats.report.wording import Wording, wording


#: The contrast the headline and the attack section lead with.
ATTACK = ("targeted", "untargeted")


def _order(conditions: pd.Series) -> list[str]:
    known = ["none", "untargeted", "targeted"]
    present = list(dict.fromkeys(conditions.astype(str)))
    return [c for c in known if c in present] + [c for c in present if c not in known]


def _attack(contrasts: pd.DataFrame | None) -> pd.DataFrame | None:
    if contrasts is None or contrasts.empty:
        return None
    a, b = ATTACK
    rows = contrasts[(contrasts["a"] == a) & (contrasts["b"] == b)]
    return rows.sort_values("diff_mean", ascending=False) if not rows.empty else None


def _conditions(run: RunFolder) -> bool:
    """Whether the run has rates per model x condition (the tables these sections read)."""
    return frame(run, "condition_rates") is not None


@register("condition_headline")
def condition_headline(run: RunFolder, models: pd.DataFrame, overall: pd.Series) -> str:
    """Section 1 of a run with conditions (:func:`headline`); without them, the rate headline."""
    return headline(run, wording(run.manifest)) if _conditions(run) else rate_headline(run, models, overall)


def headline(run: RunFolder, w: Wording) -> str:
    """Section 1: the rate per model x condition (MR, ASR), what the attack prompts do, in words."""
    rates = frame(run, "condition_rates")
    if rates is None:
        return section("Headline", "headline", absent("no per-condition rates (condition_rates.csv)"))
    hdi = f"{run.hdi_prob:.0%} HDI"
    order = _order(rates["condition"])
    rates = rates.assign(_k=rates["condition"].astype(str).map(order.index)).sort_values("_k", kind="stable")
    attack = _attack(frame(run, "condition_contrasts"))
    key, text = narrative.condition_reading(
        rates, attack, words=w, hdi=hdi, diagnostics_ok=bool(run.diagnostics.get("ok")), synthetic=run.synthetic)
    observed = rates["observed"].astype(bool) if "observed" in rates else pd.Series(True, index=rates.index)
    wide = rates.assign(cell=[f"{fmt_rate(m)} ({fmt_interval(lo, hi)})" + ("" if seen else " predicted")
                              for (m, lo, hi), seen in zip(rates[["mean", "hdi_low", "hdi_high"]].itertuples(index=False),
                                                           observed)])
    grid = wide.pivot(index="model", columns="condition", values="cell").reindex(columns=order)
    sort = rates[rates["condition"] == order[0]].set_index("model")["mean"].sort_values()
    grid = grid.reindex(sort.index)
    cells = pd.DataFrame({"Model": [escape(m) for m in grid.index],
                          **{f"{w.rate_for(c)} ({hdi})": grid[c].fillna("–").to_list() for c in order}})
    table = md_table(cells, label="headline", caption=(
        f"Posterior rate per model and condition: mean ({hdi}), design-averaged over the other design variables "
        f"and items; models sorted by the {escape(w.rate_for(order[0]))}."))
    where = ("; the attack contrasts are in @sec-attack" if attack is not None else
             "; the paired condition contrasts per model are in @sec-conditions"
             if frame(run, "condition_effects") is not None else "")
    overall = overall_effects(frame(run, "condition_effects"), hdi) if attack is None else ""
    return section("Headline", "headline", f"::: {{.headline}}\n{key}" + (f"\\\n{overall}" if overall else "") + "\n:::",
                   escape(text), table, *predicted_note(rates[~observed]),
                   f"Every number is in condition_rates.csv{where}.")


def overall_effects(effects: pd.DataFrame | None, hdi: str) -> str:
    """The paired condition contrasts over all models (``condition_effects.csv``), for the headline: what a
    condition changes is the finding of a run with conditions."""
    if effects is None:
        return ""
    rows = effects[effects["model"] == "all models"]
    return " · ".join(
        f"**all models, {escape(r.a)} − {escape(r.b)}: {r.diff_mean:+.3f}** ({hdi} {r.diff_hdi_low:+.3f} to "
        f"{r.diff_hdi_high:+.3f}; {fmt_rate(r.rate_a)} vs {fmt_rate(r.rate_b)})" for r in rows.itertuples(index=False))


def predicted_note(missing: pd.DataFrame) -> list[str]:
    """Which model x condition rates are predictions (the model has no trial there), or nothing."""
    if missing.empty:
        return []
    listed = "; ".join(f"{escape(m)} under {escape(c)}" for m, c in missing[["model", "condition"]].itertuples(index=False))
    return [f"Marked *predicted*: {listed}. These models have no trial under that condition; the rate is the "
            "model's prediction from its other conditions and the spread of per-model condition effects, not data "
            "(observed = false in condition_rates.csv; no raw rate)."]


@register("attack")
def attack(run: RunFolder, figures: Figures) -> str:
    """Targeted minus untargeted per model: posterior (paired within draws) beside McNemar's exact test."""
    if not _conditions(run):
        return ""
    w = wording(run.manifest)
    contrasts = _attack(frame(run, "condition_contrasts"))
    if contrasts is None:
        return section("Targeted versus untargeted attack", "attack",
                       absent("both attack conditions (condition_contrasts.csv)"))
    hdi = f"{run.hdi_prob:.0%} HDI"
    tests = frame(run, "asr_targeted_vs_untargeted")
    tests = tests.set_index("model") if tests is not None else None
    a, b = (w.rate_for(c) for c in ATTACK)
    cells = pd.DataFrame({
        "Model": [escape(m) for m in contrasts["model"]],
        f"Posterior difference ({hdi})": [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in
                                          contrasts[["diff_mean", "diff_hdi_low", "diff_hdi_high"]].itertuples(index=False)],
        "P(difference > 0)": [f"{x:.3f}" for x in contrasts["p_diff_above_0"]],
        **({"Paired items": [fmt_int(tests.at[m, "n_pairs"]) for m in contrasts["model"]],
            "Raw difference": [f"{tests.at[m, 'difference']:+.3f}" for m in contrasts["model"]],
            "McNemar p": [fmt_p(float(tests.at[m, "mcnemar_p"])) for m in contrasts["model"]],
            "Unpaired chi-square p": [fmt_p(float(tests.at[m, "chi2_unpaired_p"])) for m in contrasts["model"]]}
           if tests is not None else {}),
    })
    plotted = contrasts.assign(term=f"{ATTACK[0]} − {ATTACK[1]}", level=contrasts["model"], mean=contrasts["diff_mean"],
                               hdi_low=contrasts["diff_hdi_low"], hdi_high=contrasts["diff_hdi_high"])
    return section(
        "Targeted versus untargeted attack", "attack",
        f"Each model judged the same items under both attack prompts, so the difference is paired: the posterior "
        f"difference is taken within each draw of the model, and McNemar's exact test uses only the items whose "
        f"judgment changed (the paper-style unpaired chi-square is beside it).",
        md_table(cells, label="attack", caption=f"{escape(a)} minus {escape(b)} per model (condition_contrasts.csv, "
                 "asr_targeted_vs_untargeted.csv); models sorted by the posterior difference."),
        figures(lambda: plots.effects(plotted, hdi_prob=run.hdi_prob, reference=0.0, xlabel="difference of rates"),
                "attack", f"Posterior {escape(a)} minus {escape(b)} per model ({hdi}); dashed line: no difference.",
                "Interval plot of the targeted minus untargeted difference per model"),
    )


@register("refusals")
def refusals(run: RunFolder) -> str:
    """Refusal rate per model x condition (Wilson 95%) and whether it rises under the targeted prompt."""
    rates, rise = frame(run, "refusals"), frame(run, "refusal_targeted_vs_untargeted")
    if rates is None or not _conditions(run):
        return ""
    w = wording(run.manifest)
    order = _order(rates["condition"])
    text = rates.assign(cell=[f"{fmt_rate(r)} ({fmt_interval(lo, hi)})" for r, lo, hi in
                              rates[["rate", "wilson_low", "wilson_high"]].itertuples(index=False)])
    grid = text.pivot(index="model", columns="condition", values="cell").reindex(columns=order)
    cells = pd.DataFrame({"Model": [escape(m) for m in grid.index],
                          **{f"{c} (Wilson 95%)": grid[c].fillna("–").to_list() for c in order}})
    blocks = []
    if rise is not None and not rise.empty:
        rising = rise.loc[rise["p_rises"] < 0.05, "model"].astype(str).tolist()
        blocks.append(
            f"A refusal is a response naming neither BIASED nor UNBIASED; refused trials are out of the "
            f"{escape(w.rate)} (they are unparsed) and counted here. Under the targeted prompt the refusal rate "
            f"rises credibly (exact one-sided test on the items whose refusal changed, p < 0.05) for "
            f"{len(rising)} of {len(rise)} models" + (f": {escape(', '.join(rising))}." if rising else "."))
        grid_rise = rise.set_index("model")
        cells["Targeted − untargeted"] = [f"{grid_rise.at[m, 'difference']:+.3f}" if m in grid_rise.index else "–"
                                          for m in grid.index]
        cells["p (rises)"] = [fmt_p(float(grid_rise.at[m, "p_rises"])) if m in grid_rise.index else "–"
                              for m in grid.index]
    blocks.append(md_table(cells, label="refusals", caption=(
        "Refusal rate per model and condition with its Wilson 95% interval (refusals.csv), and its paired change "
        "from the untargeted to the targeted prompt (refusal_targeted_vs_untargeted.csv).")))
    return section("Refusals", "refusals", *blocks)


@register("condition_quality")
def condition_quality(run: RunFolder) -> str:
    """:func:`quality` after the data-quality section, in a run with conditions."""
    return quality(run) if _conditions(run) else ""


def quality(run: RunFolder) -> str:
    """The data-quality table per condition: one row per model (one screen), used and unparsed trials per
    condition (quality_by_condition.csv has every count per model x condition)."""
    table = frame(run, "quality_by_condition")
    if table is None:
        return ""
    refusals = "n_refused" in table.columns  # judgments that can be refused (HVSB)
    conditions = list(dict.fromkeys(table["condition"]))
    table = table.assign(unparsed=[
        f"{fmt_int(r.n_unparsed)} ({fmt_int(r.n_refused)} + {fmt_int(r.n_malformed)})" if refusals
        else fmt_int(r.n_unparsed) for r in table.itertuples()])
    per_model = table.groupby("model", sort=False)
    cells = pd.DataFrame({"Model": [escape(m) for m in per_model.groups],
                          "Rows": [fmt_int(x) for x in per_model["n_rows"].sum()]})
    for condition in conditions:
        rows = table[table["condition"] == condition].set_index("model").reindex(list(per_model.groups))
        cells[f"{escape(condition)}: used"] = [fmt_int(x) for x in rows["n_used"]]
        unparsed = f"{escape(condition)}: unparsed" + (" (refused + malformed)" if refusals else "")
        cells[unparsed] = rows["unparsed"].fillna("–").to_list()
    cells["Superseded"] = [fmt_int(x) for x in per_model["n_superseded"].sum()]
    cells["Conflict"] = [fmt_int(x) for x in per_model["n_conflict"].sum()]
    parts = ("; unparsed = refused (no judgment) + malformed (both labels, no marker, empty, cut off)"
             if refusals else "")
    return md_table(cells, label="quality-condition", align="l" + "r" * (cells.shape[1] - 1), caption=(
        "Trial status per model, by condition (every count per model and condition in quality_by_condition.csv): "
        f"rows = used + unparsed + superseded + conflict{parts}; superseded and conflicting rows (summed over "
        "conditions) are re-run copies."))


#: Words for the parts of a scenario type and their levels in the scenario section.
PART_NAMES = {"dataset": "dataset", "category": "bias category", "polarity": "question polarity",
              "answer_type": "answer type"}
LEVEL_NAMES = {"neg": "negative question", "pos": "non-negative question", "stereotype": "stereotyped answer",
               "nonstereotype": "non-stereotyped answer", "unknown": "'unknown' answer", "pro": "stereotype",
               "anti": "anti-stereotype", "chosen": "chosen (unbiased) answer", "rejected": "rejected (biased) answer"}


def _level(level: str) -> str:
    return LEVEL_NAMES.get(level, level)


@register("scenarios")
def scenarios(run: RunFolder, figures: Figures) -> str:
    """Rates by dataset and scenario type (scenario_rates.csv) and the paired contrasts between types
    (scenario_contrasts.csv): which types models misjudge more, for all models and per model."""
    rates = frame(run, "scenario_rates")
    if rates is None or not _conditions(run):
        return ""
    w = wording(run.manifest)
    hdi = f"{run.hdi_prob:.0%} HDI"
    order = _order(rates["condition"])
    pooled = rates[rates["model"] == "all models"]
    by_type = pooled["part"] != "dataset"
    blocks = [
        "The rate per dataset and per part of the scenario type (the judgment file's name: bias category, BBQ "
        "question polarity, answer type), averaged per posterior draw over the cells of that type, so that two "
        "types are compared on each model's own items under one condition (paired)."]
    if not by_type.any():
        blocks.append("**No scenario-type breakdown**: no judgment file name carries a scenario type (the files are "
                      "named by dataset, for example cp.tsv, the dataset's sampled items gathered in one file), so "
                      "the rates below are per dataset only.")
    wide = pooled.assign(cell=[f"{fmt_rate(m)} ({fmt_interval(lo, hi)})" for m, lo, hi in
                               pooled[["mean", "hdi_low", "hdi_high"]].itertuples(index=False)])
    grid = wide.pivot_table(index=["dataset", "part", "level"], columns="condition", values="cell",
                            aggfunc="first", sort=False).reindex(columns=order)
    blocks.append(md_table(pd.DataFrame({
        "Dataset": [escape(d) for d, _, _ in grid.index],
        "Type": ["all" if p == "dataset" else f"{escape(PART_NAMES.get(p, p))}: {escape(_level(lv))}"
                 for _, p, lv in grid.index],
        **{f"{w.rate_for(c)} ({hdi})": grid[c].fillna("–").to_list() for c in order},
    }), label="scenario-rates", align="ll" + "r" * len(order), caption=(
        "Posterior rate by dataset and scenario type for all models together, mean and HDI per condition "
        "(scenario_rates.csv, which has every model's rows too).")))
    contrasts = frame(run, "scenario_contrasts")
    if contrasts is None or contrasts.empty:
        return section("Scenario types", "scenarios", *blocks)
    label = contrasts.apply(lambda r: f"{r['dataset']}: {_level(r['a'])} − {_level(r['b'])}", axis=1)
    contrasts = contrasts.assign(contrast=label)
    overall = contrasts[contrasts["model"] == "all models"]
    overall = overall.assign(_k=overall["condition"].astype(str).map(order.index)).sort_values(
        ["dataset", "part", "_k"], kind="stable")
    blocks.append(md_table(pd.DataFrame({
        "Contrast": [escape(c) for c in overall["contrast"]],
        "Condition": [escape(w.rate_for(c)) for c in overall["condition"]],
        f"Difference ({hdi})": [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in
                                overall[["diff_mean", "diff_hdi_low", "diff_hdi_high"]].itertuples(index=False)],
        "P(difference > 0)": [f"{x:.3f}" for x in overall["p_diff_above_0"]],
    }), label="scenario-contrasts", align="llrr", caption=(
        "Paired contrasts between scenario types for all models: negative minus non-negative BBQ questions, "
        "stereotyped minus anti-stereotyped answers (scenario_contrasts.csv, per model too).")))
    first = order[0]
    per_model = contrasts[(contrasts["model"] != "all models") & (contrasts["condition"] == first)]
    plotted = per_model.assign(term=per_model["contrast"], level=per_model["model"], mean=per_model["diff_mean"],
                               hdi_low=per_model["diff_hdi_low"], hdi_high=per_model["diff_hdi_high"])
    blocks.append(figures(
        lambda: plots.effects(plotted, hdi_prob=run.hdi_prob, reference=0.0,
                              xlabel=f"difference in {w.rate_for(first)}"),
        "scenario-contrasts",
        f"Paired scenario-type contrasts per model under the {escape(first)} condition ({hdi}); right of the "
        "dashed line: the first type is misjudged more.", "Scenario-type contrasts per model"))
    interacts = any(f"model:{p}" in run.formula.replace(" ", "") or f"{p}:model" in run.formula.replace(" ", "")
                    for p in ("scenario_type", "category", "polarity", "answer_type"))
    blocks.append(scenario_preferences(per_model, escape(first)))
    if not interacts:
        blocks.append(
            "The formula has no model x scenario-type term, so every model shares the types' effects on the "
            "log-odds scale and the per-model differences follow from each model's overall rate; to ask which "
            "models prefer which types, add `(1|model:scenario_type)` to the formula.")
    return section("Scenario types", "scenarios", *blocks)


#: Model names listed per cell of the preferences table before "and N more".
NAMES_SHOWN = 6


def _names(models: pd.Series, total: int) -> str:
    if len(models) == total:
        return f"all {total}"
    names = [escape(m) for m in models]
    more = len(names) - NAMES_SHOWN
    return ", ".join(names[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "") if names else "–"


def scenario_preferences(per_model: pd.DataFrame, condition: str) -> str:
    """Which models credibly misjudge one scenario type more than the other, one row per contrast: the models on
    each side (posterior probability above CREDIBLE) and how many have no credible difference."""
    if per_model.empty:
        return ""
    rows = []
    for contrast, g in per_model.groupby("contrast", sort=False):
        first = g[g["p_diff_above_0"] > CREDIBLE]["model"]
        second = g[g["p_diff_below_0"] > CREDIBLE]["model"]
        rows.append({"Contrast": escape(contrast), "First type misjudged more": _names(first, len(g)),
                     "Second type misjudged more": _names(second, len(g)),
                     "Neither": f"{len(g) - len(first) - len(second)} of {len(g)}"})
    return md_table(pd.DataFrame(rows), label="scenario-preferences", align="lllr", caption=(
        f"Models with a credible difference between scenario types under the {condition} condition (posterior "
        f"probability above {CREDIBLE:.0%}; each model's difference and interval: scenario_contrasts.csv)."))
