"""The fitted model: a formula fitted to binomial cells, with its posterior and diagnostics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import arviz as az
import polars as pl
import xarray as xr

from . import estimands, fastlogp
from .cells import CellTable
from .formula import Formula
from .model import Design, Parametrization, build, check_parametrization, design, term_parametrizations
from .priors import Priors
from .sample import Diagnostics, SamplerSettings, diagnose, sample


@dataclass(frozen=True)
class Fit:
    design: Design
    priors: Priors
    settings: SamplerSettings
    parametrization: str
    idata: az.InferenceData
    timing: dict[str, float] = field(default_factory=dict)
    backend: str = "pymc"  # "fastlogp" (hand-written density) or "pymc" (the PyMC graph)

    @property
    def formula(self) -> Formula:
        return self.design.formula

    @property
    def cells(self) -> CellTable:
        return self.design.cells

    @property
    def models(self) -> list[str]:
        return self.cells.by_model()["model"].to_list()

    @cached_property
    def _averages(self) -> dict[tuple[str, ...], tuple[xr.DataArray, pl.DataFrame]]:
        """Design averages by model, overall, by each other factor and by each interaction, in one pass."""
        groupings = [("model",), ()]
        groupings += [(f,) for f in self.cells.by if f != "model"]
        groupings += [t.term.factors for t in self.design.terms if len(t.term.factors) > 1]
        groupings = list(dict.fromkeys(groupings))
        return dict(zip(groupings, estimands.design_averages(self.design, self.idata, groupings)))

    def average(self, by: Sequence[str]) -> tuple[xr.DataArray, pl.DataFrame]:
        """Prompt-weighted posterior DVGR per group of design cells: ((chain, draw, group), keys)."""
        key = tuple(by)
        if key not in self._averages:
            self._averages[key] = estimands.design_averages(self.design, self.idata, [key])[0]
        return self._averages[key]

    @property
    def dvgr(self) -> xr.DataArray:
        """Design-averaged DVGR per model (chain, draw, model)."""
        return estimands.dvgr_draws(self.average(("model",)))

    @property
    def overall(self) -> xr.DataArray:
        return estimands.overall_dvgr(self.average(()))

    def top_level(self) -> dict[str, xr.DataArray]:
        """Intercept, slopes and random-effect SDs: the parameters every summary starts from."""
        post = self.idata.posterior
        names = (["Intercept"] if self.formula.intercept else []) + [f"b_{x}" for x in self.design.fixed]
        out = {n: post[n] for n in names}
        if "sd" in post:
            out["sd"] = post["sd"]
        return out

    @cached_property
    def diagnostics(self) -> Diagnostics:
        """Checks on every reported quantity: top-level parameters, every DVGR, the overall DVGR."""
        quantities = {**self.top_level(), "dvgr": self.dvgr, "dvgr_overall": self.overall}
        return diagnose(quantities, self.idata)

    def parametrizations(self) -> dict[str, str]:
        """The parametrisation each random term was sampled in."""
        return term_parametrizations(self.design, self.parametrization)

    def priors_used(self) -> dict[str, str]:
        return self.priors.describe(self.design.prior_names)


def default_target_accept(d: Design, parametrization: Parametrization) -> float:
    """0.8 when every random term is centred (data-rich: long trajectories would only cost time);
    0.95 when some term is non-centred (thin data, where divergences come from curvature and the
    gradients are cheap). Measured in docs/model.md."""
    kinds = term_parametrizations(d, parametrization).values()
    return 0.95 if any("noncentered" in k for k in kinds) else 0.8


def fit(
    formula: Formula,
    cells: CellTable,
    *,
    priors: Priors | None = None,
    settings: SamplerSettings = SamplerSettings(),
    parametrization: Parametrization = "auto",
    progress: bool = True,
    backend: str = "auto",
) -> Fit:
    """Build the hierarchical logistic model of ``formula`` on ``cells`` and sample it.

    ``backend="auto"`` samples the hand-written density of :mod:`dvbstats.fastlogp` with nutpie
    when it supports the design (same posterior, no per-model compilation), else the PyMC model.
    """
    if backend not in ("auto", "fastlogp", "pymc"):
        raise ValueError(f"backend must be auto, fastlogp or pymc, not {backend!r}")
    priors = priors or Priors({})
    t0 = time.perf_counter()
    d = design(formula, cells)
    if settings.target_accept is None:
        settings = replace(settings, target_accept=default_target_accept(d, parametrization))
    if backend == "auto":
        backend = "fastlogp" if settings.sampler == "nutpie" and fastlogp.supports(d) else "pymc"
    if backend == "fastlogp":
        per_term = term_parametrizations(d, check_parametrization(parametrization))
        t1 = time.perf_counter()
        idata = fastlogp.sample(d, priors, per_term, settings, progress=progress)
    else:
        model = build(d, priors, parametrization)
        t1 = time.perf_counter()
        idata = sample(model, settings, progress=progress)
    t2 = time.perf_counter()
    return Fit(d, priors, settings, parametrization, idata, {"build_s": t1 - t0, "sample_s": t2 - t1}, backend)
