"""A hand-written log density and gradient of the cell model, sampled with nutpie without PyMC.

The posterior is the one :func:`dvbstats.model.pymcmodel.pymc_model` defines, in the same unconstrained
coordinates (same parameter order, the same ``ZeroSumTransform``, log-transformed SDs, the same
priors including overrides): only the arithmetic differs. Per gradient evaluation

* the random intercepts of each term are expanded from their free coordinates (the zero-sum
  transform is an isometry: O(levels) per axis);
* one Numba loop over the observed cells (compiled once and cached on disk, whatever the
  formula) computes ``eta_c``, the binomial log likelihood ``k eta - n softplus(eta)`` and its
  derivative ``k - n sigmoid(eta)``, scatter-added onto the intercept, the slopes and every
  random intercept;
* the gradient goes back through the transforms, and the priors add their own terms.

Random slopes ``(1 + x|g)`` (correlated rows with the LKJ prior on a Cholesky factor from canonical
partial correlations, or uncorrelated; centred, non-centred or mixed columns; zero-sum or not) enter
the same loop as one more random intercept over the distinct (level, slope-column row) pairs, so
a slope term costs the loop nothing per cell.

It supports what :class:`dvbstats.model.design.Design` holds today (intercept, fixed effects, random
intercepts incl. interactions and the interaction margins moved into a main term's prior scale,
random slopes, every parametrisation); :func:`supports` says so, and
:func:`dvbstats.results.fitted.fit` falls back to the PyMC model otherwise. Why: the PyMC/nutpie
path spends 10-30 s compiling the model graph with Numba on every run and about 44 ns per cell
per gradient; this path compiles nothing per model (measured in ``benchmarks/bench_speed.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numpy as np
import nutpie.compiled_pyfunc
from numba import types
from numba.extending import intrinsic
from scipy.special import gammaln

from dvbstats.constants import ITEM_LEVELS
from dvbstats.model import threadstate
from dvbstats.model.design import Design
from dvbstats.model.plan import centred_columns
from dvbstats.model.priors import Prior, Priors

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def supports(d: Design) -> bool:
    """True when the design has only constructs this module implements: fixed coefficients, random
    slopes, and random intercepts laid out on integer level indices (with interaction margins moved into
    a main term's prior scale or not: :func:`absorbed_margins`)."""
    return all(t.index.ndim == 2 and t.index.shape[1] == len(t.dims) for t in d.terms)


# --------------------------------------------------------------------------- priors

#: Prior families by code, with their parameters in the order of ``priors._DISTS``.
_PRIOR_CODES = {"normal": 0, "student_t": 1, "logistic": 2, "halfnormal": 3, "halfstudent_t": 4,
                "halfcauchy": 5, "exponential": 6}


def _prior_code(prior: Prior) -> tuple[int, np.ndarray]:
    params = np.zeros(3)
    params[:len(prior.args)] = prior.args
    return _PRIOR_CODES[prior.dist], params


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _prior_logp(code, a, x):
    """Log density of prior ``code`` with parameters ``a`` at ``x`` and its derivative (PyMC's constants)."""
    if code == 0:  # normal(mu, sigma)
        z = (x - a[0]) / a[1]
        return -0.5 * z * z - np.log(a[1]) - _LOG_SQRT_2PI, -z / a[1]
    if code == 1 or code == 4:  # student_t(nu, mu, sigma); halfstudent_t(nu, sigma)
        nu = a[0]
        mu, s = (a[1], a[2]) if code == 1 else (0.0, a[1])
        z = (x - mu) / s
        lp = (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(s)
              - (nu + 1) / 2 * np.log1p(z * z / nu))
        return lp + (np.log(2.0) if code == 4 else 0.0), -(nu + 1) * z / (s * (nu + z * z))
    if code == 2:  # logistic(mu, s)
        z = (x - a[0]) / a[1]
        return -z - np.log(a[1]) - 2 * np.logaddexp(0.0, -z), (1 - 2 / (1 + np.exp(-z))) / a[1]
    if code == 3:  # halfnormal(sigma)
        return 0.5 * np.log(2 / np.pi) - np.log(a[0]) - 0.5 * (x / a[0]) ** 2, -x / a[0] ** 2
    if code == 5:  # halfcauchy(beta)
        return np.log(2 / np.pi) - np.log(a[0]) - np.log1p((x / a[0]) ** 2), -2 * x / (a[0] ** 2 + x * x)
    return np.log(a[0]) - a[0] * x, -a[0]  # exponential(lam)


def prior_logp(prior: Prior, x: float) -> tuple[float, float]:
    """Log density of ``prior`` at ``x`` and its derivative."""
    code, params = _prior_code(prior)
    return _prior_logp(code, params, float(x))


# --------------------------------------------------------------------------- helpers
# Kernels called from several places carry one explicit signature: Numba would otherwise compile a
# specialisation per literal argument (``transpose=True``, ``axis=0``, ...), about 0.4 s each on a
# first run (benchmarks/bench_compile.py). The price: they compile (or load from the cache) at import.


@numba.njit("void(float64[::1], int64, float64[::1])", nogil=True, cache=True)
def _put(dst, start, src):
    """``dst[start:start + len(src)] = src`` as a loop: Numba's slice assignment of an array compiles
    its shape-mismatch error message (string formatting, about 2.5 s on a first run)."""
    for i in range(len(src)):
        dst[start + i] = src[i]


# --------------------------------------------------------------------------- zero-sum transform


@numba.njit("float64[::1](float64[::1], int64[::1], int64, boolean)", nogil=True, cache=True, error_model="numpy")
def _extend(y, shape, axis, transpose):
    """PyMC's ``ZeroSumTransform.extend_axis`` along ``axis`` of the C-ordered array ``y`` of
    ``shape`` (n-1 free coordinates -> n values summing to zero), or with ``transpose`` its
    transpose (n values -> n-1: pulls a gradient back). Returns the flat result."""
    pre = 1
    for a in range(axis):
        pre *= shape[a]
    post = 1
    for a in range(axis + 1, len(shape)):
        post *= shape[a]
    m = shape[axis]
    n = m if transpose else m + 1
    sq = np.sqrt(n)
    out = np.empty(pre * (2 * n - 1 - m) * post)
    m_out = 2 * n - 1 - m
    for i in range(pre):
        for j in range(post):
            s = 0.0
            for k in range(n - 1):
                s += y[(i * m + k) * post + j]
            if transpose:
                last = y[(i * m + n - 1) * post + j]
                for k in range(n - 1):
                    out[(i * m_out + k) * post + j] = y[(i * m + k) * post + j] - s / (sq + n) - last / sq
            else:
                norm = s / (sq + n)
                for k in range(n - 1):
                    out[(i * m_out + k) * post + j] = y[(i * m + k) * post + j] - norm
                out[(i * m_out + n - 1) * post + j] = -s / sq
    return out


@numba.njit("float64[::1](float64[::1], int64[::1], boolean)", nogil=True, cache=True, error_model="numpy")
def _zerosum(v, shape, transpose):
    """Extend (or pull back) along every axis: free grid <-> full grid of a zero-sum term."""
    cur = shape.copy()
    if not transpose:
        cur -= 1
    for axis in range(len(shape)):
        v = _extend(v, cur, axis, transpose)
        cur[axis] += -1 if transpose else 1
    return v


def extend(y: np.ndarray, axis: int) -> np.ndarray:
    """:func:`_extend` on an n-dimensional array (for tests and readers)."""
    shape = np.array(y.shape, dtype=np.int64)
    out_shape = list(y.shape)
    out_shape[axis] += 1
    return _extend(np.ascontiguousarray(y, dtype=np.float64).ravel(), shape, axis, False).reshape(out_shape)


def extend_transpose(g: np.ndarray, axis: int) -> np.ndarray:
    shape = np.array(g.shape, dtype=np.int64)
    out_shape = list(g.shape)
    out_shape[axis] -= 1
    return _extend(np.ascontiguousarray(g, dtype=np.float64).ravel(), shape, axis, True).reshape(out_shape)


# --------------------------------------------------------------------------- random slopes
# A term (1 + x|g) has a row of p coefficients per level: its SDs (log-transformed), the canonical
# partial correlations of its LKJ Cholesky factor (when correlated) and its free rows, in this order
# in ``x``, transformed exactly as model._random_slopes does: the first ``c`` columns centred (``u``,
# the coefficients themselves), the others non-centred (``z``, standardised), each block row-major.
# The cell loop sees the term as one more random intercept whose "levels" are the distinct
# (group level, Z row) pairs of the observed cells, each worth ``Z_row · r[level]``: the loop stays
# as it is and costs the same per cell.

#: columns of a slope term's integer layout (``CellModel.sl_int``): position in ``x``, coefficients,
#: correlations, free rows, zero-sum (0/1), centred leading columns, virtual levels [v0, v1), first SD prior
_SL_START, _SL_P, _SL_NPAIR, _SL_ROWS, _SL_ZEROSUM, _SL_CENTRED, _SL_V0, _SL_V1, _SL_SD0 = range(9)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _lkj_cholesky(y, p, eta):
    """Cholesky factor ``L`` of a correlation matrix from unconstrained canonical partial correlations
    ``y`` (model._lkj_cholesky: ``tanh``, then stick-breaking along each row), with the log density of
    LKJ(eta) on ``L`` plus both Jacobians and its derivative in ``y``. Each term is a multiple of
    ``log(1 - tanh(y_k)^2)``, since ``1 - (sum of squares before column j of row i)`` is the product
    of ``1 - z^2`` over those columns."""
    L = np.eye(p)
    lp = 0.0
    g = np.empty(len(y))
    k = 0
    for i in range(1, p):
        rest = 1.0
        for m in range(i):
            z = np.tanh(y[k])
            L[i, m] = z * np.sqrt(rest)
            rest *= 1.0 - z * z
            c = 1.0 + 0.5 * (i - m - 1) + 0.5 * (p - i + 2.0 * eta - 3.0)  # tanh, stick-breaking, LKJ
            lp += c * np.log1p(-z * z)
            g[k] = -2.0 * c * z
            k += 1
        L[i, i] = np.sqrt(rest)
    return L, lp, g


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _lkj_pullback(y, L, g_L, g):
    """Add to ``g`` the gradient in ``y`` of a function of ``L`` whose gradient in ``L`` is ``g_L``."""
    p = L.shape[0]
    k = 0
    for i in range(1, p):
        scale = 1.0  # prod over m' < m of sqrt(1 - z_m'^2)
        for m in range(i):
            z = np.tanh(y[k])
            later = 0.0
            for j in range(m + 1, i + 1):
                later += g_L[i, j] * L[i, j]
            g[k] += g_L[i, m] * scale * (1.0 - z * z) - z * later
            scale *= np.sqrt(1.0 - z * z)
            k += 1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _slope_parts(x, lay, eta):
    """A slope term at ``x``: SDs ``s``, Cholesky factor ``L`` (identity when uncorrelated), the
    standardised rows ``z`` (``F / s = z L^T``, ``z ~ N(0, I)``), the rows ``F`` and the full rows
    (``F`` zero-sum extended when the term is). ``lay`` is its row of ``CellModel.sl_int``."""
    st, p, npair, R, c = lay[_SL_START], lay[_SL_P], lay[_SL_NPAIR], lay[_SL_ROWS], lay[_SL_CENTRED]
    s = np.exp(x[st:st + p])
    L = _lkj_cholesky(x[st + p:st + p + npair], p, eta)[0] if npair else np.eye(p)
    u0, z0 = st + p + npair, st + p + npair + R * c
    F, z = np.empty((R, p)), np.empty((R, p))
    for a in range(R):
        for i in range(c):  # centred: the coefficients themselves; z by forward substitution
            F[a, i] = x[u0 + a * c + i]
            acc = F[a, i] / s[i]
            for j in range(i):
                acc -= L[i, j] * z[a, j]
            z[a, i] = acc / L[i, i]
        for i in range(c, p):  # non-centred: z itself
            z[a, i] = x[z0 + a * (p - c) + i - c]
            w = 0.0
            for j in range(i + 1):
                w += L[i, j] * z[a, j]
            F[a, i] = w * s[i]
    rows = _extend(F.ravel(), np.array([R, p], dtype=np.int64), 0, False).reshape((R + 1, p)) if lay[_SL_ZEROSUM] else F
    return s, L, z, F, rows


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _slope_values(x, lay, eta, Z, group, r):
    """Fill ``r`` (the term's virtual levels) with ``Z_row · r[level]``."""
    rows = _slope_parts(x, lay, eta)[4]
    for u in range(lay[_SL_V0], lay[_SL_V1]):
        v = 0.0
        for j in range(lay[_SL_P]):
            v += Z[u, j] * rows[group[u], j]
        r[u] = v


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _slope_logp(x, lay, eta, sd_code, sd_par, Z, group, g_r, grad):
    """Prior log density of a slope term (SD priors, LKJ, rows) and, into ``grad``, the gradient of it
    plus the likelihood's, whose derivative in each virtual level is ``g_r``.

    The rows' density is model._random_slopes': ``-|z|^2 / 2`` minus, per row, ``log(s_i L_ii)`` of
    every centred column (the Jacobian of ``F_i -> z_i``) and ``log sqrt(2 pi)`` of every column
    drawn from a normal (PyMC's centred correlated rows are a flat variable with a potential)."""
    st, p, npair, R, c = lay[_SL_START], lay[_SL_P], lay[_SL_NPAIR], lay[_SL_ROWS], lay[_SL_CENTRED]
    s, L, z, F, rows = _slope_parts(x, lay, eta)
    g_rows = np.zeros(rows.shape)
    for u in range(lay[_SL_V0], lay[_SL_V1]):
        for j in range(p):
            g_rows[group[u], j] += g_r[u] * Z[u, j]
    g_F = (_extend(g_rows.ravel(), np.array([R + 1, p], dtype=np.int64), 0, True).reshape((R, p))
           if lay[_SL_ZEROSUM] else g_rows)
    g_s, g_L = np.zeros(p), np.zeros((p, p))
    u0, z0 = st + p + npair, st + p + npair + R * c
    lp = -R * ((p - c) if npair else p) * _LOG_SQRT_2PI
    for i in range(c):
        lp -= R * (np.log(s[i]) + np.log(L[i, i]))
        g_s[i] -= R / s[i]
        g_L[i, i] -= R / L[i, i]
    g_z = np.empty(p)
    for a in range(R):
        for i in range(p):
            lp -= 0.5 * z[a, i] ** 2
            g_z[i] = -z[a, i]
        for i in range(p - 1, c - 1, -1):  # F_i = s_i (L z)_i
            g_w = g_F[a, i] * s[i]
            g_s[i] += g_F[a, i] * F[a, i] / s[i]
            for j in range(i + 1):
                g_z[j] += g_w * L[i, j]
                g_L[i, j] += g_w * z[a, j]
        for i in range(p - 1, c - 1, -1):
            grad[z0 + a * (p - c) + i - c] = g_z[i]
        for i in range(c - 1, -1, -1):  # z_C = (F_C / s_C) L_CC^-T: back through the substitution
            g_w = g_z[i] / L[i, i]
            for j in range(i):
                g_z[j] -= g_w * L[i, j]
                g_L[i, j] -= g_w * z[a, j]
            g_L[i, i] -= g_w * z[a, i]
            grad[u0 + a * c + i] = g_F[a, i] + g_w / s[i]
            g_s[i] -= g_w * F[a, i] / s[i] ** 2
    for j in range(p):
        prior, d_prior = _prior_logp(sd_code[lay[_SL_SD0] + j], sd_par[lay[_SL_SD0] + j], s[j])
        lp += prior + x[st + j]  # + log-transform Jacobian
        grad[st + j] = (d_prior + g_s[j]) * s[j] + 1.0
    if npair:
        lp_c, g_c = _lkj_cholesky(x[st + p:st + p + npair], p, eta)[1:]
        _lkj_pullback(x[st + p:st + p + npair], L, g_L, g_c)
        lp += lp_c
        _put(grad, st + p, g_c)
    return lp


# --------------------------------------------------------------------------- the cell loop


# ``exp`` and ``log`` are calls into libm that LLVM cannot vectorise (no SVML in this llvmlite): these
# polynomial forms are plain arithmetic, so the cell loops run four to eight cells per vector instruction.
# Both are accurate to a few units in the last place (tests/test_fastlogp.py checks them against NumPy).
_LOG2E, _LN2_HI, _LN2_LO = 1.4426950408889634, 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LN2, _SQRT2_M1 = 0.6931471805599453, 0.41421356237309503
#: fdlibm's minimax coefficients of ``(2 atanh(s) - 2 s) / s`` in ``z = s^2`` for ``|s| <= 0.1716`` (error below 2^-58)
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01, 2.222219843214978396e-01,
       1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01)


