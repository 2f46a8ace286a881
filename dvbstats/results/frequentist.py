"""Frequentist statistics for binomial counts: Wilson intervals, exact binomial tests,
chi-square tests of two proportions with Cramér's V, and a cluster-robust logistic regression.

These are the published paper's tools (scipy defaults), kept so that a reanalysis can be
set side by side with the Bayesian results. All functions are pure and vectorised where the
underlying scipy routine allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.stats.contingency import association
from statsmodels.genmod.families import Binomial
from statsmodels.genmod.generalized_linear_model import GLM

#: Below this many clusters cluster-robust standard errors are known to be biased downwards
#: (Cameron & Miller 2015, "A practitioner's guide to cluster-robust inference").
FEW_CLUSTERS = 30


def _counts(k: ArrayLike, n: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    if np.any(n_arr < 0) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError("binomial counts need 0 <= k <= n")
    return k_arr, n_arr


def wilson(
    k: ArrayLike, n: ArrayLike, level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Wilson score interval for k successes in n trials (NaN where n = 0).

    Same interval as ``statsmodels.stats.proportion.proportion_confint(method="wilson")``, except that
    it always contains the estimate k/n: at k = 0 or k = n the formula's limit misses 0 or 1 by a
    rounding error (1 - 2e-16), so the limits are clipped to the estimate.
    """
    k_arr, n_arr = _counts(k, n)
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k_arr / n_arr
        centre = (p + z**2 / (2 * n_arr)) / (1 + z**2 / n_arr)
        half = z / (1 + z**2 / n_arr) * np.sqrt(p * (1 - p) / n_arr + z**2 / (4 * n_arr**2))
    return np.minimum(centre - half, p), np.maximum(centre + half, p)


def binom_test(k: ArrayLike, n: ArrayLike, p: float = 0.5) -> NDArray[np.float64]:
    """Exact two-sided binomial test p-value of H0: P(success) = p (``scipy.stats.binomtest``).

    NaN where n = 0.
    """
    k_arr, n_arr = _counts(k, n)
    out = np.full(k_arr.shape, np.nan)
    for idx in np.ndindex(k_arr.shape):
        if n_arr[idx] > 0:
            out[idx] = stats.binomtest(int(k_arr[idx]), int(n_arr[idx]), p).pvalue
    return out


@dataclass(frozen=True)
class Chi2Result:
    """Pearson chi-square test of independence on a 2x2 table (Yates-corrected, scipy default)."""

    statistic: float
    p_value: float
    dof: int
    cramers_v: float


def chi2_2x2(k1: int, n1: int, k2: int, n2: int) -> Chi2Result:
    """Chi-square test that two groups (k1 of n1, k2 of n2 successes) share one success rate.

    The paper's test: ``scipy.stats.chi2_contingency`` with its defaults (Yates' continuity
    correction on a 2x2 table) on the table [[k1, n1 - k1], [k2, n2 - k2]], and Cramér's V
    from ``scipy.stats.contingency.association(method="cramer")`` with *its* default
    (no continuity correction).
    """
    (k1_, k2_), (n1_, n2_) = _counts([k1, k2], [n1, n2])
    if n1_ == 0 or n2_ == 0:
        raise ValueError("chi-square test needs at least one trial in each group")
    table = np.array([[k1_, n1_ - k1_], [k2_, n2_ - k2_]])
    if np.any(table != np.round(table)):
        raise ValueError(f"chi-square test needs whole-number counts, got {table.tolist()}")
    table = table.astype(np.int64)
    res = stats.chi2_contingency(table)
    return Chi2Result(
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        dof=int(res.dof),
        cramers_v=float(association(table, method="cramer")),
    )


