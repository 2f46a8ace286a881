"""Formula + binomial cells → the design of a hierarchical logistic model (the model written in PyMC:
:mod:`dvbstats.model.pymcmodel`).

The linear predictor of cell ``c`` is

    eta_c = Intercept + sum_k b_k (x_kc - xbar_k) + sum_t r_t[level_t(c)] + sum_s Z_sc · r_s[level_s(c)]

where ``x`` are the columns of the fixed-effects design matrix, coded as R's ``model.matrix`` codes
them (numeric columns as they are, factors by treatment or sum contrasts, interactions as products)
and centred at their trial-weighted mean when the formula has an intercept, so that ``Intercept``
is the log-odds of a deep-value choice in an average design cell; ``r_t`` are random intercepts and
``r_s`` random intercepts-and-slopes (rows of coefficients per level, ``Z`` their columns).

Parametrisation (chosen by measurement, see ``docs/model.md`` and
``benchmarks/bench_parametrization.py``): an unconstrained set of intercepts is confounded with
the global ``Intercept`` (add a constant to every level, subtract it from the intercept, and the
likelihood is unchanged), so every random term gets a zero-sum prior: iid ``Normal(0, sd)``
deviations (rows ``MvNormal(0, Σ)`` for slopes) re-expressed relative to their own mean, which makes
``Intercept`` the grand mean and every parameter identified. For an interaction ``g1:g2`` whose
sub-terms are all random intercepts, the deviations sum to zero along every factor's axis; the
row and column means that this removes are moved into the main terms' prior SDs
(``sqrt(sd_g1² + sd_g1:g2² / L_g2)``), so that every reported ``sd`` means what lme4's means.
``"zerosum"`` samples the deviations themselves (centred: right when thousands of trials pin each
level down); ``"zerosum_noncentered"`` samples standardised deviations (right when the data are
thin); ``"auto"`` (the default) picks one of the two for all random intercepts from the trials per level,
and for a random-slope term centres only its intercept column when the data are rich
(``"zerosum_slopes_noncentered"``; asked for, it centres every random
intercept and every intercept column and no slope column), and samples an item-level term
beside rich ones non-centred with a signed scale (``"zerosum_signed"``: ``r = v z``, ``sd = |v|``).
``"centered"`` and
``"noncentered"`` are the textbook forms; a term whose mean no fixed coefficient absorbs (no
intercept, or a slope without its fixed slope) always takes the textbook form. The rules that choose the
form of each term, the target acceptance, the mass matrix and the fallbacks are :mod:`dvbstats.model.plan`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from dvbstats.input.cells import CellTable
from dvbstats.model.coding import DesignError, check_identified, factor, model_matrix
from dvbstats.model.formula import Formula, RandomTerm, safe_name


@dataclass(frozen=True)
class Term:
    """A random intercept laid out on the cell table."""

    term: RandomTerm
    dims: tuple[str, ...]  # one dimension per axis of its parameter array
    levels: tuple[tuple[str, ...], ...]  # level labels along each axis
    index: np.ndarray  # (n_cells, n_axes) integer positions of each cell's level

    @property
    def name(self) -> str:
        return self.term.var_name

    @property
    def sd_names(self) -> list[str]:
        return [self.name]

    @property
    def sd_labels(self) -> list[str]:
        return [self.term.label]

    def flat_index(self) -> np.ndarray:
        return np.ravel_multi_index(tuple(self.index.T), tuple(len(lv) for lv in self.levels))


@dataclass(frozen=True)
class SlopeTerm:
    """A random term with slopes, ``(1 + x|g)``: a row of coefficients per level of the grouping."""

    term: RandomTerm
    levels: tuple[str, ...]  # levels of the grouping (``a:b`` joined for several factors)
    index: np.ndarray  # (n_cells,) position of each cell's level
    coefficients: tuple[str, ...]  # "Intercept" (when the term has one), then the coded slope columns
    Z: np.ndarray  # (n_cells, n_coefficients): the columns the coefficients multiply

    @property
    def name(self) -> str:
        return self.term.var_name

    @property
    def dim(self) -> str:
        return self.term.group_var

    @property
    def coef_dim(self) -> str:
        return f"{self.name}__coef"

    @property
    def sd_names(self) -> list[str]:
        """``model__Intercept``, ``model__log_n_train``: brms' names (prior ``sd_<name>``)."""
        return [f"{self.term.group_var}__{safe_name(c)}" for c in self.coefficients]

    @property
    def sd_labels(self) -> list[str]:
        return [f"{self.term.group_label}|{c}" for c in self.coefficients]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Index pairs of the correlations it estimates (none when uncorrelated)."""
        return list(itertools.combinations(range(len(self.coefficients)), 2)) if self.term.correlated else []

    @property
    def pair_labels(self) -> list[str]:
        return [f"{self.term.group_label}|{self.coefficients[i]},{self.coefficients[j]}" for i, j in self.pairs]

    def flat_index(self) -> np.ndarray:
        return self.index

    @cached_property
    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct (level, row of ``Z``) pairs of the cells: their levels, their ``Z`` rows and each
        cell's pair (few: 36 for ``(1 + condition|model)`` with 12 models, against 72,000 cells)."""
        unique, inverse = np.unique(np.column_stack([self.index, self.Z]), axis=0, return_inverse=True)
        return unique[:, 0].astype(np.int64), np.ascontiguousarray(unique[:, 1:]), inverse.ravel()


