"""The hand-written log density is the PyMC model's, and samples the same posterior."""

import arviz as az
import numpy as np
import polars as pl
import pytest

from scipy import special, stats

from dvbstats.input.cells import CellTable
from dvbstats.model import pymcmodel as model_module
from dvbstats.model import fastlogp
from dvbstats.model import plan as plans
from dvbstats.model.design import design
from dvbstats.model.pymcmodel import pymc_model
from dvbstats.model.formula import parse
from dvbstats.model.plan import term_parametrizations
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit


def _cells(seed: int, n_cells: int = 300) -> CellTable:
    rng = np.random.default_rng(seed)
    models, values, contexts = [f"m{i}" for i in range(4)], [f"v{i}" for i in range(5)], ["c0", "c1", "c2"]
    df = pl.DataFrame({
        "model": rng.choice(models, n_cells), "value": rng.choice(values, n_cells),
        "context": rng.choice(contexts, n_cells), "log_n_train": np.log(rng.choice([4, 10, 40], n_cells)),
    }).unique(["model", "value", "context", "log_n_train"])
    n = rng.integers(0, 30, df.height)
    eta = 0.5 * (df["model"].str.slice(1).cast(pl.Int64).to_numpy() - 1.5) - 0.3
    k = rng.binomial(n, 1 / (1 + np.exp(-eta)))
    df = df.with_columns(n_prompts=pl.Series(n + 1), n_trials=pl.Series(n), n_deep=pl.Series(k))
    return CellTable(df, ("model", "value", "context", "log_n_train"))


def test_vectorised_exp_and_log1p_match_numpy():
    """The polynomial ``exp(-|x|)`` and ``log(1 + a)`` of the cell loop agree with NumPy's to a few
    units in the last place over the whole range, including 0, -0, huge and infinite arguments; a NaN
    linear predictor gives a NaN density (a divergence), not an exception."""
    x = np.concatenate([np.linspace(-800, 800, 400_001), [0.0, -0.0, 1e-300, -1e-300, 1e300, -np.inf, np.inf]])
    got, want = fastlogp._exp_minus_abs(x), np.exp(-np.maximum(np.abs(x), 0))
    clipped, small = np.abs(x) > 700, np.abs(x) <= 40  # clipped at exp(-700) by design
    np.testing.assert_allclose(got[small], want[small], rtol=4e-15, atol=0)  # where cells' terms live
    np.testing.assert_allclose(got[~clipped], want[~clipped], rtol=1e-13, atol=0)
    assert np.all((got[clipped] > 0) & (got[clipped] < 1e-303))
    a = np.concatenate([np.linspace(0, 1, 200_001), np.geomspace(1e-300, 1, 2_001)])
    np.testing.assert_allclose([fastlogp._log1p_unit(v) for v in a], np.log1p(a), rtol=4e-15, atol=0)
    np.testing.assert_allclose(fastlogp._log1p_recip(np.sqrt(2) - 1), (np.log(np.sqrt(2)), 1 / np.sqrt(2)), rtol=4e-16)
    np.testing.assert_allclose([fastlogp._log1p_recip(v)[1] for v in a], 1 / (1 + a), rtol=4e-16, atol=0)
    none = np.zeros(0, np.int32)
    lp, _ = fastlogp._cell_loglik(np.nan, np.zeros((1, 0)), np.zeros(0), np.zeros((1, 0), np.int32),
                                  np.zeros(0), np.ones(1), np.ones(1), np.zeros(0), np.zeros(0), none, none)
    assert np.isnan(lp)


def test_binomial_log_likelihood_and_derivative_match_numpy():
    """The cell loop's likelihood and its derivative equal NumPy's ``logaddexp`` form, from predictors near 0 to
    far beyond the clip of ``exp``, with 0 to 50 trials per cell."""
    rng = np.random.default_rng(3)
    eta = np.concatenate([rng.normal(0, 2, 20_000), rng.normal(0, 60, 2_000), [0.0, -0.0, 800.0, -800.0, 1e-300]])
    n = rng.integers(0, 50, len(eta)).astype(np.float64)
    k = rng.binomial(n.astype(np.int64), 0.4).astype(np.float64)
    g = np.empty(len(eta))
    lp = fastlogp._binomial(eta, k, n, g)
    assert lp == pytest.approx(np.sum(k * eta - n * np.logaddexp(0.0, eta)), rel=1e-13)
    np.testing.assert_allclose(g, k - n * special.expit(eta), rtol=1e-14, atol=1e-14)


