"""Scaling tests: simulated slopes with known truth, and the paper's chi-squares on the published counts."""

from __future__ import annotations

import json
from dataclasses import replace

import arviz as az
import numpy as np
import polars as pl
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit, logit
from scipy.stats.contingency import association

from dvbstats.benchmarks.dvb import PAPER_CODINGS
from dvbstats.constants import MAX_R_HAT
from dvbstats.input import runfolder
from dvbstats.input.registry import ModelTable
from dvbstats.model import lazy
from dvbstats.paper2025.reconstruct import DEFAULT_ROOT
from dvbstats.results import scaling

#: Verbatim copy of /work/shared/published/dvb2025_models.csv (see dvbstats/paper2025/data/README.md).
PUBLISHED = DEFAULT_ROOT / "dvb2025_models.csv"

#: The paper's five within-family pairs and their printed raw DVGRs (2 decimals), as published.
PUBLISHED_PAIRS = pl.read_csv(DEFAULT_ROOT / "dvb2025_size_pairs.csv").rows()

pm = lazy.module("pymc")  # imported by the one test that builds the PyMC model


@pytest.fixture(scope="module")
def published() -> tuple[pl.DataFrame, pl.DataFrame, xr.DataArray]:
    """Model table, per-model counts and exact flat-prior Beta posterior draws of the published run."""
    pub = pl.read_csv(PUBLISHED)
    models = ModelTable(pub.drop("n_trials_parsed", "n_chose_deep"))
    counts = pub.select(
        pl.col("short_name").alias("model"),
        pl.col("n_trials_parsed").alias("n_trials"),
        pl.col("n_chose_deep").alias("n_deep"),
    )
    k, n = counts["n_deep"].to_numpy(), counts["n_trials"].to_numpy()
    draws = np.random.default_rng(0).beta(k + 1, n - k + 1, size=(4, 1000, len(k)))
    coords = {"model": counts["model"].to_list()}
    return models.data, counts, xr.DataArray(draws, dims=("chain", "draw", "model"), coords=coords)


def _table(
    names: list[str], families: list[str], ranks: list[int | None], params: list[float | None] | None = None
) -> pl.DataFrame:
    n = len(names)
    return pl.DataFrame(
        {
            "model_id": names,
            "short_name": names,
            "developer": ["dev"] * n,
            "family": families,
            "size_rank_in_family": ranks,
            "params_b": params or [None] * n,
        },
        schema=dict(ModelTable.default().data.schema),
    )


def _simulate(beta: float, seed: int, tau: float = 0.15, post_sd: float = 0.05):
    """Posterior DVGR draws from a known family-intercept + slope model of logit DVGR.

    Six families with 2 or 3 sizes; each model's posterior centre is its true logit DVGR plus
    estimation error (sd ``post_sd``) and its draws scatter around the centre with that sd.
    Returns the model table, the draws, the standardised size and the posterior centres.
    """
    rng = np.random.default_rng(seed)
    sizes = [2, 3, 2, 3, 2, 3]
    fam = [f"f{f}" for f, s in enumerate(sizes) for _ in range(s)]
    rank = [r for s in sizes for r in range(1, s + 1)]
    names = [f"{f}-s{r}" for f, r in zip(fam, rank)]
    centred = np.array([r - (s + 1) / 2 for s in sizes for r in range(1, s + 1)])
    x = centred / centred.std()
    alpha = rng.normal(-0.8, 0.4, len(sizes))[[int(f[1:]) for f in fam]]
    centre = alpha + beta * x + rng.normal(0, tau, len(x)) + rng.normal(0, post_sd, len(x))
    draws = expit(centre + rng.normal(0, post_sd, (4, 500, len(x))))
    da = xr.DataArray(draws, dims=("chain", "draw", "model"), coords={"model": names})
    return _table(names, fam, rank), da, x, centre


@pytest.fixture(scope="module")
def negative():
    table, draws, x, _ = _simulate(beta=-0.5, seed=11)
    return scaling.trend(draws, table, settings=replace(scaling.TREND_SAMPLER, seed=1, draws=500, tune=500)), x, draws


@pytest.fixture(scope="module")
def zero():
    table, draws, x, _ = _simulate(beta=0.0, seed=12)
    return scaling.trend(draws, table, settings=replace(scaling.TREND_SAMPLER, seed=2, draws=500, tune=500)), x, draws


