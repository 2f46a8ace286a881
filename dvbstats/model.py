"""Formula + binomial cells → a PyMC hierarchical logistic model.

The linear predictor of cell ``c`` is

    eta_c = Intercept + sum_k b_k (x_kc - xbar_k) + sum_t r_t[level_t(c)]

with numeric predictors centred at their trial-weighted mean, so that ``Intercept`` is the
log-odds of a deep-value choice in an average design cell.

Parametrisation (chosen by measurement, see ``docs/model.md`` and
``benchmarks/bench_parametrization.py``): an unconstrained set of intercepts is confounded with
the global ``Intercept`` (add a constant to every level, subtract it from the intercept, and the
likelihood is unchanged), so every random term gets a ``ZeroSumNormal`` prior: iid
``Normal(0, sd)`` deviations re-expressed relative to their own mean, which makes ``Intercept``
the grand mean and every parameter identified. For an interaction ``g1:g2`` whose factors all
have main terms, the deviations sum to zero along every factor's axis. ``"zerosum"`` samples the
deviations themselves (centred: right when thousands of trials pin each level down);
``"zerosum_noncentered"`` samples standardised deviations (right when the data are thin);
``"auto"`` (the default) picks per term from the trials per level. ``"centered"`` and
``"noncentered"`` are the textbook forms, kept for comparison.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import pymc as pm
import pytensor.tensor as pt

from .cells import CellTable
from .formula import Formula, RandomIntercept
from .priors import Priors

Parametrization = Literal["auto", "zerosum", "zerosum_noncentered", "centered", "noncentered"]
PARAMETRIZATIONS: tuple[str, ...] = ("auto", "zerosum", "zerosum_noncentered", "centered", "noncentered")

#: ``auto`` centres a zero-sum term when its levels hold at least this many trials (median):
#: then the likelihood pins each level down far more tightly than its prior SD (see docs/model.md).
CENTRED_MIN_TRIALS = 1000


@dataclass(frozen=True)
class Term:
    """A random intercept laid out on the cell table."""

    term: RandomIntercept
    dims: tuple[str, ...]  # one dimension per axis of its parameter array
    levels: tuple[tuple[str, ...], ...]  # level labels along each axis
    index: np.ndarray  # (n_cells, n_axes) integer positions of each cell's level

    @property
    def name(self) -> str:
        return self.term.var_name


@dataclass(frozen=True)
class Design:
    """Everything needed to compute the linear predictor of every cell from a posterior draw."""

    formula: Formula
    cells: CellTable
    fixed: tuple[str, ...]
    centers: np.ndarray  # (n_fixed,) trial-weighted means of the numeric predictors
    X: np.ndarray  # (n_cells, n_fixed) centred numeric predictors
    terms: tuple[Term, ...]
    observed: np.ndarray  # (n_cells,) bool: cells with parsed trials (in the likelihood)

    @property
    def prior_names(self) -> list[str]:
        """Names of the parameters that take priors (for ``Priors.check``/``describe``)."""
        names = ["intercept"] if self.formula.intercept else []
        return names + [f"b_{x}" for x in self.fixed] + [f"sd_{t.name}" for t in self.terms]

    def coords(self) -> dict[str, Sequence[str]]:
        coords: dict[str, Sequence[str]] = {"term": [t.term.label for t in self.terms]}
        for t in self.terms:
            for dim, levels in zip(t.dims, t.levels):
                coords[dim] = levels
        return coords


def design(formula: Formula, cells: CellTable) -> Design:
    """Lay the formula's terms out on the cells (levels, indices, centred predictors)."""
    df = cells.data
    for name in formula.fixed:
        if not df[name].dtype.is_numeric():
            raise ValueError(
                f"fixed effect {name!r} is not numeric (it is {df[name].dtype}); "
                f"model a categorical variable as a random intercept, e.g. (1|{name})"
            )
    if df["n_trials"].sum() == 0:
        raise ValueError("there are no parsed trials to fit: every trial is unparsed or excluded")
    weights = df["n_trials"].to_numpy().astype(float)
    X = df.select(formula.fixed).to_numpy().astype(float) if formula.fixed else np.zeros((df.height, 0))
    centers = weights @ X / weights.sum()
    mains = {r.factors[0] for r in formula.random if len(r.factors) == 1}
    terms = []
    for r in formula.random:
        term = _lay_out(r, df, mains)
        if all(len(levels) == 1 for levels in term.levels):
            # As lme4 refuses, so do we: one level has no variance to estimate; it is the intercept.
            warnings.warn(f"(1|{r.label}) left out of the model: {r.label!r} has a single level in the data",
                          stacklevel=2)
            continue
        terms.append(term)
    terms = tuple(terms)
    return Design(formula, cells, formula.fixed, centers, X - centers, terms, weights > 0)


