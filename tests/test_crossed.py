"""The complete crossed design's density (model/crossed.py) is the PyMC model's, and samples the cell loop's posterior."""

import arviz as az
import numpy as np
import polars as pl
import pytest

from dvbstats.input.cells import CellTable
from dvbstats.model import crossed, fastlogp
from dvbstats.model.design import design
from dvbstats.model.plan import term_parametrizations
from dvbstats.model.pymcmodel import pymc_model
from dvbstats.model.formula import parse
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings, run_nutpie
from dvbstats.results import estimands, tables
from dvbstats.results.fitted import fit
from tests.test_fastlogp import _in_fastlogp_order
from tests.test_itemmarginal import _rasch_cells

RASCH = parse("y ~ 1 + (1|model) + (1|item)")


def _matrix(seed: int, n_models: int = 50, n_items: int = 400, trials: int = 1) -> CellTable:
    """A complete models x items matrix from a Rasch model, ``trials`` per cell (the extra trials at rate 1/2)."""
    table = _rasch_cells(n_models, n_items, seed)
    extra = np.random.default_rng(seed).binomial(trials - 1, 0.5, table.data.height)
    return CellTable(table.data.with_columns(n_prompts=pl.lit(trials), n_trials=pl.lit(trials),
                                             n_deep=pl.col("n_deep") + pl.Series(extra)), table.by)


@pytest.mark.parametrize("parametrization", ["zerosum", "zerosum_noncentered", "centered", "noncentered"])
@pytest.mark.parametrize("trials", [1, 3])
def test_log_density_and_gradient_equal_pymc(parametrization, trials):
    d = design(RASCH, _matrix(1, trials=trials))
    priors = Priors.from_specs(["sd=halfnormal(0.7)"])
    pm_model = pymc_model(d, priors, parametrization)
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    ours = crossed.CrossedModel(d, priors, term_parametrizations(d, parametrization))
    names = _in_fastlogp_order(pm_model, d)
    shapes = {v.name: pm_model.initial_point()[v.name].shape for v in pm_model.value_vars}
    sizes = [int(np.prod(shapes[n])) for n in names]
    assert sum(sizes) == ours.ndim
    pm_order = [v.name for v in pm_model.value_vars]
    rng = np.random.default_rng(7)
    for _ in range(5):
        x = rng.normal(0, 1, ours.ndim)
        point = {n: part.reshape(shapes[n]) for n, part in zip(names, np.split(x, np.cumsum(sizes)[:-1]))}
        pm_grad = dict(zip(pm_order, np.split(dlogp(point), np.cumsum([point[n].size for n in pm_order])[:-1])))
        lp, grad = ours.logp_and_grad(x)
        assert lp == pytest.approx(float(logp(point)), rel=1e-10, abs=1e-8)
        np.testing.assert_allclose(grad, np.concatenate([pm_grad[n] for n in names]), rtol=1e-8, atol=1e-8)


def test_extreme_effects_take_the_exact_path():
    """Effects beyond the clip (early warm-up at worst) give the cell loop's density, not an overflow."""
    d = design(RASCH, _matrix(2, 6, 9))
    forms = term_parametrizations(d, "centered")
    ours, cells = crossed.CrossedModel(d, Priors({}), forms), fastlogp.CellModel(d, Priors({}), forms, two_level=False)
    x = np.random.default_rng(0).normal(0, 1, ours.ndim)
    for at, value in ((0, 400.0), (3, -350.0), (ours.ndim - 1, 500.0)):
        y = x.copy()
        y[at] = value
        (lp, grad), (lp_ref, grad_ref) = ours.logp_and_grad(y), cells.logp_and_grad(y)
        assert np.isfinite(lp) and lp == pytest.approx(lp_ref, rel=1e-12)
        np.testing.assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-9)


def test_only_complete_crossed_designs_with_equal_trials_qualify():
    table = _matrix(3, 5, 8)
    assert crossed.crossed_terms(design(RASCH, table)) == (0, 1)
    assert crossed.crossed_terms(design(parse("y ~ 1 + (1|item) + (1|model)"), table)) == (1, 0)
    missing = CellTable(table.data.slice(1), table.by)
    unequal = CellTable(table.data.with_columns(n_trials=pl.Series(np.r_[2, np.ones(39, int)]),
                                                n_prompts=pl.Series(np.r_[2, np.ones(39, int)])), table.by)
    empty = CellTable(table.data.with_columns(n_trials=pl.Series(np.r_[0, np.ones(39, int)]),
                                              n_deep=pl.lit(0)), table.by)
    for d in (design(RASCH, missing), design(RASCH, unequal), design(RASCH, empty),
              design(parse("y ~ 0 + (1|model) + (1|item)"), table),
              design(parse("y ~ 1 + (1|model)"), table)):
        assert crossed.crossed_terms(d) is None


