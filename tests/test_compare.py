"""Model comparison: pointwise log-likelihood on cells, PSIS-LOO, common cells of nested designs."""

import importlib

import numpy as np
import polars as pl
import pytest
from scipy.special import expit
from scipy.stats import binom

from dvbstats.input.cells import CellTable
from dvbstats.model.formula import parse
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit

cmp = importlib.import_module("dvbstats.results.compare")  # the package exports the function under the same name

SETTINGS = SamplerSettings(draws=300, tune=300, chains=2, seed=5)


@pytest.fixture(scope="module")
def cells() -> CellTable:
    """4 models x 6 values, a strong value effect and none of the model beyond noise."""
    rng = np.random.default_rng(11)
    value_effect = np.linspace(-1.5, 1.5, 6)
    rows = []
    for m in range(4):
        for v in range(6):
            n = 200
            rows.append({"model": f"m{m}", "value": f"v{v}", "n_prompts": n, "n_trials": n,
                         "n_deep": int(rng.binomial(n, expit(-0.5 + 0.1 * m + value_effect[v])))})
    return CellTable(pl.DataFrame(rows), ("model", "value"))


@pytest.fixture(scope="module")
def fits(cells):
    rich = fit(parse("y ~ 1 + (1|model) + (1|value)"), cells, settings=SETTINGS, progress=False)
    poor_cells = CellTable(cells.data.group_by("model").agg(pl.col("n_prompts", "n_trials", "n_deep").sum())
                           .sort("model"), ("model",))
    poor = fit(parse("y ~ 1 + (1|model)"), poor_cells, settings=SETTINGS, progress=False)
    return rich, poor


def test_log_likelihood_is_the_binomial_log_pmf(fits, cells):
    rich, _ = fits
    ll = cmp.log_likelihood(rich)
    post = rich.idata.posterior
    c, d = 1, 17
    eta = (post["Intercept"].values[c, d] + post["r_model"].values[c, d][[int(m[1]) for m in cells.data["model"]]]
           + post["r_value"].values[c, d][[int(v[1]) for v in cells.data["value"]]])
    expected = binom.logpmf(cells.data["n_deep"].to_numpy(), cells.data["n_trials"].to_numpy(), expit(eta))
    np.testing.assert_allclose(ll.values[c, d], expected, rtol=1e-10)


def test_poorer_model_is_evaluated_on_the_richer_cells(fits, cells):
    rich, poor = fits
    assert cmp.common_cells([poor, rich]).by == ("model", "value")
    assert cmp.log_likelihood(poor, cmp.common_cells([poor, rich])).sizes["cell"] == cells.data.height


def test_compare_ranks_the_model_with_the_true_effect_first(fits):
    rich, poor = fits
    table = cmp.compare({"rich": rich, "poor": poor})
    assert table.index[0] == "rich"
    assert table.loc["poor", "elpd_diff"] > 4 * table.loc["poor", "dse"]  # value effect of 3 logits: decisive
    assert table["n_cells"].tolist() == [24, 24]
    assert set(table.columns) >= {"elpd_loo", "p_loo", "elpd_diff", "dse", "weight", "n_bad_k", "formula"}


def test_fits_of_different_trials_are_refused(fits, cells):
    rich, _ = fits
    other = CellTable(cells.data.with_columns(n_deep=pl.col("n_deep") // 2), cells.by)
    other_fit = fit(parse("y ~ 1 + (1|model)"), other, settings=SamplerSettings(draws=100, tune=100, chains=2),
                    progress=False)
    with pytest.raises(cmp.ComparisonError, match="different trials"):
        cmp.compare([rich, other_fit])
