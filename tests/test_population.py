"""Population fixed effects beside the zero-sum model's means over the fitted levels
(``dvbstats.results.population``), on a constructed posterior with known answer."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import xarray as xr

from dvbstats.input.cells import CellTable
from dvbstats.model.design import design
from dvbstats.model.formula import parse
from dvbstats.results import population

N_MODELS = 8


@pytest.fixture(scope="module")
def layout():
    models = [f"m{i}" for i in range(N_MODELS)]
    df = pl.DataFrame({
        "model": [m for m in models for _ in range(2)], "condition": ["A", "B"] * N_MODELS,
        "n_prompts": 100, "n_trials": 100, "n_deep": 40,
    })
    f = parse("chose_deep ~ 1 + condition + (1 + condition | model)")
    return design(f, CellTable(df, ("model", "condition")))


def _posterior(d, n_draws: int = 20_000) -> xr.Dataset:
    """Level means fixed at 0.584 (condition) and -0.5 (intercept); SDs 0.3 and 0.8 in every draw."""
    s = d.slopes[0]
    shape, dims = (1, n_draws), ("chain", "draw")
    data = {"Intercept": (dims, np.full(shape, -0.5)), f"b_{d.fixed[0]}": (dims, np.full(shape, 0.584))}
    sd = np.broadcast_to(np.array([0.8, 0.3]), (*shape, 2))
    return xr.Dataset(data | {"sd": ((*dims, "term"), sd)}, coords={"term": s.sd_labels})


def test_population_effect_adds_sigma_over_sqrt_levels(layout):
    d = layout
    post = _posterior(d)
    zero_sum = {s.name: "zerosum" for s in d.slopes}
    pop = population.population_fixed_effects(d, post, zero_sum, seed=1)
    slope = pop[f"b_{d.fixed[0]}"].values.ravel()
    assert slope.mean() == pytest.approx(0.584, abs=0.01)
    assert slope.std() == pytest.approx(0.3 / np.sqrt(N_MODELS), rel=0.03)
    assert pop["Intercept"].values.std() == pytest.approx(0.8 / np.sqrt(N_MODELS), rel=0.03)
    # the case: the level mean's 94% HDI [0.531, 0.595] missed the population 0.6; the population
    # interval (level mean +- 1.88 * 0.106 here) holds it
    low, high = np.quantile(slope, [0.03, 0.97])
    assert low < 0.6 < high
    assert population.estimand(d, zero_sum, "Intercept") == population.LEVEL_MEAN


def test_textbook_parametrisation_already_estimates_the_population(layout):
    d = layout
    post = _posterior(d)
    forms = {s.name: "centered" for s in d.slopes}
    pop = population.population_fixed_effects(d, post, forms, seed=1)
    np.testing.assert_array_equal(pop["Intercept"].values, post["Intercept"].values)
    assert population.estimand(d, forms, f"b_{d.fixed[0]}") == population.POPULATION
