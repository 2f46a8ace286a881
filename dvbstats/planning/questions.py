"""The questions a run is planned for, each with the rule that says a finished run answered it.

* **contrast** (``--contrast A-B``, and ``--condition C1-C0`` per model): the difference of two arms'
  rates, paired on the items both answer. Success, by ``criterion``: ``hdi``: the HDI (mass
  ``hdi_prob``, 0.94) of the difference excludes 0; ``direction``: P(difference > 0) > ``credible`` (0.95).
* **precision** (``--precision W``): the HDI half-width of an arm's rate is below ``W``.
* **slope** (``--scaling``): the sign of the package's scaling slope (the change in the logit rate per
  within-family SD of model size, :func:`dvbstats.results.scaling.trend`): ``hdi``: its HDI excludes 0;
  ``direction``: P(slope has the planned ``sign``) > ``credible``.

Each rule is applied to a run's approximate posterior of the estimand, normal with the run's estimate
and its standard error (:func:`success`): the analysis the simulation-based assurance runs inside its
loop, validated against full fits of the package (docs/design-analysis.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from dvbstats.constants import CREDIBLE, HDI_PROB

CRITERIA: tuple[str, ...] = ("hdi", "direction")
KINDS: tuple[str, ...] = ("contrast", "precision", "slope")


@dataclass(frozen=True)
class Question:
    """``kind`` ``contrast`` (arms ``a`` - ``b``), ``precision`` (arm ``a``; ``target`` the half-width) or
    ``slope`` (``a`` names the estimand; ``sign`` the direction the ``direction`` rule asks for, -1 or 1)."""

    kind: str
    label: str
    a: str
    b: str | None = None
    criterion: str = "hdi"
    target: float | None = None
    hdi_prob: float = HDI_PROB
    credible: float = CREDIBLE
    sign: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"question kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.sign not in (-1, 1):
            raise ValueError(f"sign must be -1 or 1, not {self.sign!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, not {self.criterion!r}")

    @property
    def rule(self) -> str:
        """The success rule in words (``recommendation.json``)."""
        if self.kind == "precision":
            return f"the {self.hdi_prob:.0%} HDI of the rate has half-width below {self.target:g}"
        what = "slope" if self.kind == "slope" else "difference"
        if self.criterion == "hdi":
            return f"the {self.hdi_prob:.0%} HDI of the {what} excludes 0"
        return f"P({what} {'<' if self.sign < 0 else '>'} 0) > {self.credible:g}"

    @property
    def z(self) -> float:
        """The normal quantile the rule compares estimate / SE (or the half-width) with."""
        if self.kind == "precision" or self.criterion == "hdi":
            return float(norm.ppf(0.5 + self.hdi_prob / 2))
        return float(norm.ppf(self.credible))

    def success(self, estimate: np.ndarray, se: np.ndarray) -> np.ndarray:
        """Whether runs with these estimates and standard errors answer the question (normal posterior)."""
        if self.kind == "precision":
            return self.z * se < self.target
        ok = se > 0
        if self.criterion == "hdi":
            return ok & (np.abs(estimate) > self.z * se)
        return ok & (self.sign * estimate > self.z * se)

    def power(self, difference: np.ndarray, se: np.ndarray) -> np.ndarray:
        """P(success) of a run whose estimate is Normal(``difference``, ``se``) (the closed form's power);
        for precision, whether the expected half-width is below the target (0 or 1)."""
        if self.kind == "precision":
            return (self.z * se < self.target).astype(float)
        t = difference / se
        if self.criterion == "hdi":
            return norm.cdf(t - self.z) + norm.cdf(-t - self.z)
        return norm.cdf(self.sign * t - self.z)
