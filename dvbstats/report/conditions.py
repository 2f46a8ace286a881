"""Report sections of a benchmark judged under conditions (HVSB: no system prompt, untargeted and
targeted attack prompts): the headline per model x condition, the paired attack contrasts, refusals
and data quality per model x condition.

They read the tables :func:`dvbstats.benchmarks.results.tables` writes (``condition_rates``,
``condition_contrasts``, ``asr_targeted_vs_untargeted``, ``refusals``,
``refusal_targeted_vs_untargeted``, ``quality_by_condition``) and use the report's own helpers.
"""

from __future__ import annotations

import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report import narrative
from dvbstats.report import plots
from dvbstats.report.build import (
    Figures,
    absent,
    escape,
    fmt_int,
    fmt_p,
    frame,
    md_table,
    section,
)
from dvbstats.report.narrative import dvgr as fmt_rate
from dvbstats.report.narrative import interval as fmt_interval
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
    wide = rates.assign(cell=[f"{fmt_rate(m)} ({fmt_interval(lo, hi)})" for m, lo, hi in
                              rates[["mean", "hdi_low", "hdi_high"]].itertuples(index=False)])
    grid = wide.pivot(index="model", columns="condition", values="cell").reindex(columns=order)
    sort = rates[rates["condition"] == order[0]].set_index("model")["mean"].sort_values()
    grid = grid.reindex(sort.index)
    cells = pd.DataFrame({"Model": [escape(m) for m in grid.index],
                          **{f"{w.rate_for(c)} ({hdi})": grid[c].fillna("–").to_list() for c in order}})
    table = md_table(cells, label="headline", caption=(
        f"Posterior rate per model and condition: mean ({hdi}), design-averaged over datasets, scenario types "
        f"and items; models sorted by the {escape(w.rate_for(order[0]))}."))
    return section("Headline", "headline", f"::: {{.headline}}\n{key}\n:::", escape(text), table,
                   "Every number is in condition_rates.csv; the attack contrasts are in @sec-attack.")


def attack(run: RunFolder, w: Wording, figures: Figures) -> str:
    """Targeted minus untargeted per model: posterior (paired within draws) beside McNemar's exact test."""
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


def refusals(run: RunFolder, w: Wording) -> str:
    """Refusal rate per model x condition (Wilson 95%) and whether it rises under the targeted prompt."""
    rates, rise = frame(run, "refusals"), frame(run, "refusal_targeted_vs_untargeted")
    if rates is None:
        return ""
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


def quality(run: RunFolder) -> str:
    """The data-quality table per model x condition (quality_by_condition.csv), for the data-quality section."""
    table = frame(run, "quality_by_condition")
    if table is None:
        return ""
    refusals = "n_refused" in table.columns  # judgments that can be refused (HVSB)
    columns = (("n_rows", "Rows"), ("n_used", "Used"),
               *((("n_refused", "Refused"), ("n_malformed", "Malformed")) if refusals else ()),
               ("n_unparsed", "Unparsed"), ("n_superseded", "Superseded"), ("n_conflict", "Conflict"))
    cells = pd.DataFrame({
        "Model": [escape(m) for m in table["model"]],
        "Condition": [escape(c) for c in table["condition"]],
        **{label: [fmt_int(x) for x in table[col]] for col, label in columns},
    })
    parts = ("; unparsed = refused (no judgment) + malformed (both labels, no marker, empty, cut off)"
             if refusals else "")
    return md_table(cells, label="quality-condition", align="ll" + "r" * len(columns), caption=(
        "Trial status per model and condition (quality_by_condition.csv): rows = used + unparsed + superseded + "
        f"conflict{parts}; superseded and conflicting rows are re-run copies."))


def sections(run: RunFolder, figures: Figures) -> dict[str, str]:
    """The condition sections by name, in the run's benchmark words; empty when the run has no conditions."""
    if frame(run, "condition_rates") is None:
        return {}
    w = wording(run.manifest)
    return {"headline": headline(run, w), "attack": attack(run, w, figures), "refusals": refusals(run, w),
            "quality": quality(run)}