def test_two_level_cell_loop_equals_the_one_level_loop():
    """The two-level layout (cells sorted by item, the item's derivative summed in a register) gives the
    one-level layout's log density and gradient, at points from small to far out in the tails, and in any
    order of the cells."""
    d = design(parse("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context) + (1|prompt)"), _item_cells(5, 300))
    forms = term_parametrizations(d, "zerosum_noncentered")
    one, two = (fastlogp.CellModel(d, Priors({}), forms, two_level=level) for level in (False, True))
    assert np.all(np.diff(two.item) >= 0) and len(two.item) == len(one.k)
    rng = np.random.default_rng(11)
    shuffled = rng.permutation(len(two.item))
    for scale in (0.1, 1.0, 3.0, 30.0):
        x = rng.normal(0, scale, one.ndim)
        (lp1, g1), (lp2, g2) = one.logp_and_grad(x), two.logp_and_grad(x)
        assert lp2 == pytest.approx(lp1, rel=1e-12)
        np.testing.assert_allclose(g2, g1, rtol=1e-10, atol=1e-10 * np.abs(g1).max())
        b, r = x[1:2], fastlogp._term_values(x, two.t_start, two.t_end, two.t_offset, two.t_flags, two.t_shape,
                                             two.t_naxes, two.absorb, fastlogp._NO_VIRTUAL)[0]
        sums = []
        for cells in (slice(None), shuffled):
            grad_r = np.empty(len(r))
            lp, g_alpha = fastlogp._cell_loglik(x[0], two.X, b, two.idx, r, two.k[cells], two.n[cells], np.empty(1),
                                                grad_r, two.item[cells], two.design_of[cells])
            sums.append((lp, g_alpha, grad_r))
        assert sums[1][0] == pytest.approx(sums[0][0], rel=1e-12) and sums[1][1] == pytest.approx(sums[0][1], rel=1e-10)
        np.testing.assert_allclose(sums[1][2], sums[0][2], rtol=1e-10, atol=1e-10 * np.abs(sums[0][2]).max())


FORMULAS = [
    "y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context)",
    "y ~ 1 + (1|model) + (1|model:value)",  # an interaction laid out flat (value has no main term)
    "y ~ 0 + log_n_train + (1|model) + (1|value:context)",  # flat interaction, no intercept
]
PRIORS = [[], ["sd=exponential(2)", "intercept=student_t(3, 0, 2.5)", "sd_model=halfcauchy(1)"],
          ["b=logistic(0, 2)", "sd=halfstudent_t(4, 0.7)", "sd_model=halfnormal(0.5)"]]


CASES = [(f, p, prior) for f, prior in zip(FORMULAS, PRIORS) for p in ("zerosum", "zerosum_noncentered")]
#: the signed scale of an item term (sd = |v|), under every SD prior family
CASES += [(FORMULAS[0], "zerosum_signed", prior) for prior in (
    [], ["sd=exponential(2)"], ["sd=halfcauchy(1)"], ["sd=halfstudent_t(4, 0.7)"])]
CASES += [(FORMULAS[0], p, PRIORS[1]) for p in ("centered", "noncentered")]
#: random slopes: correlated (LKJ Cholesky) and uncorrelated, a numeric slope and a 3-level factor
#: (3 coefficients, 3 correlations), zero-sum or textbook, centred, non-centred or mixed (centred
#: intercept column, non-centred slopes: ``zerosum_slopes_noncentered``)
SLOPES = [
    "y ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value)",
    "y ~ 1 + (1 + log_n_train||model) + (1|context)",  # slope without its fixed slope: textbook form
    "y ~ 1 + context + (1 + context|model)",
    "y ~ 0 + log_n_train + (0 + log_n_train|model)",
]
SLOPE_FORMS = ("zerosum", "zerosum_noncentered", "centered", "noncentered", "zerosum_slopes_noncentered")
SLOPE_PRIORS = [["cor=lkj(4)", "sd_model__log_n_train=exponential(2)"], [],
                ["cor=lkj(1.5)", "sd=halfstudent_t(4, 0.7)"], ["sd_model__log_n_train=halfcauchy(1)"]]