@dataclass(frozen=True)
class Design:
    """Everything needed to compute the linear predictor of every cell from a posterior draw."""

    formula: Formula
    cells: CellTable
    fixed: tuple[str, ...]  # parameter-safe names of the fixed coefficients (``b_<name>``)
    centers: np.ndarray  # (n_fixed,) trial-weighted means of the design columns (0 without intercept)
    X: np.ndarray  # (n_cells, n_fixed) centred design columns
    terms: tuple[Term, ...]  # random intercepts
    observed: np.ndarray  # (n_cells,) bool: cells with parsed trials (in the likelihood)
    coefficients: tuple[str, ...] = ()  # display labels of the fixed coefficients (``condition[B]:x``)
    slopes: tuple[SlopeTerm, ...] = ()  # random terms with slopes
    #: for each random intercept, the interactions whose margins the zero-sum layout moves into it,
    #: with the number of levels each margin averages over (see :func:`_sigma`)
    absorbed: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)

    @property
    def random(self) -> tuple[Term | SlopeTerm, ...]:
        return (*self.terms, *self.slopes)

    @property
    def sd_labels(self) -> list[str]:
        return [lb for t in self.random for lb in t.sd_labels]

    @property
    def pair_labels(self) -> list[str]:
        return [lb for s in self.slopes for lb in s.pair_labels]

    @property
    def prior_names(self) -> list[str]:
        """Names of the parameters that take priors (for ``Priors.check``/``describe``)."""
        names = ["intercept"] if self.formula.intercept else []
        names += [f"b_{x}" for x in self.fixed] + [f"sd_{n}" for t in self.random for n in t.sd_names]
        return names + [f"cor_{s.name}" for s in self.slopes if s.pairs]

    def coords(self) -> dict[str, Sequence[str]]:
        coords: dict[str, Sequence[str]] = {"term": self.sd_labels}
        for t in self.terms:
            for dim, levels in zip(t.dims, t.levels):
                coords[dim] = levels
        for s in self.slopes:
            coords[s.dim] = s.levels
            coords[s.coef_dim] = s.coefficients
        if self.pair_labels:
            coords["pair"] = self.pair_labels
        return coords


