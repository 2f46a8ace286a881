"""Estimands and the ``Fit`` that carries them, on posteriors written by hand (no sampling).

The posterior draws are chosen, so every estimand has a closed form to compare with: the
design-averaged rate is the prompt-weighted mean of inverse-logit cell predictors, the HDI of a
Normal sample is its mean +- z sd, P(< 0.5) a Normal probability or an exact share of draws.
"""

from __future__ import annotations

from dataclasses import replace

import arviz as az
import numpy as np
import polars as pl
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit

from dvbstats.constants import CHANCE, MAX_R_HAT, MIN_ESS
from dvbstats.input.cells import CellTable
from dvbstats.model.design import design, linear_predictor, predictor_layout
from dvbstats.model.formula import parse
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import estimands
from dvbstats.results.fitted import Fit

MODELS, VALUES = ["m1", "m2"], ["v1", "v2", "v3"]
#: prompts per (model, value) cell: unequal, so that a plain mean of the cells would differ
PROMPTS = {("m1", "v1"): 10, ("m1", "v2"): 30, ("m1", "v3"): 60, ("m2", "v1"): 50, ("m2", "v2"): 25, ("m2", "v3"): 25}
CHAINS, DRAWS = 2, 50


def _cells() -> CellTable:
    rows = [{"model": m, "value": v, "n_prompts": n, "n_trials": n // 2 + 3, "n_deep": n // 5} for (m, v), n in PROMPTS.items()]
    return CellTable(pl.DataFrame(rows), ("model", "value"))


def _posterior(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"Intercept": rng.normal(-0.5, 0.2, (CHAINS, DRAWS)),
            "r_model": rng.normal(0, 0.5, (CHAINS, DRAWS, len(MODELS))),
            "r_value": rng.normal(0, 0.8, (CHAINS, DRAWS, len(VALUES))),
            "sd": np.abs(rng.normal(0.5, 0.1, (CHAINS, DRAWS, 2)))}


def _fit(draws: dict[str, np.ndarray], diverging: np.ndarray | None = None) -> Fit:
    d = design(parse("chose_deep ~ 1 + (1|model) + (1|value)"), _cells())
    assert [t.name for t in d.terms] == ["model", "value"]
    posterior = az.dict_to_dataset(draws, dims={"r_model": ["model"], "r_value": ["value"], "sd": ["term"]},
                                   coords={"model": MODELS, "value": VALUES, "term": d.sd_labels})
    chains, n_draws = draws["Intercept"].shape
    stats_ = az.dict_to_dataset({"diverging": np.zeros((chains, n_draws), bool) if diverging is None else diverging})
    idata = az.InferenceData(posterior=posterior, sample_stats=stats_)
    return Fit(d, Priors({}), SamplerSettings(draws=n_draws, chains=chains), "zerosum", idata)


def _by_hand(draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per model and overall, the prompt-weighted mean over cells of expit(Intercept + r_model + r_value)."""
    def p(m, v):
        return expit(draws["Intercept"] + draws["r_model"][..., MODELS.index(m)] + draws["r_value"][..., VALUES.index(v)])
    out = {m: sum(n * p(m, v) for (mm, v), n in PROMPTS.items() if mm == m) /
           sum(n for (mm, _), n in PROMPTS.items() if mm == m) for m in MODELS}
    out["overall"] = sum(n * p(m, v) for (m, v), n in PROMPTS.items()) / sum(PROMPTS.values())
    return out


def test_design_averaged_rate_of_a_known_posterior():
    draws = _posterior()
    fit, expected = _fit(draws), _by_hand(draws)
    assert fit.dvgr.dims == ("chain", "draw", "model") and fit.dvgr["model"].values.tolist() == MODELS
    for m in MODELS:
        np.testing.assert_allclose(fit.dvgr.sel(model=m).values, expected[m], rtol=1e-12)
    np.testing.assert_allclose(fit.overall.values, expected["overall"], rtol=1e-12)
    # the prompt weights matter: the unweighted mean of m1's cells is a different number
    plain = np.mean([expit(draws["Intercept"] + draws["r_model"][..., 0] + draws["r_value"][..., j]) for j in range(3)], 0)
    assert np.abs(plain - expected["m1"]).max() > 1e-3


def test_rate_by_another_factor_and_contrasts_follow_the_draws():
    draws = _posterior(seed=1)
    fit = _fit(draws)
    samples, levels = fit.level_draws("value")
    assert levels == VALUES and samples.shape == (CHAINS * DRAWS, len(VALUES))
    weight = {v: {m: PROMPTS[m, v] for m in MODELS} for v in VALUES}
    for j, v in enumerate(VALUES):
        p = sum(w * expit(draws["Intercept"] + draws["r_model"][..., MODELS.index(m)] + draws["r_value"][..., j])
                for m, w in weight[v].items()) / sum(weight[v].values())
        np.testing.assert_allclose(samples[:, j], p.ravel(), rtol=1e-12)
    row = fit.contrast("m2", "m1", hdi_prob=0.9).iloc[0]
    diff = (_by_hand(draws)["m2"] - _by_hand(draws)["m1"]).ravel()
    assert row["diff_mean"] == pytest.approx(diff.mean()) and row["p_diff_above_0"] == pytest.approx((diff > 0).mean())


def test_hdi_and_p_below_chance_of_a_known_distribution():
    mu, sd = 0.45, 0.05
    x = stats.norm.ppf((np.arange(200_000) + 0.5) / 200_000, mu, sd)  # Normal quantiles: a sample without noise
    da = xr.DataArray(np.random.default_rng(2).permutation(x).reshape(4, -1), dims=("chain", "draw"))
    row = estimands.summarize(da, 0.94).row(0, named=True)
    half = stats.norm.ppf(0.97) * sd  # the 94% HDI of a Normal is its central interval
    assert row["hdi_low"] == pytest.approx(mu - half, abs=1e-4) and row["hdi_high"] == pytest.approx(mu + half, abs=1e-4)
    assert row["mean"] == pytest.approx(mu, abs=1e-9) and row["median"] == pytest.approx(mu, abs=1e-6)
    assert row["p_below_half"] == pytest.approx(stats.norm.cdf(CHANCE, mu, sd), abs=1e-4)  # Phi(1) = 0.841


def test_p_below_chance_counts_draws_strictly_below_it():
    values = np.array([[0.1, 0.49, CHANCE, 0.51, 0.9], [0.2, 0.3, 0.6, 0.7, 0.8]])
    da = xr.DataArray(values.T[None], dims=("chain", "draw", "model"), coords={"model": ["a", "b"]})
    table = estimands.summarize(da, 0.5, dim="model")
    assert table["model"].to_list() == ["a", "b"]
    assert table["p_below_half"].to_list() == [2 / 5, 2 / 5]  # 0.5 itself is not below chance


def test_raw_rates_against_scipy():
    counts = pl.DataFrame({"model": ["a", "b", "empty"], "n_deep": [30, 55, 0], "n_trials": [100, 100, 0]})
    out = estimands.raw_rates(counts)
    assert out["raw_dvgr"][:2].to_list() == [0.3, 0.55] and np.isnan(out["raw_dvgr"][2])
    assert out["binom_p"][0] == pytest.approx(stats.binomtest(30, 100, CHANCE).pvalue)
    ci = stats.binomtest(55, 100).proportion_ci(0.95, method="wilson")
    assert (out["wilson_low"][1], out["wilson_high"][1]) == pytest.approx((ci.low, ci.high))


def test_fit_diagnostics_cover_every_reported_quantity_and_pass_on_a_good_trace():
    rng = np.random.default_rng(3)
    draws = {"Intercept": rng.normal(-0.5, 0.05, (4, 1000)), "r_model": rng.normal(0, 0.05, (4, 1000, 2)),
             "r_value": rng.normal(0, 0.05, (4, 1000, 3)), "sd": np.abs(rng.normal(0.5, 0.05, (4, 1000, 2)))}
    fit = _fit(draws)
    d = fit.diagnostics
    labels = d.table["parameter"].to_list()
    assert labels == ["Intercept", "sd[model]", "sd[value]", "dvgr[m1]", "dvgr[m2]", "dvgr_overall"]
    assert d.ok and d.failures == [] and "diagnostics OK" in repr(fit)


def test_fit_diagnostics_fail_on_chains_that_disagree_and_on_divergences():
    draws = _posterior(seed=4)
    draws["Intercept"] = draws["Intercept"] + np.array([[0.0], [3.0]])  # the second chain sits elsewhere
    diverging = np.zeros((CHAINS, DRAWS), bool)
    diverging[0, :3] = True
    d = _fit(draws, diverging).diagnostics
    assert not d.ok and d.divergences == 3
    rhat, ess, div = d.failures
    assert rhat.startswith(f"R-hat > {MAX_R_HAT} for")
    assert ess.startswith(f"ESS < {MIN_ESS} for") and div == f"3 divergent transitions out of {CHAINS * DRAWS} draws"
    summary = d.summary()
    assert summary["ok"] is False and summary["max_r_hat"] > 1.5 and summary["divergences"] == 3


def test_fit_summary_and_rates_report_the_draws():
    draws = _posterior(seed=5)
    fit, expected = _fit(draws), _by_hand(draws)
    summary = fit.summary()
    assert summary.index.tolist() == ["Intercept", "sd[model]", "sd[value]"]
    assert summary.loc["Intercept", "mean"] == pytest.approx(draws["Intercept"].mean())
    assert summary.loc["sd[value]", "mean"] == pytest.approx(draws["sd"][..., 1].mean())
    rates = fit.rates("model")
    assert rates["model"].tolist() == MODELS
    np.testing.assert_allclose(rates["dvgr_mean"], [expected[m].mean() for m in MODELS], rtol=1e-12)
    k = {m: sum(n // 5 for (mm, _), n in PROMPTS.items() if mm == m) for m in MODELS}
    n = {m: sum(n // 2 + 3 for (mm, _), n in PROMPTS.items() if mm == m) for m in MODELS}
    np.testing.assert_allclose(rates["raw_dvgr"], [k[m] / n[m] for m in MODELS])  # the raw rate beside it
    by_cell = fit.rates(["model", "value"])
    assert len(by_cell) == len(PROMPTS)


def test_design_averages_with_an_item_term_in_two_levels_equal_the_cell_by_cell_rates():
    """With an item-level random intercept the kernels compute each cell's predictor as its design cell's plus
    its item's (:func:`estimands.item_layout`); the averages equal expit of the full predictor, cell by cell,
    weighted by prompts (by model, by model x condition, overall)."""
    rng = np.random.default_rng(5)
    models, items, conditions = ["a", "b", "c"], [f"i{j}" for j in range(40)], ["x", "y"]
    rows = [{"model": m, "condition": c, "item": i, "n_prompts": 1 + (j + k) % 3, "n_trials": 1,
             "n_deep": int(rng.random() < 0.4)}
            for k, m in enumerate(models) for c in conditions for j, i in enumerate(items) if (j + k) % 5]
    cells = CellTable(pl.DataFrame(rows), ("model", "condition", "item"))
    d = design(parse("y ~ 1 + condition + (1|model) + (1|item)"), cells)
    cols, vals, item, design_of = estimands.item_layout(*predictor_layout(d))
    assert len(item) == cells.data.height and len(cols) == len(models) * len(conditions)
    draws = {"Intercept": rng.normal(0, 1, (2, 30)), "b_condition_y": rng.normal(0, 1, (2, 30)),
             "r_model": rng.normal(0, 1, (2, 30, 3)), "r_item": rng.normal(0, 2, (2, 30, len(items)))}
    posterior = az.dict_to_dataset(draws, dims={"r_model": ["model"], "r_item": ["item"]},
                                   coords={"model": list(d.terms[0].levels[0]), "item": list(d.terms[1].levels[0])})
    idata = az.InferenceData(posterior=posterior)
    data = cells.data
    p = expit(linear_predictor(d, {k: v.reshape(60, *v.shape[2:]) for k, v in draws.items()})).reshape(2, 30, -1)
    w = data["n_prompts"].to_numpy()
    groupings = [("model",), ("model", "condition"), ()]
    for (da, keys), by in zip(estimands.design_averages(d, idata, groupings), groupings):
        for g, key in enumerate(keys.iter_rows(named=True)):
            mask = np.all([data[f].to_numpy() == key[f] for f in by], axis=0) if by else np.ones(len(w), bool)
            expected = (p[..., mask] * w[mask]).sum(-1) / w[mask].sum()
            np.testing.assert_allclose(da.values[..., g], expected, rtol=1e-12)


def test_regrouped_design_averages_equal_a_pass_over_the_cells():
    """Coarser groupings summed from a finer one's groups (:func:`estimands.regroup`), also by columns joined onto
    the fine keys (a label each condition determines) and with a group of zero weight, equal the design averages
    of a pass over the cells."""
    rng = np.random.default_rng(11)
    models, items, conditions = ["a", "b", "c"], [f"i{j}" for j in range(30)], ["x", "y", "z"]
    rows = [{"model": m, "condition": c, "item": i, "n_prompts": (j + k) % 3, "n_trials": 1,
             "n_deep": int(rng.random() < 0.4)}
            for k, m in enumerate(models) for c in conditions for j, i in enumerate(items) if (j + k) % 4]
    rows = [r | {"n_prompts": 0} if r["model"] == "c" and r["condition"] == "z" else r for r in rows]  # no weight
    cells = CellTable(pl.DataFrame(rows), ("model", "condition", "item"))
    d = design(parse("y ~ 1 + condition + (1|model) + (1|item)"), cells)
    draws = {"Intercept": rng.normal(0, 1, (2, 25)), "b_condition_y": rng.normal(0, 1, (2, 25)),
             "b_condition_z": rng.normal(0, 1, (2, 25)), "r_model": rng.normal(0, 1, (2, 25, 3)),
             "r_item": rng.normal(0, 2, (2, 25, len(items)))}
    idata = az.InferenceData(posterior=az.dict_to_dataset(
        draws, dims={"r_model": ["model"], "r_item": ["item"]},
        coords={"model": list(d.terms[0].levels[0]), "item": list(d.terms[1].levels[0])}))
    attack = pl.DataFrame({"condition": conditions, "attack": ["no", "yes", "yes"]})
    fine_by = ("model", "condition")
    fine = estimands.design_averages(d, idata, [fine_by])[0]
    weights = estimands.group_weights(d, fine[1])
    assert weights.tolist() == [float(sum(r["n_prompts"] for r in rows if (r["model"], r["condition"]) == key))
                                for key in fine[1].iter_rows()]
    groupings = [("model",), (), ("condition",), ("model", "attack"), ("attack",)]
    labelled = CellTable(cells.data.join(attack, on="condition"), cells.by)
    direct = estimands.design_averages(d, idata, groupings[:3])
    direct += estimands.design_averages(replace(d, cells=labelled), idata, groupings[3:])
    keys = fine[1].join(attack, on="condition", how="left", maintain_order="left")
    for (da, got_keys), (want, want_keys) in zip(estimands.regroup((fine[0], keys), weights, groupings), direct):
        assert got_keys.equals(want_keys)
        np.testing.assert_allclose(da.values, want.values, rtol=1e-12)
        assert da.dims == want.dims and np.array_equal(da.chain, want.chain)


@pytest.mark.parametrize("draws", [1000, 999, 7])
def test_summaries_from_one_sort_equal_arviz_hdi_and_the_median_bit_for_bit(draws):
    """:func:`estimands.summarize` takes the median and the HDI of every level from one sort of its draws: the same
    numbers as ``arviz.hdi`` and xarray's median, to the bit (ties and equally narrow intervals included; odd and
    even numbers of draws), and the general path where a draw is NaN."""
    rng = np.random.default_rng(draws)
    values = np.concatenate([rng.normal(0, 1, (2, draws, 3)), rng.integers(0, 4, (2, draws, 2)) / 4.0], axis=2)
    da = xr.DataArray(values, dims=("chain", "draw", "level"), coords={"level": list("abcde")})
    for prob in (0.94, 0.5, 0.3):
        got = estimands.summarize(da, prob, dim="level")
        hdi = az.hdi(da.to_dataset(name="x"), hdi_prob=prob)["x"]
        np.testing.assert_array_equal(got["hdi_low"].to_numpy(), hdi.sel(hdi="lower").values)
        np.testing.assert_array_equal(got["hdi_high"].to_numpy(), hdi.sel(hdi="higher").values)
        np.testing.assert_array_equal(got["median"].to_numpy(), da.median(("chain", "draw")).values)
    scalar = estimands.summarize(da.isel(level=0), 0.94).row(0, named=True)
    assert scalar["median"] == float(np.median(values[..., 0]))
    with_nan = da.copy()
    with_nan[0, 3, 1] = np.nan
    got = estimands.summarize(with_nan, 0.94, dim="level")
    assert got["median"][1] == float(np.nanmedian(with_nan.values[..., 1]))  # the median skips it, as before
    assert np.isnan(got["hdi_low"][1]) or got["hdi_low"][1] == az.hdi(with_nan.values[..., 1].ravel(), 0.94)[0]
