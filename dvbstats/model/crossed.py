"""The log density of a complete crossed design without per-cell arrays: every model answers every item.

For the binary benchmark's Rasch default ``outcome ~ 1 + (1|model) + (1|item)`` on a complete matrix
(each model x item cell observed, the same number of trials ``n`` in every cell) the binomial-logit
likelihood is

    sum_c k_c eta_c - n sum_{m, i} softplus(alpha + a_m + b_i),   eta_c = alpha + a_m + b_i.

Its data term is linear in the parameters, so it needs only the successes per level (``K_m``, ``K_i``)
and in all: the sufficient statistics. The log-partition term does not depend on the outcomes at all,
so it is computed by an outer loop over the rows (the factor with fewer levels) and an inner loop over
the columns, from the two vectors of effects alone; its derivative adds ``-n sigmoid`` into one
accumulator per row and one per column. Nothing per cell is read from memory: at 1,000 models x 10,000
items the general cell loop (:mod:`dvbstats.model.fastlogp`) streams 10 M cells' indices, counts and
linear predictors per gradient, this loop two vectors of 1,000 and 10,000 numbers
(``benchmarks/bench_big.py --gradients``).

The posterior is exactly :class:`dvbstats.model.fastlogp.CellModel`'s, in its coordinates (its layout,
transforms and priors are reused: :func:`dvbstats.model.fastlogp._priors`); only the likelihood's
arithmetic differs (tests/test_crossed.py checks both against the PyMC model).
"""

from __future__ import annotations

from dataclasses import replace

import numba
import numpy as np
from scipy.special import gammaln

from dvbstats.model import fastlogp
from dvbstats.model.design import Design
from dvbstats.model.fastlogp import _FAST, _priors, _random_values
from dvbstats.model.priors import Priors


def crossed_terms(d: Design) -> tuple[int, int] | None:
    """The positions (rows, columns) in ``d.terms`` of the two crossed factors, the one with fewer levels
    first, or None when the design is not a complete crossed two-factor design: an intercept, no fixed
    effect or random slope, exactly two one-dimensional random intercepts whose own SDs are their prior
    scales, every pair of their levels observed exactly once, and the same trials in every cell."""
    if (not d.formula.intercept or d.fixed or d.slopes or len(d.terms) != 2
            or any(len(t.dims) != 1 or d.absorbed.get(t.name) for t in d.terms)):
        return None
    obs = d.observed
    n = d.cells.data["n_trials"].to_numpy()[obs]
    sizes = [len(t.levels[0]) for t in d.terms]
    if len(n) != sizes[0] * sizes[1] or len(n) == 0 or np.any(n != n[0]) or n[0] <= 0:
        return None
    code = d.terms[0].index[obs, 0].astype(np.int64) * sizes[1] + d.terms[1].index[obs, 0]
    if np.any(np.bincount(code, minlength=len(n)) != 1):
        return None
    return (0, 1) if sizes[0] <= sizes[1] else (1, 0)


#: Effects are clipped to this before ``exp`` so that a product of two exponentials cannot overflow.
CLIP = 300.0


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST)
def _partition(alpha, a, b, g_a, g_b):
    """``sum_{m, i} softplus(alpha + a_m + b_i)``; the sums of ``sigmoid`` per row into ``g_a`` and per column
    into ``g_b`` (overwritten).

    ``exp(-|e|)`` of a cell is ``min(exp(c) exp(b_i), exp(-c) exp(-b_i))`` with ``c = alpha + a_m``: the
    exponentials are taken once per row and column, a cell costs two products, one division (shared by
    ``sigmoid`` and ``log1p``'s ``s = t / (2 + t)``) and the series of ``log1p = 2 atanh(s)``
    (:func:`fastlogp._log1p_unit`'s). Effects beyond +-``CLIP`` (never a posterior's) fall back to
    the exact ``exp(-|e|)`` of the cell."""
    nb = len(b)
    eb, emb = np.empty(nb), np.empty(nb)
    clipped = False
    for i in range(nb):
        clipped |= abs(b[i]) > CLIP
        eb[i], emb[i] = np.exp(min(max(b[i], -CLIP), CLIP)), np.exp(-min(max(b[i], -CLIP), CLIP))
    g_b[:] = 0.0
    total = 0.0
    exact = np.empty(nb)
    for m in range(len(a)):
        c = alpha + a[m]
        if clipped or abs(c) > CLIP:  # the row's exp(-|e|) itself, read through the same products
            for i in range(nb):
                exact[i] = np.exp(-abs(c + b[i]))
            u, v, p, q = exact, exact, 1.0, 1.0
        else:
            u, v, p, q = eb, emb, np.exp(c), np.exp(-c)
        row, g_row = 0.0, 0.0
        for i in range(nb):
            e = c + b[i]
            t = min(p * u[i], q * v[i])
            d = 1.0 / ((1.0 + t) * (2.0 + t))
            s = t * (1.0 + t) * d
            s2 = s * s
            log1p = 2 * s * (1 + s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * (1 / 9 + s2 * (1 / 11 + s2 * (
                1 / 13 + s2 * (1 / 15 + s2 * (1 / 17 + s2 * (1 / 19 + s2 * (1 / 21 + s2 * (1 / 23 + s2 * (
                    1 / 25 + s2 * (1 / 27 + s2 * (1 / 29 + s2 * (1 / 31 + s2 / 33))))))))))))))))
            sg = (1.0 if e > 0 else t) * (2.0 + t) * d
            row += max(e, 0.0) + log1p
            g_row += sg
            g_b[i] += sg
        total += row
        g_a[m] = g_row
    return total


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _logp_crossed(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par,
                  rows, cols, K_rows, K_cols, n, log_binom, none):
    """Log posterior density and gradient at ``x`` (the layout of :class:`fastlogp.CellModel`) of the complete
    crossed design: terms ``rows`` and ``cols`` of ``t_*``, successes per level ``K_rows``, ``K_cols``, ``n``
    trials per cell; ``none``: an empty array (no slopes, no fixed effects; passed in, not made here: a
    kernel's own empty array as the argument of ``_random_values`` broke that kernel's later calls from Python,
    "'descr' is NULL"). As :func:`fastlogp._logp`, with the cell loop replaced by :func:`_partition`."""
    grad = np.zeros(len(x))
    alpha = x[0]
    r, z = _random_values(x, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, none)
    a = r[t_offset[rows]:t_offset[rows + 1]]
    b = r[t_offset[cols]:t_offset[cols + 1]]
    grad_r = np.empty(len(r))
    g_a, g_b = grad_r[t_offset[rows]:t_offset[rows + 1]], grad_r[t_offset[cols]:t_offset[cols + 1]]
    partition = _partition(alpha, a, b, g_a, g_b)
    K = np.sum(K_rows)
    lp = K * alpha + np.sum(K_rows * a) + np.sum(K_cols * b) - n * partition
    g_alpha = K - n * np.sum(g_a)
    g_a[:] = K_rows - n * g_a
    g_b[:] = K_cols - n * g_b
    lp += log_binom + _priors(x, grad, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes,
                              sd_code, sd_par, 1, g_alpha, none, grad_r, z, none)
    return lp, grad