def design(formula: Formula, cells: CellTable) -> Design:
    """Lay the formula's terms out on the cells (coded columns, levels, indices); refuse what cannot be fitted."""
    df = cells.data
    if df["n_trials"].sum() == 0:
        raise ValueError("there are no parsed trials to fit: every trial is unparsed or excluded")
    absent = [v for v in formula.variables if v not in df.columns]
    if absent:
        raise DesignError(f"the formula uses {', '.join(map(repr, absent))} but the cells have no such column "
                          f"(they have {', '.join(cells.by)})")
    weights = df["n_trials"].to_numpy().astype(float)
    used = weights > 0
    labels, X = model_matrix(formula.fixed, formula.intercept, df, weights)
    check_identified(labels, X, formula.intercept, used)
    centers = weights @ X / weights.sum() if formula.intercept else np.zeros(X.shape[1])
    names = tuple(safe_name(lb) for lb in labels)
    if len(set(names)) < len(names):
        raise DesignError(f"two fixed coefficients get the same parameter name: {', '.join(labels)}")
    intercept_groups = {frozenset(r.factors) for r in formula.random if r.intercept_only}
    terms, slopes = [], []
    for r in formula.random:
        laid = _lay_out(r, df, intercept_groups) if r.intercept_only else _slope_term(r, df, weights)
        if all(len(lv) == 1 for lv in (laid.levels if r.intercept_only else [laid.levels])):
            # As lme4 refuses, so do we: one level has no variance to estimate; it is the intercept.
            warnings.warn(f"({r.label if not r.intercept_only else '1|' + r.label}) left out of the model: "
                          f"{r.group_label!r} has a single level in the data", stacklevel=2)
            continue
        if not r.intercept_only:
            _check_slopes_vary(laid, used)
        (terms if r.intercept_only else slopes).append(laid)
    return Design(formula, cells, names, centers, X - centers, tuple(terms), used, tuple(labels), tuple(slopes),
                  _absorbed(terms))


def _lay_out(term: RandomTerm, df: pl.DataFrame, intercept_groups: set[frozenset]) -> Term:
    """Levels along each factor when every sub-term is a random intercept too, else one flat axis."""
    subsets = [frozenset(c) for k in range(1, len(term.factors)) for c in itertools.combinations(term.factors, k)]
    if len(term.factors) > 1 and not all(s in intercept_groups for s in subsets):
        columns, dims = [_group_key(term, df)], (term.var_name,)
    else:
        columns, dims = [df[f] for f in term.factors], term.factors
    coded = [factor(col) for col in columns]
    return Term(term, dims, tuple(c.levels for c in coded), np.column_stack([c.codes for c in coded]))


def _group_key(term: RandomTerm, df: pl.DataFrame) -> pl.Series:
    return df.select(pl.concat_str([pl.col(f).cast(pl.String) for f in term.factors], separator=":")).to_series()


def _slope_term(term: RandomTerm, df: pl.DataFrame, weights: np.ndarray) -> SlopeTerm:
    """Coded slope columns of ``(1 + x|g)``, centred at their trial-weighted mean when the term has an intercept."""
    labels, Z = model_matrix(term.slopes, term.intercept, df, weights)
    if term.intercept:
        Z = np.column_stack([np.ones(df.height), Z - weights @ Z / weights.sum()])
        labels = ["Intercept", *labels]
    group = factor(_group_key(term, df))
    return SlopeTerm(term, group.levels, group.codes, tuple(labels), Z)


def _check_slopes_vary(s: SlopeTerm, used: np.ndarray) -> None:
    """A slope needs its column to vary within some level of the grouping, as lme4 would need too."""
    for k, label in enumerate(s.coefficients):
        if label == "Intercept":
            continue
        x, g = s.Z[used, k], s.index[used]
        high, low = np.full(len(s.levels), -np.inf), np.full(len(s.levels), np.inf)
        np.maximum.at(high, g, x)
        np.minimum.at(low, g, x)
        if not (high - low > 1e-12).any():
            raise DesignError(
                f"({s.term.label}): {label!r} does not vary within any level of {s.term.group_label!r}, so a slope "
                f"per level cannot be estimated; use {label!r} as a fixed effect or drop it from the random term")


