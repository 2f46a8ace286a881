"""Priors: weakly informative defaults on the logit scale, and a small text syntax to override them.

Defaults (brms-style classes; a specific name beats its class):

* ``intercept = normal(0, 1.5)`` — the log-odds of a deep-value choice in an average design
  cell; puts 95% of prior mass on DVGR between 0.05 and 0.95.
* ``b = normal(0, 1)`` — slopes of (centred) numeric predictors, per unit of the predictor.
* ``b = normal(0, 1)`` also covers factor contrasts (``b_condition_B``: the log-odds ratio of level
  B against the reference) and interaction coefficients.
* ``sd = halfnormal(1)`` — random-intercept and random-slope SDs; an SD of 1 lets levels differ in
  odds by a factor of e (about ±0.2 in DVGR around 0.3), and SDs beyond 2.5 are implausible.
  Slope SDs are named ``sd_<group>__<coefficient>`` (``sd_model__log_n_train``).
* ``cor = lkj(2)`` — the correlations of a random term's intercept and slopes (``cor_<term>``): an
  LKJ prior with eta = 2 puts a gentle mode at zero correlation (density ∝ 1 - r² for two coefficients)
  and lets the data move it; eta = 1 is uniform over correlation matrices.

Override with ``NAME=DIST(args)``, e.g. ``sd=exponential(2)``, ``sd_value=halfnormal(0.5)``,
``b_log_n_train=normal(0, 0.25)``, ``intercept=student_t(3, 0, 2.5)``, ``cor=lkj(4)``. Parameters are
checked when read (a scale must be positive, ``lkj`` only for correlations), before anything compiles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

#: name -> (PyMC class name, parameter names, support)
_DISTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "normal": ("Normal", ("mu", "sigma"), "real"),
    "student_t": ("StudentT", ("nu", "mu", "sigma"), "real"),
    "logistic": ("Logistic", ("mu", "s"), "real"),  # logistic(0, 1) on a logit = uniform on the probability
    "halfnormal": ("HalfNormal", ("sigma",), "positive"),
    "halfstudent_t": ("HalfStudentT", ("nu", "sigma"), "positive"),
    "halfcauchy": ("HalfCauchy", ("beta",), "positive"),
    "exponential": ("Exponential", ("lam",), "positive"),
    "lkj": ("LKJCorr", ("eta",), "correlation"),
}
#: Parameters that must be > 0 (locations may be any finite number).
_POSITIVE = {"sigma", "nu", "s", "beta", "lam", "eta"}
_CLASS_SUPPORT = {"intercept": "real", "b": "real", "sd": "positive", "cor": "correlation"}
_CLASSES = ", ".join(("intercept", "b, b_<coefficient>", "sd, sd_<term>", "cor, cor_<term>"))
_SPEC = re.compile(r"^\s*([a-z_]+)\s*\(([^)]*)\)\s*$")


class PriorError(ValueError):
    """A prior specification that cannot be used."""


@dataclass(frozen=True)
class Prior:
    dist: str
    args: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.dist}({', '.join(f'{a:g}' for a in self.args)})"

    @property
    def family(self) -> str:
        """PyMC's name of its distribution (``Normal``, ``HalfNormal``, ...): :mod:`dvbstats.model.pymcmodel`."""
        return _DISTS[self.dist][0]

    @property
    def parameters(self) -> dict[str, float]:
        """Its parameters by PyMC's names (``{"mu": 0.0, "sigma": 1.5}``)."""
        return dict(zip(_DISTS[self.dist][1], self.args))

    @classmethod
    def parse(cls, text: str) -> Prior:
        m = _SPEC.match(text)
        if m is None or m.group(1) not in _DISTS:
            raise PriorError(f"cannot read prior {text!r}: expected one of {', '.join(f'{d}(...)' for d in _DISTS)}")
        dist = m.group(1)
        try:
            args = tuple(float(a) for a in m.group(2).split(",") if a.strip())
        except ValueError:
            raise PriorError(f"cannot read prior {text!r}: arguments must be numbers") from None
        params = _DISTS[dist][1]
        if len(args) != len(params):
            raise PriorError(f"prior {text!r}: {dist} takes ({', '.join(params)})")
        for param, value in zip(params, args):
            if not np.isfinite(value) or (param in _POSITIVE and value <= 0):
                need = "a positive number" if param in _POSITIVE else "a finite number"
                raise PriorError(f"prior {text!r}: {param} of {dist} must be {need}, not {value:g}")
        return cls(dist, args)


DEFAULTS: dict[str, Prior] = {
    "intercept": Prior("normal", (0.0, 1.5)),
    "b": Prior("normal", (0.0, 1.0)),
    "sd": Prior("halfnormal", (1.0,)),
    "cor": Prior("lkj", (2.0,)),
}


@dataclass(frozen=True)
class Priors:
    """The priors of a model: class defaults plus overrides by class or by parameter name."""

    overrides: Mapping[str, Prior]

    @classmethod
    def from_specs(cls, specs: Iterable[str] = ()) -> Priors:
        """Read ``NAME=DIST(args)`` strings (the ``--prior`` option)."""
        overrides = {}
        for spec in specs:
            name, sep, dist = spec.partition("=")
            name = name.strip()
            if not sep or not name:
                raise PriorError(f"cannot read --prior {spec!r}: expected NAME=DIST(args), e.g. \"sd=halfnormal(1)\" "
                                 "(--prior takes every word after it up to the next option: give input paths before it)")
            try:
                prior = Prior.parse(dist)
            except PriorError as exc:
                raise PriorError(f"--prior {name}: {exc}") from None
            klass = _klass(name)
            if klass is None:
                raise PriorError(f"prior for {name!r}: the name must be one of {_CLASSES}")
            support = _DISTS[prior.dist][2]
            if support != _CLASS_SUPPORT[klass] and not (klass in ("intercept", "b") and support == "positive"):
                need = {"positive": "an SD needs a positive distribution",
                        "correlation": "correlations take lkj(eta)",
                        "real": "a coefficient needs a distribution on the real line"}[_CLASS_SUPPORT[klass]]
                raise PriorError(f"prior for {name!r}: {need}, not {prior.dist}")
            overrides[name] = prior
        return cls(overrides)

    def get(self, name: str) -> Prior:
        """The prior of parameter ``name`` (``intercept``, ``b_<x>``, ``sd_<term>`` or ``cor_<term>``)."""
        klass = _klass(name)
        return self.overrides.get(name) or self.overrides.get(klass) or DEFAULTS[klass]

    def check(self, names: Iterable[str]) -> None:
        """Refuse overrides that name no parameter of the model (a likely typo)."""
        known = set(names) | set(DEFAULTS)
        unknown = sorted(set(self.overrides) - known)
        if unknown:
            raise PriorError(f"--prior names {', '.join(unknown)}, which the model does not have "
                             f"(it has {', '.join(sorted(set(names)))})")

    def describe(self, names: Iterable[str]) -> dict[str, str]:
        """Text of every prior the model uses, for the manifest and the report."""
        return {name: str(self.get(name)) for name in names}


def _klass(name: str) -> str | None:
    if name == "intercept":
        return "intercept"
    for klass in ("b", "sd", "cor"):
        if name == klass or name.startswith(klass + "_"):
            return klass
    return None