def test_trend_recovers_negative_slope(negative):
    fit, x, _ = negative
    np.testing.assert_allclose(fit.models["size_std"].to_numpy(), x, rtol=1e-12)
    assert fit.size_measure == "rank" and fit.n_models == 15 and fit.n_families == 6
    assert fit.slope_hdi_low <= -0.5 <= fit.slope_hdi_high
    assert fit.p_slope_below_0 > 0.95
    assert fit.bf01 < 0.1
    checks = fit.diagnostics.summary()
    assert checks["max_r_hat"] < 1.02 and checks["min_ess_bulk"] > 400 and fit.diagnostics.divergences == 0
    # the main fit's checks, on every trend parameter (one alpha per family)
    assert fit.diagnostics.table["parameter"].to_list() == [*(f"alpha[f{i}]" for i in range(6)), "beta", "tau"]
    assert fit.table()["max_r_hat"].item() == checks["max_r_hat"]


def test_trend_zero_slope_is_not_called_negative(zero):
    fit, _, _ = zero
    assert fit.slope_hdi_low <= 0.0 <= fit.slope_hdi_high
    assert 0.05 < fit.p_slope_below_0 < 0.95
    assert fit.bf01 > 1
    checks = fit.diagnostics.summary()
    assert checks["max_r_hat"] < 1.02 and checks["min_ess_bulk"] > 400


def _bf01_by_quadrature(y, sigma, family_idx, x) -> float:
    """BF01 from the two marginal likelihoods, integrating tau on a grid (independent of Savage-Dickey)."""
    n_fam = family_idx.max() + 1
    F = np.eye(n_fam)[family_idx]
    tau = np.linspace(1e-6, 4 * scaling.PRIOR_TAU_SD, 4001)
    prior_tau = 2 * stats.norm.pdf(tau, 0, scaling.PRIOR_TAU_SD)
    base = F @ F.T * scaling.PRIOR_ALPHA_SD**2

    def log_marginal(with_slope: bool) -> np.ndarray:
        cov = sigma + base + (np.outer(x, x) * scaling.PRIOR_BETA_SD**2 if with_slope else 0)
        return np.array([stats.multivariate_normal.logpdf(y, cov=cov + t**2 * np.eye(len(y))) for t in tau])

    l0, l1 = log_marginal(False), log_marginal(True)
    c = max(l0.max(), l1.max())
    return np.trapezoid(np.exp(l0 - c) * prior_tau, tau) / np.trapezoid(np.exp(l1 - c) * prior_tau, tau)


@pytest.mark.parametrize("case", ["negative", "zero"])
def test_savage_dickey_matches_marginal_likelihoods(case, request):
    fit, _, draws = request.getfixturevalue(case)
    logits = logit(draws.transpose("chain", "draw", "model").values.reshape(-1, draws.sizes["model"]))
    families = fit.models["family"].unique(maintain_order=True).to_list()
    family_idx = np.array([families.index(f) for f in fit.models["family"]])
    x = fit.models["size_std"].to_numpy()
    ref = _bf01_by_quadrature(logits.mean(0), np.cov(logits, rowvar=False), family_idx, x)
    np.testing.assert_allclose(fit.bf01, ref, rtol=1e-3)


def test_trend_normal_summary_of_draws(zero):
    fit, _, draws = zero
    logits = logit(draws.sel(model=fit.models["model"].to_list()).values)
    np.testing.assert_allclose(fit.models["logit_mean"].to_numpy(), logits.mean((0, 1)), rtol=1e-10)
    sd = logits.reshape(-1, logits.shape[-1]).std(0, ddof=1)
    np.testing.assert_allclose(fit.models["logit_sd"].to_numpy(), sd, rtol=1e-10)
    assert np.abs(fit.models["logit_skew"].to_numpy()).max() < scaling.SKEW_WARN


def test_pair_contrasts_equal_direct_computation(negative):
    _, _, draws = negative
    got = scaling.pair_contrasts(draws, [("f0-s1", "f0-s2"), ("f1-s2", "f1-s3")], hdi_prob=0.9)
    for row in got.iter_rows(named=True):
        diff = (draws.sel(model=row["larger"]) - draws.sel(model=row["smaller"])).values.ravel()
        assert row["diff_mean"] == pytest.approx(diff.mean())
        assert row["p_diff_below_0"] == pytest.approx((diff < 0).mean())
        ordered = np.sort(diff)
        width = int(np.floor(0.9 * diff.size))
        i = np.argmin(ordered[width:] - ordered[: diff.size - width])
        assert (row["diff_hdi_low"], row["diff_hdi_high"]) == pytest.approx((ordered[i], ordered[i + width]))


