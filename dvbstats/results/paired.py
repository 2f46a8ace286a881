"""Paired comparisons of models on the items they share: one 2x2 table per pair of models.

Every model of a benchmark answers the same items, so two models' outcomes on an item are a pair.
:func:`pair_counts` cross-tabulates them, for every pair of models, on the items **both** answered
(used rows only): ``n_11`` both chose 1 (the deep value), ``n_10`` only the first, ``n_01`` only
the second, ``n_00`` neither. :func:`paired_tests` compares the two models' rates with McNemar's
exact test, which uses only the discordant items, beside the paper's unpaired chi-square on the
same items, each adjusted across all pairs (Holm; Benjamini-Hochberg), so a reader sees what
pairing changes. Agreement between models (:mod:`dvbstats.results.agreement`) starts from the same table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats
from statsmodels.stats.multitest import multipletests

from dvbstats.results.frequentist import chi2_2x2_many

#: Columns of :func:`pair_counts`.
COUNT_COLUMNS: tuple[str, ...] = ("model1", "model2", "n_shared", "n_11", "n_10", "n_01", "n_00")
#: Multiple-comparison adjustments: column suffix -> ``multipletests`` method.
ADJUSTMENTS: dict[str, str] = {"holm": "holm", "bh": "fdr_bh"}


def used_outcomes(trials: pl.DataFrame, *, outcome: str = "chose_deep", item: str = "prompt_id") -> pl.DataFrame:
    """``model, item, outcome`` of the used rows (status ``used``), one row per model and item.

    Raises ``ValueError`` when a model has two used rows for one item (the trial table's
    reconciliation keeps at most one) or a used row has no outcome.
    """
    missing = [c for c in ("model", item, outcome, "status") if c not in trials.columns]
    if missing:
        raise ValueError(f"paired comparison: the trial table lacks column(s) {', '.join(missing)}")
    used = trials.filter(pl.col("status") == "used").select("model", item, outcome)
    if used[outcome].null_count():
        row = used.filter(pl.col(outcome).is_null()).row(0, named=True)
        raise ValueError(f"paired comparison: used row of model {row['model']!r}, {item} {row[item]!r} has no {outcome}")
    repeated = used.filter(pl.struct("model", item).is_duplicated())
    if repeated.height:
        row = repeated.row(0, named=True)
        raise ValueError(f"paired comparison: model {row['model']!r} has {repeated.height} used rows sharing an item, "
                         f"e.g. {item} {row[item]!r}; reconcile duplicates first (ingest does)")
    return used


def pair_counts(
    trials: pl.DataFrame,
    order: Sequence[str] | None = None,
    *,
    outcome: str = "chose_deep",
    item: str = "prompt_id",
) -> pl.DataFrame:
    """The 2x2 table of every pair of models on the items both answered (:data:`COUNT_COLUMNS`).

    Pairs are (``order[i]``, ``order[j]``) for i < j; ``order`` defaults to the models sorted by
    name, and models in it without used rows are left out. Only used rows count: an item one
    model did not answer (unparsed, conflicting copies) is not shared.
    """
    used = used_outcomes(trials, outcome=outcome, item=item)
    present = set(used["model"].unique().to_list())
    names = [m for m in (order if order is not None else sorted(present)) if m in present]
    wide = used.pivot(on="model", index=item, values=outcome).select(names)
    x = wide.to_numpy().astype(float)  # items x models; NaN where a model has no used row
    one, other = (x == 1).astype(float), (~np.isnan(x) & (x != 1)).astype(float)
    i, j = np.triu_indices(len(names), 1)  # (0, 1), (0, 2), ..., (1, 2), ...: the pairs i < j in order
    # every pair's 2x2 table by four matrix products (exact: sums of 0/1 far below 2^53)
    n_11, n_10, n_01, n_00 = ((u.T @ v)[i, j].astype(np.int64) for u, v in
                              ((one, one), (one, other), (other, one), (other, other)))
    return pl.DataFrame({"model1": [names[k] for k in i], "model2": [names[k] for k in j],
                         "n_shared": n_11 + n_10 + n_01 + n_00, "n_11": n_11, "n_10": n_10, "n_01": n_01, "n_00": n_00},
                        schema={c: pl.String if c.startswith("model") else pl.Int64 for c in COUNT_COLUMNS})


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    """``multipletests`` adjusted p-values over the non-missing entries of ``p`` (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = _holm(p[ok]) if method == "holm" else multipletests(p[ok], method=method)[1]
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, ``multipletests(method="holm")``'s arithmetic (which also forces a
    full garbage collection per call: 0.25-1 s in a fit's process)."""
    order = np.argsort(p)
    adjusted = np.minimum(np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)), 1)
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def paired_tests(counts: pl.DataFrame) -> pl.DataFrame:
    """McNemar's exact test and the unpaired chi-square per pair, each adjusted across all pairs.

    Per pair of :func:`pair_counts`, on its ``n_shared`` items: ``rate1, rate2`` (each model's
    rate of 1s), ``diff = rate1 - rate2 = (n_10 - n_01) / n``, its standard error paired
    (``sqrt(n_10 + n_01 - (n_10 - n_01)^2 / n) / n``) and unpaired (two independent binomials),
    McNemar's exact test (``statsmodels...mcnemar(exact=True)``: a binomial test of n_10 against
    n_10 + n_01; ``mcnemar_stat = min(n_10, n_01)``) and the paper's chi-square test
    (:func:`dvbstats.results.frequentist.chi2_2x2`, Yates-corrected) that treats the two models' answers
    as independent samples. ``*_holm`` and ``*_bh`` are the p-values adjusted across all pairs
    (Holm's step-down, family-wise error; Benjamini-Hochberg, false discovery rate). A pair with
    no shared item has missing tests and takes no part in the adjustment.
    """
    n, n_11, b, c = (counts[k].to_numpy().astype(float) for k in ("n_shared", "n_11", "n_10", "n_01"))
    ok = n > 0
    k1, k2 = n_11 + b, n_11 + c
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = k1 / n, k2 / n
        tests = {"rate1": p1, "rate2": p2, "diff": (b - c) / n, "se_paired": np.sqrt(b + c - (b - c) ** 2 / n) / n,
                 "se_unpaired": np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)}
    # McNemar's exact test as statsmodels' mcnemar(exact=True) computes it, for every pair at once
    tests["mcnemar_stat"] = np.minimum(b, c)
    tests["mcnemar_p"] = np.minimum(stats.binom.cdf(tests["mcnemar_stat"], b + c, 0.5) * 2, 1)
    tests["chi2_stat"], tests["chi2_p"] = np.full(len(n), np.nan), np.full(len(n), np.nan)
    if ok.any():
        tests["chi2_stat"][ok], tests["chi2_p"][ok] = chi2_2x2_many(k1[ok], n[ok], k2[ok], n[ok])
    table = counts.with_columns(pl.Series(k, np.where(ok, v, np.nan), dtype=pl.Float64) for k, v in tests.items())
    return table.with_columns(
        pl.Series(f"{test}_p_{suffix}", adjust(table[f"{test}_p"].to_numpy(), method))
        for test in ("mcnemar", "chi2") for suffix, method in ADJUSTMENTS.items()
    )
