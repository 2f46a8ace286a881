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