CASES += [(f, p, prior) for f, prior in zip(SLOPES, SLOPE_PRIORS) for p in SLOPE_FORMS]


@pytest.mark.slow  # compiles a PyMC model per case
@pytest.mark.parametrize(("formula", "parametrization", "prior"), CASES)
def test_log_density_and_gradient_equal_pymc(formula, parametrization, prior, monkeypatch):
    _assert_equal_pymc(design(parse(formula), _cells(1)), parametrization, prior, monkeypatch)


def _item_cells(seed: int, n_prompts: int = 60) -> CellTable:
    """Every model answers every prompt (0 to 3 trials per cell); each prompt has one value and one
    context, and log_n_train is a model's: ``(1|prompt)`` beside design terms, as in DVB."""
    rng = np.random.default_rng(seed)
    n_models = 4
    prompts = pl.DataFrame({"prompt": [f"p{i}" for i in range(n_prompts)],
                            "value": rng.choice([f"v{i}" for i in range(5)], n_prompts),
                            "context": rng.choice(["c0", "c1", "c2"], n_prompts)})
    models = pl.DataFrame({"model": [f"m{i}" for i in range(n_models)],
                           "log_n_train": np.log([4.0, 10.0, 40.0, 10.0])})
    df = models.join(prompts, how="cross")
    n = rng.integers(0, 4, df.height)
    eta = rng.normal(0, 1, n_prompts)[np.arange(df.height) % n_prompts] - 0.3
    k = rng.binomial(n, 1 / (1 + np.exp(-eta)))
    df = df.with_columns(n_prompts=pl.lit(1), n_trials=pl.Series(n), n_deep=pl.Series(k))
    return CellTable(df, ("model", "value", "context", "log_n_train", "prompt"))


#: ``(1|prompt)`` beside design terms, where the two-level layout applies (design cells plus an item
#: column): random intercepts, an interaction, a random slope; the item term signed, non-centred or centred
ITEM_CASES = [
    ("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context) + (1|prompt)", "zerosum_signed", []),
    ("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context) + (1|prompt)", "zerosum_noncentered",
     ["sd_prompt=exponential(2)"]),
    ("y ~ 1 + (1|model) + (1|model:value) + (1|prompt)", "zerosum", []),
    ("y ~ 1 + log_n_train + (1 + log_n_train|value) + (1|prompt)", "zerosum_noncentered", ["cor=lkj(2)"]),
    ("y ~ 1 + log_n_train + (1 + log_n_train||value) + (1|context) + (1|prompt)", "centered", []),
]


@pytest.mark.slow  # compiles a PyMC model per case
@pytest.mark.parametrize(("formula", "parametrization", "prior"), ITEM_CASES)
def test_two_level_layout_equals_pymc(formula, parametrization, prior, monkeypatch):
    """With an item term the cells are laid out as design cells plus the item: the same density."""
    assert _assert_equal_pymc(design(parse(formula), _item_cells(2)), parametrization, prior, monkeypatch)


def _assert_equal_pymc(d, parametrization: str, prior: list[str], monkeypatch) -> bool:
    """The hand-written log density and gradient equal the PyMC model's at random points, in the one-level
    layout and in the layout the model chooses. Returns whether it chose the two-level one."""
    priors = Priors.from_specs(prior)
    per_term = _per_term(d, parametrization, monkeypatch)
    pm_model = pymc_model(d, priors, parametrization)
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    ours = [fastlogp.CellModel(d, priors, per_term, two_level=False), fastlogp.CellModel(d, priors, per_term)]
    names = _in_fastlogp_order(pm_model, d)
    shapes = {v.name: pm_model.initial_point()[v.name].shape for v in pm_model.value_vars}
    sizes = [int(np.prod(shapes[n])) for n in names]
    assert sum(sizes) == ours[0].ndim
    pm_order = [v.name for v in pm_model.value_vars]
    rng = np.random.default_rng(7)
    for _ in range(5):
        x = rng.normal(0, 1, ours[0].ndim)
        point = {n: part.reshape(shapes[n]) for n, part in zip(names, np.split(x, np.cumsum(sizes)[:-1]))}
        pm_grad = dict(zip(pm_order, np.split(dlogp(point), np.cumsum([point[n].size for n in pm_order])[:-1])))
        for model in ours:
            lp, grad = model.logp_and_grad(x)
            assert lp == pytest.approx(float(logp(point)), rel=1e-10, abs=1e-8)
            np.testing.assert_allclose(grad, np.concatenate([pm_grad[n] for n in names]), rtol=1e-8, atol=1e-8)
    return len(ours[1].item) > 0


