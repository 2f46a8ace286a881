"""A hand-written log density and gradient of the agreement model, sampled with nutpie without PyMC.

The posterior is the one :func:`dvbstats.results.agreement_pymc.bayes_model` defines, in PyMC's unconstrained
coordinates and order ``[a, b, log sd_model, log sd_pair, free coordinates of u (or z_model)]``
(the zero-sum transform of :mod:`dvbstats.model.fastlogp`): only the arithmetic differs. Why: nutpie
compiled the PyMC graph with Numba on every run, about 15 s for 36 pairs; this density is compiled
once and cached on disk (measured in ``benchmarks/bench_speed.py``).

Per pair ``p``: ``eta = a + b same + u[m1] + u[m2]``, ``q = logit^-1(eta)``, and the count of
agreements is beta-binomial with ``alpha = 1 / (sd_pair^2 (1 - q))``, ``beta = 1 / (sd_pair^2 q)``
(mean ``q``, concentration ``1 / (sd_pair^2 q (1 - q))``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import gammaln

from dvbstats.model.fastlogp import _LOG_SQRT_2PI, _put, _zerosum, pyfunc_model

#: Priors of bayes_model: a ~ Normal(0, A_SD), b ~ Normal(0, B_SD), both SDs ~ HalfNormal(SD_SCALE).
A_SD, B_SD, SD_SCALE = 1.5, 1.0, 1.0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _lgamma_digamma(x):
    """``(log Gamma(x), digamma(x))`` for x > 0 from one logarithm: below 10 the recurrence shifts x up (one
    more logarithm, of the product), then the asymptotic series of both (error < 1e-15 relative from 10 on).
    The density costs 0.43 ms per gradient at 4,950 pairs against 0.63 ms with ``math.lgamma`` and a separate
    digamma (benchmarks/bench_stages.py)."""
    log_shift, digamma_shift = 0.0, 0.0
    if x < 10.0:
        product = 1.0
        while x < 10.0:
            product *= x
            digamma_shift -= 1.0 / x
            x += 1.0
        log_shift = -math.log(product)
    log_x, inv = math.log(x), 1.0 / x
    f = inv * inv
    lgamma = ((x - 0.5) * log_x - x + _LOG_SQRT_2PI + inv * (1 / 12 - f * (1 / 360 - f * (1 / 1260 - f * (
        1 / 1680 - f * (1 / 1188 - f * (691 / 360360 - f / 156)))))))
    digamma = log_x - 0.5 * inv - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f * (
        1 / 132 - f * (691 / 32760 - f / 12))))))
    return lgamma + log_shift, digamma + digamma_shift


#: From this argument on, :func:`_lgamma_ratio` uses its asymptotic difference (below it, the difference of
#: :func:`_lgamma_digamma`, whose absolute error there is about 1e-10).
ASYMPTOTIC_FROM = 1e5


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _lgamma_ratio(x, m):
    """``(log Gamma(x + m) - log Gamma(x), digamma(x + m) - digamma(x))`` for x > 0, m >= 0, accurate when x is
    huge. Why: a beta-binomial's shapes grow as 1 / sd_pair^2 (1e14 at sd_pair 1e-7), where the difference of
    two log Gammas of 3e15 keeps no digit and its gradient is noise; a chain that wandered there in tuning
    froze (step size 3e-13, every draw the same: calibration, docs/calibration.md). From
    :data:`ASYMPTOTIC_FROM` on, the difference of Stirling's series is taken term by term with ``log1p``."""
    if m == 0.0:
        return 0.0, 0.0
    if x < ASYMPTOTIC_FROM:
        lg_m, dg_m = _lgamma_digamma(x + m)
        lg_x, dg_x = _lgamma_digamma(x)
        return lg_m - lg_x, dg_m - dg_x
    y = x + m
    r = math.log1p(m / x)
    lgamma = (x - 0.5) * r + m * math.log(y) - m - m / (12.0 * x * y)
    digamma = r + 0.5 * m / (x * y) + m * (x + y) / (12.0 * x * x * y * y)
    return lgamma, digamma


@numba.njit(nogil=True, cache=True)
def _normal(x, sd):
    z = x / sd
    return -0.5 * z * z - math.log(sd) - _LOG_SQRT_2PI, -z / sd


@numba.njit(nogil=True, cache=True)
def _halfnormal(x, sd):
    return 0.5 * math.log(2 / math.pi) - math.log(sd) - 0.5 * (x / sd) ** 2, -x / sd**2