def chi2_2x2_many(k1: ArrayLike, n1: ArrayLike, k2: ArrayLike, n2: ArrayLike) -> tuple[NDArray[np.float64],
                                                                                     NDArray[np.float64]]:
    """:func:`chi2_2x2`'s statistic and p-value for many pairs of groups at once (arrays of counts): the
    arithmetic of ``scipy.stats.chi2_contingency`` (Yates' correction) written out, without its per-call
    overhead (4,950 pairs of 100 models: 3 s of scipy calls). A table scipy refuses (an empty row or
    column) raises as :func:`chi2_2x2` does."""
    k1_, n1_ = _counts(k1, n1)
    k2_, n2_ = _counts(k2, n2)
    table = np.array([[k1_, n1_ - k1_], [k2_, n2_ - k2_]])  # (2, 2, pairs)
    total = table.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = table.sum(axis=1)[:, None] * table.sum(axis=0)[None, :] / total
    for i in np.flatnonzero((expected == 0).any(axis=(0, 1)) | (total == 0)):
        chi2_2x2(k1_[i], n1_[i], k2_[i], n2_[i])  # raises, naming the problem
    diff = expected - table
    observed = table + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    terms = (observed - expected) ** 2 / expected
    statistic = terms[0, 0] + terms[0, 1] + terms[1, 0] + terms[1, 1]
    return statistic, stats.chi2.sf(statistic, 1)


@dataclass(frozen=True)
class LogitResult:
    """Slope of a logistic regression with cluster-robust (CR1) standard errors, Wald inference."""

    coef: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    n_clusters: int
    n_trials: int


def cluster_robust_logit(
    cells: pl.DataFrame,
    x: str,
    cluster: str,
    *,
    absorb: str | None = None,
    level: float = 0.95,
) -> LogitResult:
    """Logistic regression of chose_deep on ``x``, with standard errors clustered on ``cluster``.

    ``cells`` holds binomial cells (``n_trials``, ``n_deep``) with a numeric column ``x`` and a
    column ``cluster`` that is constant within a cell; ``absorb`` optionally adds fixed-effect
    intercepts for a grouping column (e.g. ``family``, for a within-family slope). The model is
    fitted as a binomial GLM on the cells, which gives the same estimates, and — because every
    cell lies within one cluster — the same cluster score sums as a logit on the expanded 0/1
    trials. The small-sample factor G/(G-1) * (N-1)/(N-K) is applied with N = trials (not cells),
    so the result equals ``statsmodels.Logit(...).fit(cov_type="cluster")`` on the trial-level
    data. With fewer than ~30 clusters CR standard errors are biased downwards; ``n_clusters``
    is reported so callers can say so.
    """
    needed = {x, cluster, "n_trials", "n_deep"} | ({absorb} if absorb else set())
    missing = needed - set(cells.columns)
    if missing:
        raise ValueError(f"cluster_robust_logit: cells lack column(s) {sorted(missing)}")
    cells = cells.filter(pl.col("n_trials") > 0)
    if cells.select(pl.any_horizontal(pl.col(sorted(needed)).is_null().any())).item():
        raise ValueError(f"cluster_robust_logit: null values in {sorted(needed)}")
    k, n = _counts(cells["n_deep"].to_numpy(), cells["n_trials"].to_numpy())
    design = [cells[x].cast(pl.Float64).to_numpy()]
    names = [x]
    if absorb:
        levels = cells[absorb].unique(maintain_order=True).to_list()
        design += [(cells[absorb] == lev).to_numpy().astype(float) for lev in levels]
        names += [f"{absorb}[{lev}]" for lev in levels]
    else:
        design.append(np.ones(cells.height))
        names.append("Intercept")
    X = np.column_stack(design)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"cluster_robust_logit: {x!r} is collinear with the intercept(s) {names[1:]}")
    _, groups = np.unique(cells[cluster].cast(pl.String).to_numpy(), return_inverse=True)
    n_clusters = int(groups.max()) + 1
    if n_clusters < 2:
        raise ValueError(f"cluster_robust_logit: need at least 2 clusters of {cluster!r}, got {n_clusters}")
    fit = GLM(np.column_stack([k, n - k]), X, family=Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    n_trials, k_params = int(n.sum()), X.shape[1]
    factor = n_clusters / (n_clusters - 1) * (n_trials - 1) / (n_trials - k_params)
    coef = float(fit.params[0])
    se = float(np.sqrt(fit.cov_params()[0, 0] * factor))
    z_crit = stats.norm.ppf(0.5 + level / 2)
    return LogitResult(
        coef=coef,
        se=se,
        z=coef / se,
        p_value=float(2 * stats.norm.sf(abs(coef / se))),
        ci_low=coef - z_crit * se,
        ci_high=coef + z_crit * se,
        n_clusters=n_clusters,
        n_trials=n_trials,
    )