def _lay_out(term: RandomIntercept, df: pl.DataFrame, mains: set[str]) -> Term:
    """Levels along each factor when every factor has a main term, else one flat axis."""
    if len(term.factors) > 1 and not set(term.factors) <= mains:
        key = df.select(pl.concat_str([pl.col(f).cast(pl.String) for f in term.factors], separator=":"))
        columns, dims = [key.to_series()], (term.var_name,)
    else:
        columns, dims = [df[f].cast(pl.String) for f in term.factors], term.factors
    levels, index = [], []
    for col in columns:
        lv = sorted(col.unique().to_list(), key=_natural)
        levels.append(tuple(lv))
        pos = {v: i for i, v in enumerate(lv)}
        index.append(np.fromiter((pos[v] for v in col.to_list()), dtype=np.int64, count=len(col)))
    return Term(term, dims, tuple(levels), np.column_stack(index))


def _natural(level: str) -> tuple:
    """Sort numeric-looking levels by number (``4 < 20 < 40``), others alphabetically."""
    try:
        return (0, float(level), "")
    except ValueError:
        return (1, 0.0, level)


def build(d: Design, priors: Priors, parametrization: Parametrization = "auto") -> pm.Model:
    """The PyMC model of ``n_deep ~ Binomial(n_trials, logit^-1(eta))`` over observed cells."""
    priors.check(d.prior_names)
    per_term = term_parametrizations(d, check_parametrization(parametrization))
    obs = d.observed
    data = d.cells.data.filter(pl.Series(obs))
    # check_bounds=False: the parametrisation keeps every argument in its support, and the
    # bound checks would otherwise cost a pass over the cells at every gradient evaluation.
    with pm.Model(coords=d.coords(), check_bounds=False) as model:
        eta = pt.zeros(int(obs.sum()))
        if d.formula.intercept:
            eta = eta + priors.get("intercept").create("Intercept")
        for k, name in enumerate(d.fixed):
            b = priors.get(f"b_{name}").create(f"b_{name}")
            eta = eta + b * d.X[obs, k]
        sds = []
        for t in d.terms:
            sd = priors.get(f"sd_{t.name}").create(f"sd_{t.name}")
            sds.append(sd)
            r = _random_intercepts(t, sd, per_term[t.name])
            eta = eta + r[tuple(t.index[obs, a] for a in range(len(t.dims)))]
        if sds:
            pm.Deterministic("sd", pt.stack(sds), dims="term")
        pm.Binomial("n_deep", n=data["n_trials"].to_numpy(), logit_p=eta, observed=data["n_deep"].to_numpy())
    return model


def check_parametrization(parametrization: str) -> Parametrization:
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, not {parametrization!r}")
    return parametrization


def term_parametrizations(d: Design, parametrization: Parametrization) -> dict[str, str]:
    """The parametrisation of every random term; ``auto`` decides per term from trials per level."""
    if parametrization != "auto":
        return {t.name: parametrization for t in d.terms}
    n = d.cells.data["n_trials"].to_numpy()
    out = {}
    for t in d.terms:
        flat = np.ravel_multi_index(tuple(t.index.T), tuple(len(lv) for lv in t.levels))
        per_level = np.bincount(flat, weights=n)
        observed = per_level[per_level > 0]
        out[t.name] = "zerosum" if np.median(observed) >= CENTRED_MIN_TRIALS else "zerosum_noncentered"
    return out


def _random_intercepts(t: Term, sd, parametrization: str):
    name = f"r_{t.name}"
    if parametrization == "zerosum":
        return pm.ZeroSumNormal(name, sigma=sd, dims=t.dims, n_zerosum_axes=len(t.dims))
    if parametrization == "zerosum_noncentered":
        z = pm.ZeroSumNormal(f"z_{t.name}", sigma=1.0, dims=t.dims, n_zerosum_axes=len(t.dims))
        return pm.Deterministic(name, z * sd, dims=t.dims)
    if parametrization == "centered":
        return pm.Normal(name, 0.0, sd, dims=t.dims)
    z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=t.dims)
    return pm.Deterministic(name, z * sd, dims=t.dims)


def linear_predictor(d: Design, draws: dict[str, np.ndarray]) -> np.ndarray:
    """``eta`` of every cell (observed or not) for a batch of draws: shape (n_draws, n_cells).

    ``draws`` maps parameter names (``Intercept``, ``b_x``, ``r_term``) to arrays whose first
    axis is the draw.
    """
    n = next(iter(draws.values())).shape[0]
    eta = np.zeros((n, d.cells.data.height))
    if d.formula.intercept:
        eta += draws["Intercept"][:, None]
    for k, name in enumerate(d.fixed):
        eta += draws[f"b_{name}"][:, None] * d.X[None, :, k]
    for t in d.terms:
        r = draws[f"r_{t.name}"]
        eta += r[(slice(None), *(t.index[:, a] for a in range(len(t.dims))))]
    return eta
