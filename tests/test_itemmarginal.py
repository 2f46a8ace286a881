"""Item effects integrated out (dvbstats.model.itemmarginal): the marginal density against numerical
integration of the full one, its gradient, the items' conditional draws, when the path is used, and
(slow) the posterior against full HMC of the same model."""

from __future__ import annotations

import arviz as az
import numpy as np
import polars as pl
import pytest
from scipy import integrate, stats

from dvbstats.input.cells import CellTable
from dvbstats.model import fastlogp, itemmarginal
from dvbstats.model.design import design
from dvbstats.model.plan import term_parametrizations
from dvbstats.model.formula import parse
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit
from dvbstats.results.tables import LEVEL_BLOCK, level_moments
from test_fastlogp import _item_cells


def _rasch_cells(n_models: int, n_items: int, seed: int, missing: float = 0.0, item_sd: float = 1.5) -> CellTable:
    """A models x items matrix of single 0/1 trials from a Rasch model (a share ``missing`` of cells absent)."""
    rng = np.random.default_rng(seed)
    ability, difficulty = rng.normal(0, 1, n_models), rng.normal(0, item_sd, n_items)
    m, i = np.meshgrid(np.arange(n_models), np.arange(n_items), indexing="ij")
    m, i = m.ravel(), i.ravel()
    keep = rng.random(len(m)) >= missing
    m, i = m[keep], i[keep]
    k = (rng.random(len(m)) < 1 / (1 + np.exp(-(0.3 + ability[m] - difficulty[i])))).astype(int)
    df = pl.DataFrame({"model": [f"m{j}" for j in m], "item": [f"i{j:05d}" for j in i],
                       "n_prompts": 1, "n_trials": 1, "n_deep": k})
    return CellTable(df, ("model", "item"))


CASES = [  # formula, cells, the full model's form (its item term textbook non-centred: x's layout extends)
    ("y ~ 1 + log_n_train + (1|model) + (1|value) + (1|context) + (1|prompt)", lambda: _item_cells(3, 40),
     "noncentered"),
    ("y ~ 1 + log_n_train + (1 + log_n_train|value) + (1|prompt)", lambda: _item_cells(4, 30), "noncentered"),
    ("y ~ 0 + log_n_train + (1|model) + (1|prompt)", lambda: _item_cells(5, 60), "noncentered"),
    ("y ~ 1 + (1|model) + (1|item)", lambda: _rasch_cells(6, 80, 1, missing=0.2), "noncentered"),
]


def _models(formula, cells, form, prior=()):
    d = design(parse(formula), cells())
    per_term = term_parametrizations(d, form)
    priors = Priors.from_specs(prior)
    item = itemmarginal.item_term(d)
    assert item is not None and item is d.terms[-1]
    return itemmarginal.ItemMarginalModel(d, priors, per_term, item), fastlogp.CellModel(d, priors, per_term, two_level=False)


def _brute_force(m, full, x):
    """The full density in the textbook non-centred form (``r = sd z``) with every ``z_i`` integrated out by
    scipy's adaptive quadrature: ``x`` is the marginal's point, the item term's ``z`` follow its log SD."""
    n_head = int(m.base.t_end[-1]) if len(m.base.t_end) else len(m.base.s_code)  # the slope terms' follow
    head, tail = x[:n_head], x[n_head:m.ndim - 1]
    xf = np.concatenate([head, x[-1:], np.zeros(m.n_items), tail])
    start = len(head) + 1
    base = full.logp_and_grad(xf)[0]
    total = base
    for i in range(m.n_items):
        def integrand(z, i=i):
            y = xf.copy()
            y[start + i] = z
            return np.exp(full.logp_and_grad(y)[0] - base)
        total += np.log(integrate.quad(integrand, -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0])
    return total


