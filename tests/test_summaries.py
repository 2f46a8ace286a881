"""The run-folder tables of a fit agree with the counts they summarise and with each other."""

import numpy as np
import polars as pl
import pytest

from dvbstats.input.cells import CellTable
from dvbstats.model.formula import parse
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import tables as summaries
from dvbstats.results.fitted import fit


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(11)
    rows = []
    for m, a in zip(["m1", "m2", "m3"], [-1.0, -0.5, 0.2]):
        for v, b in zip(["justice", "fidelity", "tradition", "security"], [0.3, -0.4, 0.6, -0.1]):
            for n_train in (4, 40):
                n = int(rng.integers(150, 250))
                p = 1 / (1 + np.exp(-(a + b - 0.1 * np.log(n_train))))
                rows.append((m, v, float(np.log(n_train)), n + 5, n, int(rng.binomial(n, p))))
    data = pl.DataFrame(rows, schema=["model", "value", "log_n_train", "n_prompts", "n_trials", "n_deep"],
                        orient="row")
    f = parse("chose_deep ~ 1 + log_n_train + (1|model) + (1|value) + (1|model:value)")
    return fit(f, CellTable(data, ("model", "value", "log_n_train")), progress=False,
               settings=SamplerSettings(sampler="pymc", draws=300, tune=300, chains=2, seed=4))


def test_dvgr_table_raw_side_equals_the_counts(fitted):
    t = summaries.dvgr_table(fitted, 0.94, seed=1)
    counts = fitted.cells.by_model()
    joined = t.filter(pl.col("model") != "overall").join(counts, on="model")
    assert (joined["raw_dvgr"] - joined["n_deep"] / joined["n_trials"]).abs().max() < 1e-12
    assert (joined["n_excluded"] == joined["n_prompts"] - joined["n_used"]).all()
    overall = t.filter(pl.col("model") == "overall").row(0, named=True)
    assert overall["n_used"] == fitted.cells.n_trials
    assert overall["raw_dvgr"] == pytest.approx(fitted.cells.n_deep / fitted.cells.n_trials)
    assert (t["dvgr_hdi_low"] <= t["dvgr_mean"]).all() and (t["dvgr_mean"] <= t["dvgr_hdi_high"]).all()
    assert t["r_hat"].null_count() == 0  # every reported DVGR carries its diagnostics
    # the population interval (a new value) is wider than the design-averaged one
    per_model = t.filter(pl.col("model") != "overall")
    assert ((per_model["pop_dvgr_hdi_high"] - per_model["pop_dvgr_hdi_low"])
            > (per_model["dvgr_hdi_high"] - per_model["dvgr_hdi_low"])).all()


def test_design_average_is_the_prompt_weighted_mean_of_cell_probabilities(fitted):
    from scipy.special import expit

    from dvbstats.model.design import linear_predictor

    post = fitted.idata.posterior
    draws = {n: post[n].values.reshape(-1, *post[n].shape[2:]) for n in post.data_vars if n.startswith(("Intercept", "b_", "r_"))}
    p = expit(linear_predictor(fitted.design, draws))
    data = fitted.cells.data
    mask = (data["model"] == "m2").to_numpy()
    w = data["n_prompts"].to_numpy()[mask]
    expected = (p[:, mask] * w).sum(axis=1) / w.sum()
    assert np.allclose(fitted.dvgr.sel(model="m2").values.ravel(), expected)