def _absorbed(terms: Sequence[Term]) -> dict[str, tuple[tuple[str, int], ...]]:
    """For each random intercept T, the axis-laid interactions I ⊃ T and the levels I's T-margin averages over."""
    out: dict[str, list[tuple[str, int]]] = {t.name: [] for t in terms}
    for inter in terms:
        if len(inter.dims) < 2:
            continue
        sizes = dict(zip(inter.dims, (len(lv) for lv in inter.levels)))
        for t in terms:
            if t is not inter and len(t.dims) == len(t.term.factors) and set(t.dims) < set(inter.dims):
                out[t.name].append((inter.name, int(np.prod([n for d, n in sizes.items() if d not in t.dims]))))
    return {k: tuple(v) for k, v in out.items()}


def linear_predictor(d: Design, draws: dict[str, np.ndarray]) -> np.ndarray:
    """``eta`` of every cell (observed or not) for a batch of draws: shape (n_draws, n_cells).

    ``draws`` maps parameter names (``Intercept``, ``b_x``, ``r_term``) to arrays whose first
    axis is the draw.
    """
    n = next(iter(draws.values())).shape[0]
    eta = np.zeros((n, d.cells.data.height))
    if d.formula.intercept:
        eta += draws["Intercept"][:, None]
    if d.fixed:
        eta += np.stack([draws[f"b_{name}"] for name in d.fixed], axis=1) @ d.X.T
    for t in d.terms:  # a gather on the flattened levels: 3x faster than indexing every axis
        eta += np.take(draws[f"r_{t.name}"].reshape(n, -1), t.flat_index(), axis=1)
    for s in d.slopes:  # per distinct (level, Z row) pair, then one gather: no (draws, cells, p) temporary
        level, Z, pair = s.rows
        eta += np.take(np.einsum("nkp,kp->nk", draws[f"r_{s.name}"][:, level, :], Z), pair, axis=1)
    return eta


def predictor_layout(d: Design) -> tuple[np.ndarray, np.ndarray]:
    """:func:`linear_predictor` as a sparse product, ``eta[i, c] = sum_j theta[i, cols[c, j]] * vals[c, j]``
    with ``theta`` from :func:`stacked_parameters`: (cols, vals), each (n_cells, entries per cell).

    For kernels that compute ``eta`` cell by cell instead of materialising (draws, cells) arrays."""
    n_cells = d.cells.data.height
    cols, vals, offset = [np.zeros((n_cells, 0), np.int64)], [np.zeros((n_cells, 0))], 0
    if d.formula.intercept:
        cols.append(np.zeros((n_cells, 1), np.int64))
        vals.append(np.ones((n_cells, 1)))
        offset = 1
    cols.append(offset + np.tile(np.arange(len(d.fixed)), (n_cells, 1)))
    vals.append(d.X.reshape(n_cells, len(d.fixed)))
    offset += len(d.fixed)
    for t in d.terms:
        cols.append(offset + t.flat_index()[:, None])
        vals.append(np.ones((n_cells, 1)))
        offset += int(np.prod([len(lv) for lv in t.levels]))
    for s in d.slopes:
        width = len(s.coefficients)
        cols.append(offset + s.index[:, None] * width + np.arange(width))
        vals.append(s.Z)
        offset += len(s.levels) * width
    return (np.ascontiguousarray(np.hstack(cols), dtype=np.int64),
            np.ascontiguousarray(np.hstack(vals), dtype=np.float64))


def stacked_parameters(d: Design, draws: dict[str, np.ndarray]) -> np.ndarray:
    """The parameters :func:`predictor_layout` indexes, as one (n_draws, n_parameters) array:
    ``Intercept``, ``b_x`` in order, then every random term's array flattened (``draws`` as in
    :func:`linear_predictor`)."""
    n = next(iter(draws.values())).shape[0]
    parts = [np.zeros((n, 0))]
    if d.formula.intercept:
        parts.append(draws["Intercept"].reshape(n, 1))
    parts += [draws[f"b_{name}"].reshape(n, 1) for name in d.fixed]
    parts += [draws[f"r_{t.name}"].reshape(n, -1) for t in d.random]
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float64)