class CrossedModel:
    """The posterior of a complete crossed design (:func:`crossed_terms`): ``ndim``, ``logp_and_grad``,
    ``expand`` and ``variables`` of :class:`fastlogp.CellModel`, whose parameter layout it is (the layout is
    built on one cell, so no per-cell array is made), with the likelihood of :func:`_logp_crossed`."""

    def __init__(self, d: Design, priors: Priors, parametrizations: dict[str, str]):
        rows, cols = crossed_terms(d)
        obs = d.observed
        one = np.zeros(len(obs), dtype=bool)
        one[np.flatnonzero(obs)[0]] = True
        self.base = fastlogp.CellModel(replace(d, observed=one), priors, parametrizations, two_level=False)
        self.base.X = self.base.idx = self.base.k = self.base.n = self.base._args = None
        self.design, self.ndim = d, self.base.ndim
        data = d.cells.data.filter(obs)
        k = data["n_deep"].to_numpy().astype(np.float64)
        n = float(data["n_trials"][0])
        sizes = [len(t.levels[0]) for t in d.terms]
        K = [np.bincount(t.index[obs, 0], weights=k, minlength=size) for t, size in zip(d.terms, sizes)]
        counts = np.bincount(k.astype(np.int64), minlength=int(n) + 1)  # log C(n, k) per value of k
        values = np.arange(len(counts), dtype=np.float64)
        log_binom = float(np.sum(counts * (gammaln(n + 1) - gammaln(values + 1) - gammaln(n - values + 1))))
        b = self.base
        self._args = (b.s_code, b.s_par, b.t_start, b.t_end, b.t_offset, b.t_flags, b.t_shape, b.t_naxes,
                      b.sd_code, b.sd_par, rows, cols, K[rows], K[cols], n, log_binom, fastlogp._NO_VIRTUAL)

    def logp_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return _logp_crossed(x, *self._args)

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.base.expand(x)

    def variables(self):
        return self.base.variables()


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _exp_minus(x):
    """``exp(-x)`` with ``x`` clipped at +-``CLIP`` (where a sigmoid is 0 or 1 to double precision)."""
    return np.exp(-min(max(np.float64(x), -CLIP), CLIP))


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST)
def sigmoid_sums(alpha, a, b, row_sums, col_sums):
    """For each draw ``d``: ``row_sums[d, m]`` = the sum over columns ``i`` of ``sigmoid(alpha[d] + a[d, m] +
    b[d, i])``, ``col_sums[d, i]`` the sum over rows (the design-averaged rates of a complete crossed design,
    :func:`dvbstats.results.estimands.design_averages`): ``1 / (1 + exp(-c) exp(-b_i))`` per cell, one
    product and one division, from exponentials taken once per row and column."""
    col_sums[:] = 0.0
    for d in range(len(alpha)):
        emb = np.array([_exp_minus(v) for v in b[d]])
        for m in range(a.shape[1]):
            q, s = _exp_minus(alpha[d] + a[d, m]), 0.0
            for i in range(len(emb)):
                sg = 1.0 / (1.0 + q * emb[i])
                s += sg
                col_sums[d, i] += sg
            row_sums[d, m] = s


@numba.njit(nogil=True, cache=True, error_model="numpy")
def replicated_sums(alpha, a, b, n, seed, row_sums, col_sums):
    """Replicated counts ``Binomial(n, sigmoid(alpha[d] + a[d, m] + b[d, i]))`` of every cell for each draw ``d``,
    summed per row into ``row_sums[d, m]`` and per column into ``col_sums[d, i]`` (the posterior predictive
    check of a complete crossed design, :func:`dvbstats.results.tables.ppc_table`); seeded. One trial per cell
    is a uniform against the sigmoid."""
    np.random.seed(seed)
    col_sums[:] = 0.0
    for d in range(len(alpha)):
        emb = np.array([_exp_minus(v) for v in b[d]])
        for m in range(a.shape[1]):
            q, s = _exp_minus(alpha[d] + a[d, m]), 0
            for i in range(len(emb)):
                p = 1.0 / (1.0 + q * emb[i])
                y = (1 if np.random.random() < p else 0) if n == 1 else np.random.binomial(n, p)
                s += y
                col_sums[d, i] += y
            row_sums[d, m] = s