@pytest.mark.parametrize(("formula", "cells", "form"), CASES)
def test_marginal_density_equals_numerical_integration(formula, cells, form):
    """The marginal log density equals the full density integrated over each item's effect (scipy's quad),
    and its gradient the finite differences, at random points including small and large item SDs."""
    m, full = _models(formula, cells, form, ["sd_prompt=exponential(2)"] if "prompt" in formula else [])
    rng = np.random.default_rng(2)
    for log_sd in (-2.5, 0.0, 1.2):
        x = rng.normal(0, 0.5, m.ndim)
        x[-1] = log_sd
        lp, grad = m.logp_and_grad(x)
        assert lp == pytest.approx(_brute_force(m, full, x), abs=1e-8, rel=1e-11)
        eps = 1e-6
        fd = [(m.logp_and_grad(x + eps * e)[0] - m.logp_and_grad(x - eps * e)[0]) / (2 * eps) for e in np.eye(m.ndim)]
        np.testing.assert_allclose(grad, fd, atol=1e-5 * (1 + np.abs(grad).max()))


@pytest.mark.parametrize("log_sd", [-460.0, 460.0, 800.0, np.nan])
def test_an_item_sd_far_out_gives_minus_infinity_not_an_error(log_sd):
    """Warm-up can propose an item log SD of hundreds (SD exp(+-460)): the grid is then undefined, and the
    density must be -inf (a rejected proposal), not a 'negative dimensions' ValueError that stops the fit
    (seen in 4 of 500 full fits of the design check)."""
    formula, cells, form = CASES[-1]
    m, _ = _models(formula, cells, form)
    x = np.zeros(m.ndim)
    x[-1] = log_sd
    lp, grad = m.logp_and_grad(x)
    assert lp == -np.inf or np.isnan(lp)
    x[-1] = 0.0
    assert np.isfinite(m.logp_and_grad(x)[0])


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_each_classs_window_gives_the_whole_grids_sums(missing):
    """Each class's trapezoidal sum over its own window of the grid equals the sum over the whole grid (the
    integrand of every class, softplus taken by NumPy), in value and in the derivatives by the design cells'
    predictors and the item SD, at item SDs from 0.05 to 20 and predictors spread by 0.3 and 2.5; and ``S(r)``
    from the exponential factors equals NumPy's softplus sum."""
    cells = _rasch_cells(150, 300, 4, missing=missing)
    d = design(parse("y ~ 1 + (1|model) + (1|item)"), cells)
    m = itemmarginal.ItemMarginalModel(d, Priors({}), term_parametrizations(d, "auto"), d.terms[1])
    prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_count, _, _ = m._draw_arrays
    rng = np.random.default_rng(3)
    for sd, spread in ((0.05, 0.3), (1.0, 2.5), (2.0, 0.3), (20.0, 2.5)):
        eta = rng.normal(0.3, spread, len(m.X))
        k_design = rng.random(len(eta))
        g = np.empty(len(eta))
        lp, g_sd = itemmarginal._item_loglik(eta, k_design, prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_count,
                                             sd, g)
        lp_ref, g_ref, g_sd_ref = float(k_design @ eta), k_design.copy(), 0.0
        for p in range(len(prof_ptr) - 1):
            cells_p, n = prof_cell[prof_ptr[p]:prof_ptr[p + 1]], prof_n[prof_ptr[p]:prof_ptr[p + 1]]
            o = eta[cells_p]
            start, h, G, S, _ = itemmarginal._grid(o, n, cls_K[cls_ptr[p]], cls_K[cls_ptr[p + 1] - 1], sd)
            r = start + h * np.arange(G)
            softplus = np.logaddexp(0, o[None, :] + r[:, None])
            np.testing.assert_allclose(S, softplus @ n, rtol=1e-13)
            sigmoid = 1 / (1 + np.exp(-(o[None, :] + r[:, None])))
            for K, count in zip(cls_K[cls_ptr[p]:cls_ptr[p + 1]], cls_count[cls_ptr[p]:cls_ptr[p + 1]]):
                a = K * r - 0.5 * (r / sd) ** 2 - softplus @ n
                w = np.exp(a - a.max())
                lp_ref += count * (a.max() + np.log(w.sum() * h / sd) - 0.5 * np.log(2 * np.pi))
                w *= count / w.sum()
                np.subtract.at(g_ref, cells_p, n * (w @ sigmoid))
                g_sd_ref += w @ r**2 / sd**3 - count / sd
        assert lp == pytest.approx(lp_ref, rel=1e-13)
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10 * np.abs(g_ref).max())
        assert g_sd == pytest.approx(g_sd_ref, rel=1e-10, abs=1e-10 * abs(cls_count.sum() / sd))


