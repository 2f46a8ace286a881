"""The report section on agreement between models (raw agreement, Cohen's kappa, the same-group effect)."""

from __future__ import annotations

import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report import plots
from dvbstats.report.markdown import Figures, absent, bounded, callout, fmt_int, fmt_num, fmt_p, frame, md_table, plural, section
from dvbstats.report.markup import text as escape
from dvbstats.report.sections import register
from dvbstats.report.wording import wording
from dvbstats.results import bounds


@register("agreement")
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
