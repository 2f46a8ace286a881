"""Interaction margins moved into the main terms' prior scale (``Design.absorbed``, the PyMC model's ``_sigma``) in the
hand-written density: ``(1|model) + (1|value) + (1|model:value)``, the DVB default of the reanalysis and the
calibration suite, is sampled by :mod:`dvbstats.model.fastlogp` instead of a PyMC graph compiled per data set."""

import arviz as az
import numpy as np
import polars as pl
import pytest
from test_fastlogp import _assert_equal_pymc, _cells, _in_fastlogp_order, _item_cells, _per_term

from dvbstats.input.cells import CellTable
from dvbstats.model import fastlogp
from dvbstats.model.design import design
from dvbstats.model.pymcmodel import pymc_model
from dvbstats.model.formula import parse
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit

DVB = "y ~ 1 + (1|model) + (1|value) + (1|model:value)"
#: every sub-term of a three-way interaction a random intercept: the three-way's margins land in the two-ways
#: and the mains, the two-ways' in the mains
THREE_WAY = ("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context) + (1|model:value) + (1|model:context)"
             " + (1|value:context) + (1|model:value:context)")
#: beside a random slope and a flat interaction (value:context has no context main term: laid out flat)
MIXED = "y ~ 1 + log_n_train + (1|model) + (1|value) + (1|model:value) + (1|value:context) + (0 + log_n_train|context)"

ABSORBED_CASES = [
    (DVB, "zerosum", []),
    (DVB, "zerosum_noncentered", ["sd=exponential(2)", "sd_model__value=halfcauchy(1)"]),
    (DVB, "zerosum_signed", []),  # model centred; value and the interaction signed (sd = |v|) but absorbed
    (DVB, "centered", []),  # textbook forms: nothing absorbed
    (DVB, "noncentered", []),
    (THREE_WAY, "zerosum", ["sd=halfstudent_t(4, 0.7)"]),
    (THREE_WAY, "zerosum_noncentered", []),
    (MIXED, "zerosum", ["intercept=student_t(3, 0, 2.5)"]),
    (MIXED, "zerosum_noncentered", ["sd_value=halfnormal(0.5)"]),
    (MIXED, "zerosum_slopes_noncentered", []),
]