@intrinsic
def _as_float(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (a bit cast: no memory round trip, so it vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"}, inline="always")
def _exp_neg_abs(x):
    """``exp(-|x|)``: ``2^q exp(r)`` with ``q`` rounded and ``r`` a Taylor polynomial (the Taylor series to
    degree 12), ``2^q`` built from its exponent bits (``-|x|`` is clipped at -700, where the result is 1e-304)."""
    y = max(-abs(x), -700.0)
    q = np.floor(y * _LOG2E + 0.5)
    r = y - q * _LN2_HI - q * _LN2_LO
    mant = 1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r / 479001600)))))))))))
    return mant * _as_float((np.int64(q) + 1023) << 52)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _exp_minus_abs(x):
    """:func:`_exp_neg_abs` elementwise."""
    out = np.empty(x.size)
    for c in range(x.size):
        out[c] = _exp_neg_abs(x[c])
    return out


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"}, inline="always")
def _log1p_recip(a):
    """``log(1 + a)`` and ``1 / (1 + a)`` for ``a`` in [0, 1], with one division between them. ``log(1 + a)`` is
    ``2 atanh(s)`` with ``s = a / (2 + a)``, or, above ``sqrt(2) - 1``, ``log 2 + 2 atanh(s)`` with
    ``s = (a - 1) / (3 + a)`` (``log((1 + a) / 2)``), so that ``|s| <= 0.1716`` and fdlibm's polynomial of degree 7
    in ``s^2`` suffices (the series on [0, 1/3] needed degree 16)."""
    big = a > _SQRT2_M1
    num = a - 1.0 if big else a
    den = (3.0 if big else 2.0) + a
    q = 1.0 / ((1.0 + a) * den)
    s = num * (1.0 + a) * q
    z = s * s
    R = z * (_LG[0] + z * (_LG[1] + z * (_LG[2] + z * (_LG[3] + z * (_LG[4] + z * (_LG[5] + z * _LG[6]))))))
    return 2.0 * s + s * R + (_LN2 if big else 0.0), den * q


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"}, inline="always")
def _log1p_unit(a):
    """``log(1 + a)`` for ``a`` in [0, 1] (:func:`_log1p_recip`)."""
    return _log1p_recip(a)[0]


