"""The model against truth we control: closed-form posteriors and simulated effects."""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from dvbstats.input.cells import CellTable, from_trials
from dvbstats.model.design import design
from dvbstats.model.pymcmodel import pymc_model
from dvbstats.model.formula import parse
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import estimands
from dvbstats.results.fitted import fit
from dvbstats.simulate import dvb as simulate


def _cells(k: int, n: int) -> CellTable:
    data = pl.DataFrame({"model": ["m"], "n_prompts": [n], "n_trials": [n], "n_deep": [k]})
    return CellTable(data, ("model",))


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_intercept_only_matches_exact_beta_binomial(sampler):
    """A logistic(0, 1) prior on the log-odds is a uniform prior on p: the posterior is Beta(k+1, n-k+1)."""
    k, n = 37, 120
    f = fit(parse("chose_deep ~ 1"), _cells(k, n), priors=Priors.from_specs(["intercept=logistic(0, 1)"]),
            settings=SamplerSettings(sampler=sampler, draws=2000, tune=500, chains=2, seed=3), progress=False)
    draws = f.dvgr.sel(model="m").values.ravel()
    exact = stats.beta(k + 1, n - k + 1)
    assert abs(draws.mean() - exact.mean()) < 0.004
    assert abs(draws.std() - exact.std()) < 0.004
    for q in (0.03, 0.5, 0.97):
        assert abs(np.quantile(draws, q) - exact.ppf(q)) < 0.01
    assert stats.kstest(draws[::4], exact.cdf).pvalue > 0.001
    assert f.diagnostics.ok


def test_design_lays_out_levels_and_centres_predictors():
    data = pl.DataFrame({
        "model": ["a", "a", "b", "b"], "value": ["x", "y", "x", "y"], "log_n_train": [1.0, 3.0, 1.0, 3.0],
        "n_prompts": [10, 10, 10, 10], "n_trials": [10, 30, 0, 10], "n_deep": [1, 2, 0, 3]})
    d = design(parse("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|model:value)"),
               CellTable(data, ("model", "value", "log_n_train")))
    assert d.centers[0] == pytest.approx((10 * 1 + 30 * 3 + 10 * 3) / 50)  # trial-weighted
    assert d.observed.tolist() == [True, True, False, True]
    inter = d.terms[2]
    assert inter.dims == ("model", "value") and inter.index.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert d.prior_names == ["intercept", "b_log_n_train", "sd_model", "sd_value", "sd_model__value"]


def test_no_parsed_trials_is_an_error():
    with pytest.raises(ValueError, match="no parsed trials"):
        design(parse("y ~ 1"), _cells(0, 0))


@pytest.mark.parametrize("parametrization", ["zerosum", "centered", "noncentered"])
def test_parametrizations_build(parametrization):
    data = pl.DataFrame({"model": ["a", "b"], "n_prompts": [5, 5], "n_trials": [5, 5], "n_deep": [1, 4]})
    m = pymc_model(design(parse("y ~ 1 + (1|model)"), CellTable(data, ("model",))), Priors({}), parametrization)
    assert "r_model" in m.named_vars and "sd" in m.named_vars


def _simulation(seed: int, sd: dict, n_models=6, n_prompts=1500, slope=-0.15):
    design_ = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial"), ("Tech-savvy", "plain language"),
                                            ("data_driven", "intuitive")], n_prompts=n_prompts)
    models = [f"model-{i}" for i in range(n_models)]
    effects = simulate.draw_effects(design_, models, intercept=-0.8, log_n_train=slope, sd=sd, seed=seed)
    return simulate.simulate(effects, design_, seed=seed + 1000)


@pytest.mark.slow
def test_recovers_simulated_truth_over_seeds():
    """Each model's true DVGR (and the true slope) lies in its 94% HDI for nearly all, over several seeds;
    the slope agrees with the fixed-effects maximum-likelihood fit of the same data; SDs land near truth."""
    import statsmodels.formula.api as smf

    sd = {"model": 0.5, "value": 0.4, "feature": 0.3, "context": 0.25}
    covered, total = 0, 0
    sd_means = {k: [] for k in sd}
    for seed in (1, 2, 3):
        sim = _simulation(seed, sd)
        trials = _as_trials(sim)
        f = fit(parse("chose_deep ~ 1 + log_n_train + (1|model) + (1|value) + (1|feature) + (1|context)"),
                from_trials(trials, ("log_n_train", "model", "value", "feature", "context")),
                settings=SamplerSettings(draws=500, tune=500, chains=2, seed=seed), progress=False)
        s = estimands.summarize(f.dvgr, 0.94, dim="model")
        truth = sim.truth.rename({"model_id": "model"}).join(s, on="model")
        covered += int(((truth["dvgr_true"] >= truth["hdi_low"]) & (truth["dvgr_true"] <= truth["hdi_high"])).sum())
        b = f.idata.posterior["b_log_n_train"]
        slope = estimands.summarize(b, 0.94)
        covered += int(slope["hdi_low"][0] <= -0.15 <= slope["hdi_high"][0])
        total += truth.height + 1
        used = trials.filter(pl.col("status") == "used").with_columns(x=pl.col("n_train").cast(pl.Float64).log())
        mle = smf.logit("chose_deep ~ x + C(model) + C(value) + C(feature) + C(context)", used.to_pandas()).fit(disp=0)
        assert abs(float(b.mean()) - mle.params["x"]) < 0.25 * mle.bse["x"]
        for term in sd:
            sd_means[term].append(float(f.idata.posterior["sd"].sel(term=term).mean()))
        assert f.diagnostics.divergences == 0
    assert covered / total >= 0.8, f"{covered}/{total} true values covered"
    # Realised SDs of a few drawn levels scatter around the truth: the posterior mean lands within a factor 2.5.
    for term, truth_sd in sd.items():
        assert truth_sd / 2.5 < np.mean(sd_means[term]) < truth_sd * 2.5, (term, sd_means[term])


def _as_trials(sim) -> pl.DataFrame:
    """The simulation's own trial truth in the canonical columns ``cells.from_trials`` needs."""
    t = sim.trials
    return t.select(
        model=pl.col("model_id"), prompt_id="prompt_id", value="value", feature="feature", context="context",
        n_train=pl.col("n_train").cast(pl.Int32), chose_deep=pl.col("chose_deep").cast(pl.Int8),
        status=pl.when(pl.col("parsed")).then(pl.lit("used")).otherwise(pl.lit("unparsed")),
    )


def test_auto_parametrization_follows_the_thinnest_term():
    from dvbstats.model.plan import CENTRED_MIN_TRIALS, default_target_accept, term_parametrizations

    n = CENTRED_MIN_TRIALS * 3 // 10  # 4 values x 0.3 threshold: models are rich, values (2 models x 0.3) thin
    data = pl.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "value": ["v1", "v2", "v3", "v4"] * 2,
                         "n_prompts": [n] * 8, "n_trials": [n] * 8, "n_deep": [n // 3] * 8})
    d = design(parse("y ~ 1 + (1|model) + (1|value)"), CellTable(data, ("model", "value")))
    # one form for every term (a centred/non-centred mix failed its checks, docs/model.md)
    assert term_parametrizations(d, "auto") == {"model": "zerosum_noncentered", "value": "zerosum_noncentered"}
    assert term_parametrizations(d, "centered") == {"model": "centered", "value": "centered"}
    assert default_target_accept(d, "auto") == 0.95  # a non-centred term: thin data, cheap gradients
    assert default_target_accept(d, "zerosum") == 0.8
