"""Scaling-trend tests: do larger models generalise deep values less?

The published claim ("larger models have a slightly lower DVGR") rests on chi-square tests of
within-family (smaller, larger) pairs and on a pooled big-vs-small chi-square. This module gives
the Bayesian analysis and the paper's analysis side by side:

* pair contrasts: posterior of DVGR(larger) - DVGR(smaller), its HDI and P(difference < 0);
* a pooled trend: a hierarchical regression of model-level logit DVGR on within-family size,
  with family intercepts, that propagates each model's posterior uncertainty; the slope's HDI,
  P(slope < 0) and a Savage–Dickey Bayes factor for slope = 0;
* big/small codings of the models (DVB: the paper's two; Bayesian difference of means and the paper's
  chi-square);
* the frequentist replication: per-pair chi-square with Cramér's V and a pooled logit with
  cluster-robust standard errors.

Inputs are the posterior DVGR draws (``xr.DataArray`` with dims ``chain, draw, model``, values
the design-averaged per-model DVGR), the binomial counts (polars, ``model, ..., n_trials,
n_deep``) and the model table (``registry.ModelTable`` or its ``data``: ``short_name, family,
size_rank_in_family, params_b``, ...).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import arviz as az
import numpy as np
import polars as pl
import xarray as xr
from scipy import stats
from scipy.special import expit, logit

from dvbstats.constants import HDI_PROB
from dvbstats.input.registry import ModelTable
from dvbstats.model.sample import Diagnostics, SamplerSettings, diagnose
from dvbstats.results import mcse
from dvbstats.results.contrasts import summarize_difference
from dvbstats.results.frequentist import FEW_CLUSTERS, chi2_2x2, cluster_robust_logit

SizeMeasure = Literal["rank", "log_params", "auto"]

#: Prior scales of the trend model (logit scale; the slope is per standard deviation of size).
PRIOR_ALPHA_SD = 1.5
PRIOR_BETA_SD = 1.0
PRIOR_TAU_SD = 0.5

#: Draws of the trend model: chains, draws per chain and seed as the main fit (its exact sampler reads no other
#: setting: no tuning, no step size).
TREND_SAMPLER = SamplerSettings()
#: Points of the grid of tau (0 to 10 prior SDs) on which its marginal posterior is evaluated.
TAU_GRID = 4001
#: The trend model's parameters whose sampler checks the run reports.
TREND_PARAMETERS = ("alpha", "beta", "tau")

#: |skewness| of a model's logit-DVGR draws above which the Normal summary is flagged.
SKEW_WARN = 0.5

METHODS: dict[str, str] = {
    "pairs": (
        "Adjacent (smaller, larger) pairs within each family by size rank, unless given explicitly. "
        "Per pair, the posterior of DVGR(larger) - DVGR(smaller) computed draw by draw from the "
        "design-averaged DVGR; HDI by arviz.hdi; p_diff_below_0 = share of draws below 0."
    ),
    "trend": (
        "Two-stage measurement-error model. Stage 1: each model's posterior logit DVGR is summarised "
        "by its posterior mean and the posterior covariance across models (multivariate Normal; "
        "the per-model skewness of the logit draws is reported to check this). Stage 2: "
        "y ~ MvNormal(alpha[family] + beta * size_std + e, Sigma_posterior), e_m ~ Normal(0, tau), "
        "with e integrated out (covariance Sigma_posterior + tau^2 I). Priors: "
        f"alpha_f ~ Normal(0, {PRIOR_ALPHA_SD}), beta ~ Normal(0, {PRIOR_BETA_SD}), "
        f"tau ~ HalfNormal({PRIOR_TAU_SD}). Only families with at least two sizes enter. "
        "size_std = (s - mean of s within the family) / SD of those within-family deviations "
        "over all analysed models (population SD), where s is the size rank in the family "
        "(size = rank) or log(params_b) (size = log_params); beta is the change in logit DVGR "
        "per within-family SD of size, slope_per_unit = beta / size_scale the change per rank "
        "step or per e-fold of parameters. The Stage-1 posteriors are used as if their first-stage "
        "priors were flat, which is accurate at thousands of trials per model. Sampled exactly, without MCMC: "
        "given tau the model is linear-Gaussian, so tau is drawn by inverse CDF from its marginal posterior "
        f"(closed form up to a constant, on a grid of {TAU_GRID} points from 0 to 10 prior SDs) and (alpha, beta) "
        "from their conjugate Normal posterior given it; the draws are checked as the main fit's "
        "(R-hat, ESS of alpha, beta and tau; independent draws have no divergences)."
    ),
    "bayes_factor": (
        "BF01 (evidence for beta = 0 over beta != 0) by the Savage-Dickey density ratio "
        "p(beta = 0 | y) / p(beta = 0), valid because beta's prior is independent of the other "
        "parameters. The posterior density at 0 is computed without Monte Carlo or kernel density "
        "estimation: given tau the model is linear-Gaussian, so p(beta = 0 | tau, y) is a Normal "
        "density in closed form, and it is integrated over the marginal posterior of tau "
        "(also closed form up to a constant) on a grid of tau values."
    ),
    "big_small": (
        "For each coding, the posterior of mean DVGR(big) - mean DVGR(small), with models weighted "
        "equally within each group (a model-level estimand, not weighted by trial counts); and "
        "the paper's test: chi-square (scipy chi2_contingency defaults, Yates' correction) on the "
        "trial counts summed over each group, with Cramér's V (scipy association, no correction)."
    ),
    "frequentist": (
        "Per pair: chi-square on the 2x2 table of deep/shallow choices (scipy chi2_contingency "
        "defaults, Yates' correction) and Cramér's V (scipy association). Pooled: logistic "
        "regression of chose_deep on size_std (as in the trend) with family fixed intercepts, "
        "standard errors clustered by model (CR1, statsmodels): size varies only between models, so "
        "model-to-model heterogeneity is the dependence a trial-level test ignores. With few "
        "clusters (fewer than 30) CR standard errors are biased downwards; treat p-values as optimistic."
    ),
}


class ScalingUnavailable(ValueError):
    """A scaling test cannot run on these models (too few models, no family with two sizes, sizes missing)."""


# --------------------------------------------------------------------------- model sizes


def _table(models: ModelTable | pl.DataFrame) -> ModelTable:
    return models if isinstance(models, ModelTable) else ModelTable(models)


def _sized_rows(
    models: ModelTable | pl.DataFrame, present: Sequence[str]
) -> tuple[pl.DataFrame, list[str]]:
    """Model-table rows (``model, family, size_rank, params_b``) of the ``present`` models in
    families with at least two sized models, in ``present`` order, and a note per model left out.
    """
    present = list(dict.fromkeys(present))
    if len(present) < 2:
        raise ScalingUnavailable(
            "scaling tests compare models; the data have a single model "
            f"({', '.join(present) or 'none'})"
        )
    data = _table(models).data
    unknown = [m for m in present if m not in set(data["short_name"].to_list())]
    notes = [f"{m}: not in the model table (no size information)" for m in unknown]
    rows = (
        data.join(pl.DataFrame({"short_name": present}).with_row_index("_order"), on="short_name")
        .sort("_order")
        .select(
            pl.col("short_name").alias("model"),
            "family",
            pl.col("size_rank_in_family").alias("size_rank"),
            "params_b",
        )
    )
    unranked = rows.filter(pl.col("size_rank").is_null())["model"]
    notes += [f"{m}: no size rank in the model table" for m in unranked]
    sized = rows.drop_nulls("size_rank")
    n_sizes = pl.len().over("family")
    alone = sized.filter(n_sizes < 2)
    notes += [
        f"{m}: the only sized model of family {f} in the data"
        for m, f in alone.select("model", "family").iter_rows()
    ]
    kept = sized.filter(n_sizes >= 2)
    if kept.height == 0:
        raise ScalingUnavailable(
            "sizes missing: no family has two models of known size rank in the data ("
            + "; ".join(notes)
            + "). Add families and size ranks to the model table, or give --pairs explicitly."
        )
    return kept, notes


def has_size_pairs(models: ModelTable | pl.DataFrame, present: Sequence[str]) -> bool:
    """Whether at least one family has two sized models among ``present`` (turns scaling on by default)."""
    try:
        _sized_rows(models, present)
    except ScalingUnavailable:
        return False
    return True


def pairs(
    models: ModelTable | pl.DataFrame,
    present: Sequence[str],
    explicit: Iterable[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """(smaller, larger) pairs to compare: adjacent sizes within each family, or ``explicit`` validated.

    ``models`` is the model table (or its data); ``present`` the short names in the data. Default
    pairs come from ``ModelTable.adjacent_pairs``.
    """
    if explicit is not None:
        chosen = list(dict.fromkeys(tuple(p) for p in explicit))
        known = set(present)
        problems = []
        for p in chosen:
            if len(p) != 2:
                problems.append(f"{p}: expected (smaller, larger)")
            elif not set(p) <= known:
                problems.append(f"{p}: unknown model(s) {sorted(set(p) - known)}")
            elif p[0] == p[1]:
                problems.append(f"{p}: a model compared with itself")
            elif _larger_first(_table(models), *p):
                problems.append(f"{p[0]}:{p[1]}: {p[0]} is the larger model of its family (size rank "
                                f"{_larger_first(_table(models), *p)}); write SMALLER:LARGER, i.e. {p[1]}:{p[0]}")
        if problems or not chosen:
            reason = "; ".join(problems) or "no pair given"
            raise ValueError(f"--pairs: {reason} (models in the data: {sorted(known)})")
        return chosen
    _sized_rows(models, present)  # raises ScalingUnavailable with the reason when there is no pair
    return _table(models).adjacent_pairs(present)


def _larger_first(table: ModelTable, first: str, second: str) -> str:
    """``"a > b"`` (their size ranks) when the model table puts ``first`` above ``second`` in one family, else ""."""
    rows = {r["short_name"]: r for r in table.data.iter_rows(named=True)}
    a, b = rows.get(first), rows.get(second)
    if a is None or b is None or a["family"] is None or a["family"] != b["family"]:
        return ""
    ra, rb = a["size_rank_in_family"], b["size_rank_in_family"]
    return f"{ra} > {rb}" if ra is not None and rb is not None and ra > rb else ""


_select_pairs = pairs  # ``scaling_tests`` takes a keyword named ``pairs``


def size_design(
    models: ModelTable | pl.DataFrame, present: Sequence[str], size: SizeMeasure = "auto"
) -> tuple[pl.DataFrame, str, float, list[str]]:
    """Per-model standardised size for the pooled trend.

    Returns the rows (``model, family, size_rank, params_b, size, size_std``) of the families
    with at least two sized models, the size measure used, the scale (the SD dividing the
    within-family deviations) and notes on the models left out. See ``METHODS["trend"]``.
    """
    kept, notes = _sized_rows(models, present)
    all_params = kept["params_b"].is_not_null().all() and bool((kept["params_b"] > 0).all())
    if size == "auto":
        size = "log_params" if all_params else "rank"
    if size == "log_params" and not all_params:
        lacking = kept.filter(pl.col("params_b").is_null() | (pl.col("params_b") <= 0))["model"].to_list()
        raise ScalingUnavailable(
            f"sizes missing: size='log_params' needs parameter counts; missing for {lacking}"
        )
    if size not in ("rank", "log_params"):
        raise ValueError(f"size must be 'rank', 'log_params' or 'auto', got {size!r}")
    raw = pl.col("size_rank").cast(pl.Float64) if size == "rank" else pl.col("params_b").log()
    rows = kept.with_columns(raw.alias("size")).with_columns(
        (pl.col("size") - pl.col("size").mean().over("family")).alias("size_std")
    )
    scale = float(rows["size_std"].std(ddof=0))
    if scale == 0:
        raise ScalingUnavailable(f"sizes missing: every family's models have the same {size}")
    return rows.with_columns(pl.col("size_std") / scale), size, scale, notes


# --------------------------------------------------------------------------- posterior draws


def _draws(dvgr_draws: xr.DataArray, needed: Iterable[str]) -> xr.DataArray:
    """The draws as (chain, draw, model), after checking dims, range and that ``needed`` models exist."""
    if set(dvgr_draws.dims) != {"chain", "draw", "model"}:
        raise ValueError(f"DVGR draws need dims (chain, draw, model), got {dvgr_draws.dims}")
    draws = dvgr_draws.transpose("chain", "draw", "model")
    values = draws.values
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise ValueError("DVGR draws must be finite probabilities in [0, 1]")
    missing = sorted(set(needed) - set(draws["model"].values.tolist()))
    if missing:
        raise ValueError(f"no posterior DVGR draws for model(s) {missing}")
    return draws


def _summary(samples: np.ndarray, hdi_prob: float) -> dict[str, float]:
    """Mean, HDI and P(< 0) of a flat sample."""
    out = summarize_difference(samples, hdi_prob)
    del out["p_diff_above_0"]
    return out


def pair_contrasts(
    dvgr_draws: xr.DataArray, pairs: Sequence[tuple[str, str]], hdi_prob: float = HDI_PROB
) -> pl.DataFrame:
    """Posterior of DVGR(larger) - DVGR(smaller) per pair: means, difference mean, HDI, P(difference < 0)
    and its Monte Carlo standard error."""
    draws = _draws(dvgr_draws, [m for p in pairs for m in p])
    rows = []
    for smaller, larger in pairs:
        lo, hi = (draws.sel(model=m).values for m in (smaller, larger))
        rows.append(
            {"smaller": smaller, "larger": larger, "dvgr_smaller": lo.mean(), "dvgr_larger": hi.mean()}
            | _summary((hi - lo).ravel(), hdi_prob) | {"p_diff_below_0_mcse": mcse.probability_mcse(hi - lo < 0)}
        )
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------- pooled trend


@dataclass(frozen=True)
class TrendResult:
    """Posterior of the within-family size slope of logit DVGR (see ``METHODS["trend"]``)."""

    size_measure: str
    size_scale: float
    slope_mean: float
    slope_hdi_low: float
    slope_hdi_high: float
    p_slope_below_0: float
    bf01: float
    #: Monte Carlo standard errors of the HDI bounds and of P(slope < 0) (:mod:`dvbstats.results.mcse`)
    slope_hdi_low_mcse: float
    slope_hdi_high_mcse: float
    p_slope_below_0_mcse: float
    tau_mean: float
    n_models: int
    n_families: int
    diagnostics: Diagnostics  # R-hat and ESS of alpha, beta, tau; divergences (the main fit's checks)
    hdi_prob: float
    seconds: float
    #: per model: family, size, size_std, logit-DVGR mean/sd/skew, DVGR mean and HDI, fitted DVGR and HDI
    models: pl.DataFrame
    notes: tuple[str, ...]
    idata: az.InferenceData = field(repr=False)
    bf_method: str = (
        "Savage-Dickey density ratio; p(beta=0|y) exact given tau, integrated over p(tau|y) by quadrature"
    )

    def table(self) -> pl.DataFrame:
        """One-row summary (``scaling_trend.csv``)."""
        return pl.DataFrame(
            {
                "size_measure": self.size_measure,
                "slope_mean": self.slope_mean,
                "slope_hdi_low": self.slope_hdi_low,
                "slope_hdi_high": self.slope_hdi_high,
                "p_slope_below_0": self.p_slope_below_0,
                "slope_hdi_low_mcse": self.slope_hdi_low_mcse,
                "slope_hdi_high_mcse": self.slope_hdi_high_mcse,
                "p_slope_below_0_mcse": self.p_slope_below_0_mcse,
                "slope_per_unit_mean": self.slope_mean / self.size_scale,
                "size_scale": self.size_scale,
                "bf01": self.bf01,
                "bf10": 1 / self.bf01,
                "bf_method": self.bf_method,
                "tau_mean": self.tau_mean,
                "n_models": self.n_models,
                "n_families": self.n_families,
                "max_r_hat": self.diagnostics.summary()["max_r_hat"],
                "min_ess_bulk": self.diagnostics.summary()["min_ess_bulk"],
                "divergences": self.diagnostics.divergences,
                "hdi_prob": self.hdi_prob,
            }
        )


def _design_matrix(family_idx: np.ndarray, n_families: int, x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.eye(n_families)[family_idx], x])


def _given_tau(yr: np.ndarray, lam: np.ndarray, Xr: np.ndarray, tau: np.ndarray):
    """For each ``tau``: log p(y | tau) + log p(tau) with (alpha, beta) integrated out, and the conjugate Normal
    posterior of (alpha, beta) given tau (mean, precision). The data are rotated by the eigenvectors of the
    Stage-1 covariance (``Sigma = Q diag(lam) Q'``, ``yr = Q'y``, ``Xr = Q'X``), so ``Sigma + tau^2 I`` is
    diagonal; the marginal likelihood comes from the matrix determinant lemma and Woodbury's identity, in
    (alpha, beta)'s dimension, never the models'."""
    n_families = Xr.shape[1] - 1
    prior_var = np.r_[np.full(n_families, PRIOR_ALPHA_SD**2), PRIOR_BETA_SD**2]
    w = 1.0 / (np.clip(lam, 0.0, None)[None] + (tau**2)[:, None])  # (tau, model): diagonal of the noise's inverse
    precision = np.diag(1 / prior_var)[None] + np.einsum("mi,tm,mj->tij", Xr, w, Xr)
    score = np.einsum("mi,tm->ti", Xr, w * yr)
    chol = np.linalg.cholesky(precision)
    half = np.linalg.solve(chol, score[..., None])[..., 0]  # L^-1 b: b' A^-1 b = |L^-1 b|^2
    mean = np.linalg.solve(np.swapaxes(chol, 1, 2), half[..., None])[..., 0]
    logdet = -np.log(w).sum(1) + np.log(prior_var).sum() + 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
    quad = (w * yr**2).sum(1) - (half**2).sum(1)
    log_lik = -0.5 * (len(yr) * np.log(2 * np.pi) + logdet + quad)
    return log_lik + stats.halfnorm.logpdf(tau, scale=PRIOR_TAU_SD), mean, chol


def _tau_grid(yr: np.ndarray, lam: np.ndarray, Xr: np.ndarray, n_grid: int = TAU_GRID):
    """tau's grid (0 to 10 prior SDs), its unnormalised marginal posterior there, and the conditional
    posterior of (alpha, beta) at each point (:func:`_given_tau`)."""
    tau = np.linspace(0.0, 10 * PRIOR_TAU_SD, n_grid)
    log_post, mean, chol = _given_tau(yr, lam, Xr, tau)
    return tau, np.exp(log_post - log_post.max()), mean, chol


def savage_dickey_bf01(yr: np.ndarray, lam: np.ndarray, Xr: np.ndarray) -> float:
    """BF01 for beta = 0 in the trend model by the Savage-Dickey density ratio, without Monte Carlo.

    Given tau the model is linear-Gaussian: (alpha, beta) has a conjugate Normal posterior, so
    p(beta = 0 | tau, y) is a Normal density, and p(tau | y) is proportional to
    N(y; 0, Sigma + tau^2 I + X V0 X') HalfNormal(tau). The density at 0 is integrated over tau
    on a grid up to 10 prior SDs (trapezoid rule). Averaging over MCMC draws of tau instead is
    unbiased but heavy-tailed when 0 is far out: rare large-tau draws dominate. Arguments as
    :func:`_given_tau`'s.
    """
    tau, weights, mean, chol = _tau_grid(yr, lam, Xr)
    unit = np.zeros(Xr.shape[1])
    unit[-1] = 1.0
    beta_sd = np.linalg.norm(np.linalg.solve(chol, np.broadcast_to(unit, mean.shape)[..., None])[..., 0], axis=1)
    density = stats.norm.pdf(0.0, mean[:, -1], beta_sd)  # Var(beta | tau) = e' A^-1 e = |L^-1 e|^2
    density_at_0 = np.trapezoid(weights * density, tau) / np.trapezoid(weights, tau)
    return float(density_at_0 / stats.norm.pdf(0.0, 0.0, PRIOR_BETA_SD))


def trend_draws(yr: np.ndarray, lam: np.ndarray, Xr: np.ndarray, shape: tuple[int, int], seed: int | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Independent draws from the trend model's posterior: tau by inverse CDF of its marginal posterior on
    the grid (trapezoid CDF, linear between the points), then (alpha, beta) from their Normal posterior given
    that tau. Returns tau (``shape``) and the coefficients (``shape`` x (families + 1), beta last)."""
    rng = np.random.default_rng(seed)
    tau_grid, weights, _, _ = _tau_grid(yr, lam, Xr)
    cdf = np.r_[0.0, np.cumsum(0.5 * (weights[1:] + weights[:-1]) * np.diff(tau_grid))]
    tau = np.interp(rng.random(shape).ravel() * cdf[-1], cdf, tau_grid)
    _, mean, chol = _given_tau(yr, lam, Xr, tau)
    z = rng.standard_normal(mean.shape)
    coef = mean + np.linalg.solve(np.swapaxes(chol, 1, 2), z[..., None])[..., 0]  # cov A^-1 = L^-T L^-1
    return tau.reshape(shape), coef.reshape(*shape, -1)


def trend(
    dvgr_draws: xr.DataArray,
    models: ModelTable | pl.DataFrame,
    *,
    size: SizeMeasure = "auto",
    hdi_prob: float = HDI_PROB,
    settings: SamplerSettings = TREND_SAMPLER,
) -> TrendResult:
    """Hierarchical regression of model-level logit DVGR on within-family size (``METHODS["trend"]``).

    ``models`` is the model table (or its data); the models are those of ``dvgr_draws``. Drawn exactly
    (:func:`trend_draws`; ``settings``: chains, draws and seed) and checked by the main fit's :class:`Diagnostics`.
    Raises ``ScalingUnavailable`` when no family has two sized models (or ``log_params`` lacks counts).
    """
    start = time.perf_counter()
    present = [str(m) for m in dvgr_draws["model"].values]
    rows, measure, scale, notes = size_design(models, present, size)
    names = rows["model"].to_list()
    draws_ = _draws(dvgr_draws, names).sel(model=names)
    flat = draws_.values.reshape(-1, len(names))
    logits = logit(np.clip(flat, 1e-12, 1 - 1e-12))
    y, sigma = logits.mean(axis=0), np.atleast_2d(np.cov(logits, rowvar=False))
    skew = stats.skew(logits, axis=0)
    if np.abs(skew).max() > SKEW_WARN:
        worst = int(np.abs(skew).argmax())
        msg = (
            f"logit DVGR draws of {names[worst]} are skewed ({skew[worst]:.2f}); "
            "the Normal summary of Stage 1 is rough"
        )
        warnings.warn(msg, stacklevel=2)
        notes = [*notes, msg]
    families = rows["family"].unique(maintain_order=True).to_list()
    family_idx = np.array([families.index(f) for f in rows["family"]])
    x = rows["size_std"].to_numpy()

    # Sigma + tau^2 I = Q diag(lam + tau^2) Q', so the rotated data Q'y are independent Normals
    lam, Q = np.linalg.eigh(sigma)
    X = _design_matrix(family_idx, len(families), x)
    yr, Xr = Q.T @ y, Q.T @ X
    tau, coef = trend_draws(yr, lam, Xr, (settings.chains, settings.draws), settings.seed)
    idata = az.from_dict(
        posterior={"alpha": coef[..., :-1], "beta": coef[..., -1], "tau": tau, "fitted_logit": coef @ X.T},
        coords={"family": families, "model": names}, dims={"alpha": ["family"], "fitted_logit": ["model"]})
    post = idata.posterior
    beta_draws = post["beta"].values.ravel()
    low, high = az.hdi(beta_draws, hdi_prob=hdi_prob)
    low_mcse, high_mcse = mcse.hdi_mcse(post["beta"].values, hdi_prob)
    fitted = expit(post["fitted_logit"])
    fitted_hdi = az.hdi(fitted, hdi_prob=hdi_prob)["fitted_logit"].values
    dvgr_hdi = np.array([az.hdi(flat[:, j], hdi_prob=hdi_prob) for j in range(len(names))])
    per_model = rows.with_columns(
        pl.Series("logit_mean", y),
        pl.Series("logit_sd", np.sqrt(np.diag(sigma))),
        pl.Series("logit_skew", skew),
        pl.Series("dvgr_mean", flat.mean(axis=0)),
        pl.Series("dvgr_hdi_low", dvgr_hdi[:, 0]),
        pl.Series("dvgr_hdi_high", dvgr_hdi[:, 1]),
        pl.Series("fitted_mean", fitted.mean(("chain", "draw")).values),
        pl.Series("fitted_hdi_low", fitted_hdi[:, 0]),
        pl.Series("fitted_hdi_high", fitted_hdi[:, 1]),
    )
    return TrendResult(
        size_measure=measure,
        size_scale=scale,
        slope_mean=float(beta_draws.mean()),
        slope_hdi_low=float(low),
        slope_hdi_high=float(high),
        p_slope_below_0=float((beta_draws < 0).mean()),
        slope_hdi_low_mcse=low_mcse,
        slope_hdi_high_mcse=high_mcse,
        p_slope_below_0_mcse=mcse.probability_mcse(post["beta"].values < 0),
        bf01=savage_dickey_bf01(yr, lam, Xr),
        tau_mean=float(post["tau"].mean()),
        n_models=len(names),
        n_families=len(families),
        diagnostics=diagnose({p: post[p] for p in TREND_PARAMETERS}, idata),
        hdi_prob=hdi_prob,
        seconds=time.perf_counter() - start,
        models=per_model,
        notes=tuple(notes),
        idata=idata,
    )


# --------------------------------------------------------------------------- counts and the paper's tests


def model_counts(counts: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """Trials and deep-value choices summed per model (and ``by`` columns), after validating the counts."""
    needed = {"model", "n_trials", "n_deep", *by}
    missing = needed - set(counts.columns)
    if missing:
        raise ValueError(f"counts lack column(s) {sorted(missing)}")
    bad = counts.with_row_index("row", offset=1).filter(
        pl.col("n_trials").is_null()
        | pl.col("n_deep").is_null()
        | (pl.col("n_deep") < 0)
        | (pl.col("n_deep") > pl.col("n_trials"))
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise ValueError(
            f"counts row {r['row']} (model {r['model']}): need 0 <= n_deep <= n_trials, "
            f"got n_deep={r['n_deep']}, n_trials={r['n_trials']} ({bad.height} such row(s))"
        )
    return counts.group_by("model", *by, maintain_order=True).agg(pl.col("n_trials", "n_deep").sum())


def _totals(totals: pl.DataFrame, names: Iterable[str]) -> tuple[int, int]:
    names = list(names)
    missing = sorted(set(names) - set(totals["model"].to_list()))
    if missing:
        raise ValueError(f"no trial counts for model(s) {missing}")
    sub = totals.filter(pl.col("model").is_in(names))
    return int(sub["n_deep"].sum()), int(sub["n_trials"].sum())


def frequentist_pairs(counts: pl.DataFrame, pairs: Sequence[tuple[str, str]]) -> pl.DataFrame:
    """The paper's per-pair test: chi-square (Yates) on deep/shallow counts, Cramér's V, raw rates."""
    totals = model_counts(counts)
    rows = []
    for smaller, larger in pairs:
        (k1, n1), (k2, n2) = _totals(totals, [smaller]), _totals(totals, [larger])
        res = chi2_2x2(k1, n1, k2, n2)
        rows.append(
            {
                "smaller": smaller,
                "larger": larger,
                "n_smaller": n1,
                "n_larger": n2,
                "raw_smaller": k1 / n1,
                "raw_larger": k2 / n2,
                "chi2": res.statistic,
                "chi2_p": res.p_value,
                "dof": res.dof,
                "cramers_v": res.cramers_v,
            }
        )
    return pl.DataFrame(rows)


def big_small(
    dvgr_draws: xr.DataArray, counts: pl.DataFrame, big: Iterable[str], *, hdi_prob: float = HDI_PROB
) -> pl.DataFrame:
    """Big vs small models: Bayesian difference of equal-weighted mean DVGRs, and the paper's chi-square.

    Every model of ``dvgr_draws`` not in ``big`` counts as small. One row.
    """
    present = [str(m) for m in dvgr_draws["model"].values]
    big = sorted(set(big))
    unknown = sorted(set(big) - set(present))
    if unknown:
        raise ValueError(f"big models {unknown} are not in the data")
    small = [m for m in present if m not in big]
    if not big or not small:
        raise ScalingUnavailable("a big/small comparison needs at least one model in each group")
    draws = _draws(dvgr_draws, present)
    diff = draws.sel(model=big).mean("model") - draws.sel(model=small).mean("model")
    totals = model_counts(counts)
    (k_big, n_big), (k_small, n_small) = _totals(totals, big), _totals(totals, small)
    res = chi2_2x2(k_big, n_big, k_small, n_small)
    return pl.DataFrame(
        {
            "big": ";".join(big),
            "small": ";".join(small),
            "dvgr_big": float(draws.sel(model=big).mean("model").mean()),
            "dvgr_small": float(draws.sel(model=small).mean("model").mean()),
        }
        | _summary(diff.values.ravel(), hdi_prob)
        | {
            "n_big": n_big,
            "n_small": n_small,
            "raw_big": k_big / n_big,
            "raw_small": k_small / n_small,
            "chi2": res.statistic,
            "chi2_p": res.p_value,
            "dof": res.dof,
            "cramers_v": res.cramers_v,
        }
    )


def pooled_logit(
    counts: pl.DataFrame,
    models: ModelTable | pl.DataFrame,
    *,
    size: SizeMeasure = "auto",
    cluster: str = "model",
) -> pl.DataFrame:
    """Pooled logit of chose_deep on standardised within-family size, family intercepts, CR1 SEs (one row).

    Clustered by ``model`` by default (see ``METHODS["frequentist"]``); any design column of
    the counts (e.g. ``value``) can be given instead.
    """
    by = [] if cluster == "model" else [cluster]
    cells = model_counts(counts, by)
    rows, measure, _, _ = size_design(models, cells["model"].unique(maintain_order=True).to_list(), size)
    cells = cells.join(rows.select("model", "family", "size_std"), on="model")
    res = cluster_robust_logit(cells, "size_std", cluster, absorb="family")
    return pl.DataFrame(
        {
            "predictor": f"size_std ({measure})",
            "fixed_effects": "family",
            "cluster": cluster,
            "coef": res.coef,
            "se": res.se,
            "z": res.z,
            "p_value": res.p_value,
            "ci_low": res.ci_low,
            "ci_high": res.ci_high,
            "n_clusters": res.n_clusters,
            "n_trials": res.n_trials,
            "few_clusters": res.n_clusters < FEW_CLUSTERS,
        }
    )


# --------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class ScalingResult:
    """All scaling tables; a table is None when its test could not run (``notes`` says why)."""

    pairs: pl.DataFrame
    big_small: pl.DataFrame | None
    trend: pl.DataFrame | None
    models: pl.DataFrame | None
    frequentist: pl.DataFrame | None
    notes: tuple[str, ...]
    settings: dict[str, object]
    diagnostics: Diagnostics | None = None  # the trend model's sampler checks (None: no trend)

    def tables(self) -> dict[str, pl.DataFrame]:
        """The run folder's ``scaling_*`` tables (a test that could not run has none)."""
        tables = {"scaling_pairs": self.pairs, "scaling_big_small": self.big_small, "scaling_trend": self.trend,
                  "scaling_models": self.models, "scaling_frequentist": self.frequentist}
        return {name: table for name, table in tables.items() if table is not None}

    def record(self) -> dict:
        """Methods, settings and notes (the run folder's ``scaling_methods.json``)."""
        return {"methods": METHODS, "settings": self.settings, "notes": list(self.notes),
                **({"diagnostics": self.diagnostics.summary()} if self.diagnostics is not None else {})}


def scaling_tests(
    dvgr_draws: xr.DataArray,
    counts: pl.DataFrame,
    models: ModelTable | pl.DataFrame,
    *,
    pairs: Iterable[tuple[str, str]] | None = None,
    codings: Mapping[str, frozenset[str]] | None = None,
    size: SizeMeasure = "auto",
    cluster: str = "model",
    hdi_prob: float = HDI_PROB,
    seed: int | None = None,
) -> ScalingResult:
    """Every scaling test on one posterior and its counts.

    Per-pair tables join the Bayesian contrast and the paper's chi-square side by side. ``codings``
    names sets of big models (every other model counts as small; None: no big/small tests; DVB's
    are the paper's, ``Benchmark.size_codings``). Codings
    whose big models are not all in the data are skipped with a note; the pooled trend and logit
    are skipped with a note when no family has two sized models (possible with explicit pairs).
    """
    present = [str(m) for m in dvgr_draws["model"].values]
    counted = set(model_counts(counts)["model"].to_list())
    if uncounted := sorted(set(present) - counted):
        raise ValueError(f"no trial counts for model(s) {uncounted} of the posterior")
    notes: list[str] = []
    if unfitted := sorted(counted - set(present)):
        notes.append(f"counts of model(s) {unfitted} not used: they have no posterior draws")
        counts = counts.filter(pl.col("model").is_in(present))
    chosen = _select_pairs(models, present, pairs)
    pair_table = pair_contrasts(dvgr_draws, chosen, hdi_prob).join(
        frequentist_pairs(counts, chosen), on=["smaller", "larger"], how="left", maintain_order="left"
    )
    coded = []
    for name, big in (codings or {}).items():
        if not big <= set(present) or big >= set(present):
            notes.append(
                f"big/small coding {name!r} skipped: its big models {sorted(big)} "
                "are not a proper subset of the models in the data"
            )
            continue
        row = big_small(dvgr_draws, counts, big, hdi_prob=hdi_prob)
        coded.append(row.select(pl.lit(name).alias("coding"), pl.all()))
    trend_table = model_table = freq_table = checks = None
    measure = None
    try:
        fit = trend(dvgr_draws, models, size=size, hdi_prob=hdi_prob, settings=replace(TREND_SAMPLER, seed=seed))
        trend_table, model_table, measure, checks = fit.table(), fit.models, fit.size_measure, fit.diagnostics
        notes += [f"trend: {n}" for n in fit.notes]
        freq_table = pooled_logit(counts, models, size=measure, cluster=cluster)
    except ScalingUnavailable as err:
        notes.append(f"pooled trend not run: {err}")
    return ScalingResult(
        pairs=pair_table,
        big_small=pl.concat(coded) if coded else None,
        trend=trend_table,
        models=model_table,
        frequentist=freq_table,
        notes=tuple(notes),
        settings={
            "pairs": [list(p) for p in chosen],
            "size": measure or size,
            "cluster": cluster,
            "hdi_prob": hdi_prob,
            "seed": seed,
            "codings": {k: sorted(v) for k, v in (codings or {}).items()},
        },
        diagnostics=checks,
    )