_FAST = {"reassoc", "contract", "arcp", "nsz"}


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST)
def _linear_predictor(alpha, X, b, idx, r):
    """``alpha + X b + sum_t r[idx[:, t]]`` per row."""
    n_rows, n_fixed, n_terms = X.shape[0], X.shape[1], idx.shape[1]
    eta = np.full(n_rows, alpha)
    for c in range(n_rows):
        e = eta[c]
        for j in range(n_fixed):
            e += X[c, j] * b[j]
        for t in range(n_terms):
            e += r[idx[c, t]]
        eta[c] = e
    return eta


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST)
def _binomial(eta, k, n, g):
    """Binomial-logit log likelihood ``sum k eta - n softplus(eta)``; its derivative in each ``eta`` into ``g``.
    One loop, no temporary array: ``exp(-|eta|)`` in (0, 1] gives softplus and sigmoid without overflow."""
    lp = 0.0
    for c in range(len(eta)):
        e = eta[c]
        a = _exp_neg_abs(e)
        log1p, recip = _log1p_recip(a)
        lp += k[c] * e - n[c] * (max(e, 0.0) + log1p)
        g[c] = k[c] - n[c] * ((1.0 if e > 0 else a) * recip)
    return lp


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST)
def _scatter(g, X, idx, grad_b, grad_r):
    """Add the derivatives ``g`` of the rows' linear predictors onto ``grad_b`` and ``grad_r``; returns d/d alpha."""
    n_fixed, n_terms = X.shape[1], idx.shape[1]
    g_alpha = 0.0
    for c in range(len(g)):
        gc = g[c]
        g_alpha += gc
        for j in range(n_fixed):
            grad_b[j] += gc * X[c, j]
        for t in range(n_terms):
            grad_r[idx[c, t]] += gc
    return g_alpha


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST)
def _cell_loglik(alpha, X, b, idx, r, k, n, grad_b, grad_r, item, design_of):
    """Binomial-logit log likelihood of the cells; fills ``grad_b``, ``grad_r``; returns (logp, d/d alpha).

    Three passes (gather the linear predictor; likelihood and its derivative; scatter-add): the middle one
    vectorises (eight cells per AVX-512 instruction), a loop with the gather or the scatter in it does not
    (one fused loop measured 2.4 times slower on the HVSB cells: docs/model.md, issue 22's fifth round). With an item term (``item``
    not empty: the two-level layout of :func:`two_level_layout`) the rows of ``X`` and ``idx`` are design
    cells: their linear predictor is computed once per design cell, each cell adds its item's effect
    ``r[item]`` to its design cell's (``design_of``), and the derivatives are summed per design cell before
    they are scattered onto the coefficients. Cells sorted by item (as :class:`CellModel` lays them out) sum
    their item's derivative in a register and store it once per item (any order gives the same sums)."""
    eta = _linear_predictor(alpha, X, b, idx, r)
    grad_b[:] = 0.0
    grad_r[:] = 0.0
    if len(item) == 0:
        g = np.empty(len(eta))
        return _binomial(eta, k, n, g), _scatter(g, X, idx, grad_b, grad_r)
    n_cells = len(item)
    eta_c = np.empty(n_cells)
    for c in range(n_cells):
        eta_c[c] = eta[design_of[c]] + r[item[c]]
    g = np.empty(n_cells)
    lp = _binomial(eta_c, k, n, g)
    g_design = np.zeros(len(eta))
    current, acc = item[0], 0.0
    for c in range(n_cells):
        if item[c] != current:
            grad_r[current] += acc
            current, acc = item[c], 0.0
        acc += g[c]
        g_design[design_of[c]] += g[c]
    grad_r[current] += acc
    return lp, _scatter(g_design, X, idx, grad_b, grad_r)