def test_items_with_the_same_cells_and_total_share_one_integral():
    """A complete matrix has one profile, and its classes are the distinct totals; cells without trials
    are left out of the profiles; every item is in exactly one class."""
    cells = _rasch_cells(5, 200, 3)
    d = design(parse("y ~ 1 + (1|model) + (1|item)"), cells)
    m = itemmarginal.ItemMarginalModel(d, Priors({}), term_parametrizations(d, "auto"), itemmarginal.item_term(d))
    totals = cells.data.group_by("item").agg(pl.col("n_deep").sum())["n_deep"]
    assert m.n_profiles == 1 and m.n_classes == totals.n_unique() and m.profile_cells == 5
    assert m.worthwhile
    cls_items = m._draw_arrays[7]
    assert sorted(cls_items) == list(range(200))


def test_draws_follow_each_items_exact_conditional():
    """An item's effect drawn from its conditional at a fixed point: its distribution equals the CDF of
    ``prod Bin(k | n, logit^-1(eta + r)) N(r | 0, sd^2)`` computed by quadrature (Kolmogorov-Smirnov)."""
    m, _ = _models(*CASES[3])
    x = np.random.default_rng(4).normal(0, 0.5, m.ndim)
    x[-1] = 0.3
    rng = np.random.default_rng(5)
    draws = np.array([m.draw_items(x, rng.random(m.n_items)) for _ in range(3000)])
    eta = m._eta(x)
    prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, _, cls_item_ptr, cls_items = m._draw_arrays
    sd = np.exp(x[-1])
    for j in (0, len(cls_K) // 2, len(cls_K) - 1):
        p = np.searchsorted(cls_ptr, j, side="right") - 1
        o, n, K = eta[prof_cell[prof_ptr[p]:prof_ptr[p + 1]]], prof_n[prof_ptr[p]:prof_ptr[p + 1]], cls_K[j]

        def log_f(r, o=o, n=n, K=K):
            return K * r - np.sum(n * np.logaddexp(0, o + r)) - 0.5 * (r / sd) ** 2

        top = max(log_f(r) for r in np.linspace(-10, 10, 401))
        Z = integrate.quad(lambda r: np.exp(log_f(r) - top), -np.inf, np.inf, epsrel=1e-10)[0]

        def cdf(v, top=top, Z=Z):
            return np.array([integrate.quad(lambda r: np.exp(log_f(r) - top), -np.inf, t, epsrel=1e-10)[0] / Z
                             for t in np.atleast_1d(v)])

        item = cls_items[cls_item_ptr[j]]
        assert stats.kstest(draws[:, item], cdf).pvalue > 0.001


def test_the_path_is_used_for_one_item_level_term_only():
    """One thin random intercept, alone on its variable: integrated out; two thin terms, an item-level
    interaction, or item slopes: the full density."""
    d = design(parse("y ~ 1 + (1|model) + (1|item)"), _rasch_cells(30, 60, 1))
    assert itemmarginal.item_term(d).name == "item"
    cells = _item_cells(1, 200)
    assert itemmarginal.item_term(design(parse("y ~ 1 + (1|model) + (1|prompt)"), cells)).name == "prompt"
    assert itemmarginal.item_term(design(parse("y ~ 1 + (1|model) + (1|model:prompt) + (1|prompt)"), cells)) is None
    assert itemmarginal.item_term(design(parse("y ~ 1 + log_n_train + (1 + log_n_train|prompt)"), cells)) is None
    thin = _rasch_cells(4, 60, 1)
    assert itemmarginal.item_term(design(parse("y ~ 1 + (1|model) + (1|item)"), thin)).name == "item"


def test_no_item_term_beside_interaction_margins_moved_into_a_main_terms_scale():
    """The item-marginal density scales each random intercept by its own SD alone: with ``(1|model:value)``'s
    margins moved into the prior scales of ``(1|model)`` and ``(1|value)`` (the zero-sum forms) no item term is
    integrated out, whoever asks; in the textbook forms, which move nothing, the same ``(1|prompt)`` is."""
    d = design(parse("y ~ 1 + (1|model) + (1|value) + (1|model:value) + (1|prompt)"), _item_cells(1, 200))
    names = [t.name for t in d.terms]
    assert any(d.absorbed.values()) and not d.absorbed.get("prompt")
    for form in ("zerosum", "zerosum_noncentered"):
        assert fastlogp.absorbed_margins(d, dict.fromkeys(names, form)).any()
        assert itemmarginal.item_term(d, dict.fromkeys(names, form)) is None
    assert itemmarginal.item_term(d) is None  # the forms of "auto" are zero-sum
    assert itemmarginal.item_term(d, dict.fromkeys(names, "centered")).name == "prompt"



def test_without_an_item_level_term_the_term_with_the_most_levels_is_integrated_where_shared():
    """No term under ITEM_MAX_TRIALS (60 trials per item, 200 per model): the items, the term with the most
    levels, are integrated out, their one profile shared; on a tie in levels the later term in the formula; thin models beside rich items: the models, as before."""
    f = parse("y ~ 1 + (1|model) + (1|item)")
    d = design(f, _rasch_cells(60, 200, 1))
    item = itemmarginal.item_term(d)
    assert item is not None and item.name == "item"
    assert itemmarginal.ItemMarginalModel(d, Priors({}), term_parametrizations(d, "auto"), item).worthwhile
    assert itemmarginal.item_term(design(f, _rasch_cells(60, 60, 1))).name == "item"
    assert itemmarginal.item_term(design(parse("y ~ 1 + (1|item) + (1|model)"), _rasch_cells(60, 60, 1))).name == "model"
    assert itemmarginal.item_term(design(f, _rasch_cells(60, 20, 1))).name == "model"


def _two_profiles() -> CellTable:
    """12 models x 400 items; 4 models did not answer the last 100 items: two profiles of thin items."""
    whole = _rasch_cells(12, 400, 7)
    return CellTable(whole.data.filter(~(pl.col("model").is_in(["m0", "m1", "m2", "m3"])
                                         & (pl.col("item") >= "i00300"))), whole.by)


@pytest.mark.slow
@pytest.mark.parametrize("cells", [_two_profiles, lambda: _rasch_cells(60, 200, 8)], ids=["thin", "rich"])
def test_fit_integrates_items_out_and_matches_full_hmc(cells):
    """A binary Rasch matrix fitted with the item effects integrated out (each class summed over its window of
    the grid) and with full HMC of the same model: every reported quantity's posterior mean agrees within Monte
    Carlo error, and so do posterior SDs (within 10%). Thin: two profiles of items under ITEM_MAX_TRIALS; rich:
    a complete 60 x 200 matrix, no term item-level (60 trials per item), the items integrated out as the term
    with the most levels."""
    cells = cells()
    f = parse("y ~ 1 + (1|model) + (1|item)")
    settings = SamplerSettings(draws=1000, tune=1000, chains=4, seed=3)
    fast = fit(f, cells, settings=settings, progress=False)
    full = fit(f, cells, settings=settings, progress=False, backend="fastlogp")
    assert fast.items_integrated and fast.items_integrated["term"] == "item" and full.items_integrated is None
    assert fast.diagnostics.ok and full.diagnostics.ok
    for name in ("Intercept", "sd_model", "sd_item", "r_model", "r_item"):
        a, b = fast.idata.posterior[name], full.idata.posterior[name]
        ess_a, ess_b = az.ess(fast.idata, var_names=[name])[name], az.ess(full.idata, var_names=[name])[name]
        se = np.sqrt(a.var(("chain", "draw")) / ess_a + b.var(("chain", "draw")) / ess_b)
        z = np.abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) / se
        assert float(z.max()) < (4.5 if z.size > 1 else 4), name
        ratio = a.std(("chain", "draw")) / b.std(("chain", "draw"))
        assert float(abs(ratio - 1).max()) < (0.15 if z.size > 1 else 0.1), name
    ra, rb = fast.rates(), full.rates()
    np.testing.assert_allclose(ra["dvgr_mean"], rb["dvgr_mean"], atol=0.01)