@pytest.mark.slow  # compiles a PyMC model per case
@pytest.mark.parametrize(("formula", "parametrization", "prior"), ABSORBED_CASES)
def test_absorbed_margins_log_density_and_gradient_equal_pymc(formula, parametrization, prior, monkeypatch):
    d = design(parse(formula), _cells(1, 600))
    assert any(d.absorbed.values())
    _assert_equal_pymc(d, parametrization, prior, monkeypatch)
    _assert_expanded_equal_pymc(d, parametrization, prior, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("parametrization", ["zerosum", "zerosum_noncentered", "auto"])
def test_absorbed_margins_beside_an_item_term_equal_pymc(parametrization, monkeypatch):
    """With ``(1|prompt)`` too, in the two-level layout (design cells plus the item column)."""
    d = design(parse(DVB + " + (1|prompt)"), _item_cells(4))
    assert _assert_equal_pymc(d, parametrization, [], monkeypatch)


def _assert_expanded_equal_pymc(d, parametrization: str, prior: list[str], monkeypatch) -> None:
    """``expand`` gives the PyMC model's values of every variable it reports (``r_t`` of a non-centred main term is
    its standardised values times the widened scale; ``sd_t`` its own SD) at random points."""
    priors = Priors.from_specs(prior)
    per_term = _per_term(d, parametrization, monkeypatch)
    pm_model = pymc_model(d, priors, parametrization)
    ours = fastlogp.CellModel(d, priors, per_term)
    names = [n for n in ours.variables()[0] if n in pm_model.named_vars]
    assert {f"r_{t.name}" for t in d.terms} | {"sd"} <= set(names)
    outs = pm_model.replace_rvs_by_values([pm_model[n] for n in names])
    values = pm_model.compile_fn(outs, inputs=pm_model.value_vars, on_unused_input="ignore")
    shapes = {v.name: pm_model.initial_point()[v.name].shape for v in pm_model.value_vars}
    order = _in_fastlogp_order(pm_model, d)
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = rng.normal(0, 1, ours.ndim)
        parts = np.split(x, np.cumsum([int(np.prod(shapes[n])) for n in order])[:-1])
        point = {n: part.reshape(shapes[n]) for n, part in zip(order, parts)}
        got = ours.expand(x)
        for name, want in zip(names, values(point)):
            np.testing.assert_allclose(got[name], want, rtol=1e-10, atol=1e-12, err_msg=name)


def test_absorbed_margins_are_sampled_by_fastlogp():
    """The DVB default is no longer sent to the per-data-set compiled PyMC graph; each main term's scale takes
    ``sd_I² / L`` of every zero-sum interaction over it, as ``_sigma`` does, and none in the textbook forms."""
    d = design(parse(THREE_WAY), _cells(1, 600))
    assert fastlogp.supports(d) and fastlogp.supports(design(parse(DVB), _cells(1)))
    names = [t.name for t in d.terms]
    sizes = {t.name: len(t.levels[0]) for t in d.terms if len(t.dims) == 1}
    absorb = fastlogp.absorbed_margins(d, {n: "zerosum" for n in names})
    mv, mvc = names.index("model__value"), names.index("model__value__context")
    assert absorb[names.index("model"), mv] == pytest.approx(1 / sizes["value"])
    assert absorb[names.index("model"), mvc] == pytest.approx(1 / (sizes["value"] * sizes["context"]))
    assert absorb[mv, mvc] == pytest.approx(1 / sizes["context"])
    assert np.count_nonzero(absorb) == 3 * 3 + 3  # each main: its two two-ways and the three-way; each two-way: it
    assert not fastlogp.absorbed_margins(d, {n: "noncentered" for n in names}).any()
    signed = fastlogp.absorbed_margins(d, {n: "zerosum_signed" if n == "model" else "zerosum" for n in names})
    assert not signed[names.index("model")].any() and signed[mv, mvc] > 0  # a signed term keeps its own scale


def _dvb_class_cells(seed: int) -> CellTable:
    """The calibration suite's ``dvb`` class design (analyses/calibration.py ``CLASSES["dvb"]``): 6 models x 8
    values, 60 trials per cell, effects drawn around a grand mean of -0.3 (SDs 0.6, 0.4, 0.25)."""
    rng = np.random.default_rng(seed)
    grid = pl.DataFrame({"model": [f"m{i}" for i in range(6)]}).join(
        pl.DataFrame({"value": [f"v{j}" for j in range(8)]}), how="cross")
    m = grid["model"].str.slice(1).cast(pl.Int64).to_numpy()
    v = grid["value"].str.slice(1).cast(pl.Int64).to_numpy()
    eta = -0.3 + rng.normal(0, 0.6, 6)[m] + rng.normal(0, 0.4, 8)[v] + rng.normal(0, 0.25, grid.height)
    k = rng.binomial(60, 1 / (1 + np.exp(-eta)))
    data = grid.with_columns(n_prompts=pl.lit(60), n_trials=pl.lit(60), n_deep=pl.Series(k))
    return CellTable(data, ("model", "value"))


@pytest.mark.slow
def test_dvb_class_posterior_matches_the_pymc_path():
    """A fit of the calibration ``dvb`` class's data through both backends: posterior means within Monte Carlo
    error, and the fast one is fastlogp's full density (neither PyMC nor the item-marginal route)."""
    cells = _dvb_class_cells(3)
    f = parse("chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)")
    settings = SamplerSettings(draws=1000, tune=1000, chains=4, seed=5)
    fast = fit(f, cells, settings=settings, progress=False)
    slow = fit(f, cells, settings=settings, progress=False, backend="pymc")
    assert fast.sampling.backend == "fastlogp" and slow.sampling.backend == "pymc"
    assert fast.items_integrated is None
    for name in ("Intercept", "sd_model", "sd_value", "sd_model__value", "r_model", "r_value", "r_model__value"):
        a, b = fast.idata.posterior[name], slow.idata.posterior[name]
        ess_a, ess_b = az.ess(fast.idata, var_names=[name])[name], az.ess(slow.idata, var_names=[name])[name]
        se = np.sqrt(a.var(("chain", "draw")) / ess_a + b.var(("chain", "draw")) / ess_b)  # Monte Carlo error
        assert (abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) < 4 * se).all(), name
    np.testing.assert_allclose(fast.dvgr.mean(("chain", "draw")).values, slow.dvgr.mean(("chain", "draw")).values,
                               atol=0.02)


def _binary_item_cells(seed: int, n_prompts: int = 400) -> CellTable:
    """4 models answer every prompt once; each prompt has one of 5 values: the prompts of a value share their
    profile, so the item-marginal density is worth sampling (``ItemMarginalModel.worthwhile``)."""
    rng = np.random.default_rng(seed)
    prompts = pl.DataFrame({"prompt": [f"p{i}" for i in range(n_prompts)],
                            "value": [f"v{i % 5}" for i in range(n_prompts)]})
    df = pl.DataFrame({"model": [f"m{i}" for i in range(4)]}).join(prompts, how="cross")
    k = rng.binomial(1, 1 / (1 + np.exp(-rng.normal(0, 1, n_prompts)[np.arange(df.height) % n_prompts])))
    return CellTable(df.with_columns(n_prompts=pl.lit(1), n_trials=pl.lit(1), n_deep=pl.Series(k)),
                     ("model", "value", "prompt"))


@pytest.mark.slow
def test_an_item_term_beside_absorbed_margins_is_not_integrated_out():
    """The item-marginal density scales each term by its own SD alone, so with absorbed margins ``fit`` samples the
    full density (two-level layout) rather than integrate ``(1|prompt)`` out with the main terms' scales wrong;
    without them it integrates the same items out."""
    cells, settings = _binary_item_cells(5), SamplerSettings(draws=200, tune=300, chains=2, seed=1)
    result = fit(parse(DVB + " + (1|prompt)"), cells, settings=settings, progress=False)
    assert result.sampling.backend == "fastlogp" and result.items_integrated is None
    plain = fit(parse("y ~ 1 + (1|model) + (1|value) + (1|prompt)"), cells, settings=settings, progress=False)
    assert plain.items_integrated is not None