@numba.njit(nogil=True, cache=True, error_model="numpy")  # far out in tuning: inf/NaN (a divergence), not an exception
def _logp(x, same, m1, m2, k, n, log_binom, centred):
    """Log posterior density and gradient at the unconstrained point ``x``."""
    n_models = len(x) - 3
    grad = np.zeros(len(x))
    a, b, log_sdm, log_sdp = x[0], x[1], x[2], x[3]
    sdm, sdp = math.exp(log_sdm), math.exp(log_sdp)
    free = x[4:].copy()
    z = _zerosum(free, np.array([n_models]), False)
    scale = 1.0 if centred else sdm
    inv_s2 = 1.0 / (sdp * sdp)
    lp = log_binom
    g_eta_u = np.zeros(n_models)  # d logp / d u
    g_log_sdp = 0.0
    for i in range(len(k)):
        eta = a + b * same[i] + scale * (z[m1[i]] + z[m2[i]])
        q = 1.0 / (1.0 + math.exp(-eta))
        al, be = inv_s2 * (1.0 + math.exp(eta)), inv_s2 * (1.0 + math.exp(-eta))  # 1 / (1 - q), 1 / q
        lg_a, dg_a = _lgamma_ratio(al, k[i])
        lg_b, dg_b = _lgamma_ratio(be, n[i] - k[i])
        lg_n, dg_n = _lgamma_ratio(al + be, n[i])
        lp += lg_a + lg_b - lg_n
        g_al = dg_a - dg_n
        g_be = dg_b - dg_n
        g_eta = g_al * al * q - g_be * be * (1.0 - q)
        g_log_sdp -= 2.0 * (g_al * al + g_be * be)
        grad[0] += g_eta
        grad[1] += g_eta * same[i]
        g_eta_u[m1[i]] += g_eta
        g_eta_u[m2[i]] += g_eta
    p, dp = _normal(a, A_SD)
    lp += p
    grad[0] += dp
    p, dp = _normal(b, B_SD)
    lp += p
    grad[1] += dp
    dof = n_models - 1
    ssq = np.sum(free * free)  # = sum(z**2): the zero-sum transform is an isometry
    p, dp = _halfnormal(sdm, SD_SCALE)
    lp += p + log_sdm  # + log-transform Jacobian
    grad[2] = dp * sdm + 1.0
    if centred:
        lp += -0.5 * ssq / sdm**2 - dof * (_LOG_SQRT_2PI + log_sdm)
        grad[2] += ssq / sdm**2 - dof
        g_free = _zerosum(g_eta_u, np.array([n_models]), True) - free / sdm**2
    else:
        lp += -0.5 * ssq - dof * _LOG_SQRT_2PI
        grad[2] += np.sum(g_eta_u * z) * sdm
        g_free = _zerosum(g_eta_u * sdm, np.array([n_models]), True) - free
    p, dp = _halfnormal(sdp, SD_SCALE)
    lp += p + log_sdp
    grad[3] = g_log_sdp + dp * sdp + 1.0
    _put(grad, 4, g_free)
    return lp, grad


class AgreementDensity:
    """The agreement model's log density over PyMC's unconstrained vector, and its expansion to the
    posterior's names (``a``, ``b``, ``sd_model``, ``sd_pair``, ``u``, ``z_model`` when non-centred,
    ``diff_pp``)."""

    def __init__(self, same: np.ndarray, members: np.ndarray, n_agree: np.ndarray, n_shared: np.ndarray,
                 names: list[str], *, centred: bool):
        rows, cols = np.nonzero(members)
        if not np.array_equal(np.bincount(rows, minlength=len(same)), np.full(len(same), 2)):
            raise ValueError("agreement density: every pair must have two distinct members")
        self.m1, self.m2 = cols[0::2].astype(np.int64), cols[1::2].astype(np.int64)
        self.same = np.ascontiguousarray(same, dtype=np.float64)
        self.k = np.asarray(n_agree, dtype=np.float64)
        self.n = np.asarray(n_shared, dtype=np.float64)
        self.log_binom = float(np.sum(gammaln(self.n + 1) - gammaln(self.k + 1) - gammaln(self.n - self.k + 1)))
        self.names, self.centred = list(names), centred
        self.ndim = 4 + len(names) - 1

    def logp_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return _logp(x, self.same, self.m1, self.m2, self.k, self.n, self.log_binom, self.centred)

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        z = _zerosum(np.ascontiguousarray(x[4:]), np.array([len(self.names)]), False)
        sd_model = math.exp(x[2])
        out = {"a": x[0], "b": x[1], "sd_model": sd_model, "sd_pair": math.exp(x[3]),
               "u": z if self.centred else sd_model * z}
        if not self.centred:
            out["z_model"] = z
        out["diff_pp"] = 100 * (1 / (1 + math.exp(-x[0] - x[1])) - 1 / (1 + math.exp(-x[0])))
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    def variables(self) -> tuple[list[str], list[tuple[int, ...]], dict[str, tuple[str, ...]]]:
        names = ["a", "b", "sd_model", "sd_pair", "u"] + ([] if self.centred else ["z_model"]) + ["diff_pp"]
        shapes = [(len(self.names),) if n in ("u", "z_model") else () for n in names]
        return names, shapes, {n: ("model",) for n in ("u", "z_model") if n in names}

    def compile(self):
        """The nutpie model (its Python-function entry point)."""
        return pyfunc_model(self, {"model": self.names})