def test_level_moments_in_blocks_equal_numpy_in_float64():
    """The item summaries' blocked mean and SD equal NumPy's over the whole float64 array, across block edges."""
    values = np.random.default_rng(0).normal(3, 2, (50, 2 * LEVEL_BLOCK + 7)).astype(np.float32)
    mean, sd = level_moments(values)
    full = values.astype(np.float64)
    np.testing.assert_allclose(mean, full.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sd, full.std(axis=0, ddof=1), rtol=1e-12)


def test_expanded_draws_are_the_full_models_variables():
    """``expand`` gives every variable ``variables`` names, in its shape; the ``sd`` vector in the design's
    order of SD labels; zero-sum item effects centred with their mean moved into the intercept."""
    d = design(parse("y ~ 1 + log_n_train + (1 + log_n_train|value) + (1|model) + (1|prompt)"), _item_cells(6, 100))
    m = itemmarginal.ItemMarginalModel(d, Priors({}), term_parametrizations(d, "auto"), itemmarginal.item_term(d))
    assert m.centred
    x = np.random.default_rng(1).normal(0, 0.3, m.ndim)
    expand = m.expander(1, 2, 0)
    out = expand(x)
    names, shapes, dims = m.variables()
    assert names == list(out) and dims["r_prompt"] == ("prompt",)  # nutpie takes them in the declared order
    for name, shape in zip(names, shapes):
        assert np.shape(out[name]) == shape, name
    by_name = {n: float(out[f"sd_{n}"]) for t in d.random for n in t.sd_names}
    assert list(out["sd"]) == [by_name[n] for t in d.random for n in t.sd_names]
    assert len(out["sd"]) == len(d.sd_labels) and float(out["sd_prompt"]) == pytest.approx(np.exp(x[-1]))
    assert abs(np.mean(out["r_prompt"])) < 1e-12
    words = x.view(np.uint32)
    raw = m.draw_items(x, np.random.default_rng([1, 2, 0, 0, *words]).random(m.n_items))
    assert float(out["Intercept"]) == pytest.approx(x[0] + raw.mean())
    again, other_chain = expand(x)["r_prompt"], m.expander(1, 2, 0)(x + 1e-9)["r_prompt"]
    assert not np.allclose(again, out["r_prompt"]) and not np.allclose(other_chain, out["r_prompt"])


def test_expanded_draws_keep_the_declared_order_without_other_random_terms():
    """With the item term the only random term, ``sd`` is not among the other parameters' draws: ``expand`` must
    still give the variables in the order ``variables`` declares (nutpie refuses another order)."""
    d = design(parse("y ~ 1 + log_n_train + (1|prompt)"), _item_cells(4, 60))
    m = itemmarginal.ItemMarginalModel(d, Priors({}), term_parametrizations(d, "auto"), itemmarginal.item_term(d))
    out = m.expander(1, 2, 0)(np.random.default_rng(2).normal(0, 0.3, m.ndim))
    assert list(out) == m.variables()[0]


def test_chains_draw_the_items_independently():
    """nutpie passes the same seeds to every chain's ``expand``: the chains' item draws must still be independent."""
    m, _ = _models(*CASES[3])
    x = np.random.default_rng(4).normal(0, 0.5, m.ndim)
    chains = [m.expander(0, 0, 0) for _ in range(2)]  # at points 1e-7 apart: the same conditionals
    draws = [np.array([c(x + 1e-7 * j)["r_item"] for _ in range(200)]) for j, c in enumerate(chains)]
    a, b = (d - d.mean(axis=0) for d in draws)
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.02
