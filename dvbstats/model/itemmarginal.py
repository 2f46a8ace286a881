"""Item effects integrated out of the log density, and drawn afterwards from their exact conditionals.

Given every other parameter, an item's cells depend on that item's effect ``r_i ~ N(0, sd^2)`` alone,
so the posterior of the rest is the density with each ``r_i`` integrated out, one dimension at a
time. nutpie then samples only the low-dimensional rest (intercept, slopes, the other terms, the item
SD in ``log sd``), free of the funnel between the item SD and thousands of item effects, and each
item's effect is drawn per draw from its conditional given that draw (:meth:`ItemMarginalModel.expand`).

What makes it cheap: an item's integral depends on its cells only through their *design cells* (the
linear predictor of everything but the item: :func:`dvbstats.model.fastlogp.two_level_layout`), their
trials, and its total of successes ``K`` (the binomial's ``k r`` sums over the cells). Items with the
same design cells and trials (a *profile*: every item of a complete models x items matrix, every
prompt of one condition) and the same ``K`` (a *class*) share one integral. Per profile, the
function ``S(r) = sum_c n_c softplus(o_c + r)`` is evaluated once on a uniform grid covering every
class's mass, and each class's integral of ``exp(K r - S(r) - r^2 / 2 sd^2)`` is the trapezoidal sum
on it: on a uniform grid the trapezoidal rule converges geometrically for such smooth, fast-decaying
integrands (step at most 0.5 / sqrt of the largest curvature, and 0.25: relative error below
exp(-2 pi^2 * 4), far below double precision's 1e-16; the grid stops where every class's log integrand
has fallen 40 below its maximum). Each class's sum, and its draws, run over its own window of the grid only
(where its log integrand is within 40 of its maximum, about +-9 posterior SDs: some 40 of the ~530 points at
1,000 models; :func:`_window`), the same tail rule as the grid's ends. The gradient is the integrals' derivative under the integral sign
(posterior expectations of the cells' derivatives), exact for the quadrature up to its error.

The item term is integrated out as the textbook ``N(0, sd^2)`` effect: when ``auto`` samples it
zero-sum (beside an intercept), the reported draws are centred (``r - mean(r)``, the mean moved into
the intercept), which is the zero-sum model's posterior with the intercept's prior widened by
``N(0, sd^2 / items)`` (0.0004 in variance at 3,000 items of SD 1 against the prior's 6.25).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numba
import numpy as np

from dvbstats.constants import ITEM_LEVELS
from dvbstats.model import fastlogp
from dvbstats.model.crossed import CLIP
from dvbstats.model.design import Design, Term
from dvbstats.model.plan import ITEM_MAX_TRIALS, term_parametrizations, trials_per_level
from dvbstats.model.fastlogp import (_LOG_SQRT_2PI, _linear_predictor, _log1p_unit, _prior_logp,
                                     _priors, _random_values, _scatter, _slopes_in, _slopes_out)
from dvbstats.model.priors import Priors

_TAIL = 40.0  # log integrand below every class's maximum where the grid stops
_MAX_STEP = 0.25  # the grid's step at most (softplus has poles at +-i pi: strip width pi)
_REFINE = 4  # sub-steps per grid step for the draws
_MAX_POINTS = 4096  # grid points per profile at the most (reached only at item SDs far beyond the data's)
#: The marginal density is sampled when the items' profiles hold at most 1/MIN_SHARING of the cells
#: (cells per profile cell): its gradient costs a few hundred evaluations per profile cell against one
#: per cell for the full density with about twice as many gradients per draw (measured in
#: docs/model.md, benchmarks/bench_marginal.py).
MIN_SHARING = 32


def item_term(d: Design, parametrizations: dict[str, str] | None = None) -> Term | None:
    """The random intercept to integrate out of ``d`` sampled in ``parametrizations`` (each random term's form;
    None: the forms of :func:`dvbstats.model.plan.term_parametrizations` for ``"auto"``), or None (the full
    density is sampled).

    The term is the item-level one (median trials per level under ``ITEM_MAX_TRIALS``) when exactly one is;
    when none is, the one with the most levels (the later in the formula on a tie): the items of a complete matrix of
    1,000 models x 10,000 items (1,000 trials each), where full HMC took 31 leapfrog steps per draw in 11,003
    dimensions and the marginal 15 in 1,003 (docs/model.md). It must be one-dimensional (not an interaction), have its own
    SD as prior scale, and no other term (a slope's grouping, an interaction) involve its variable. The density
    scales every random intercept by its own SD alone, so no design whose interaction margins are moved into a
    main term's prior scale in these forms (:func:`dvbstats.model.fastlogp.absorbed_margins`) has one. Whether
    ``fit`` integrates it out is then a matter of sharing (:attr:`ItemMarginalModel.worthwhile`)."""
    forms = term_parametrizations(d, "auto") if parametrizations is None else parametrizations
    if fastlogp.absorbed_margins(d, forms).any():
        return None
    n = d.cells.data["n_trials"].to_numpy()
    per_level = {t.name: trials_per_level(t, n) for t in d.terms}
    thin = [t for t in d.terms if np.median(per_level[t.name]) < ITEM_MAX_TRIALS]
    if thin:
        items = thin
    else:  # fewer than MIN_SHARING levels cannot share profiles enough (worthwhile): nothing to build
        most = max((len(v) for v in per_level.values()), default=0)
        items = [t for t in d.terms if len(per_level[t.name]) == most >= MIN_SHARING][-1:]
    if len(items) != 1 or len(items[0].dims) != 1 or d.absorbed.get(items[0].name):
        return None
    t = items[0]
    others = [*(u.dims for u in d.terms if u is not t), *((s.dim,) for s in d.slopes)]
    variable = t.name
    if any(variable in dim.split(":") or dim == t.dims[0] for dims in others for dim in dims):
        return None
    return t


# --------------------------------------------------------------------------- kernels


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _mode(K, o, n, sd):
    """Mode of ``f(r) = K r - sum n softplus(o + r) - r^2 / 2 sd^2`` (strictly concave) and ``-f''`` there:
    Newton's method, kept inside the bracket of the sign changes of ``f'`` seen so far."""
    r, lo, hi = 0.0, -np.inf, np.inf
    curv = 1.0 / sd**2
    for _ in range(200):
        d1, curv = K - r / sd**2, 1.0 / sd**2
        for c in range(len(o)):
            s = 1.0 / (1.0 + math.exp(-(o[c] + r)))
            d1 -= n[c] * s
            curv += n[c] * s * (1.0 - s)
        if d1 > 0:
            lo = r
        else:
            hi = r
        new = r + min(max(d1 / curv, -4.0), 4.0)
        if (new <= lo or new >= hi) and np.isfinite(lo) and np.isfinite(hi):
            new = 0.5 * (lo + hi)
        if abs(new - r) <= 1e-9 * (1.0 + abs(r)):
            return new, curv
        r = new
    return r, curv


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _f(K, r, o, n, sd):
    v = K * r - 0.5 * (r / sd) ** 2
    for c in range(len(o)):
        e = o[c] + r
        v -= n[c] * (max(e, 0.0) + math.log1p(math.exp(-abs(e))))
    return v


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _edge(K, o, n, sd, side):
    """A point beyond which ``f`` (of total ``K``) lies ``_TAIL`` below its maximum, on ``side`` (-1, +1)."""
    m, curv = _mode(K, o, n, sd)
    s = 1.0 / math.sqrt(curv)
    top = _f(K, m, o, n, sd)
    r = m + side * 9.0 * s
    for _ in range(200):
        if _f(K, r, o, n, sd) < top - _TAIL:
            break
        r += side * 3.0 * s
    return r


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _exp_factors(v):
    """``exp(v)`` and ``exp(-v)``, ``v`` clipped at +-``crossed.CLIP``."""
    v = min(max(v, -CLIP), CLIP)
    return math.exp(v), math.exp(-v)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _cell_factors(o):
    """``exp(o)`` and ``exp(-o)`` of the cells, and whether any is beyond the clip."""
    po, mo = np.empty(len(o)), np.empty(len(o))
    for c in range(len(o)):
        po[c], mo[c] = _exp_factors(o[c])
    return po, mo, np.max(np.abs(o)) > CLIP if len(o) else False


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _exp_minus_abs_row(o, r, po, mo, wide, t):
    """``t[c] = exp(-|o[c] + r|)``: the smaller of the products of ``o``'s and ``r``'s exponential factors (two
    products per cell and grid point, no ``exp``), or exactly when an effect is beyond the clip (never a
    posterior's)."""
    if wide or abs(r) > CLIP:
        for c in range(len(o)):
            t[c] = math.exp(-abs(o[c] + r))
    else:
        pr, mr = _exp_factors(r)
        for c in range(len(o)):
            t[c] = min(po[c] * pr, mo[c] * mr)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _grid(o, n, K_lo, K_hi, sd):
    """The profile's grid (start, step, points) and on it ``S(r)`` and ``S'(r)``. ``f_K - f_K_lo = (K - K_lo) r``
    grows with ``r``, so every class's mass lies right of the lowest class's left edge, and likewise left of
    the highest class's right edge. Nothing per cell and grid point is stored (:func:`_exp_minus_abs_row`)."""
    total = 0.0
    for c in range(len(n)):
        total += n[c]
    h = min(_MAX_STEP, 0.5 / math.sqrt(total / 4.0 + 1.0 / sd**2))
    start = _edge(K_lo, o, n, sd, -1.0)
    width = _edge(K_hi, o, n, sd, 1.0) - start
    if not (math.isfinite(start) and math.isfinite(width) and width > 0.0 and h > 0.0):
        # an item SD of exp(+-460) or a non-finite predictor (warm-up far out): no grid; the density is -inf there
        return start, h, 0, np.zeros(0), np.zeros(0)
    if width / h > _MAX_POINTS:  # an item SD far in the prior's tail (early warm-up): a coarser grid, bounded memory
        h = width / _MAX_POINTS
    G = int(width / h) + 2
    po, mo, wide = _cell_factors(o)
    S, dS, t = np.zeros(G), np.zeros(G), np.empty(len(o))
    for g in range(G):
        r = start + g * h
        _exp_minus_abs_row(o, r, po, mo, wide, t)
        acc, dacc = 0.0, 0.0
        for c in range(len(o)):
            e = o[c] + r
            acc += n[c] * (max(e, 0.0) + _log1p_unit(t[c]))
            dacc += n[c] * ((1.0 if e > 0 else t[c]) / (1.0 + t[c]))
        S[g], dS[g] = acc, dacc
    return start, h, G, S, dS


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _weighted_sigmoids(o, start, h, W, g0, g1, out):
    """``out[c] = sum_g W[g] sigmoid(o[c] + r_g)`` over the grid points ``g0 <= g < g1``."""
    po, mo, wide = _cell_factors(o)
    t = np.empty(len(o))
    out[:] = 0.0
    for g in range(g0, g1):
        if W[g] == 0.0:
            continue
        r = start + g * h
        _exp_minus_abs_row(o, r, po, mo, wide, t)
        for c in range(len(o)):
            out[c] += W[g] * (1.0 if o[c] + r > 0 else t[c]) / (1.0 + t[c])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _window(K, r, base):
    """The grid points ``g0 <= g < g1`` where class ``K``'s log integrand ``K r + base`` lies within ``_TAIL`` of
    its maximum (at least two), and that maximum: the mode of the concave sequence by bisection, then outward."""
    lo, hi = 0, len(r) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if K * r[mid + 1] + base[mid + 1] > K * r[mid] + base[mid]:
            lo = mid + 1
        else:
            hi = mid
    top = K * r[lo] + base[lo]
    g0, g1 = lo, lo + 1
    while g0 > 0 and K * r[g0 - 1] + base[g0 - 1] >= top - _TAIL:
        g0 -= 1
    while g1 < len(r) and K * r[g1] + base[g1] >= top - _TAIL:
        g1 += 1
    if g1 - g0 < 2:
        g0, g1 = max(min(g0, len(r) - 2), 0), min(max(g0, 0) + 2, len(r))
    return g0, g1, top


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _item_loglik(eta, k_design, prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_count, sd, g_design):
    """Sum over items of the log of ``int prod_c Bin(k_c | n_c, logit^-1(eta_c + r)) N(r | 0, sd^2) dr``
    (without the binomial coefficients), with ``eta`` per design cell; its derivatives in ``eta`` into
    ``g_design`` and in ``sd`` returned. ``prof_*``: each profile's design cells and trials (CSR);
    ``cls_*``: each profile's classes (CSR, ascending ``K``) with their totals and item counts. Each class's
    trapezoidal sum runs over its own window of the profile's grid (:func:`_window`): the points it leaves
    out hold less than ``exp(-_TAIL)`` of its integrand each, and fall off geometrically beyond."""
    lp = 0.0
    for d in range(len(eta)):
        lp += k_design[d] * eta[d]
        g_design[d] = k_design[d]
    g_sd = 0.0
    for p in range(len(prof_ptr) - 1):
        c0, c1, j0, j1 = prof_ptr[p], prof_ptr[p + 1], cls_ptr[p], cls_ptr[p + 1]
        cells = prof_cell[c0:c1]
        o, n = eta[cells], prof_n[c0:c1]
        start, h, G, S, _ = _grid(o, n, cls_K[j0], cls_K[j1 - 1], sd)
        if G == 0:
            return -np.inf, 0.0
        r = start + h * np.arange(G)
        base = -0.5 * (r / sd) ** 2 - S
        W, w = np.zeros(G), np.empty(G)
        used0, used1 = G, 0
        for j in range(j0, j1):
            K = cls_K[j]
            g0, g1, top = _window(K, r, base)
            used0, used1 = min(used0, g0), max(used1, g1)
            Z = 0.0
            for g in range(g0, g1):
                w[g] = math.exp(K * r[g] + base[g] - top)
                Z += w[g]
            lp += cls_count[j] * (top + math.log(Z * h / sd) - _LOG_SQRT_2PI)
            scale, m2 = cls_count[j] / Z, 0.0
            for g in range(g0, g1):
                W[g] += scale * w[g]
                m2 += w[g] * r[g] * r[g]
            g_sd += scale * m2 / sd**3 - cls_count[j] / sd
        acc = np.empty(c1 - c0)
        _weighted_sigmoids(o, start, h, W, used0, used1, acc)
        for c in range(c1 - c0):
            g_design[cells[c]] -= n[c] * acc[c]
    return lp, g_sd


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _draw_items(eta, prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_item_ptr, cls_items, sd, u, out):
    """Each item's effect drawn given ``eta`` and ``sd``, by inverse CDF (``u`` uniform per item): the log
    integrand is interpolated by cubic Hermite polynomials (values and derivatives on the grid) at
    ``_REFINE`` points per step and sampled as piecewise exponential between them (log density within
    ``C (h / 4)^2 / 8 <= 1 / 512`` of the interpolant, C the curvature bound the step comes from)."""
    for p in range(len(prof_ptr) - 1):
        c0, c1, j0, j1 = prof_ptr[p], prof_ptr[p + 1], cls_ptr[p], cls_ptr[p + 1]
        o, n = eta[prof_cell[c0:c1]], prof_n[c0:c1]
        start, h, G, S, dS = _grid(o, n, cls_K[j0], cls_K[j1 - 1], sd)
        if G == 0:  # not a posterior draw (its density is -inf): no item effects either
            for j in range(j0, j1):
                for i in range(cls_item_ptr[j], cls_item_ptr[j + 1]):
                    out[cls_items[i]] = np.nan
            continue
        r_all = start + h * np.arange(G)
        base_all = -0.5 * (r_all / sd) ** 2 - S
        hf = h / _REFINE
        for j in range(j0, j1):
            g0, g1, _ = _window(cls_K[j], r_all, base_all)
            r, a = r_all[g0:g1], cls_K[j] * r_all[g0:g1] + base_all[g0:g1]
            da = cls_K[j] - r / sd**2 - dS[g0:g1]
            F = (g1 - g0 - 1) * _REFINE + 1
            y = np.empty(F)
            for g in range(g1 - g0 - 1):
                for q in range(_REFINE):
                    t = q / _REFINE
                    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
                    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
                    y[g * _REFINE + q] = h00 * a[g] + h10 * h * da[g] + h01 * a[g + 1] + h11 * h * da[g + 1]
            y[F - 1] = a[-1]
            y -= np.max(y)
            cum = np.empty(F)
            cum[0] = 0.0
            for f in range(F - 1):
                dy = y[f + 1] - y[f]
                seg = hf * math.exp(y[f]) * (math.expm1(dy) / dy if abs(dy) > 1e-12 else 1.0)
                cum[f + 1] = cum[f] + seg
            for i in range(cls_item_ptr[j], cls_item_ptr[j + 1]):
                target = u[cls_items[i]] * cum[F - 1]
                f = min(max(np.searchsorted(cum, target) - 1, 0), F - 2)
                dy = y[f + 1] - y[f]
                frac = (target - cum[f]) / (cum[f + 1] - cum[f]) if cum[f + 1] > cum[f] else 0.5
                t = math.log1p(frac * math.expm1(dy)) / dy if abs(dy) > 1e-12 else frac
                out[cls_items[i]] = r[0] + (f + t) * hf


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _logp_items(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par, intercept,
                X, idx, log_binom, r_virtual, g_virtual, k_design, prof_ptr, prof_cell, prof_n, cls_ptr, cls_K,
                cls_count, item_code, item_par):
    """Log posterior density of the other parameters, the item effects integrated out, and its gradient;
    ``x`` is the full model's layout without the item term, then the item term's log SD. ``X``, ``idx``:
    the design cells."""
    grad = np.zeros(len(x))
    i0 = 1 if intercept else 0
    alpha = x[0] if intercept else 0.0
    b = x[i0:len(s_code)].copy()
    r, z = _random_values(x, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, r_virtual)
    eta = _linear_predictor(alpha, X, b, idx, r)
    g_design = np.empty(len(eta))
    log_sd = x[len(x) - 1]
    sd = math.exp(log_sd)
    lp, g_sd = _item_loglik(eta, k_design, prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_count, sd, g_design)
    grad_b, grad_r = np.zeros(len(b)), np.zeros(len(r))
    g_alpha = _scatter(g_design, X, idx, grad_b, grad_r)
    lp += log_binom + _priors(x, grad, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes,
                              sd_code, sd_par, i0, g_alpha, grad_b, grad_r, z, g_virtual)
    p, dp = _prior_logp(item_code, item_par, sd)
    grad[len(x) - 1] = (dp + g_sd) * sd + 1.0
    return lp + p + log_sd, grad


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _logp_items_slopes(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par,
                       intercept, X, idx, log_binom, k_design, prof_ptr, prof_cell, prof_n, cls_ptr, cls_K,
                       cls_count, item_code, item_par, sl_int, sl_eta, sl_code, sl_par, sl_Z, sl_group):
    """:func:`_logp_items` with random slopes (as :func:`dvbstats.model.fastlogp._logp_slopes`)."""
    r_virtual, g_virtual = _slopes_in(x, sl_int, sl_eta, sl_Z, sl_group), np.empty(len(sl_group))
    lp, grad = _logp_items(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par,
                           intercept, X, idx, log_binom, r_virtual, g_virtual, k_design, prof_ptr, prof_cell,
                           prof_n, cls_ptr, cls_K, cls_count, item_code, item_par)
    return lp + _slopes_out(x, sl_int, sl_eta, sl_code, sl_par, sl_Z, sl_group, g_virtual, grad), grad


# --------------------------------------------------------------------------- the model


def _design_cells(X: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of ``X`` and ``idx`` (design cells): their ``X``, ``idx`` and each row's design cell."""
    codes = [np.unique(col, return_inverse=True)[1].ravel() for col in (*X.T, *idx.T)]
    key = np.zeros(len(X), dtype=np.int64)
    for code in codes:  # mixed radix; by construction far below 2^63 for any table that fits in memory
        key = key * (int(code.max(initial=0)) + 1) + code
    _, first, design_of = np.unique(key, return_index=True, return_inverse=True)
    return np.ascontiguousarray(X[first]), np.ascontiguousarray(idx[first]), design_of.ravel()


def item_classes(item: np.ndarray, design_of: np.ndarray, k: np.ndarray, n: np.ndarray, n_items: int):
    """Profiles (each item's design cells and trials) and classes (profile and total ``K``) of the items.

    Returns ``prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_count, cls_item_ptr, cls_items`` (CSR
    arrays: profiles' cells, profiles' classes in ascending ``K``, classes' items). Cells without trials
    are left out (no likelihood); items without cells share the empty profile (their conditional is the
    prior)."""
    keep = n > 0
    item, design_of, k, n = item[keep], design_of[keep], k[keep], n[keep]
    order = np.lexsort((design_of, item))
    item_s, cell_s, n_s = item[order], design_of[order], n[order]
    bounds = np.searchsorted(item_s, np.arange(n_items + 1))
    K = np.bincount(item, weights=k, minlength=n_items)
    profiles: dict[bytes, int] = {}
    prof_of = np.empty(n_items, dtype=np.int64)
    for i in range(n_items):
        a, b = bounds[i], bounds[i + 1]
        key = cell_s[a:b].tobytes() + n_s[a:b].tobytes()
        prof_of[i] = profiles.setdefault(key, len(profiles))
    first_item = np.full(len(profiles), -1, dtype=np.int64)
    for i in range(n_items - 1, -1, -1):
        first_item[prof_of[i]] = i
    prof_len = bounds[first_item + 1] - bounds[first_item]
    prof_ptr = np.concatenate([[0], np.cumsum(prof_len)]).astype(np.int64)
    take = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in first_item]) if len(first_item) else []
    prof_cell = np.asarray(cell_s[take], dtype=np.int64)
    prof_n = np.asarray(n_s[take], dtype=np.float64)
    items = np.lexsort((K, prof_of))  # by profile, then K
    keys = np.column_stack([prof_of[items], K[items]])
    new = np.ones(n_items, dtype=bool)
    new[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    cls_start = np.flatnonzero(new)
    cls_item_ptr = np.append(cls_start, n_items).astype(np.int64)
    cls_prof = prof_of[items[cls_start]]
    cls_K = K[items[cls_start]].astype(np.float64)
    cls_count = np.diff(cls_item_ptr).astype(np.float64)
    cls_ptr = np.searchsorted(cls_prof, np.arange(len(profiles) + 1)).astype(np.int64)
    return prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_count, cls_item_ptr, items.astype(np.int64)


class ItemMarginalModel:
    """The posterior of a design with one item term integrated out (:func:`item_term`): ``ndim``,
    ``logp_and_grad``, ``expand``, ``variables`` as :class:`dvbstats.model.fastlogp.CellModel`, whose
    layout it keeps for every other parameter (the item term's log SD last)."""

    def __init__(self, d: Design, priors: Priors, parametrizations: dict[str, str], item: Term):
        priors.check(d.prior_names)
        sd_name = f"sd_{item.name}"
        rest = replace(d, terms=tuple(t for t in d.terms if t is not item))
        base_priors = replace(priors, overrides={k: v for k, v in priors.overrides.items() if k != sd_name})
        base = fastlogp.CellModel(rest, base_priors, parametrizations, two_level=False)
        self.design, self.item, self.base = d, item, base
        self.centred = parametrizations[item.name].startswith("zerosum") and d.formula.intercept
        self.ndim = base.ndim + 1
        X, idx, design_of = _design_cells(base.X, base.idx)
        k_design = np.bincount(design_of, weights=base.k, minlength=len(X))
        levels = item.index[d.observed][:, 0]
        self.n_items = len(item.levels[0])
        classes = item_classes(levels, design_of, base.k, base.n, self.n_items)
        self._draw_arrays = classes
        item_code, item_par = fastlogp._prior_code(priors.get(sd_name))
        args = (base.s_code, base.s_par, base.t_start, base.t_end, base.t_offset, base.t_flags, base.t_shape,
                base.t_naxes, base.sd_code, base.sd_par, base.intercept, X, np.ascontiguousarray(idx), base.log_binom)
        if len(base.sl_int):
            self._kernel, self._args = _logp_items_slopes, (*args, k_design, *classes[:6], item_code, item_par,
                                                            base.sl_int, base.sl_eta, base.sl_code, base.sl_par,
                                                            base.sl_Z, base.sl_group)
        else:
            self._kernel, self._args = _logp_items, (*args, fastlogp._NO_VIRTUAL, fastlogp._NO_VIRTUAL, k_design,
                                                     *classes[:6], item_code, item_par)
        self.X, self.idx = X, np.ascontiguousarray(idx)
        base.X = base.idx = base.k = base.n = base._args = None  # the cells live on in the classes only
        self.n_profiles, self.n_classes = len(classes[0]) - 1, len(classes[4])
        self.n_cells, self.profile_cells = int(np.sum(d.observed)), len(classes[1])

    @property
    def worthwhile(self) -> bool:
        """Whether the items share their profiles enough for this density to be the cheaper one (MIN_SHARING)."""
        return self.profile_cells * MIN_SHARING <= self.n_cells

    def logp_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return self._kernel(x, *self._args)

    def _eta(self, x: np.ndarray) -> np.ndarray:
        """The linear predictor of every design cell at ``x``."""
        b = self.base
        i0 = int(b.intercept)
        r_virtual = (_slopes_in(x, b.sl_int, b.sl_eta, b.sl_Z, b.sl_group) if len(b.sl_int)
                     else fastlogp._NO_VIRTUAL)
        r = _random_values(x, b.t_start, b.t_end, b.t_offset, b.t_flags, b.t_shape, b.t_naxes, r_virtual)[0]
        return _linear_predictor(x[0] if i0 else 0.0, self.X, x[i0:len(b.s_code)].copy(), self.idx, r)

    def draw_items(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The item effects drawn from their conditional at ``x`` (``u``: a uniform per item)."""
        prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, _, cls_item_ptr, cls_items = self._draw_arrays
        out = np.empty(self.n_items)
        _draw_items(self._eta(x), prof_ptr, prof_cell, prof_n, cls_ptr, cls_K, cls_item_ptr, cls_items,
                    math.exp(x[-1]), u, out)
        return out

    def expander(self, seed1: int, seed2: int, chain: int):
        """The ``expand`` of one chain. Its item draws are seeded by the draw's point ``x`` and the number of
        draws so far: nutpie 0.16 passes seeds 0, 0, 0 to every chain, and one generator per call would
        give every chain the same uniforms (the chains' item draws then correlated 0.98, and their ESS
        overstated); this is independent across chains and reproducible."""
        count = itertools.count()

        def expand(x: np.ndarray) -> dict[str, np.ndarray]:
            words = np.ascontiguousarray(x, dtype=np.float64).view(np.uint32)
            return self.expand(x, np.random.default_rng([seed1, seed2, chain, next(count), *words]))

        return expand

    def expand(self, x: np.ndarray, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """The full model's draws: the other parameters' (``CellModel.expand``), the item SD and the item
        effects drawn from their conditional (centred into the intercept when the term is zero-sum)."""
        rng = rng or np.random.default_rng(0)
        out = self.base.expand(x[:-1])
        sd = math.exp(x[-1])
        r = self.draw_items(x, rng.random(self.n_items))
        if self.centred:
            mean = float(np.mean(r))
            r -= mean
            out["Intercept"] = np.asarray(out["Intercept"] + mean, dtype=np.float64)
        name = self.item.name
        out[f"sd_{name}"] = np.asarray(sd, dtype=np.float64)
        out[f"r_{name}"] = r.astype(np.float32) if r.size > ITEM_LEVELS else r
        out["sd"] = np.asarray([out[f"sd_{n}"] for t in self.design.random for n in t.sd_names], dtype=np.float64)
        return {key: out[key] for key in self.variables()[0]}  # nutpie takes the draws in the declared order

    def variables(self) -> tuple[list[str], list[tuple[int, ...]], dict[str, tuple[str, ...]]]:
        """Names, shapes and dims of the expanded draws (the full model's)."""
        names, shapes, dims = self.base.variables()
        names, shapes = list(names), list(shapes)
        if "sd" in names:
            shapes[names.index("sd")] = (len(self.design.sd_labels),)
        else:
            names.append("sd"), shapes.append((len(self.design.sd_labels),))
            dims["sd"] = ("term",)
        name = self.item.name
        names += [f"sd_{name}", f"r_{name}"]
        shapes += [(), (self.n_items,)]
        dims[f"r_{name}"] = self.item.dims
        return names, shapes, dims

    def describe(self) -> dict:
        """What the manifest records of the path."""
        return {"term": self.item.name, "items": self.n_items, "profiles": self.n_profiles, "classes": self.n_classes,
                "profile_cells": self.profile_cells, "cells": self.n_cells, "design_cells": len(self.X),
                "centred_into_intercept": bool(self.centred)}
