"""A hand-written log density and gradient of the cell model, sampled with nutpie without PyMC.

The posterior is the one :func:`dvbstats.model.pymc_model` defines, in the same unconstrained
coordinates (same parameter order, the same ``ZeroSumTransform``, log-transformed SDs, the same
priors including overrides): only the arithmetic differs. Per gradient evaluation

* the random intercepts of each term are expanded from their free coordinates (the zero-sum
  transform is an isometry: O(levels) per axis);
* one Numba loop over the observed cells (compiled once and cached on disk, whatever the
  formula) computes ``eta_c``, the binomial log likelihood ``k eta - n softplus(eta)`` and its
  derivative ``k - n sigmoid(eta)``, scatter-added onto the intercept, the slopes and every
  random intercept;
* the gradient goes back through the transforms, and the priors add their own terms.

It supports what :class:`dvbstats.model.Design` holds today (intercept, numeric fixed effects,
random intercepts incl. interactions, every parametrisation); :func:`supports` says so, and
:func:`dvbstats.fitting.fit` falls back to the PyMC model otherwise. Why: the PyMC/nutpie
path spends 10-30 s compiling the model graph with Numba on every run and about 44 ns per cell
per gradient; this path compiles nothing per model (measured in ``benchmarks/bench_speed.py``).
"""

from __future__ import annotations

import math

import arviz as az
import numba
import numpy as np
from scipy.special import gammaln

from .model import Design
from .priors import Prior, Priors

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def supports(d: Design) -> bool:
    """True when the design has only constructs this module implements: fixed coefficients and random
    intercepts laid out on integer level indices, each with its own SD as its prior scale (no random
    slopes, no interaction margins moved into a main term: see ``model._sigma``)."""
    return (not d.slopes and not any(d.absorbed.values())
            and all(t.index.ndim == 2 and t.index.shape[1] == len(t.dims) for t in d.terms))


# --------------------------------------------------------------------------- priors

#: Prior families by code, with their parameters in the order of ``priors._DISTS``.
_PRIOR_CODES = {"normal": 0, "student_t": 1, "logistic": 2, "halfnormal": 3, "halfstudent_t": 4,
                "halfcauchy": 5, "exponential": 6}


def _prior_code(prior: Prior) -> tuple[int, np.ndarray]:
    params = np.zeros(3)
    params[:len(prior.args)] = prior.args
    return _PRIOR_CODES[prior.dist], params


@numba.njit(nogil=True, cache=True)
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


# --------------------------------------------------------------------------- zero-sum transform


@numba.njit(nogil=True, cache=True)
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


@numba.njit(nogil=True, cache=True)
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


# --------------------------------------------------------------------------- the cell loop


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "arcp"})
def _cell_loglik(alpha, X, b, idx, r, k, n, grad_b, grad_r):
    """Binomial-logit log likelihood of the cells; fills ``grad_b``, ``grad_r``; returns (logp, d/d alpha).

    Three passes (gather the linear predictor; likelihood and its derivative; scatter-add), which
    measured 30% faster than one fused loop (benchmarks/bench_gradient.py)."""
    n_cells, n_fixed, n_terms = X.shape[0], X.shape[1], idx.shape[1]
    eta = np.full(n_cells, alpha)
    for c in range(n_cells):
        e = eta[c]
        for j in range(n_fixed):
            e += X[c, j] * b[j]
        for t in range(n_terms):
            e += r[idx[c, t]]
        eta[c] = e
    lp = 0.0
    g = np.empty(n_cells)
    for c in range(n_cells):
        e = eta[c]
        a = np.exp(-abs(e))  # in (0, 1]: softplus and sigmoid without overflow
        lp += k[c] * e - n[c] * (max(e, 0.0) + np.log(1.0 + a))
        g[c] = k[c] - n[c] * ((1.0 if e > 0 else a) / (1.0 + a))
    grad_b[:] = 0.0
    grad_r[:] = 0.0
    g_alpha = 0.0
    for c in range(n_cells):
        gc = g[c]
        g_alpha += gc
        for j in range(n_fixed):
            grad_b[j] += gc * X[c, j]
        for t in range(n_terms):
            grad_r[idx[c, t]] += gc
    return lp, g_alpha


# --------------------------------------------------------------------------- the density

_ZEROSUM, _NONCENTRED = 1, 2  # bit flags of a term's parametrisation


