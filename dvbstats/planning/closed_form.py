"""Closed-form power of a paired, clustered, repeated design (Miller 2024, "Adding Error Bars to Evals").

An arm's score on item ``i`` is the mean of ``K`` repetitions with conditional mean ``x_i`` (the item's
true rate for that arm) and conditional variance ``sigma_i^2 = x_i (1 - x_i)``. Over ``n`` items (Miller's
Sec. 3-4, Eq. 5-7):

    Var(rate)      = [Var(x_a) + E sigma_a^2 / K] / n
    Var(a - b)     = [Var(x_a) + Var(x_b) - 2 Cov(x_a, x_b) + (E sigma_a^2 + E sigma_b^2) / K] / n

and a true difference ``delta`` is found (two-sided at level alpha) with power
``Phi(|delta| / SE - z_{1-alpha/2})`` (his Eq. 9-10 solved for the power). Here the moments come from the
design prior's item model (:mod:`dvbstats.planning.prior`): ``x_a = expit(alpha_a + u + v_a)`` with the
shared ``u`` making ``Cov(x_a, x_b)`` positive, computed by Gauss-Hermite quadrature per prior draw, and the
power is averaged over the draws (at a one-draw prior it is Miller's power).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from dvbstats.planning.prior import DesignPrior, gauss_hermite
from dvbstats.planning.questions import Question


@dataclass(frozen=True)
class Moments:
    """Per prior draw: the arms' item-population rates, their item-level variances and covariance, and
    the mean within-item Bernoulli variance ``E x (1 - x)``."""

    mean_a: np.ndarray
    mean_b: np.ndarray
    var_a: np.ndarray
    var_b: np.ndarray
    cov: np.ndarray
    within_a: np.ndarray
    within_b: np.ndarray


def moments(alpha_a: np.ndarray, alpha_b: np.ndarray, tau: np.ndarray, omega: np.ndarray) -> Moments:
    """Moments of two arms' item rates under ``alpha + u + v`` (u shared, v each arm's own), per draw."""
    z, w = gauss_hermite()
    u = tau[:, None, None] * z[None, :, None]  # (draws, u nodes, 1)
    v = omega[:, None, None] * z[None, None, :]  # (draws, 1, v nodes)
    out = {}
    for name, alpha in (("a", alpha_a), ("b", alpha_b)):
        x = expit(alpha[:, None, None] + u + v)  # (draws, u, v)
        m1 = np.einsum("suv,u,v->s", x, w, w)
        m2 = np.einsum("suv,u,v->s", x * x, w, w)
        out[name] = (m1, m2 - m1**2, m1 - m2, np.einsum("suv,v->su", x, w))  # mean, var, E x(1-x), E[x | u]
    cov = np.einsum("su,su,u->s", out["a"][3], out["b"][3], w) - out["a"][0] * out["b"][0]
    return Moments(out["a"][0], out["b"][0], out["a"][1], out["b"][1], cov, out["a"][2], out["b"][2])


def standard_errors(m: Moments, n_items: int, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """The standard error of arm a's rate and of the paired difference a - b, per draw."""
    se_rate = np.sqrt((m.var_a + m.within_a / reps) / n_items)
    var_diff = m.var_a + m.var_b - 2 * m.cov + (m.within_a + m.within_b) / reps
    return se_rate, np.sqrt(np.maximum(var_diff, 0) / n_items)


def power(prior: DesignPrior, question: Question, n_items: int, reps: int) -> np.ndarray:
    """Closed-form P(success) per prior draw of ``question`` at ``n_items`` items x ``reps`` repetitions."""
    alpha = prior.intercepts()
    a = prior.index(question.a)
    b = prior.index(question.b) if question.b is not None else a
    m = moments(alpha[:, a], alpha[:, b], prior.tau, prior.omega)
    se_rate, se_diff = standard_errors(m, n_items, reps)
    if question.kind == "precision":
        return question.power(np.zeros_like(se_rate), se_rate)
    return question.power(m.mean_a - m.mean_b, se_diff)