def test_interaction_margins_ppc_and_effects(fitted):
    inter = summaries.interaction_table(fitted, 0.94)
    assert inter.height == 3 * 4 and set(inter.columns) >= {"model", "value", "dvgr_mean", "raw_dvgr", "n_trials"}
    margins = summaries.margins_table(fitted, 0.94)
    assert set(margins["factor"]) == {"value", "n_train"}
    assert set(margins.filter(pl.col("factor") == "n_train")["level"]) == {"4", "40"}
    for factor in ("value", "n_train"):
        assert margins.filter(pl.col("factor") == factor)["n_trials"].sum() == fitted.cells.n_trials
    ppc = summaries.ppc_table(fitted, 0.94, seed=2)
    by_model = ppc.filter(pl.col("by") == "model").join(fitted.cells.by_model(), left_on="level", right_on="model")
    assert (by_model["observed"] - by_model["n_deep"] / by_model["n_trials"]).abs().max() < 1e-12
    # the model reproduces its own data: every observed rate inside the predictive interval
    assert ((ppc["observed"] >= ppc["predicted_low"]) & (ppc["observed"] <= ppc["predicted_high"])).all()
    effects = summaries.random_effects_table(fitted, 0.94)
    assert effects.group_by("term").len().sort("term").rows() == [("model", 3), ("model:value", 12), ("value", 4)]
    sd = summaries.sd_table(fitted, 0.94)
    assert sd["term"].to_list() == ["model", "value", "model:value"]
    fixed = summaries.fixed_table(fitted, 0.94)
    assert fixed["term"].to_list() == ["Intercept", "b_log_n_train"]
    # zero-sum random intercepts: the intercept is the mean over the 3 fitted models (and 4 values); its
    # population version is wider. No random slope: log_n_train's coefficient is the population one.
    intercept, slope = fixed.rows(named=True)
    assert intercept["estimand"] == "mean over the fitted levels" and slope["estimand"] == "population"
    assert intercept["pop_hdi_high"] - intercept["pop_hdi_low"] > 1.5 * (intercept["hdi_high"] - intercept["hdi_low"])
    assert slope["pop_hdi_low"] == slope["hdi_low"] and slope["pop_hdi_high"] == slope["hdi_high"]


def test_every_design_average_is_the_weighted_mean_of_cell_probabilities(fitted):
    """The kernel sums runs of consecutive cells: groupings whose cells are not consecutive (value, model:value)
    and the overall one must match the plain weighted mean as well as model's."""
    from scipy.special import expit

    from dvbstats.model.design import linear_predictor
    from dvbstats.results import estimands

    p = expit(linear_predictor(fitted.design, estimands.stacked_draws(fitted.idata, estimands.parameter_names(
        fitted.design))))
    data, w = fitted.cells.data, fitted.cells.data["n_prompts"].to_numpy()
    for by in [("value",), ("model", "value"), (), ("log_n_train",)]:
        da, keys = fitted.average(by)
        assert da.sizes["group"] == keys.height == (data.select(by).n_unique() if by else 1)
        for k, key in enumerate(keys.iter_rows(named=True) if by else [{}]):
            mask = np.ones(data.height, bool)
            for column, level in key.items():
                mask &= (data[column] == level).to_numpy()
            expected = (p[:, mask] * w[mask]).sum(axis=1) / w[mask].sum()
            assert np.allclose(da.values[..., k].ravel(), expected, rtol=1e-12, atol=0)


def test_ppc_replications_are_seeded_and_centred_on_the_expected_counts(fitted):
    """Replicated rates: the same seed gives the same table, another seed another one, and the predicted mean
    is the posterior mean of the expected rate up to the Monte Carlo error of 500 binomial replications."""
    from scipy.special import expit

    from dvbstats.model.design import linear_predictor
    from dvbstats.results import estimands

    a, b = summaries.ppc_table(fitted, 0.94, seed=3), summaries.ppc_table(fitted, 0.94, seed=3)
    assert a.equals(b) and not a.equals(summaries.ppc_table(fitted, 0.94, seed=4))
    p = expit(linear_predictor(fitted.design, estimands.stacked_draws(fitted.idata, estimands.parameter_names(
        fitted.design))))
    n = fitted.cells.data["n_trials"].to_numpy()
    for by in ("model", "value"):
        rows = a.filter(pl.col("by") == by)
        keys = fitted.cells.data[by].to_numpy()
        for level, mean, trials in zip(rows["level"], rows["predicted_mean"], rows["n_trials"]):
            mask = keys == level
            expected = (p[:, mask] * n[mask]).sum(axis=1) / trials
            sd = np.sqrt((p[:, mask] * (1 - p[:, mask]) * n[mask]).sum(axis=1).mean() + trials**2 * expected.var())
            assert abs(mean - expected.mean()) < 5 * sd / trials / np.sqrt(500)


def test_the_input_record_is_attached_without_recomputing_the_posterior_summaries(fitted):
    from dvbstats.input.registry import ModelTable

    averages, diagnostics = fitted._averages, fitted.diagnostics
    attached = fitted.with_input(None, ["m9"], ModelTable.default())
    assert attached.empty_models == ("m9",) and attached.model_table is not None
    assert attached._averages is averages and attached.diagnostics is diagnostics
