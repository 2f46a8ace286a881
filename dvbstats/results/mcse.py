"""Monte Carlo standard errors of the numbers a verdict compares with a threshold, and borderline verdicts.

A verdict rule compares posterior summaries (an HDI bound, a posterior probability, a mean) with fixed
thresholds. Those summaries are estimated from finitely many draws: a rerun with another seed moves
them by about one Monte Carlo standard error (MCSE). A verdict is *borderline* when moving one of the
numbers it was decided on by up to :data:`K_MCSE` MCSEs either way changes it (:func:`fragile`).

MCSEs from draws use ArviZ (Vehtari et al. 2021) for the mean and for a probability (the mean of an
indicator). An HDI bound is not a fixed quantile: the shortest interval's ends move with its width, and
between reruns they vary more than the quantile at the same level (on independent normal draws, 94%
HDI, the upper bound's SD over 300-400 reruns was 1.54, 1.97 and 2.48 times the quantile MCSE at
2,000, 8,000 and 32,000 draws: about 1.97 (n / 8000)^(1/6)). :func:`hdi_mcse` therefore scales the quantile MCSE
(which accounts for autocorrelation) by that factor at the quantile's effective sample size. Tables that keep only a summary and the effective sample sizes get the normal
approximations of :func:`approx_mean_mcse`, :func:`approx_bound_mcse` (with that measured factor) and
:func:`approx_probability_mcse`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import arviz as az
import numpy as np
from scipy import stats

from dvbstats.model.sample import arviz_without_numba

#: A verdict whose deciding number lies within this many MCSEs of its threshold is borderline.
K_MCSE = 2.0
#: An HDI bound's Monte Carlo SD over the quantile MCSE at REFERENCE_DRAWS independent normal draws
#: (measured, see the module docstring), and its growth with the number of draws.
HDI_OVER_QUANTILE, REFERENCE_DRAWS, HDI_GROWTH = 1.97, 8000, 1 / 6


def _chains(draws: np.ndarray) -> np.ndarray:
    """(chain, draw) array of a scalar quantity; a flat sample counts as one chain."""
    x = np.asarray(draws, dtype=float)
    return x[None, :] if x.ndim == 1 else x.reshape(x.shape[0], -1)


def _scalar(x) -> float:
    return float(np.ravel(x)[0])


def _mcse(x: np.ndarray, **options) -> float:
    """``arviz.mcse`` of a (chain, draw) array in NumPy arithmetic (:func:`~dvbstats.model.sample.arviz_without_numba`)."""
    with arviz_without_numba():
        return _scalar(az.mcse(x, **options))


def mean_mcse(draws: np.ndarray) -> float:
    """MCSE of the posterior mean of ``draws`` ((chain, draw) or flat)."""
    return _mcse(_chains(draws), method="mean")


def probability_mcse(event: np.ndarray) -> float:
    """MCSE of a posterior probability estimated as the share of draws where ``event`` (bool) holds;
    0 when every draw agrees (the MCSE of an indicator without variation is not estimable)."""
    x = _chains(np.asarray(event, dtype=float))
    if x.min() == x.max():
        return 0.0
    return _mcse(x, method="mean")


def quantile_mcse(draws: np.ndarray, bound: float) -> float:
    """MCSE of a fixed quantile: ArviZ's quantile MCSE at the share of draws at or below ``bound``."""
    x = _chains(draws)
    prob = float(np.clip((x <= bound).mean(), 1 / x.size, 1 - 1 / x.size))
    return _mcse(x, method="quantile", prob=prob)


def hdi_mcse(draws: np.ndarray, hdi_prob: float) -> tuple[float, float]:
    """MCSEs of the lower and upper HDI bounds of ``draws`` ((chain, draw) or flat): each bound's
    quantile MCSE times :data:`HDI_OVER_QUANTILE` * (ESS / REFERENCE_DRAWS)^(1/6), the ESS being the
    quantile's (the number of independent draws with the same quantile MCSE)."""
    x = _chains(draws)
    out = []
    for bound in az.hdi(x.ravel(), hdi_prob=hdi_prob):
        q = float(np.clip((x <= bound).mean(), 1 / x.size, 1 - 1 / x.size))
        error = quantile_mcse(x, bound)
        independent = math.sqrt(q * (1 - q) / x.size) / max(_density(x.ravel(), bound), 1e-300)
        ess = x.size * (independent / error) ** 2 if error > 0 else x.size
        out.append(error * HDI_OVER_QUANTILE * (ess / REFERENCE_DRAWS) ** HDI_GROWTH)
    return out[0], out[1]