def test_two_level_layout_splits_off_the_item_column():
    """The item column is the index with most levels; design cells are the distinct rest; where they
    are more than half the cells (here a covariate distinct in every cell) the cells stay one level."""
    cells = _item_cells(3)
    d = design(parse("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|prompt)"), cells)
    model = fastlogp.CellModel(d, Priors({}), term_parametrizations(d, "zerosum_noncentered"))
    obs = d.observed
    n_design = cells.data.filter(obs).select("model", "value").n_unique()
    assert model.X.shape == (n_design, 1) and model.idx.shape == (n_design, 2)
    prompt = d.terms[-1]
    full = fastlogp.CellModel(d, Priors({}), term_parametrizations(d, "zerosum_noncentered"), two_level=False)
    # the same cells (item, design cell's columns, trials, successes), laid out sorted by item
    assert np.all(np.diff(model.item) >= 0)
    two = np.column_stack([model.item, model.X[model.design_of], model.idx[model.design_of], model.k, model.n])
    one = np.column_stack([model.t_offset[2] + prompt.index[obs][:, 0], full.X, full.idx[:, :2], full.k, full.n])
    np.testing.assert_array_equal(two[np.lexsort(two.T[::-1])], one[np.lexsort(one.T[::-1])])
    table = _cells(1)
    table = CellTable(table.data.with_columns(log_n_train=pl.Series(np.linspace(0, 1, table.data.height))),
                      table.by)
    flat = design(parse(FORMULAS[0]), table)
    assert len(fastlogp.CellModel(flat, Priors({}), term_parametrizations(flat, "zerosum")).item) == 0
    with pytest.raises(ValueError, match="two-level"):
        fastlogp.CellModel(flat, Priors({}), term_parametrizations(flat, "zerosum"), two_level=True)


def _per_term(d, parametrization: str, monkeypatch) -> dict[str, str]:
    """The per-term forms; ``zerosum_slopes_noncentered`` (a form only ``auto`` chooses, for slope
    terms) is imposed on the slope terms, the intercepts then centred, for both models;
    ``zerosum_signed`` (only ``auto``'s, for item terms) on every random intercept but the first."""
    if parametrization not in ("zerosum_slopes_noncentered", "zerosum_signed"):
        return term_parametrizations(d, parametrization)
    allowed = plans._zero_sum_allowed(d)
    if parametrization == "zerosum_signed":  # beside a centred term, as auto samples an item term
        forms = {t.name: "zerosum" if i == 0 else parametrization for i, t in enumerate(d.terms)}
    else:
        forms = {t.name: "zerosum" for t in d.terms} | {s.name: parametrization for s in d.slopes}
    forms = {k: v if allowed[k] else plans.TEXTBOOK[v] for k, v in forms.items()}
    monkeypatch.setattr(model_module, "term_parametrizations", lambda *_: forms)
    monkeypatch.setattr(model_module, "check_parametrization", lambda p: p)
    return forms