@numba.njit(nogil=True, cache=True)
def _logp(x, s_code, s_par, t_start, t_end, t_offset, t_flags, t_shape, t_naxes, sd_code, sd_par,
          intercept, X, idx, k, n, log_binom):
    """Log posterior density and its gradient at the unconstrained point ``x`` (layout: CellModel).

    ``s_*``: priors of the leading scalars (intercept, slopes); ``t_*``: per random term, the
    position of its log SD in ``x`` (its free coordinates follow up to ``t_end``), its offset in the
    flat vector of every term's intercepts, parametrisation flags, grid shape and SD prior."""
    grad = np.zeros(len(x))
    n_scalar = len(s_code)
    i0 = 1 if intercept else 0
    alpha = x[0] if intercept else 0.0
    b = x[i0:n_scalar].copy()
    n_random = t_offset[-1]
    r = np.empty(n_random)
    z = np.empty(n_random)
    for t in range(len(t_start)):
        free = x[t_start[t] + 1:t_end[t]].copy()
        zt = _zerosum(free, t_shape[t, :t_naxes[t]], False) if t_flags[t] & _ZEROSUM else free
        z[t_offset[t]:t_offset[t + 1]] = zt
        scale = np.exp(x[t_start[t]]) if t_flags[t] & _NONCENTRED else 1.0
        r[t_offset[t]:t_offset[t + 1]] = zt * scale
    grad_b = np.empty(n_scalar - i0)
    grad_r = np.empty(n_random)
    lp, g_alpha = _cell_loglik(alpha, X, b, idx, r, k, n, grad_b, grad_r)
    lp += log_binom
    for j in range(n_scalar):
        p, dp = _prior_logp(s_code[j], s_par[j], x[j])
        lp += p
        grad[j] = dp + (g_alpha if j < i0 else grad_b[j - i0])
    for t in range(len(t_start)):
        log_sd = x[t_start[t]]
        sd = np.exp(log_sd)
        p, dp = _prior_logp(sd_code[t], sd_par[t], sd)
        lp += p + log_sd  # + log-transform Jacobian
        g_log_sd = dp * sd + 1.0
        zt = z[t_offset[t]:t_offset[t + 1]]
        g_r = grad_r[t_offset[t]:t_offset[t + 1]]
        free = x[t_start[t] + 1:t_end[t]]
        dof = t_end[t] - t_start[t] - 1
        ssq = np.sum(free * free)  # = sum(zt**2): the zero-sum transform is an isometry
        if t_flags[t] & _NONCENTRED:
            lp += -0.5 * ssq - dof * _LOG_SQRT_2PI
            g_log_sd += np.sum(g_r * zt) * sd
            g_z = g_r * sd
            g_prior = -free
        else:
            lp += -0.5 * ssq / sd**2 - dof * (_LOG_SQRT_2PI + log_sd)
            g_log_sd += ssq / sd**2 - dof
            g_z = g_r.copy()
            g_prior = -free / sd**2
        if t_flags[t] & _ZEROSUM:
            g_z = _zerosum(g_z, t_shape[t, :t_naxes[t]], True)
        grad[t_start[t]] = g_log_sd
        grad[t_start[t] + 1:t_end[t]] = g_z + g_prior
    return lp, grad


# --------------------------------------------------------------------------- the model