def _density(flat: np.ndarray, at: float) -> float:
    """Kernel density of ``flat`` at ``at`` (Gaussian kernel, Scott's bandwidth)."""
    return float(stats.gaussian_kde(flat)(at)[0])


def _normal_sd(low: float, high: float, hdi_prob: float) -> float:
    return (high - low) / (2 * stats.norm.ppf(0.5 + hdi_prob / 2))


def approx_mean_mcse(low: float, high: float, hdi_prob: float, ess_bulk: float) -> float:
    """MCSE of a mean from its HDI and bulk ESS, treating the posterior as normal (SD from the HDI width)."""
    return _normal_sd(low, high, hdi_prob) / math.sqrt(ess_bulk)


def approx_bound_mcse(low: float, high: float, hdi_prob: float, ess_tail: float) -> float:
    """MCSE of an HDI bound from the HDI and tail ESS, treating the posterior as normal: the quantile
    q = (1 - hdi_prob) / 2 has MCSE sd * sqrt(q (1 - q) / ESS) / phi(z_q), and the HDI bound
    :data:`HDI_OVER_QUANTILE` * (ESS / REFERENCE_DRAWS)^(1/6) times that."""
    q = (1 - hdi_prob) / 2
    quantile = _normal_sd(low, high, hdi_prob) * math.sqrt(q * (1 - q) / ess_tail) / stats.norm.pdf(stats.norm.ppf(q))
    return quantile * HDI_OVER_QUANTILE * (ess_tail / REFERENCE_DRAWS) ** HDI_GROWTH


def approx_probability_mcse(p: float, ess_bulk: float) -> float:
    """MCSE of a posterior probability ``p`` with the quantity's bulk ESS standing in for the indicator's."""
    return math.sqrt(p * (1 - p) / ess_bulk)


@dataclass(frozen=True)
class Fragile:
    """A number the verdict was decided on, within :data:`K_MCSE` MCSEs of changing it."""

    quantity: str
    value: float
    mcse: float
    threshold: float | None = None

    def describe(self) -> str:
        near = f" (threshold {self.threshold:g})" if self.threshold is not None else ""
        return f"{self.quantity} {self.value:.4g}, MCSE {self.mcse:.2g}{near}"


def fragile(
    rule: Callable[..., str],
    numbers: Mapping[str, float | np.ndarray],
    mcses: Mapping[str, float | np.ndarray | None],
    *,
    labels: Mapping[str, str | list[str]] | None = None,
    thresholds: Mapping[str, float] | None = None,
    k: float = K_MCSE,
) -> list[Fragile]:
    """The numbers whose shift by ``k`` MCSEs, up or down and one at a time, changes ``rule(**numbers)``.

    ``numbers`` are the rule's keyword arguments (scalars or arrays); ``mcses`` their MCSEs (same
    shape; None or missing: treated as exact). ``labels`` names each number (a list for arrays) in
    the result; ``thresholds`` are shown beside them.
    """
    verdict = rule(**numbers)
    labels, thresholds = labels or {}, thresholds or {}
    found = []
    for name, value in numbers.items():
        mcse = mcses.get(name)
        if mcse is None:
            continue
        values, errors = np.atleast_1d(np.asarray(value, dtype=float)), np.atleast_1d(np.asarray(mcse, dtype=float))
        names = labels.get(name, name)
        for i in np.flatnonzero(errors > 0):
            for sign in (-1.0, 1.0):
                shifted = values.copy()
                shifted[i] += sign * k * errors[i]
                moved = shifted if np.ndim(value) else float(shifted[0])
                if rule(**{**numbers, name: moved}) != verdict:
                    label = names[i] if isinstance(names, list) else names
                    found.append(Fragile(label, float(values[i]), float(errors[i]), thresholds.get(name)))
                    break
    return found


def borderline_note(found: list[Fragile], k: float = K_MCSE) -> str | None:
    """The label of a borderline verdict, or None when nothing is within ``k`` MCSEs of changing it."""
    if not found:
        return None
    return f"borderline: within {k:g} MCSE of another verdict ({'; '.join(f.describe() for f in found)})"