def _in_fastlogp_order(pm_model, d) -> list[str]:
    """PyMC's value variables in the hand-written density's layout: the intercept and coefficients,
    then per random intercept its log SD and its deviations, then per slope term its log SDs, its
    partial correlations and its centred then standardised rows (PyMC creates every SD first)."""
    names = [v.name for v in pm_model.value_vars]
    scalars = [n for n in names if n == "Intercept" or n.startswith("b_")]
    per_term = []
    for t in d.terms:
        per_term.append(f"sd_{t.name}_signed" if f"sd_{t.name}_signed" in names else f"sd_{t.name}_log__")
        per_term += [n for n in names if n.split("_zerosum__")[0] in (f"r_{t.name}", f"z_{t.name}", f"zs_{t.name}")]
    for s in d.slopes:
        per_term += [f"sd_{n}_log__" for n in s.sd_names]
        per_term += [n for n in (f"cpc_{s.name}", f"u_{s.name}", f"z_{s.name}") if n in names]
    return scalars + per_term


def test_it_supports_the_designs_of_the_formula_grammar():
    cells = _cells(1)
    assert fastlogp.supports(design(parse(FORMULAS[0]), cells))
    # an axis-laid interaction moves its margins into the main terms' prior scale (model._sigma):
    # tests/test_fastlogp_absorbed.py
    assert fastlogp.supports(design(parse("y ~ 1 + (1|model) + (1|value) + (1|model:value)"), cells))
    assert fastlogp.supports(design(parse("y ~ 1 + log_n_train + (1 + log_n_train|model)"), cells))


@pytest.mark.parametrize(("spec", "dist"), [
    ("normal(0.3, 1.5)", stats.norm(0.3, 1.5)),
    ("student_t(3, 0.2, 2.5)", stats.t(3, 0.2, 2.5)),
    ("logistic(0.1, 2)", stats.logistic(0.1, 2)),
    ("halfnormal(0.7)", stats.halfnorm(0, 0.7)),
    ("halfstudent_t(4, 0.7)", None),
    ("halfcauchy(1.3)", stats.halfcauchy(0, 1.3)),
    ("exponential(2)", stats.expon(0, 0.5)),
])
def test_prior_densities_equal_scipy(spec, dist):
    from dvbstats.model.priors import Prior

    prior = Prior.parse(spec)
    for x in (0.05, 0.4, 1.7):
        lp, dlp = fastlogp.prior_logp(prior, x)
        want = np.log(2) + stats.t(4, 0, 0.7).logpdf(x) if dist is None else dist.logpdf(x)
        assert lp == pytest.approx(want, rel=1e-12)
        h = 1e-6
        numeric = (fastlogp.prior_logp(prior, x + h)[0] - fastlogp.prior_logp(prior, x - h)[0]) / (2 * h)
        assert dlp == pytest.approx(numeric, rel=1e-6)