def test_default_pairs_are_the_papers(published):
    models, _, draws = published
    got = scaling.pairs(models, draws["model"].values.tolist())
    assert sorted(got) == sorted((s, l) for s, l, _, _ in PUBLISHED_PAIRS)


def test_frequentist_pairs_reproduce_scipy_on_published_counts(published):
    models, counts, _ = published
    got = scaling.frequentist_pairs(counts, [(s, l) for s, l, _, _ in PUBLISHED_PAIRS])
    by_model = {m: (k, n) for m, n, k in counts.iter_rows()}
    for row, (s, l, raw_s, raw_l) in zip(got.iter_rows(named=True), PUBLISHED_PAIRS):
        (k1, n1), (k2, n2) = by_model[s], by_model[l]
        table = np.array([[k1, n1 - k1], [k2, n2 - k2]])
        ref = stats.chi2_contingency(table)
        assert (row["chi2"], row["chi2_p"], row["dof"]) == (ref.statistic, ref.pvalue, ref.dof)
        assert row["cramers_v"] == association(table, method="cramer")
        assert (round(row["raw_smaller"], 2), round(row["raw_larger"], 2)) == (raw_s, raw_l)


@pytest.mark.parametrize("coding", list(PAPER_CODINGS))
def test_big_small_reproduces_scipy_on_published_counts(published, coding):
    _, counts, draws = published
    big = PAPER_CODINGS[coding]
    row = scaling.big_small(draws, counts, big).row(0, named=True)
    is_big = counts["model"].is_in(list(big)).to_numpy()
    k, n = counts["n_deep"].to_numpy(), counts["n_trials"].to_numpy()
    k_big, n_big, k_small, n_small = k[is_big].sum(), n[is_big].sum(), k[~is_big].sum(), n[~is_big].sum()
    table = np.array([[k_big, n_big - k_big], [k_small, n_small - k_small]])
    ref = stats.chi2_contingency(table)
    assert (row["chi2"], row["chi2_p"]) == (ref.statistic, ref.pvalue)
    assert row["cramers_v"] == association(table, method="cramer")
    assert n_big + n_small == 104_725 and k_big + k_small == 31_668
    small = [m for m in draws["model"].values if m not in big]
    diff = draws.sel(model=sorted(big)).mean("model") - draws.sel(model=small).mean("model")
    assert row["diff_mean"] == pytest.approx(float(diff.mean()))


def test_run_on_published_counts_writes_tables(published, tmp_path):
    models, counts, draws = published
    result = scaling.scaling_tests(draws, counts, models, codings=PAPER_CODINGS, seed=3)
    assert result.pairs.height == 5 and result.big_small["coding"].to_list() == list(PAPER_CODINGS)
    assert result.trend["size_measure"].item() == "rank"  # closed models have no parameter counts
    assert result.frequentist["n_clusters"].item() == 9 and result.frequentist["few_clusters"].item()
    paths = {p.name for p in runfolder.write_analysis(tmp_path, "scaling", result)}
    tables = ("pairs", "big_small", "trend", "models", "frequentist")
    assert paths == {f"scaling_{t}.csv" for t in tables} | {"scaling_methods.json"}
    meta = json.loads((tmp_path / "scaling_methods.json").read_text())
    assert set(meta["methods"]) == set(scaling.METHODS) and meta["settings"]["size"] == "rank"
    assert meta["diagnostics"] == json.loads(json.dumps(result.diagnostics.summary()))  # the main fit's checks
    assert meta["diagnostics"]["thresholds"]["max_r_hat"] == MAX_R_HAT and "failures" in meta["diagnostics"]
    pooled_chi2 = pl.read_csv(tmp_path / "scaling_big_small.csv")["chi2"].to_list()
    assert pooled_chi2 == pytest.approx(result.big_small["chi2"].to_list())


def test_run_skips_codings_and_trend_with_notes(published):
    models, counts, draws = published
    present = ["gpt-4o-mini", "gpt-4o", "llama-3-8b"]
    sub = draws.sel(model=present)
    result = scaling.scaling_tests(sub, counts, models, pairs=[("llama-3-8b", "gpt-4o")], codings=PAPER_CODINGS, seed=1)
    assert result.big_small is None and any("skipped" in n for n in result.notes)
    assert any("not used: they have no posterior draws" in n for n in result.notes)
    assert result.trend is not None and result.trend["n_models"].item() == 2  # llama-3 family has one model here
    assert any("llama-3-8b: the only sized model" in n for n in result.notes)