def test_fit_samples_it_and_expands_the_cell_models_draws():
    d = design(RASCH, _matrix(4, 8, 30))
    forms = term_parametrizations(d, "auto")
    ours, cells = crossed.CrossedModel(d, Priors({}), forms), fastlogp.CellModel(d, Priors({}), forms)
    x = np.random.default_rng(1).normal(0, 1, ours.ndim)
    assert ours.variables() == cells.variables()
    for name, value in cells.expand(x).items():
        np.testing.assert_array_equal(ours.expand(x)[name], value)


@pytest.mark.slow
def test_posterior_equals_the_cell_loops(monkeypatch):
    """The same data through the crossed density (which ``fit`` chooses with the hand-written density when the
    items are not integrated out: ``backend="fastlogp"``) and the general cell loop: the posterior means of
    (nearly) every parameter within 4 Monte Carlo standard errors."""
    built = []
    monkeypatch.setattr(crossed.CrossedModel, "__init__", _spy(crossed.CrossedModel.__init__, built))
    cells = _matrix(5)
    fast = fit(RASCH, cells, settings=SamplerSettings(draws=1000, tune=500, chains=4, seed=5), progress=False,
               backend="fastlogp")
    assert built, "fit did not sample the crossed density"
    d = fast.design
    forms = term_parametrizations(d, fast.parametrization)
    slow_idata = run_nutpie(fastlogp.pyfunc_model(fastlogp.CellModel(d, Priors({}), forms),
                                                  {k: list(v) for k, v in d.coords().items()}), fast.settings, False)
    assert fast.diagnostics.ok
    for name in ("Intercept", "sd", "r_model", "r_item"):
        a, b = fast.idata.posterior[name], slow_idata.posterior[name]
        ess_a, ess_b = az.ess(fast.idata, var_names=[name])[name], az.ess(slow_idata, var_names=[name])[name]
        se = np.sqrt(a.var(("chain", "draw")) / ess_a + b.var(("chain", "draw")) / ess_b)
        assert (abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) < 4 * se).mean() > 0.995, name


def _spy(init, calls: list):
    def wrapped(self, *args, **kwargs):
        calls.append(args)
        init(self, *args, **kwargs)
    return wrapped


def test_design_averages_from_row_and_column_sums_equal_the_cell_sums(monkeypatch):
    """The per-model, per-item and overall rates of a complete crossed design come from the rows' and columns'
    sums (no cell layout): the cell-by-cell sums' numbers to 1e-12."""
    table = _matrix(6, 7, 25, trials=2)
    fitted = fit(RASCH, table, settings=SamplerSettings(draws=30, tune=30, chains=2, seed=1), progress=False)
    groupings = [("model",), (), ("item",)]
    found, margins = [], estimands.crossed_margins
    monkeypatch.setattr(estimands, "crossed_margins", lambda *args: found.append(margins(*args)) or found[-1])
    fast = estimands.design_averages(fitted.design, fitted.idata, groupings)
    assert [m for m, _ in found[0][3]] == [0, None, 1]
    monkeypatch.setattr(estimands, "crossed_margins", lambda *args: None)
    slow = estimands.design_averages(fitted.design, fitted.idata, groupings)
    for (a, keys_a), (b, keys_b) in zip(fast, slow, strict=True):
        assert keys_a.equals(keys_b)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-12, atol=0)


def test_posterior_predictive_check_from_rows_and_columns_matches_the_cell_loops(monkeypatch):
    """The crossed replication (per row, no cell layout) draws from the same predictive distribution as the cell
    loop: observed and trials identical, replicated means within Monte Carlo error."""
    table = _matrix(7, 6, 40, trials=1)
    fitted = fit(RASCH, table, settings=SamplerSettings(draws=250, tune=100, chains=2, seed=1), progress=False)
    fast = tables.ppc_table(fitted, 0.94, seed=3)
    monkeypatch.setattr(estimands, "crossed_margins", lambda *args: None)
    slow = tables.ppc_table(fitted, 0.94, seed=3)
    assert fast.select("by", "level", "observed", "n_trials").equals(slow.select("by", "level", "observed", "n_trials"))
    se = np.sqrt(fast["predicted_mean"] * (1 - fast["predicted_mean"]) / fast["n_trials"] / 500 * 2).to_numpy()
    assert np.all(np.abs(fast["predicted_mean"] - slow["predicted_mean"]).to_numpy() < 5 * se + 1e-9)


def test_the_shared_kernels_stay_callable_from_python_after_the_crossed_density():
    """The item-marginal path calls fastlogp's ``_random_values`` from Python (its draws): after the crossed
    density ran in the same process that call failed ("'descr' is NULL") while the crossed kernel made its own
    empty array for it."""
    d = design(RASCH, _matrix(2, 6, 9))
    model = crossed.CrossedModel(d, Priors({}), term_parametrizations(d, "centered"))
    x = np.zeros(model.ndim)
    model.logp_and_grad(x)
    b = model.base
    r, _ = fastlogp._random_values(x, b.t_start, b.t_end, b.t_offset, b.t_flags, b.t_shape, b.t_naxes,
                                   fastlogp._NO_VIRTUAL)
    assert r.shape == (15,)