def two_level_layout(X: np.ndarray, idx: np.ndarray, column: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The cells split into design cells and an item column, or None when that saves too little.

    The item column is ``column`` of ``idx``, by default the one with the most distinct values (``(1|prompt)``: 12,000 prompts);
    the design cells are the distinct rows of every other column (fixed effects and the other indices:
    16,641 at published scale against 108,000 cells). Returns the design cells' ``X`` and ``idx``, and per
    cell its item's index and its design cell. Used when there are at most half as many design cells
    as cells (each cell then gathers and scatters two values instead of one per column)."""
    n_cells = len(X)
    if idx.shape[1] < 1 or n_cells < 2:
        return None
    j = int(np.argmax([len(np.unique(idx[:, t])) for t in range(idx.shape[1])])) if column is None else column
    rest = np.delete(idx, j, axis=1)
    keys = np.column_stack([X, rest.astype(np.float64)])
    if keys.shape[1] == 0:
        first, design_of = np.zeros(1, dtype=np.int64), np.zeros(n_cells, dtype=np.int64)
    else:
        _, first, design_of = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    if 2 * len(first) > n_cells:
        return None
    return (np.ascontiguousarray(X[first]), np.ascontiguousarray(rest[first]),
            np.ascontiguousarray(idx[:, j]), design_of.ravel().astype(idx.dtype))


# --------------------------------------------------------------------------- the density

_ZEROSUM, _NONCENTRED, _SIGNED = 1, 2, 4  # bit flags of a term's parametrisation
_NO_VIRTUAL = np.zeros(0)  # r_virtual and g_virtual of a design without random slopes (never written)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _scales(x, t_start, t_flags, absorb):
    """Each random intercept's own SD ``sd_t`` and the scale of its prior, ``sqrt(sd_t² + Σ_j absorb[t, j] sd_j²)``:
    ``absorb[t, j] = 1 / L`` when the zero-sum interaction ``j``'s margins over ``L`` levels land in term ``t``
    (the PyMC model's ``_sigma``), 0 otherwise (a signed term's own signed scale is not one of these)."""
    n = len(t_start)
    sd = np.empty(n)
    for t in range(n):
        v = x[t_start[t]]
        sd[t] = abs(v) if t_flags[t] & _SIGNED else np.exp(v)
    scale = sd.copy()
    for t in range(n):
        extra = 0.0
        for j in range(n):
            extra += absorb[t, j] * sd[j] * sd[j]
        if extra > 0.0:
            scale[t] = np.sqrt(sd[t] * sd[t] + extra)
    return sd, scale


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _term_values(x, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, absorb, r_virtual):
    """Every random intercept ``r`` (the terms' in order, then the slope terms' virtual levels
    ``r_virtual``) and the standardised or centred values ``z`` they come from, at ``x``; a non-centred
    term's ``r = z`` times its prior's scale (:func:`_scales`), a signed term's ``r = v z``."""
    n_random = t_offset[-1]
    r = np.empty(n_random + len(r_virtual))
    z = np.empty(n_random)
    scales = _scales(x, t_start, t_flags, absorb)[1]
    for t in range(len(t_start)):
        free = x[t_start[t] + 1:t_end[t]].copy()
        zt = _zerosum(free, t_shape[t, :t_naxes[t]], False) if t_flags[t] & _ZEROSUM else free
        _put(z, t_offset[t], zt)
        scale = x[t_start[t]] if t_flags[t] & _SIGNED else scales[t] if t_flags[t] & _NONCENTRED else 1.0
        _put(r, t_offset[t], zt * scale)
    _put(r, n_random, r_virtual)
    return r, z


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _term_priors(x, grad, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par,
                 absorb, i0, g_alpha, grad_b, grad_r, z, g_virtual):
    """The priors' log density at ``x``; fills ``grad`` (zero on entry) from the likelihood's derivatives in
    the intercept (``g_alpha``), slopes (``grad_b``) and random intercepts (``grad_r``, the slope terms'
    virtual levels' into ``g_virtual``) and the priors' own, through the transforms. A term's prior has
    the scale of :func:`_scales`: its derivative in that scale reaches its own log SD and the SDs of the
    interactions whose margins it absorbs."""
    lp = 0.0
    n_scalar = len(s_code)
    n_random = t_offset[-1]
    for j in range(n_scalar):
        p, dp = _prior_logp(s_code[j], s_par[j], x[j])
        lp += p
        grad[j] = dp + (g_alpha if j < i0 else grad_b[j - i0])
    sds, scales = _scales(x, t_start, t_flags, absorb)
    for t in range(len(t_start)):
        zt = z[t_offset[t]:t_offset[t + 1]]
        g_r = grad_r[t_offset[t]:t_offset[t + 1]]
        free = x[t_start[t] + 1:t_end[t]]
        dof = t_end[t] - t_start[t] - 1
        ssq = np.sum(free * free)  # = sum(zt**2): the zero-sum transform is an isometry
        if t_flags[t] & _SIGNED:  # r = v z, sd = |v|: the prior of |v| shared by v and -v
            v = x[t_start[t]]
            p, dp = _prior_logp(sd_code[t], sd_par[t], abs(v))
            lp += p - np.log(2.0) - 0.5 * ssq - dof * _LOG_SQRT_2PI
            grad[t_start[t]] += dp * np.sign(v) + np.sum(g_r * zt)
            g_z = g_r * v
            if t_flags[t] & _ZEROSUM:
                g_z = _zerosum(g_z, t_shape[t, :t_naxes[t]], True)
            _put(grad, t_start[t] + 1, g_z - free)
            continue
        log_sd, sd, scale = x[t_start[t]], sds[t], scales[t]
        p, dp = _prior_logp(sd_code[t], sd_par[t], sd)
        lp += p + log_sd  # + log-transform Jacobian
        grad[t_start[t]] += dp * sd + 1.0
        if t_flags[t] & _NONCENTRED:
            lp += -0.5 * ssq - dof * _LOG_SQRT_2PI
            g_scale = np.sum(g_r * zt)
            g_z = g_r * scale
            g_prior = -free
        else:
            lp += -0.5 * ssq / scale**2 - dof * (_LOG_SQRT_2PI + np.log(scale))
            g_scale = (ssq / scale**2 - dof) / scale
            g_z = g_r.copy()
            g_prior = -free / scale**2
        grad[t_start[t]] += g_scale * sd * sd / scale  # d scale / d log sd_t
        for j in range(len(t_start)):
            if absorb[t, j] > 0.0:  # d scale / d sd_j, times d sd_j / d x: sd_j (log SD) or sign(v)
                d_sd = sds[j] if not t_flags[j] & _SIGNED else np.sign(x[t_start[j]])
                grad[t_start[j]] += g_scale * absorb[t, j] * sds[j] / scale * d_sd
        if t_flags[t] & _ZEROSUM:
            g_z = _zerosum(g_z, t_shape[t, :t_naxes[t]], True)
        _put(grad, t_start[t] + 1, g_z + g_prior)
    for v in range(len(g_virtual)):
        g_virtual[v] = grad_r[n_random + v]
    return lp


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _random_values(x, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, r_virtual):
    """:func:`_term_values` of terms each scaled by its own SD alone (no absorbed interaction margins)."""
    return _term_values(x, t_start, t_end, t_offset, t_flags, t_shape, t_naxes,
                        np.zeros((len(t_start), len(t_start))), r_virtual)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _priors(x, grad, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par,
            i0, g_alpha, grad_b, grad_r, z, g_virtual):
    """:func:`_term_priors` of terms each scaled by its own SD alone (no absorbed interaction margins)."""
    return _term_priors(x, grad, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code,
                        sd_par, np.zeros((len(t_start), len(t_start))), i0, g_alpha, grad_b, grad_r, z, g_virtual)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _logp(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par, absorb,
          intercept, X, idx, k, n, log_binom, r_virtual, g_virtual, item, design_of):
    """Log posterior density and its gradient at the unconstrained point ``x`` (layout: CellModel),
    without the random slopes' own terms (:func:`_logp_slopes` adds them).

    ``s_*``: priors of the leading scalars (intercept, slopes); ``t_*``: per random term, the
    position of its log SD in ``x`` (its free coordinates follow up to ``t_end``), its offset in the
    flat vector of every term's intercepts, parametrisation flags, grid shape and SD prior; ``absorb``:
    the interaction margins in each term's prior scale (:func:`_scales`); ``r_virtual``: the values of
    the random-slope terms' virtual levels, which follow the intercepts in ``r`` (empty without slopes),
    whose gradient goes into ``g_virtual``; ``X``, ``idx``, ``item``, ``design_of``: the cells, in one
    or two levels (:func:`_cell_loglik`)."""
    grad = np.zeros(len(x))
    i0 = 1 if intercept else 0
    alpha = x[0] if intercept else 0.0
    b = x[i0:len(s_code)].copy()
    r, z = _term_values(x, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, absorb, r_virtual)
    grad_b = np.empty(len(b))
    grad_r = np.empty(len(r))
    lp, g_alpha = _cell_loglik(alpha, X, b, idx, r, k, n, grad_b, grad_r, item, design_of)
    lp += log_binom + _term_priors(x, grad, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes,
                                   sd_code, sd_par, absorb, i0, g_alpha, grad_b, grad_r, z, g_virtual)
    return lp, grad


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _slopes_in(x, sl_int, sl_eta, sl_Z, sl_group):
    """The random-slope terms' virtual levels at ``x`` (see :func:`_slope_values`)."""
    r_virtual = np.empty(len(sl_group))
    for s in range(len(sl_int)):
        _slope_values(x, sl_int[s], sl_eta[s], sl_Z, sl_group, r_virtual)
    return r_virtual


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _slopes_out(x, sl_int, sl_eta, sl_code, sl_par, sl_Z, sl_group, g_virtual, grad):
    """The random-slope terms' prior log density; their gradient into ``grad`` (:func:`_slope_logp`)."""
    lp = 0.0
    for s in range(len(sl_int)):
        lp += _slope_logp(x, sl_int[s], sl_eta[s], sl_code, sl_par, sl_Z, sl_group, g_virtual, grad)
    return lp


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _logp_slopes(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par, absorb,
                 intercept, X, idx, k, n, log_binom, item, design_of, sl_int, sl_eta, sl_code, sl_par, sl_Z,
                 sl_group):
    """:func:`_logp` with random slopes (``sl_*``, see :func:`_slope_logp`). A kernel of its own so
    that a formula without slopes never compiles their code (about 5 s on a first run)."""
    r_virtual, g_virtual = _slopes_in(x, sl_int, sl_eta, sl_Z, sl_group), np.empty(len(sl_group))
    lp, grad = _logp(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par, absorb,
                     intercept, X, idx, k, n, log_binom, r_virtual, g_virtual, item, design_of)
    return lp + _slopes_out(x, sl_int, sl_eta, sl_code, sl_par, sl_Z, sl_group, g_virtual, grad), grad


# --------------------------------------------------------------------------- the model


class CellModel:
    """Log density and gradient over the unconstrained vector
    ``[Intercept, b_..., (log sd_t, free coordinates of r_t or z_t) for each random intercept,
    (log sds, cpc, u rows, z rows) for each slope term]`` — the PyMC model's value variables, with
    each term's SDs moved beside its coefficients."""

    def __init__(self, d: Design, priors: Priors, parametrizations: dict[str, str], two_level: bool | None = None):
        """``two_level``: the cells in design cells plus an item column (:func:`two_level_layout`); None:
        when that layout applies, False: never, True: always (an error where it does not apply)."""
        priors.check(d.prior_names)
        obs = d.observed
        data = d.cells.data.filter(obs)
        self.design = d
        self.intercept = d.formula.intercept
        scalars = (["intercept"] if self.intercept else []) + [f"b_{x}" for x in d.fixed]
        self.s_code, self.s_par = _prior_arrays([priors.get(name) for name in scalars])
        self.sd_code, self.sd_par = _prior_arrays([priors.get(f"sd_{t.name}") for t in d.terms])
        self.X = np.ascontiguousarray(d.X[obs], dtype=np.float64)
        self.k = data["n_deep"].to_numpy().astype(np.float64)
        self.n = data["n_trials"].to_numpy().astype(np.float64)
        self.log_binom = float(np.sum(gammaln(self.n + 1) - gammaln(self.k + 1) - gammaln(self.n - self.k + 1)))
        self.shapes = [tuple(len(lv) for lv in t.levels) for t in d.terms]
        kinds = [parametrizations[t.name] for t in d.terms]
        self.t_flags = np.array([(_ZEROSUM if k.startswith("zerosum") else 0)
                                 | (_NONCENTRED if k.endswith(("noncentered", "signed")) else 0)
                                 | (_SIGNED if k.endswith("signed") else 0) for k in kinds], dtype=np.int64)
        self.t_naxes = np.array([len(s) for s in self.shapes], dtype=np.int64)
        self.t_shape = np.ones((len(self.shapes), max(self.t_naxes, default=1)), dtype=np.int64)
        for i, shape in enumerate(self.shapes):
            self.t_shape[i, :len(shape)] = shape
        sizes = [int(np.prod(s)) for s in self.shapes]
        free = [int(np.prod(np.subtract(s, 1))) if f & _ZEROSUM else size
                for s, f, size in zip(self.shapes, self.t_flags, sizes)]
        self.absorb = absorbed_margins(d, parametrizations)
        self.t_offset = np.cumsum([0, *sizes]).astype(np.int64)
        self.t_start = len(scalars) + np.cumsum([0, *np.add(free, 1)])[:-1].astype(np.int64)
        self.t_end = self.t_start + 1 + np.array(free, dtype=np.int64)
        columns = [self.t_offset[i] + np.ravel_multi_index(tuple(t.index[obs].T), self.shapes[i])
                   for i, t in enumerate(d.terms)]
        self.ndim = len(scalars) + sum(f + 1 for f in free)
        columns += self._lay_out_slopes(priors, parametrizations, int(self.t_offset[-1]))
        self.idx = np.ascontiguousarray(np.column_stack(columns) if columns else np.zeros((len(self.n), 0)),
                                        dtype=np.int32)  # half the memory traffic of int64
        self.item = self.design_of = np.zeros(0, dtype=np.int32)
        split = two_level_layout(self.X, self.idx) if two_level is not False else None
        if two_level and split is None:
            raise ValueError("the two-level layout needs at most half as many design cells as cells")
        if split is not None:  # cells sorted by item (then design cell): _cell_loglik sums an item's derivative in place
            self.X, self.idx, item, design_of = split
            order = np.lexsort((design_of, item))
            self.item, self.design_of, self.k, self.n = item[order], design_of[order], self.k[order], self.n[order]
        args = (self.s_code, self.s_par, self.t_start, self.t_end, self.t_offset, self.t_flags, self.t_shape,
                self.t_naxes, self.sd_code, self.sd_par, self.absorb, self.intercept, self.X, self.idx, self.k, self.n,
                self.log_binom)
        if len(self.sl_int):  # the kernel without slopes compiles in a third of the time
            self._kernel, self._args = _logp_slopes, (*args, self.item, self.design_of, self.sl_int, self.sl_eta,
                                                      self.sl_code, self.sl_par, self.sl_Z, self.sl_group)
        else:
            self._kernel, self._args = _logp, (*args, _NO_VIRTUAL, _NO_VIRTUAL, self.item, self.design_of)

    def _lay_out_slopes(self, priors: Priors, parametrizations: dict[str, str], n_random: int) -> list[np.ndarray]:
        """The random-slope terms' layout (``sl_*``, after the intercept terms in ``x``) and, per term, the
        index column of each observed cell's virtual level (after the ``n_random`` intercepts in ``r``)."""
        obs, lay, codes, Zs, groups, columns = self.design.observed, [], [], [], [], []
        p_max = max((len(s.coefficients) for s in self.design.slopes), default=1)
        n_virtual = 0
        for s in self.design.slopes:
            p, kind = len(s.coefficients), parametrizations[s.name]
            npair = p * (p - 1) // 2 if s.pairs else 0
            rows = len(s.levels) - 1 if kind.startswith("zerosum") else len(s.levels)
            keys = np.column_stack([s.index[obs], s.Z[obs]])
            unique, inverse = np.unique(keys, axis=0, return_inverse=True)
            lay.append([self.ndim, p, npair, rows, kind.startswith("zerosum"), centred_columns(s, kind), n_virtual,
                        n_virtual + len(unique), len(codes)])
            codes += [priors.get(f"sd_{n}") for n in s.sd_names]
            Zs.append(np.pad(unique[:, 1:], ((0, 0), (0, p_max - p))))
            groups.append(unique[:, 0].astype(np.int64))
            columns.append(n_random + n_virtual + inverse.ravel())
            n_virtual += len(unique)
            self.ndim += p + npair + rows * p
        self.sl_int = np.array(lay, dtype=np.int64).reshape(-1, 9)
        self.sl_eta = np.array([priors.get(f"cor_{s.name}").args[0] for s in self.design.slopes], dtype=np.float64)
        self.sl_code, self.sl_par = _prior_arrays(codes)
        self.sl_Z = np.ascontiguousarray(np.concatenate(Zs) if Zs else np.zeros((0, 1)), dtype=np.float64)
        self.sl_group = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        return columns

    def logp_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return self._kernel(x, *self._args)

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The constrained draws under the PyMC model's names (``Intercept``, ``b_x``, ``sd_t``, ``r_t``,
        ``sd``; for slope terms ``cpc_s``, ``z_s`` or ``u_s``, ``cor``). A non-centred random intercept's
        standardised ``z_t = r_t / sd_t`` is not kept: no estimand or diagnostic reads it, and for an item
        term it is as large as ``r_t`` (12,000 prompts x 4,000 draws: 384 MB). The intercepts of a term of
        more than :data:`dvbstats.constants.ITEM_LEVELS` levels are kept in single precision (their 1e-7 relative
        rounding is far below their posterior SD; half the memory and half the posterior file)."""
        out: dict[str, np.ndarray] = {}
        if self.intercept:
            out["Intercept"] = np.asarray(x[0], dtype=np.float64)
        for j, name in enumerate(self.design.fixed):
            out[f"b_{name}"] = np.asarray(x[int(self.intercept) + j], dtype=np.float64)
        term_sds, scales = _scales(np.asarray(x, dtype=np.float64), self.t_start, self.t_flags, self.absorb)
        sds = list(term_sds)
        for i, t in enumerate(self.design.terms):
            free = np.ascontiguousarray(x[self.t_start[i] + 1:self.t_end[i]])
            z = _zerosum(free, self.t_shape[i, :self.t_naxes[i]], False) if self.t_flags[i] & _ZEROSUM else free
            z = z.reshape(self.shapes[i])
            if self.t_flags[i] & _SIGNED:  # the same r = v z as sd = |v| and z sign(v)
                z = z * np.sign(x[self.t_start[i]])
            out[f"sd_{t.name}"] = np.asarray(sds[i], dtype=np.float64)
            r = z * scales[i] if self.t_flags[i] & _NONCENTRED else z
            out[f"r_{t.name}"] = r.astype(np.float32) if r.size > ITEM_LEVELS else r
        cors = []
        for s, lay, eta in zip(self.design.slopes, self.sl_int, self.sl_eta):
            sd, chol, z, F, rows = _slope_parts(x, lay, eta)
            for n, v in zip(s.sd_names, sd):
                out[f"sd_{n}"] = np.asarray(v, dtype=np.float64)
            if lay[_SL_NPAIR]:
                start = lay[_SL_START] + lay[_SL_P]
                out[f"cpc_{s.name}"] = np.array(x[start:start + lay[_SL_NPAIR]], dtype=np.float64)
            c = lay[_SL_CENTRED]
            if c:
                out[f"u_{s.name}"] = F[:, :c].copy()
            if c < lay[_SL_P]:
                out[f"z_{s.name}"] = z[:, c:].copy()
            out[f"r_{s.name}"] = rows
            sds += list(sd)
            cors += [chol[i] @ chol[j] for i, j in s.pairs]
        if sds:
            out["sd"] = np.asarray(sds, dtype=np.float64)
        if cors:
            out["cor"] = np.asarray(cors, dtype=np.float64)
        return out

    def variables(self) -> tuple[list[str], list[tuple[int, ...]], dict[str, tuple[str, ...]]]:
        """Names, shapes and dims of the expanded draws."""
        names, shapes, dims = [], [], {}
        if self.intercept:
            names.append("Intercept"), shapes.append(())
        for name in self.design.fixed:
            names.append(f"b_{name}"), shapes.append(())
        for i, t in enumerate(self.design.terms):
            names += [f"sd_{t.name}", f"r_{t.name}"]
            shapes += [(), self.shapes[i]]
            dims[f"r_{t.name}"] = t.dims
        for s, lay in zip(self.design.slopes, self.sl_int):
            names += [f"sd_{n}" for n in s.sd_names]
            shapes += [()] * len(s.sd_names)
            if lay[_SL_NPAIR]:
                names.append(f"cpc_{s.name}"), shapes.append((int(lay[_SL_NPAIR]),))
            p, c, R = int(lay[_SL_P]), int(lay[_SL_CENTRED]), int(lay[_SL_ROWS])
            for name, cols in ((f"u_{s.name}", c), (f"z_{s.name}", p - c)):
                if cols:
                    names.append(name), shapes.append((R, cols))
            names.append(f"r_{s.name}"), shapes.append((len(s.levels), p))
            dims[f"r_{s.name}"] = (s.dim, s.coef_dim)
        if self.design.random:
            names.append("sd"), shapes.append((len(self.design.sd_labels),))
            dims["sd"] = ("term",)
        if self.design.pair_labels:
            names.append("cor"), shapes.append((len(self.design.pair_labels),))
            dims["cor"] = ("pair",)
        return names, shapes, dims


def _prior_arrays(priors: list[Prior]) -> tuple[np.ndarray, np.ndarray]:
    codes = [_prior_code(p) for p in priors]
    return np.array([c for c, _ in codes], dtype=np.int64), np.array([a for _, a in codes]).reshape(-1, 3)


def absorbed_margins(d: Design, parametrizations: dict[str, str]) -> np.ndarray:
    """``absorb[t, j] = 1 / L`` when the margins of the zero-sum interaction ``d.terms[j]`` over ``L`` levels are
    moved into the prior scale of the zero-sum term ``d.terms[t]`` (``Design.absorbed``), as the PyMC model's
    ``_sigma`` moves them: not into a signed term's scale (it has its own), not from a textbook-form interaction."""
    names = [t.name for t in d.terms]
    absorb = np.zeros((len(names), len(names)))
    for t, name in enumerate(names):
        if parametrizations[name].startswith("zerosum") and parametrizations[name] != "zerosum_signed":
            for inter, levels in d.absorbed.get(name, ()):
                if parametrizations[inter].startswith("zerosum"):
                    absorb[t, names.index(inter)] = 1.0 / levels
    return absorb