def test_unavailable_and_invalid_inputs(published):
    models, counts, draws = published
    with pytest.raises(scaling.ScalingUnavailable, match="single model"):
        scaling.pairs(models, ["gpt-4o"])
    with pytest.raises(scaling.ScalingUnavailable, match="no family has two models"):
        scaling.pairs(models, ["gpt-4o", "gpt-4.1", "llama-3-8b"])
    assert not scaling.has_size_pairs(models, ["gpt-4o", "gpt-4.1"])
    assert scaling.has_size_pairs(models, ["gpt-4o", "gpt-4o-mini"])
    unsized = _table(["a", "b"], ["x", "x"], [None, None])
    with pytest.raises(scaling.ScalingUnavailable, match="a: no size rank"):
        scaling.pairs(unsized, ["a", "b"])
    with pytest.raises(scaling.ScalingUnavailable, match="c: not in the model table"):
        scaling.pairs(unsized, ["a", "c"])
    with pytest.raises(scaling.ScalingUnavailable, match=r"log_params.*gpt-4o"):
        scaling.size_design(models, draws["model"].values.tolist(), "log_params")
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['gpt-5'\]"):
        scaling.pairs(models, ["gpt-4o", "gpt-4o-mini"], explicit=[("gpt-4o-mini", "gpt-5")])
    with pytest.raises(ValueError, match="compared with itself"):
        scaling.pairs(models, ["gpt-4o", "gpt-4o-mini"], explicit=[("gpt-4o", "gpt-4o")])
    too_many = pl.when(pl.col("model") == "gpt-4o").then(20_000).otherwise("n_deep").alias("n_deep")
    bad = counts.with_columns(too_many)
    with pytest.raises(ValueError, match=r"counts row 6 \(model gpt-4o\)"):
        scaling.frequentist_pairs(bad, [("gpt-4o-mini", "gpt-4o")])
    with pytest.raises(ValueError, match="dims"):
        scaling.pair_contrasts(draws.rename(model="m"), [("gpt-4o-mini", "gpt-4o")])


def test_log_params_size_when_all_models_have_counts():
    params = [1.0, 4.0, 16.0, 2.0, 8.0]
    table = _table(["s", "m", "l", "t", "u"], ["a", "a", "a", "b", "b"], [1, 2, 3, 1, 2], params)
    rows, measure, scale, notes = scaling.size_design(table, ["s", "m", "l", "t", "u"])
    centred = np.log([1, 4, 16, 2, 8]) - np.r_[[np.log(4)] * 3, [np.log(4)] * 2]
    assert measure == "log_params" and notes == []
    np.testing.assert_allclose(rows["size_std"].to_numpy(), centred / centred.std())
    assert scale == pytest.approx(centred.std())


def test_a_reversed_pair_is_refused_when_the_model_table_knows_the_sizes():
    from dvbstats.input.registry import ModelTable
    from dvbstats.results.scaling import pairs

    table = ModelTable.default()
    present = table.data["short_name"].to_list()
    assert pairs(table, present, explicit=[("gpt-4o-mini", "gpt-4o")]) == [("gpt-4o-mini", "gpt-4o")]
    with pytest.raises(ValueError, match="gpt-4o is the larger model of its family .*write SMALLER:LARGER, i.e. gpt-4o-mini:gpt-4o"):
        pairs(table, present, explicit=[("gpt-4o", "gpt-4o-mini")])


def _rotated(seed: int):
    """A trend problem as ``trend`` hands it to the exact sampler: rotated data, eigenvalues, design."""
    table, draws, x, _ = _simulate(beta=-0.5, seed=seed)
    logits = logit(draws.values.reshape(-1, draws.sizes["model"]))
    y, sigma = logits.mean(0), np.cov(logits, rowvar=False)
    fam = table["family"].to_list()
    families = list(dict.fromkeys(fam))
    X = np.column_stack([np.eye(len(families))[[families.index(f) for f in fam]], x])
    lam, Q = np.linalg.eigh(sigma)
    return y, sigma, X, lam, Q