class CellModel:
    """Log density and gradient over the unconstrained vector
    ``[Intercept, b_..., (log sd_t, free coordinates of r_t or z_t) for each term]``
    — the order of the PyMC model's value variables."""

    def __init__(self, d: Design, priors: Priors, parametrizations: dict[str, str]):
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
        self.t_flags = np.array([(_ZEROSUM if k.startswith("zerosum") else 0) | (_NONCENTRED if k.endswith("noncentered") else 0)
                                 for k in kinds], dtype=np.int64)
        self.t_naxes = np.array([len(s) for s in self.shapes], dtype=np.int64)
        self.t_shape = np.ones((len(self.shapes), max(self.t_naxes, default=1)), dtype=np.int64)
        for i, shape in enumerate(self.shapes):
            self.t_shape[i, :len(shape)] = shape
        sizes = [int(np.prod(s)) for s in self.shapes]
        free = [int(np.prod(np.subtract(s, 1))) if f & _ZEROSUM else size
                for s, f, size in zip(self.shapes, self.t_flags, sizes)]
        self.t_offset = np.cumsum([0, *sizes]).astype(np.int64)
        self.t_start = len(scalars) + np.cumsum([0, *np.add(free, 1)])[:-1].astype(np.int64)
        self.t_end = self.t_start + 1 + np.array(free, dtype=np.int64)
        columns = [self.t_offset[i] + np.ravel_multi_index(tuple(t.index[obs].T), self.shapes[i])
                   for i, t in enumerate(d.terms)]
        self.idx = np.ascontiguousarray(np.column_stack(columns) if columns else np.zeros((len(self.n), 0)),
                                        dtype=np.int32)  # half the memory traffic of int64
        self.ndim = len(scalars) + sum(f + 1 for f in free)

    def logp_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return _logp(x, self.s_code, self.s_par, self.t_start, self.t_end, self.t_offset, self.t_flags,
                     self.t_shape, self.t_naxes, self.sd_code, self.sd_par, self.intercept,
                     self.X, self.idx, self.k, self.n, self.log_binom)

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The constrained draws under the PyMC model's names (``Intercept``, ``b_x``, ``sd_t``,
        ``r_t``, ``z_t`` when non-centred, ``sd``)."""
        out: dict[str, np.ndarray] = {}
        if self.intercept:
            out["Intercept"] = np.asarray(x[0], dtype=np.float64)
        for j, name in enumerate(self.design.fixed):
            out[f"b_{name}"] = np.asarray(x[int(self.intercept) + j], dtype=np.float64)
        sds = []
        for i, t in enumerate(self.design.terms):
            free = np.ascontiguousarray(x[self.t_start[i] + 1:self.t_end[i]])
            z = _zerosum(free, self.t_shape[i, :self.t_naxes[i]], False) if self.t_flags[i] & _ZEROSUM else free
            z = z.reshape(self.shapes[i])
            sds.append(np.exp(x[self.t_start[i]]))
            out[f"sd_{t.name}"] = np.asarray(sds[-1], dtype=np.float64)
            out[f"r_{t.name}"] = z * sds[-1] if self.t_flags[i] & _NONCENTRED else z
            if self.t_flags[i] & _NONCENTRED:
                out[f"z_{t.name}"] = z
        if sds:
            out["sd"] = np.asarray(sds, dtype=np.float64)
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
            if self.t_flags[i] & _NONCENTRED:
                names.append(f"z_{t.name}"), shapes.append(self.shapes[i])
                dims[f"z_{t.name}"] = t.dims
        if self.design.terms:
            names.append("sd"), shapes.append((len(self.design.terms),))
            dims["sd"] = ("term",)
        return names, shapes, dims

    def initial_point(self, seed: int) -> np.ndarray:
        """PyMC's default start: every unconstrained coordinate jittered uniformly in (-1, 1)."""
        return np.random.default_rng(seed).uniform(-1, 1, self.ndim)


def _prior_arrays(priors: list[Prior]) -> tuple[np.ndarray, np.ndarray]:
    codes = [_prior_code(p) for p in priors]
    return np.array([c for c, _ in codes], dtype=np.int64), np.array([a for _, a in codes]).reshape(-1, 3)


def compile_model(d: Design, priors: Priors, parametrizations: dict[str, str]):
    """The nutpie model of ``d`` (nutpie's Python-function entry point)."""
    import nutpie.compiled_pyfunc

    model = CellModel(d, priors, parametrizations)
    names, shapes, dims = model.variables()

    def make_logp_fn():
        return model.logp_and_grad

    def make_expand_fn(seed1, seed2, chain):
        return model.expand

    return nutpie.compiled_pyfunc.from_pyfunc(
        model.ndim, make_logp_fn, make_expand_fn,
        [np.dtype("float64")] * len(names), shapes, names,
        coords={k: list(v) for k, v in d.coords().items()}, dims=dims,
        make_initial_point_fn=model.initial_point,
    )


def sample(d: Design, priors: Priors, parametrizations: dict[str, str], settings, *, progress: bool = True
           ) -> az.InferenceData:
    """nutpie's NUTS on the hand-written density, through the same runner as the PyMC path (progress
    lines off a terminal, interrupts); ``settings`` is a ``sample.SamplerSettings``."""
    from .sample import run_nutpie

    return run_nutpie(compile_model(d, priors, parametrizations), settings, progress)