def pyfunc_model(model, coords: dict[str, list]):
    """The nutpie model (its Python-function entry point) of a hand-written density: ``model`` has
    ``ndim``, ``logp_and_grad(x)``, ``expand(x)`` and ``variables()``, and optionally
    ``expander(seed1, seed2, chain)``: a chain's own ``expand``, which may draw
    (:class:`dvbstats.model.itemmarginal.ItemMarginalModel`). Starts as PyMC's default: every
    unconstrained coordinate jittered uniformly in (-1, 1). nutpie's worker threads keep their Python
    thread state between calls (:mod:`dvbstats.model.threadstate`)."""
    names, shapes, dims = model.variables()
    logp = threadstate.kept(model.logp_and_grad)
    first = model.expand(np.zeros(model.ndim))
    dtypes = [np.asarray(first[n]).dtype for n in names]  # float64, or float32 for item-level intercepts

    def make_logp_fn():
        return logp

    expander = getattr(model, "expander", lambda seed1, seed2, chain: model.expand)

    def make_expand_fn(seed1, seed2, chain):
        return threadstate.kept(expander(seed1, seed2, chain))

    return nutpie.compiled_pyfunc.from_pyfunc(
        model.ndim, make_logp_fn, make_expand_fn,
        dtypes, shapes, names, coords=coords, dims=dims,
        make_initial_point_fn=lambda seed: np.random.default_rng(seed).uniform(-1, 1, model.ndim),
    )


def compile_model(d: Design, priors: Priors, parametrizations: dict[str, str]):
    """The nutpie model of ``d``."""
    return pyfunc_model(CellModel(d, priors, parametrizations), {k: list(v) for k, v in d.coords().items()})


def compiled_before() -> bool:
    """Whether Numba's on-disk cache holds this module's compiled log density for its current source (a warm run
    skips the 10-30 s compile)."""
    source = Path(__file__).stat().st_mtime
    index = Path(_logp._cache._cache_file._index_path)  # numba's index of the cached machine code
    return index.exists() and index.stat().st_mtime >= source
