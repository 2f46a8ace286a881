"""Population fixed effects: what lme4 and brms report, beside the zero-sum model's means over the fitted levels.

Under a zero-sum parametrisation a random term's deviations sum to zero over its fitted levels, so the
intercept (or a slope) the sampler estimates is the *mean over those levels* (e.g. over the 8 models
fitted), a finite-population quantity. The population effect that lme4 and brms report is the mean of
the distribution the levels are drawn from. Given the J realised levels with SD sigma, the population
mean differs from their mean by Normal(0, sigma^2 / J) (Gelman & Hill 2007, sec. 21.2); so per
posterior draw the population effect is the level mean plus sigma z / sqrt(J), summed over every
zero-sum random term carrying that coefficient. Terms in a textbook (centred or non-centred, not
zero-sum) parametrisation already estimate the population effect and add nothing. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from dvbstats.model.design import Design
from dvbstats.model.formula import safe_name

#: ``estimand`` of a fixed effect: which quantity ``fixed.csv``'s ``mean`` and HDI describe.
LEVEL_MEAN = "mean over the fitted levels"
POPULATION = "population"


def _contributions(d: Design, parametrizations: Mapping[str, str]) -> dict[str, list[tuple[str, int]]]:
    """Per fixed parameter (``Intercept``, ``b_<x>``): the zero-sum random terms' SD labels (``term`` of the
    posterior's ``sd``) and level counts."""
    out: dict[str, list[tuple[str, int]]] = {}
    zero_sum = {name for name, form in parametrizations.items() if form.startswith("zerosum")}
    if d.formula.intercept:
        out["Intercept"] = [(t.sd_labels[0], int(np.prod([len(lv) for lv in t.levels])))
                            for t in d.terms if t.name in zero_sum]
    for s in d.slopes:
        if s.name not in zero_sum:
            continue
        for coefficient, label in zip(s.coefficients, s.sd_labels, strict=True):
            param = "Intercept" if coefficient == "Intercept" else f"b_{safe_name(coefficient)}"
            out.setdefault(param, []).append((label, len(s.levels)))
    return out


def population_fixed_effects(
    d: Design, posterior: xr.Dataset, parametrizations: Mapping[str, str], seed: int
) -> dict[str, xr.DataArray]:
    """Per fixed parameter in ``posterior``: the draws of the population effect (level mean plus
    sigma z / sqrt(J) for each zero-sum term carrying it; ``z`` standard normal from ``seed``)."""
    rng = np.random.default_rng(seed)
    out = {}
    contributions = _contributions(d, parametrizations)
    names = (["Intercept"] if d.formula.intercept else []) + [f"b_{x}" for x in d.fixed]
    for name in names:
        if name not in posterior:
            continue
        draws = posterior[name]
        for label, n_levels in contributions.get(name, []):
            sd = posterior["sd"].sel(term=label, drop=True)
            draws = draws + sd * rng.standard_normal(sd.shape) / np.sqrt(n_levels)
        out[name] = draws.rename(name)
    return out


def estimand(d: Design, parametrizations: Mapping[str, str], name: str) -> str:
    """:data:`LEVEL_MEAN` when a zero-sum random term carries ``name``, else :data:`POPULATION`."""
    return LEVEL_MEAN if _contributions(d, parametrizations).get(name) else POPULATION