def test_zero_sum_extension_is_an_isometry_with_its_transpose():
    rng = np.random.default_rng(0)
    y, g = rng.normal(size=(3, 4)), rng.normal(size=(4, 5))
    x = fastlogp.extend(fastlogp.extend(y, 0), 1)
    np.testing.assert_allclose(x.sum(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x.sum(axis=1), 0, atol=1e-12)
    assert np.sum(x**2) == pytest.approx(np.sum(y**2))
    pulled = fastlogp.extend_transpose(fastlogp.extend_transpose(g, 0), 1)
    assert np.sum(x * g) == pytest.approx(np.sum(y * pulled))


def test_expanded_draws_are_the_pymc_variables():
    d = design(parse("y ~ 1 + (1|model) + (1|value) + (1|model:value)"), _cells(2))  # a two-axis layout
    ours = fastlogp.CellModel(d, Priors({}), term_parametrizations(d, "zerosum_noncentered"))
    out = ours.expand(np.random.default_rng(0).normal(size=ours.ndim))
    names, shapes, _ = ours.variables()
    assert list(out) == names and [v.shape for v in out.values()] == shapes
    r = out["r_model__value"]
    np.testing.assert_allclose(r.sum(axis=0), 0, atol=1e-12)  # zero-sum along both axes
    np.testing.assert_allclose(r.sum(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out["sd"], [out["sd_model"], out["sd_value"], out["sd_model__value"]])


@pytest.mark.parametrize("parametrization", ["zerosum_noncentered", "zerosum_slopes_noncentered"])
def test_expanded_slope_draws_are_the_pymc_variables(parametrization):
    """Slope rows sum to zero over the models, ``cor`` is the correlation of the Cholesky factor, and the
    names and shapes are the PyMC model's (a mixed form has both ``u`` and ``z``)."""
    d = design(parse("y ~ 1 + context + (1 + context|model) + (1|value)"), _cells(2))
    forms = {"value": "zerosum", "model__context": parametrization}
    ours = fastlogp.CellModel(d, Priors({}), forms)
    out = ours.expand(np.random.default_rng(1).normal(size=ours.ndim))
    names, shapes, _ = ours.variables()
    assert list(out) == names and [np.shape(v) for v in out.values()] == shapes
    assert ("u_model__context" in out) == (parametrization == "zerosum_slopes_noncentered")
    np.testing.assert_allclose(out["r_model__context"].sum(axis=0), 0, atol=1e-12)
    assert out["r_model__context"].shape == (4, 3) and out["cor"].shape == (3,)
    assert (np.abs(out["cor"]) < 1).all()
    sds = [out[f"sd_model__{c}"] for c in ("Intercept", "context_c1", "context_c2")]
    np.testing.assert_allclose(out["sd"], [out["sd_value"], *sds])


@pytest.mark.slow
def test_posterior_matches_the_pymc_path():
    """A small fit through both paths: posterior means agree within Monte Carlo error."""
    cells = _cells(3, 400)
    f = parse("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context)")
    settings = SamplerSettings(draws=1000, tune=1000, chains=4, seed=5)
    fast = fit(f, cells, settings=settings, progress=False)
    slow = fit(f, cells, settings=settings, progress=False, backend="pymc")
    assert fast.sampling.backend == "fastlogp" and slow.sampling.backend == "pymc"
    for name in ("Intercept", "b_log_n_train", "sd_model", "r_model"):
        a, b = fast.idata.posterior[name], slow.idata.posterior[name]
        ess_a, ess_b = az.ess(fast.idata, var_names=[name])[name], az.ess(slow.idata, var_names=[name])[name]
        se = np.sqrt(a.var(("chain", "draw")) / ess_a + b.var(("chain", "draw")) / ess_b)  # Monte Carlo error
        assert (abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) < 4 * se).all(), name
    fa, fb = fast.dvgr.mean(("chain", "draw")).values, slow.dvgr.mean(("chain", "draw")).values
    np.testing.assert_allclose(fa, fb, atol=0.02)


def test_a_design_without_slopes_compiles_only_what_it_calls(tmp_path):
    """Every kernel compiles once (one signature), and a formula without random slopes compiles none of
    the slope code: each costs seconds on a first run (benchmarks/bench_compile.py). A first run: a fresh
    process (its dispatchers start empty) with an empty Numba cache (so that callees compile too)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json, sys, numba, numpy as np\n"
            "sys.path.insert(0, 'tests')\n"
            "from test_fastlogp import _cells\n"
            "from dvbstats.model import fastlogp\n"
            "from dvbstats.model.design import design\n"
            "from dvbstats.model.plan import term_parametrizations\n"
            "from dvbstats.model.formula import parse\n"
            "from dvbstats.model.priors import Priors\n"
            "d = design(parse('y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context)'), _cells(1))\n"
            "m = fastlogp.CellModel(d, Priors({}), term_parametrizations(d, 'zerosum_noncentered'))\n"
            "x = np.random.default_rng(0).normal(size=m.ndim)\n"
            "m.logp_and_grad(x), m.expand(x), fastlogp.extend(np.ones((2, 3)), 1)\n"
            "print(json.dumps({k: len(f.signatures) for k, f in vars(fastlogp).items()\n"
            "                  if isinstance(f, numba.core.registry.CPUDispatcher)}))")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    compiled = json.loads(res.stdout.strip().splitlines()[-1])
    slopes = {"_logp_slopes", "_slope_logp", "_slope_values", "_slope_parts", "_lkj_cholesky", "_lkj_pullback",
              "_slopes_in", "_slopes_out"}
    assert {k for k, n in compiled.items() if n} == {"_logp", "_term_values", "_term_priors", "_scales", "_cell_loglik",
                                                     "_linear_predictor", "_binomial",
                                                     "_scatter", "_prior_logp",
                                                     "_zerosum", "_extend", "_put"}
    assert max(compiled.values()) == 1 and slopes <= set(compiled)