def test_trend_conditionals_equal_dense_gaussian_algebra():
    """Given tau: the marginal likelihood (alpha, beta integrated out) equals scipy's multivariate Normal
    density of y under Sigma + tau^2 I + X V0 X', and the conditional posterior of (alpha, beta) the textbook
    conjugate one computed with the models' full covariance."""
    y, sigma, X, lam, Q = _rotated(3)
    tau = np.array([0.0, 0.07, 0.3, 1.4])
    log_post, mean, chol = scaling._given_tau(Q.T @ y, lam, Q.T @ X, tau)
    prior_var = np.r_[np.full(X.shape[1] - 1, scaling.PRIOR_ALPHA_SD**2), scaling.PRIOR_BETA_SD**2]
    for t, lp, m, L in zip(tau, log_post, mean, chol):
        noise = sigma + t**2 * np.eye(len(y))
        ref = (stats.multivariate_normal.logpdf(y, cov=noise + (X * prior_var) @ X.T)
               + stats.halfnorm.logpdf(t, scale=scaling.PRIOR_TAU_SD))
        np.testing.assert_allclose(lp, ref, rtol=1e-10)
        cov = np.linalg.inv(np.diag(1 / prior_var) + X.T @ np.linalg.solve(noise, X))
        np.testing.assert_allclose(m, cov @ X.T @ np.linalg.solve(noise, y), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(np.linalg.inv(L @ L.T), cov, rtol=1e-8, atol=1e-12)


def test_trend_draws_follow_the_exact_posterior():
    """The exact sampler's draws against the posterior computed by quadrature over tau: tau's CDF
    (Kolmogorov-Smirnov), and the posterior mean and SD of beta (within 4 Monte Carlo SEs of
    independent draws)."""
    y, sigma, X, lam, Q = _rotated(4)
    yr, Xr = Q.T @ y, Q.T @ X
    tau, coef = scaling.trend_draws(yr, lam, Xr, (4, 2000), seed=7)
    grid = np.linspace(0, 10 * scaling.PRIOR_TAU_SD, 20001)  # finer than the sampler's
    log_post, mean, chol = scaling._given_tau(yr, lam, Xr, grid)
    w = np.exp(log_post - log_post.max())
    cdf = np.r_[0.0, np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(grid))]
    cdf /= cdf[-1]
    assert stats.kstest(tau.ravel(), lambda t: np.interp(t, grid, cdf)).pvalue > 0.01
    var_beta = np.array([np.linalg.inv(L @ L.T)[-1, -1] for L in chol])
    e_beta = np.trapezoid(w * mean[:, -1], grid) / np.trapezoid(w, grid)
    sd_beta = np.sqrt(np.trapezoid(w * (var_beta + mean[:, -1] ** 2), grid) / np.trapezoid(w, grid) - e_beta**2)
    beta = coef[..., -1].ravel()
    assert abs(beta.mean() - e_beta) < 4 * sd_beta / np.sqrt(beta.size)
    assert abs(beta.std() / sd_beta - 1) < 4 / np.sqrt(2 * beta.size)


@pytest.mark.slow
def test_trend_equals_the_pymc_model():
    """The exact draws against NUTS on the same model written in PyMC (the trend's previous sampler):
    posterior means of alpha, beta and tau within Monte Carlo error, SDs within 10%."""
    y, sigma, X, lam, Q = _rotated(5)
    with pm.Model():
        alpha = pm.Normal("alpha", 0.0, scaling.PRIOR_ALPHA_SD, shape=X.shape[1] - 1)
        beta = pm.Normal("beta", 0.0, scaling.PRIOR_BETA_SD)
        tau = pm.HalfNormal("tau", scaling.PRIOR_TAU_SD)
        coef = pm.math.concatenate([alpha, beta[None]])
        pm.Normal("rotated", mu=pm.math.dot(Q.T @ X, coef), sigma=pm.math.sqrt(np.clip(lam, 0, None) + tau**2),
                  observed=Q.T @ y)
        idata = pm.sample(2000, tune=1000, chains=4, cores=1, random_seed=3, target_accept=0.9, progressbar=False,
                          compute_convergence_checks=False)
    tau_x, coef_x = scaling.trend_draws(Q.T @ y, lam, Q.T @ X, (4, 2000), seed=3)
    post = idata.posterior
    nuts = {"beta": post["beta"].values, "tau": post["tau"].values,
            **{f"alpha{j}": post["alpha"].values[..., j] for j in range(X.shape[1] - 1)}}
    exact = {"beta": coef_x[..., -1], "tau": tau_x, **{f"alpha{j}": coef_x[..., j] for j in range(X.shape[1] - 1)}}
    for name, draws in nuts.items():
        se = np.sqrt(draws.var() / float(az.ess(draws)) + exact[name].var() / exact[name].size)
        assert abs(draws.mean() - exact[name].mean()) < 4 * se, name
        assert abs(draws.std() / exact[name].std() - 1) < 0.1, name
