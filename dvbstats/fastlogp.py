"""A hand-written log density and gradient of the cell model, sampled with nutpie without PyMC.

The posterior is the one :func:`dvbstats.model.build` defines, in the same unconstrained
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

from dataclasses import dataclass

import arviz as az
import numba
import numpy as np
from scipy.special import gammaln

from .model import Design
from .priors import Prior, Priors

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def supports(d: Design) -> bool:
    """True when the design has only constructs this module implements (every field it reads
    is present and every term is a random intercept laid out on integer level indices)."""
    known = {"formula", "cells", "fixed", "centers", "X", "terms", "observed"}
    extra = set(getattr(d, "__dataclass_fields__", {})) - known
    return not extra and all(t.index.ndim == 2 and t.index.shape[1] == len(t.dims) for t in d.terms)


# --------------------------------------------------------------------------- priors


def prior_logp(prior: Prior, x: float) -> tuple[float, float]:
    """Log density of ``prior`` at ``x`` and its derivative (constants as PyMC's)."""
    a = prior.args
    if prior.dist == "normal":
        mu, s = a
        z = (x - mu) / s
        return -0.5 * z * z - np.log(s) - _LOG_SQRT_2PI, -z / s
    if prior.dist in ("student_t", "halfstudent_t"):
        nu, mu, s = a if prior.dist == "student_t" else (a[0], 0.0, a[1])
        z = (x - mu) / s
        lp = (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(s)
              - (nu + 1) / 2 * np.log1p(z * z / nu))
        return lp + (np.log(2.0) if prior.dist == "halfstudent_t" else 0.0), -(nu + 1) * z / (s * (nu + z * z))
    if prior.dist == "logistic":
        mu, s = a
        z = (x - mu) / s
        return -z - np.log(s) - 2 * np.logaddexp(0.0, -z), (1 - 2 / (1 + np.exp(-z))) / s
    if prior.dist == "halfnormal":
        (s,) = a
        return 0.5 * np.log(2 / np.pi) - np.log(s) - 0.5 * (x / s) ** 2, -x / s**2
    if prior.dist == "halfcauchy":
        (beta,) = a
        return np.log(2 / np.pi) - np.log(beta) - np.log1p((x / beta) ** 2), -2 * x / (beta**2 + x * x)
    if prior.dist == "exponential":
        (lam,) = a
        return np.log(lam) - lam * x, -lam
    raise ValueError(f"no log density for prior {prior}")


# --------------------------------------------------------------------------- zero-sum transform


def extend(y: np.ndarray, axis: int) -> np.ndarray:
    """PyMC's ``ZeroSumTransform.extend_axis``: n-1 free coordinates -> n values summing to zero."""
    n = y.shape[axis] + 1
    s = y.sum(axis, keepdims=True)
    norm = s / (np.sqrt(n) + n)
    return np.concatenate([y, norm - s / np.sqrt(n)], axis=axis) - norm


def extend_transpose(g: np.ndarray, axis: int) -> np.ndarray:
    """The transpose of :func:`extend` (pulls a gradient back to the free coordinates)."""
    n = g.shape[axis]
    head = np.take(g, np.arange(n - 1), axis=axis)
    last = np.take(g, [n - 1], axis=axis)
    return head - head.sum(axis, keepdims=True) / (np.sqrt(n) + n) - last / np.sqrt(n)


# --------------------------------------------------------------------------- the cell loop


@numba.njit(nogil=True, cache=True)
def _cell_loglik(alpha, X, b, idx, r, k, n, grad_b, grad_r):
    """Binomial-logit log likelihood of the cells; fills ``grad_b``, ``grad_r``; returns (logp, d/d alpha)."""
    grad_b[:] = 0.0
    grad_r[:] = 0.0
    lp = 0.0
    g_alpha = 0.0
    n_fixed = X.shape[1]
    n_terms = idx.shape[1]
    for c in range(X.shape[0]):
        eta = alpha
        for j in range(n_fixed):
            eta += X[c, j] * b[j]
        for t in range(n_terms):
            eta += r[idx[c, t]]
        if eta > 0:
            e = np.exp(-eta)
            softplus = eta + np.log1p(e)
            p = 1.0 / (1.0 + e)
        else:
            e = np.exp(eta)
            softplus = np.log1p(e)
            p = e / (1.0 + e)
        lp += k[c] * eta - n[c] * softplus
        g = k[c] - n[c] * p
        g_alpha += g
        for j in range(n_fixed):
            grad_b[j] += g * X[c, j]
        for t in range(n_terms):
            grad_r[idx[c, t]] += g
    return lp, g_alpha


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class _Term:
    name: str
    shape: tuple[int, ...]  # levels along each axis
    kind: str  # parametrisation
    offset: int  # position of its first level in the flat vector of all random intercepts
    sd_prior: Prior

    @property
    def free_shape(self) -> tuple[int, ...]:
        return tuple(s - 1 for s in self.shape) if self.kind.startswith("zerosum") else self.shape

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def free_size(self) -> int:
        return int(np.prod(self.free_shape))

    @property
    def dof(self) -> int:
        """Degrees of freedom PyMC's (ZeroSum)Normal log density counts."""
        return self.free_size


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
        self.intercept_prior = priors.get("intercept") if self.intercept else None
        self.fixed_priors = [priors.get(f"b_{x}") for x in d.fixed]
        self.X = np.ascontiguousarray(d.X[obs], dtype=np.float64)
        self.k = data["n_deep"].to_numpy().astype(np.float64)
        self.n = data["n_trials"].to_numpy().astype(np.float64)
        self.log_binom = float(np.sum(gammaln(self.n + 1) - gammaln(self.k + 1) - gammaln(self.n - self.k + 1)))
        terms, columns, offset = [], [], 0
        for t in d.terms:
            shape = tuple(len(lv) for lv in t.levels)
            terms.append(_Term(t.name, shape, parametrizations[t.name], offset, priors.get(f"sd_{t.name}")))
            columns.append(offset + np.ravel_multi_index(tuple(t.index[obs].T), shape))
            offset += int(np.prod(shape))
        self.terms = tuple(terms)
        self.idx = np.ascontiguousarray(np.column_stack(columns) if columns else np.zeros((len(self.n), 0)),
                                        dtype=np.int64)
        self.n_random = offset
        self.ndim = int(self.intercept) + len(d.fixed) + sum(1 + t.free_size for t in terms)

    # the layout of the unconstrained vector
    def _split(self, x: np.ndarray):
        i = 0
        alpha = 0.0
        if self.intercept:
            alpha, i = x[0], 1
        b = x[i:i + len(self.fixed_priors)]
        i += len(self.fixed_priors)
        parts = []
        for t in self.terms:
            parts.append((i, x[i], x[i + 1:i + 1 + t.free_size].reshape(t.free_shape)))
            i += 1 + t.free_size
        return alpha, b, parts

    def random_intercepts(self, t: _Term, log_sd: float, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(r, z): the term's intercepts on its full grid, and the standardised draws when non-centred."""
        z = free
        if t.kind.startswith("zerosum"):
            for axis in range(z.ndim):
                z = extend(z, axis)
        r = z * np.exp(log_sd) if t.kind.endswith("noncentered") else z
        return r, z

    def logp_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        alpha, b, parts = self._split(x)
        r_flat = np.empty(self.n_random)
        expanded = []
        for t, (_, log_sd, free) in zip(self.terms, parts):
            r, z = self.random_intercepts(t, log_sd, free)
            r_flat[t.offset:t.offset + t.size] = r.ravel()
            expanded.append(z)
        grad_b = np.empty(len(b))
        grad_r = np.empty(self.n_random)
        lp, g_alpha = _cell_loglik(alpha, self.X, np.ascontiguousarray(b), self.idx, r_flat, self.k, self.n,
                                   grad_b, grad_r)
        lp += self.log_binom
        grad = np.empty_like(x)
        i = 0
        if self.intercept:
            p, dp = prior_logp(self.intercept_prior, alpha)
            lp += p
            grad[0] = g_alpha + dp
            i = 1
        for j, prior in enumerate(self.fixed_priors):
            p, dp = prior_logp(prior, b[j])
            lp += p
            grad[i + j] = grad_b[j] + dp
        for t, (i, log_sd, free), z in zip(self.terms, parts, expanded):
            sd = np.exp(log_sd)
            p, dp = prior_logp(t.sd_prior, sd)
            lp += p + log_sd  # log-transform Jacobian
            g_log_sd = dp * sd + 1.0
            g_r = grad_r[t.offset:t.offset + t.size].reshape(t.shape)
            ssq = float(np.sum(z * z))  # the transform is an isometry: equals the free coordinates' sum of squares
            if t.kind.endswith("noncentered"):
                lp += -0.5 * ssq - t.dof * _LOG_SQRT_2PI
                g_log_sd += float(np.sum(g_r * z)) * sd
                g_z = g_r * sd
                g_free_prior = -free
            else:
                lp += -0.5 * ssq / sd**2 - t.dof * (_LOG_SQRT_2PI + log_sd)
                g_log_sd += ssq / sd**2 - t.dof
                g_z = g_r
                g_free_prior = -free / sd**2
            if t.kind.startswith("zerosum"):
                for axis in range(g_z.ndim):
                    g_z = extend_transpose(g_z, axis)
            grad[i] = g_log_sd
            grad[i + 1:i + 1 + t.free_size] = (g_z + g_free_prior).ravel()
        return float(lp), grad

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The constrained draws under the PyMC model's names (``Intercept``, ``b_x``, ``sd_t``,
        ``r_t``, ``z_t`` when non-centred, ``sd``)."""
        alpha, b, parts = self._split(x)
        out: dict[str, np.ndarray] = {}
        if self.intercept:
            out["Intercept"] = np.asarray(alpha, dtype=np.float64)
        for j, name in enumerate(self.design.fixed):
            out[f"b_{name}"] = np.asarray(b[j], dtype=np.float64)
        sds = []
        for t, (_, log_sd, free) in zip(self.terms, parts):
            r, z = self.random_intercepts(t, log_sd, free)
            sds.append(np.exp(log_sd))
            out[f"sd_{t.name}"] = np.asarray(sds[-1], dtype=np.float64)
            out[f"r_{t.name}"] = np.ascontiguousarray(r, dtype=np.float64)
            if t.kind.endswith("noncentered"):
                out[f"z_{t.name}"] = np.ascontiguousarray(z, dtype=np.float64)
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
        for t, dt in zip(self.terms, self.design.terms):
            names += [f"sd_{t.name}", f"r_{t.name}"]
            shapes += [(), t.shape]
            dims[f"r_{t.name}"] = dt.dims
            if t.kind.endswith("noncentered"):
                names.append(f"z_{t.name}"), shapes.append(t.shape)
                dims[f"z_{t.name}"] = dt.dims
        if self.terms:
            names.append("sd"), shapes.append((len(self.terms),))
            dims["sd"] = ("term",)
        return names, shapes, dims

    def initial_point(self, seed: int) -> np.ndarray:
        """PyMC's default start: every unconstrained coordinate jittered uniformly in (-1, 1)."""
        return np.random.default_rng(seed).uniform(-1, 1, self.ndim)


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
    """nutpie's NUTS on the hand-written density; ``settings`` is a ``sample.SamplerSettings``."""
    import nutpie

    return nutpie.sample(
        compile_model(d, priors, parametrizations),
        draws=settings.draws, tune=settings.tune, chains=settings.chains, seed=settings.seed,
        target_accept=settings.target_accept, save_warmup=False, progress_bar=progress,
    )
