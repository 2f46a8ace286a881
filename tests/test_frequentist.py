"""Frequentist helpers against scipy/statsmodels computed directly."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.stats.contingency import association
from statsmodels.stats.proportion import proportion_confint

from dvbstats.results.frequentist import binom_test, chi2_2x2, chi2_2x2_many, cluster_robust_logit, wilson


def test_wilson_equals_statsmodels():
    k, n = np.array([0, 3, 50, 120, 7]), np.array([10, 10, 100, 120, 9])
    for level in (0.9, 0.95):
        low, high = wilson(k, n, level)
        ref_low, ref_high = proportion_confint(k, n, alpha=1 - level, method="wilson")
        np.testing.assert_allclose(low, ref_low, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(high, ref_high, rtol=1e-12, atol=1e-15)
    assert np.isnan(wilson(0, 0)[0])


@pytest.mark.parametrize("n", [1, 7, 12_000, 123_456])
def test_wilson_contains_the_estimate_at_0_and_1(n):
    for k in (0, n):
        low, high = wilson(k, n)
        assert low <= k / n <= high and 0 <= low and high <= 1


def test_binom_test_equals_scipy():
    k, n = np.array([[3, 50], [61, 0]]), np.array([[10, 100], [100, 0]])
    got = binom_test(k, n, p=0.4)
    assert got.shape == (2, 2)
    for idx in [(0, 0), (0, 1), (1, 0)]:
        assert got[idx] == stats.binomtest(int(k[idx]), int(n[idx]), 0.4).pvalue
    assert np.isnan(got[1, 1])


def test_chi2_2x2_is_scipy_default_with_yates():
    res = chi2_2x2(4106, 12000, 4846, 12000)
    table = np.array([[4106, 12000 - 4106], [4846, 12000 - 4846]])
    ref = stats.chi2_contingency(table)
    assert (res.statistic, res.p_value, res.dof) == (ref.statistic, ref.pvalue, ref.dof)
    assert res.cramers_v == association(table, method="cramer")
    # Yates' correction is on: the uncorrected statistic is larger
    assert res.statistic < stats.chi2_contingency(table, correction=False).statistic


@pytest.mark.parametrize("args", [(5, 4, 1, 2), (-1, 4, 1, 2), (1, 0, 1, 2), (1.5, 4, 1, 2)])
def test_chi2_2x2_rejects_bad_counts(args):
    with pytest.raises(ValueError):
        chi2_2x2(*args)


def _cells(seed: int) -> pl.DataFrame:
    """Binomial cells: 8 models in 4 families, 5 values each, model-level heterogeneity."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(8):
        fam, size = m // 2, m % 2 - 0.5
        model_effect = rng.normal(0, 0.3)
        for v in range(5):
            n = int(rng.integers(40, 120))
            eta = -0.6 + 0.2 * fam - 0.4 * size + model_effect + 0.2 * v
            rows.append((f"m{m}", f"f{fam}", f"v{v}", size, n, int(rng.binomial(n, 1 / (1 + np.exp(-eta))))))
    return pl.DataFrame(rows, schema=["model", "family", "value", "x", "n_trials", "n_deep"], orient="row")


def _expanded_logit(cells: pl.DataFrame, cluster: str, absorb: str | None):
    """statsmodels Logit on the 0/1 trials, clustered: the reference."""
    n, k = cells["n_trials"].to_numpy(), cells["n_deep"].to_numpy()
    idx = np.repeat(np.arange(cells.height), n)
    y = np.concatenate([np.r_[np.ones(kk), np.zeros(nn - kk)] for nn, kk in zip(n, k)])
    cols = [cells["x"].to_numpy()]
    if absorb:
        cols += [(cells[absorb] == lev).to_numpy().astype(float) for lev in cells[absorb].unique()]
    else:
        cols.append(np.ones(cells.height))
    X = np.column_stack(cols)[idx]
    groups = np.unique(cells[cluster].to_numpy(), return_inverse=True)[1][idx]
    return sm.Logit(y, X).fit(disp=0, cov_type="cluster", cov_kwds={"groups": groups})


@pytest.mark.parametrize(("cluster", "absorb"), [("model", None), ("model", "family"), ("value", "family")])
def test_cluster_robust_logit_equals_statsmodels_on_trials(cluster, absorb):
    cells = _cells(3)
    res = cluster_robust_logit(cells, "x", cluster, absorb=absorb)
    ref = _expanded_logit(cells, cluster, absorb)
    np.testing.assert_allclose(res.coef, ref.params[0], rtol=1e-7)
    np.testing.assert_allclose(res.se, ref.bse[0], rtol=1e-6)
    np.testing.assert_allclose(res.p_value, ref.pvalues[0], rtol=1e-5)
    np.testing.assert_allclose([res.ci_low, res.ci_high], ref.conf_int()[0], rtol=1e-6)
    assert res.n_clusters == cells[cluster].n_unique()
    assert res.n_trials == cells["n_trials"].sum()


def test_cluster_robust_logit_errors():
    cells = _cells(4)
    with pytest.raises(ValueError, match="lack column"):
        cluster_robust_logit(cells, "size", "model")
    with pytest.raises(ValueError, match="collinear"):
        cluster_robust_logit(cells.with_columns(pl.lit(1.0).alias("x")), "x", "model")
    with pytest.raises(ValueError, match="at least 2 clusters"):
        cluster_robust_logit(cells.with_columns(pl.lit("a").alias("model")), "x", "model")


def test_chi2_2x2_many_equals_chi2_2x2_per_table():
    rng = np.random.default_rng(8)
    n1, n2 = rng.integers(1, 400, 300), rng.integers(1, 400, 300)
    k1, k2 = rng.integers(0, n1 + 1), rng.integers(0, n2 + 1)
    keep = ~(((k1 == 0) & (k2 == 0)) | ((k1 == n1) & (k2 == n2)))  # no empty column
    k1, n1, k2, n2 = k1[keep], n1[keep], k2[keep], n2[keep]
    k1[:3], n1[:3], k2[:3], n2[:3] = [0, 5, 7], [5, 5, 9], [3, 0, 7], [9, 4, 9]  # zero cells, tiny tables
    statistic, p = chi2_2x2_many(k1, n1, k2, n2)
    for i in range(len(k1)):
        one = chi2_2x2(int(k1[i]), int(n1[i]), int(k2[i]), int(n2[i]))
        assert statistic[i] == pytest.approx(one.statistic, rel=1e-12, abs=1e-15)
        assert p[i] == pytest.approx(one.p_value, rel=1e-12)
    with pytest.raises(ValueError, match="expected frequencies has a zero element"):
        chi2_2x2_many([3, 6], [5, 6], [0, 6], [5, 6])  # the second table has no failures at all
