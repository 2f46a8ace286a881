"""A frequentist first look at a judgment table: raw rates with Wilson intervals, paired condition tests.

Pure functions of a :class:`~dvbstats.benchmarks.common.JudgmentTable`'s ``data``, set beside the
Bayesian model as the HVSB paper's raw percentages would be, but with intervals and, for
conditions, paired tests: every model judges the same items under every condition, so a change
between two conditions is tested on the items judged under both (McNemar's exact test), with the
unpaired chi-square test of the paper's style beside it. :func:`tables` is HVSB's first look in its run
folder (one of the analyses its definition names, ``Benchmark.extra_tables``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from dvbstats.benchmarks.common import JudgmentTable
from dvbstats.benchmarks.definition import Benchmark, register_analysis
from dvbstats.results.fitted import Fit
from dvbstats.results.frequentist import chi2_2x2, wilson

#: Rows that stand for their trial after reconciliation (copies superseded or in conflict are not).
_FINAL = pl.col("status").is_in(["used", "unparsed"])


def raw_rates(data: pl.DataFrame, outcome: str, by: Sequence[str] = ("model", "condition"),
              level: float = 0.95) -> pl.DataFrame:
    """Per group: ``n`` trials with a non-null ``outcome`` among final rows, ``k`` ones, the rate, Wilson interval.

    ``outcome="misaligned"`` gives HVSB's MR (condition none) and ASR (attack conditions);
    ``outcome="refused"`` the refusal rate (of responses not cut off).
    """
    counts = (
        data.filter(_FINAL & pl.col(outcome).is_not_null())
        .group_by(list(by))
        .agg(pl.len().cast(pl.Int64).alias("n"), pl.col(outcome).cast(pl.Int64).sum().alias("k"))
        .sort(list(by))
    )
    low, high = wilson(counts["k"].to_numpy(), counts["n"].to_numpy(), level)
    return counts.with_columns(
        (pl.col("k") / pl.col("n")).alias("rate"), pl.Series("wilson_low", low), pl.Series("wilson_high", high)
    )


def paired_condition_test(
    data: pl.DataFrame, outcome: str, base: str, other: str, *, by: str = "model", item: str = "item"
) -> pl.DataFrame:
    """Per level of ``by``: does ``outcome`` change from condition ``base`` to ``other`` on shared items?

    Pairs are the items with a non-null ``outcome`` in a final row under both conditions. Returns
    ``n_pairs, rate_base, rate_other, difference`` (other - base, on the pairs), the discordant
    counts ``n_rises`` (0 under base, 1 under other) and ``n_falls``, McNemar's exact two-sided
    p-value, the exact one-sided p-value that it rises (binomial on the discordant pairs), and the
    paper-style unpaired chi-square p-value on every trial of each condition.
    """
    final = data.filter(_FINAL & pl.col(outcome).is_not_null() & pl.col("condition").is_in([base, other]))
    absent = [c for c in (base, other) if c not in final["condition"].cast(pl.String).unique().to_list()]
    if absent:
        raise ValueError(f"no trial with {outcome} under condition(s) {absent}: nothing to compare")
    wide = (
        final.with_columns(pl.col("condition").cast(pl.String))
        .pivot("condition", index=[by, item], values=outcome)
    )
    rows = []
    for level in final[by].unique().sort().to_list():
        pairs = wide.filter((pl.col(by) == level) & pl.col(base).is_not_null() & pl.col(other).is_not_null())
        x, y = pairs[base].to_numpy(), pairs[other].to_numpy()
        rises, falls = int(((x == 0) & (y == 1)).sum()), int(((x == 1) & (y == 0)).sum())
        table = [[int(((x == 0) & (y == 0)).sum()), rises], [falls, int(((x == 1) & (y == 1)).sum())]]
        unpaired = final.filter(pl.col(by) == level).group_by("condition").agg(
            pl.len().alias("n"), pl.col(outcome).cast(pl.Int64).sum().alias("k"))
        kn = {c: (k, n) for c, n, k in unpaired.select("condition", "n", "k").iter_rows()}
        rows.append({
            by: level,
            "n_pairs": len(x),
            "rate_base": float(x.mean()) if len(x) else np.nan,
            "rate_other": float(y.mean()) if len(x) else np.nan,
            "difference": float(y.mean() - x.mean()) if len(x) else np.nan,
            "n_rises": rises,
            "n_falls": falls,
            "mcnemar_p": float(mcnemar(table, exact=True).pvalue) if rises + falls else 1.0,
            "p_rises": float(stats.binomtest(rises, rises + falls, 0.5, alternative="greater").pvalue)
            if rises + falls else 1.0,
            "chi2_unpaired_p": chi2_2x2(*kn[base], *kn[other]).p_value if base in kn and other in kn else np.nan,
        })
    return pl.DataFrame(rows).with_columns(pl.lit(base).alias("base"), pl.lit(other).alias("other"))


def hvsb_tables(data: pl.DataFrame, level: float = 0.95) -> dict[str, pl.DataFrame]:
    """The HVSB first look: MR/ASR and refusal rate per model x condition, and per model whether each
    rises from the untargeted to the targeted prompt (paired on shared items)."""
    return {
        "rates": raw_rates(data, "misaligned", level=level),
        "refusals": raw_rates(data, "refused", level=level),
        "asr_targeted_vs_untargeted": paired_condition_test(data, "misaligned", "untargeted", "targeted"),
        "refusal_targeted_vs_untargeted": paired_condition_test(data, "refused", "untargeted", "targeted"),
    }


@register_analysis("hvsb first look")
def tables(b: Benchmark, fit: Fit, trials: JudgmentTable, hdi_prob: float) -> dict[str, pl.DataFrame]:
    """HVSB's first look as run-folder tables (its ``extra_tables``): the refusal rate per model x condition, and
    per model whether the ASR and the refusal rate rise from the untargeted to the targeted prompt; none unless
    the judgments hold both prompts. Frequentist, so neither the fit nor ``hdi_prob`` enters."""
    if not {"untargeted", "targeted"} <= set(trials.data["condition"].cast(pl.String).unique()):
        return {}
    looks = hvsb_tables(trials.data)
    return {"refusals": looks["refusals"].with_columns(pl.col("condition").cast(pl.String)),
            "asr_targeted_vs_untargeted": looks["asr_targeted_vs_untargeted"],
            "refusal_targeted_vs_untargeted": looks["refusal_targeted_vs_untargeted"]}
