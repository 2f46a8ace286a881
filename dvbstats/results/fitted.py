"""The fitted model: a formula fitted to binomial cells, with its posterior and diagnostics."""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import polars as pl
import xarray as xr

from dvbstats.constants import DRAWS, HDI_PROB, SEED
from dvbstats.input.cells import CellTable, predicted_cells
from dvbstats.input.registry import ModelTable
from dvbstats.model import crossed, fastlogp, itemmarginal, lazy
from dvbstats.model import plan as plans
from dvbstats.model.design import Design, design
from dvbstats.model.formula import Formula
from dvbstats.model.plan import Parametrization
from dvbstats.model.priors import Priors
from dvbstats.model.sample import Diagnostics, SamplerSettings, diagnose, run_nutpie
from dvbstats.results import bounds, contrasts, estimands, predictive
from dvbstats.results import tables as summaries

if TYPE_CHECKING:
    from dvbstats.data import Data

pymcmodel = lazy.module("dvbstats.model.pymcmodel")  # PyMC: imported when the PyMC backend samples


@dataclass(frozen=True)
class Fit:
    """A formula fitted to binomial cells: its design, priors, sampler settings and form of the kept attempt,
    posterior, diagnostics and how it was sampled (``sampling``: the plan and every attempt made).

    Tables come back as pandas DataFrames (:meth:`summary`, :meth:`rates`, :meth:`contrast`), as from
    :func:`dvbstats.compare` and ``Model.prior_predictive``; posterior draws as xarray (:attr:`dvgr`,
    :attr:`overall`) or NumPy arrays (:meth:`level_draws`).

    ``idata`` is the ArviZ InferenceData: ``posterior`` and ``sample_stats`` from the sampler, and, as in
    PyMC and bambi, ``observed_data`` (``n_deep``, the successes of each design cell) and ``constant_data``
    (``n_trials``), with the cell's design columns as coordinates of the dimension ``cell``
    (:mod:`dvbstats.results.predictive`). On request, as ``pm.compute_log_likelihood`` and
    ``pm.sample_posterior_predictive`` do, :meth:`compute_log_likelihood` adds the ``log_likelihood`` group
    (``az.loo(fit.idata)``) and :meth:`sample_posterior_predictive` the ``posterior_predictive`` group
    (``az.plot_ppc(fit.idata)``). One observation is one design cell, as in :func:`dvbstats.compare`.
    """

    design: Design
    priors: Priors
    settings: SamplerSettings
    parametrization: str
    idata: az.InferenceData
    timing: dict[str, float] = field(default_factory=dict)
    #: how it was sampled: the plan (form per term, target acceptance, mass matrix, fallbacks) and every attempt
    #: made, the last being this fit (:class:`dvbstats.model.plan.Sampling`; None for a fit built by hand)
    sampling: plans.Sampling | None = None
    #: the item term integrated out of the sampled density (itemmarginal.ItemMarginalModel.describe), or None
    items_integrated: dict | None = None
    data: Data | None = field(default=None, repr=False)  # the input it was fitted to (set by api.Model.fit)
    empty_models: tuple[str, ...] = ()  # models in the data without one usable trial
    model_table: ModelTable | None = field(default=None, repr=False)  # the model-table rows of the fitted models

    def __post_init__(self) -> None:
        """Put the cells in :attr:`idata` as ``observed_data`` and ``constant_data`` (replacing PyMC's, laid out
        without the cells' coordinates), unless they are there."""
        groups = self.idata.groups()
        if "observed_data" in groups and predictive.CELL in self.idata.observed_data.dims:
            return
        for group in ("observed_data", "constant_data"):
            if group in groups:
                delattr(self.idata, group)
        observed, constant = predictive.observed_data(self.design)
        self.idata.add_groups(observed_data=observed, constant_data=constant)

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"Fit({str(self.formula)!r}: {self.cells.n_trials:,} trials, {len(self.models)} models, "
                f"{self.settings.chains} chains x {self.settings.draws} draws; diagnostics "
                f"{'OK' if d.ok else 'FAILED: ' + '; '.join(d.failures)})")

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
        """Design averages by model, overall, by each other factor and by each interaction, in one pass
        (item-level groupings, :data:`dvbstats.results.bounds.MAX_LEVELS_LISTED`, only when asked for: 12,000 prompts
        x 4,000 draws are 400 MB). Model by each condition of the fixed part is in the same pass: the condition
        tables ask for it, and a pass over HVSB's 72,000 item cells costs about 10 CPU s. The finest grouping
        (:attr:`_fine`) is in the same pass, for groupings asked for later (:meth:`regrouped`)."""
        groupings = [("model",), ()]
        groupings += [(f,) for f in self.cells.by if f != "model"]
        groupings += [t.term.factors for t in self.design.terms if len(t.term.factors) > 1]
        by_condition = [("model", v.name) for v in summaries.condition_variables(self)]
        groupings = [g for g in dict.fromkeys(groupings + by_condition)
                     if not g or not bounds.item_level(self.cells.data.select(g).n_unique())]
        passed = groupings + [self._fine] if self._fine is not None and self._fine not in groupings else groupings
        averages = dict(zip(passed, estimands.design_averages(self.design, self.idata, passed)))
        for by in by_condition:
            if self.predicted(by[1]) is not None:
                averages[by] = self._predicted_average(by)
        return averages

    @cached_property
    def _fine(self) -> tuple[str, ...] | None:
        """The finest grouping :attr:`_averages` holds, for :meth:`regrouped`: every factor of the cells that is not
        item-level, when its groups x draws are at most :data:`~dvbstats.results.estimands.MAX_FINE_VALUES`; else None."""
        data, post = self.cells.data, self.idata.posterior
        fine = tuple(f for f in self.cells.by if not bounds.item_level(data[f].n_unique()))
        n_draws = post.sizes["chain"] * post.sizes["draw"]
        return fine if fine and data.select(fine).n_unique() * n_draws <= estimands.MAX_FINE_VALUES else None

    @cached_property
    def _fine_weights(self) -> np.ndarray:
        """The total weight of each group of :attr:`_fine` (:func:`~dvbstats.results.estimands.group_weights`)."""
        return estimands.group_weights(self.design, self._averages[self._fine][1])

    def average(self, by: Sequence[str]) -> tuple[xr.DataArray, pl.DataFrame]:
        """Prompt-weighted posterior DVGR per group of design cells: ((chain, draw, group), keys). By model x a
        condition, models absent from a level have their predicted rate there (:meth:`predicted`)."""
        key = tuple(by)
        if key not in self._averages:
            predicted = len(key) == 2 and key[0] == "model" and self.predicted(key[1]) is not None
            self._averages[key] = (self._predicted_average(key) if predicted
                                   else estimands.design_averages(self.design, self.idata, [key])[0])
        return self._averages[key]

    def regrouped(self, groupings: Sequence[Sequence[str]], labels: pl.DataFrame | None = None
                  ) -> list[tuple[xr.DataArray, pl.DataFrame]] | None:
        """Design averages of ``groupings`` from the finest grouping held (:attr:`_fine`), without a pass over the
        cells; the groupings may use the columns of ``labels``, which the cells' columns they share determine (one
        row per value of those: HVSB's dataset and scenario-type parts, by scenario type). None when the finest
        grouping lacks a column the groupings or the labels need."""
        fine = self._fine
        shared = [c for c in (labels.columns if labels is not None else ()) if c in self.cells.by]
        if fine is None or not set(shared) <= set(fine) or (labels is not None and not shared):
            return None
        da, keys = self._averages[fine]
        keys = keys.join(labels, on=shared, how="left", maintain_order="left") if labels is not None else keys
        if not all(set(g) <= set(keys.columns) for g in groupings):
            return None
        return estimands.regroup((da, keys), self._fine_weights, groupings)

    def predicted(self, factor: str) -> CellTable | None:
        """The model x ``factor`` cells the data lack (:func:`~dvbstats.input.cells.predicted_cells`), or None:
        a model judged under some conditions only has a rate under the others that is a prediction from the
        hierarchy (its model effects at the observed levels, the population's effect of the condition and the
        spread of per-model slopes), never data."""
        if factor not in self.cells.by or factor == "model":
            return None
        cells = predicted_cells(self.cells, factor)
        return cells if cells.data.height else None

    def _predicted_average(self, by: tuple[str, str]) -> tuple[xr.DataArray, pl.DataFrame]:
        """:meth:`average` by model x a condition over the observed cells and the :meth:`predicted` ones (no
        trials: they add nothing to the posterior; the parameters are laid out as in the fitted design)."""
        extra = self.predicted(by[1])
        complete = design(self.formula, CellTable(pl.concat([self.cells.data, extra.data]), self.cells.by))
        same = ([t.levels for t in complete.random] == [t.levels for t in self.design.random]
                and np.array_equal(complete.centers, self.design.centers))  # trial-weighted: cells without trials keep them
        if not same:
            raise AssertionError("predicted cells changed the levels or the coding of the fitted design")
        return estimands.design_averages(complete, self.idata, [by])[0]

    def level_draws(self, by: str = "model") -> tuple[np.ndarray, list[str]]:
        """Design-averaged rate per level of factor ``by`` as (samples, levels), and the level names."""
        da, keys = self.average((by,))
        return da.values.reshape(-1, da.sizes["group"]), [str(x) for x in keys[by]]

    def contrast(
        self, a: str, b: str, *, by: str = "model", hdi_prob: float = HDI_PROB, rope: float | None = None
    ) -> pd.DataFrame:
        """Posterior of rate(a) - rate(b) for two levels of factor ``by``: mean, HDI, P(> 0) and, with
        ``rope``, P(|difference| < rope) (one row; see :mod:`dvbstats.results.contrasts`)."""
        draws, labels = self.level_draws(by)
        return contrasts.contrast_table(draws, labels, [(a, b)], factor=by, hdi_prob=hdi_prob, rope=rope).to_pandas()

    @property
    def dvgr(self) -> xr.DataArray:
        """Design-averaged DVGR per model (chain, draw, model)."""
        return estimands.dvgr_draws(self.average(("model",)))

    @property
    def overall(self) -> xr.DataArray:
        return estimands.overall_dvgr(self.average(()))

    def top_level(self) -> dict[str, xr.DataArray]:
        """Intercept, coefficients, random-effect SDs and correlations: what every summary starts from."""
        post = self.idata.posterior
        names = (["Intercept"] if self.formula.intercept else []) + [f"b_{x}" for x in self.design.fixed]
        return {n: post[n] for n in [*names, "sd", "cor"] if n in post}

    @cached_property
    def diagnostics(self) -> Diagnostics:
        """Checks on every reported quantity: top-level parameters, every DVGR, the overall DVGR."""
        quantities = {**self.top_level(), "dvgr": self.dvgr, "dvgr_overall": self.overall}
        return diagnose(quantities, self.idata)

    def summary(self, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Fixed effects, random-effect SDs (and correlations) with HDIs, R-hat and ESS: one DataFrame,
        indexed by parameter, in the spirit of statsmodels' ``summary()`` (logit scale)."""
        parts = [summaries.fixed_table(self, hdi_prob).with_columns(kind=pl.lit("fixed")),
                 summaries.sd_table(self, hdi_prob).with_columns(
                     term=pl.lit("sd[") + pl.col("term") + pl.lit("]"), kind=pl.lit("sd"))]
        table = pl.concat([p for p in parts if p.height], how="diagonal")
        return table.to_pandas().set_index("term")

    def rates(self, by: str | Sequence[str] = "model", hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Design-averaged posterior rate (the DVGR for DVB) per level of ``by``, beside the raw rate."""
        return summaries.grouped(self, [by] if isinstance(by, str) else list(by), hdi_prob).to_pandas()

    def plot_forest(self, hdi_prob: float = HDI_PROB):
        """Posterior rate per model with its HDI beside the raw rate and Wilson interval (a Figure): the report's
        forest plot (:func:`dvbstats.report.plots.fit_forest`, provided by it: :data:`PROVIDED`)."""
        return provided("plot_forest")(self, hdi_prob)

    def compute_log_likelihood(self) -> az.InferenceData:
        """Add the pointwise log-likelihood of every design cell to :attr:`idata` (group ``log_likelihood``,
        variable ``n_deep``), so that ``az.loo(fit.idata)`` works; returns :attr:`idata`. Its ELPD is the one
        :func:`dvbstats.compare` reports for this fit on its own cells."""
        if "log_likelihood" not in self.idata.groups():
            self.idata.add_groups(log_likelihood=xr.Dataset({predictive.OUTCOME: predictive.log_likelihood(
                self.design, self.idata)}))
        return self.idata

    def sample_posterior_predictive(self, seed: int = SEED) -> az.InferenceData:
        """Add replicated successes of every design cell for every posterior draw to :attr:`idata` (group
        ``posterior_predictive``, variable ``n_deep``: Binomial(n_trials, p), seeded), so that
        ``az.plot_ppc(fit.idata)`` works; returns :attr:`idata` (an earlier draw is replaced)."""
        if "posterior_predictive" in self.idata.groups():
            del self.idata.posterior_predictive
        self.idata.add_groups(posterior_predictive=xr.Dataset({predictive.OUTCOME: predictive.posterior_predictive(
            self.design, self.idata, seed)}))
        return self.idata

    def with_input(self, data: Data, empty_models: Sequence[str], model_table: ModelTable) -> Fit:
        """This fit with the record of its input attached (``api.Model.fit``). The posterior summaries
        already computed (the design averages and diagnostics that :func:`fit` checks) depend on the design
        and posterior only, so they are kept rather than computed again: at 100 models 9 s CPU."""
        return self._replace(data=data, empty_models=tuple(empty_models), model_table=model_table)

    def _replace(self, **changes) -> Fit:
        """``dataclasses.replace`` keeping the posterior summaries already computed (:meth:`with_input`)."""
        out = replace(self, **changes)
        for name in ("_averages", "diagnostics"):  # cached_property values live in the instance dict
            if name in vars(self):
                vars(out)[name] = vars(self)[name]
        return out

    def save(self, path: str | Path, **options) -> Path:
        """Write the run folder (posterior, cells, manifest, the tables derived from them); no inference runs:
        the analyses after a fit are :class:`dvbstats.pipeline.Analysis`'s steps, whose results ``analyses=``
        writes beside. Options as :func:`dvbstats.input.runfolder.write` (the run folder's writer, provided by it:
        :data:`PROVIDED`)."""
        return provided("save")(self, path, **options)

    @classmethod
    def load(cls, path: str | Path) -> Fit:
        """Read a run folder back (no refitting): :func:`dvbstats.input.runfolder.read_fit`, provided by it."""
        return provided("load")(path)

    def parametrizations(self) -> dict[str, str]:
        """The parametrisation each random term was sampled in."""
        return plans.term_parametrizations(self.design, self.parametrization)

    def priors_used(self) -> dict[str, str]:
        return self.priors.describe(self.design.prior_names)


#: The implementations of the methods :class:`Fit` spells for the layers above results: ``save`` and ``load``
#: (the run folder's writer and reader, :mod:`dvbstats.input.runfolder`) and ``plot_forest`` (the report's
#: forest plot, :mod:`dvbstats.report.plots`). Each of those modules provides its own when imported
#: (:func:`provide`); the package ``__init__`` imports both, so results imports neither.
PROVIDED: dict[str, Callable[..., Any]] = {}
PROVIDED_BY = {"save": "dvbstats.input.runfolder", "load": "dvbstats.input.runfolder",
               "plot_forest": "dvbstats.report.plots"}


def provide(**implementations: Callable[..., Any]) -> None:
    """Give the methods of :class:`Fit` named in :data:`PROVIDED_BY` their implementation (a function of the fit
    and the method's arguments; ``load``: of the path)."""
    unknown = sorted(set(implementations) - set(PROVIDED_BY))
    if unknown:
        raise ValueError(f"Fit provides no method {', '.join(unknown)}; these: {', '.join(PROVIDED_BY)}")
    PROVIDED.update(implementations)


def provided(name: str) -> Callable[..., Any]:
    """The implementation of ``Fit.<name>`` that its module provided (:data:`PROVIDED`)."""
    if name not in PROVIDED:
        raise RuntimeError(f"Fit.{name} is implemented by {PROVIDED_BY[name]}, which has not been imported "
                           "(import dvbstats)")
    return PROVIDED[name]


def fit(
    formula: Formula,
    cells: CellTable,
    *,
    priors: Priors | None = None,
    settings: SamplerSettings = SamplerSettings(),
    parametrization: Parametrization = "auto",
    progress: bool = True,
    backend: str = "auto",
    measured_form: str | None = None,
) -> Fit:
    """Build the hierarchical logistic model of ``formula`` on ``cells`` and sample it as
    :func:`dvbstats.model.plan.plan` says: short pilot runs where the plan names candidate forms, its first
    attempt, then, while the checks fail, the fallbacks that fit the failure (the same form at a higher target
    acceptance after divergent transitions, twice the draws after a narrow miss, then another form), each said
    on the console; the last attempt made is the fit, and ``Fit.sampling`` keeps the plan and every attempt.
    ``measured_form``: the benchmark's measured form for the formula (``Benchmark.forms``), sampled first by
    ``auto`` on data deep enough for it. A target acceptance or mass matrix in ``settings`` is kept in every
    attempt. ``backend="auto"`` samples the hand-written density of :mod:`dvbstats.model.fastlogp` with nutpie
    when it supports the design (same posterior, no per-model compilation), else the PyMC model.
    """
    if backend not in ("auto", "fastlogp", "pymc"):
        raise ValueError(f"backend must be auto, fastlogp or pymc, not {backend!r}")
    priors = priors or Priors({})
    d = design(formula, cells)
    choices = dict(measured_form=measured_form, target_accept=settings.target_accept, low_rank=settings.low_rank,
                   fixed_draws=settings.draws != DRAWS)
    steps = plans.plan(d, parametrization, **choices)
    timing = {}
    if steps.candidates:
        t0 = time.perf_counter()
        pilots = {form: _pilot(d, priors, settings, form, backend, **choices) for form in steps.candidates}
        steps, timing = plans.plan(d, parametrization, **choices, pilots=pilots), {"pilot_s": time.perf_counter() - t0}
        figures = [f"{form}: {p['divergences']} divergences, {p['steps_per_draw']:g} leapfrog steps per draw"
                   for form, p in pilots.items()]
        weak = sorted(plans.funnels(d, pilots))
        why = f" (SDs the pilots put below their level standard errors, not centred: {', '.join(weak)})" if weak else ""
        _say(f"short pilot runs: {'; '.join(figures)}; sampling {steps.first.parametrization}{why}", progress, end="")
    k, tried, accept = 0, [], None
    while True:
        attempt = steps.attempts[k]
        accept = attempt.target_accept or accept  # None: the failed attempt's before it
        run = replace(settings, target_accept=accept, low_rank=attempt.low_rank,
                      draws=settings.draws * attempt.draws_factor)
        result, used = _fit_once(d, priors, run, attempt.parametrization, progress, backend,
                                 fixed_accept=settings.target_accept is not None)
        tried.append(_tried(result, attempt, used))
        timing |= {key: timing.get(key, 0.0) + value for key, value in result.timing.items()}
        failed = result.diagnostics
        k = None if failed.ok else steps.next(k, failed.summary())
        if k is None:
            return result._replace(timing=timing, sampling=plans.Sampling(steps, tuple(tried)))
        then = steps.attempts[k]
        _say(f"{attempt.parametrization} at target acceptance {accept:g} failed its checks "
             f"({'; '.join(failed.failures)}); sampling again: {then.parametrization} at target acceptance "
             f"{then.target_accept or accept:g}, {run.draws // attempt.draws_factor * then.draws_factor} draws per "
             f"chain ({then.why})", progress)


def _say(note: str, progress: bool, end: str = "...") -> None:
    """A note on the console while fitting, wrapped to the terminal like the console's other prose."""
    if progress:
        print(textwrap.fill(f"{note}{end}", shutil.get_terminal_size((100, 24)).columns, subsequent_indent="  ",
                            break_on_hyphens=False, break_long_words=False), flush=True)


def _pilot(d: Design, priors: Priors, settings: SamplerSettings, form: str, backend: str, **choices) -> dict:
    """A short run of ``form`` (:data:`dvbstats.model.plan.PILOT`) at its first attempt's target acceptance and
    mass matrix: its divergences, leapfrog steps per draw and the FUNNEL_QUANTILE quantile of each random SD (``sd_low``),
    what :func:`dvbstats.model.plan.choose` compares."""
    first = plans.plan(d, form, **{k: v for k, v in choices.items() if k in ("target_accept", "low_rank")}).first
    run = replace(settings, target_accept=first.target_accept, low_rank=first.low_rank, **plans.PILOT)
    result, _ = _fit_once(d, priors, run, form, False, backend, fixed_accept=choices.get("target_accept") is not None)
    stats, post = result.idata.sample_stats, result.idata.posterior
    low = {name: round(float(np.quantile(post[f"sd_{name}"], plans.FUNNEL_QUANTILE)), 4)
           for t in d.random for name in t.sd_names if f"sd_{name}" in post}
    return {"divergences": int(stats["diverging"].sum()), "steps_per_draw": round(float(stats["n_steps"].mean()), 1),
            "sample_s": round(result.timing["sample_s"], 2), "sd_low": low}


def _tried(result: Fit, attempt: plans.Attempt, backend: str) -> dict:
    """The record of one attempt made (:class:`dvbstats.model.plan.Sampling`)."""
    stats = result.idata.sample_stats
    return {"parametrization": attempt.parametrization, "terms": result.parametrizations(),
            "target_accept": result.settings.target_accept, "draws": result.settings.draws,
            "low_rank": bool(result.settings.low_rank),
            "backend": backend, "diagnostics": result.diagnostics.summary(),
            "steps_per_draw": round(float(stats["n_steps"].mean()), 1) if "n_steps" in stats else None,
            "sample_s": round(result.timing["sample_s"], 2)}


def _fit_once(d: Design, priors: Priors, settings: SamplerSettings, parametrization: Parametrization,
              progress: bool, backend: str, fixed_accept: bool = False) -> tuple[Fit, str]:
    """One sampler run in ``parametrization`` with ``settings``; the fit and the backend that sampled it.
    ``fixed_accept``: the target acceptance is the user's (kept as it is on every path)."""
    t0 = time.perf_counter()
    auto_backend = backend == "auto"
    if auto_backend:
        backend = "fastlogp" if settings.sampler == "nutpie" and fastlogp.supports(d) else "pymc"
    integrated = None
    if backend == "fastlogp":
        per_term = plans.term_parametrizations(d, plans.check_parametrization(parametrization))
        item = itemmarginal.item_term(d, per_term) if auto_backend else None
        model = itemmarginal.ItemMarginalModel(d, priors, per_term, item) if item is not None else None
        if model is not None and model.worthwhile:
            integrated = model.describe()
            # no item ridge is left for a low-rank matrix to follow, nor the full density's dimension
            settings = replace(settings, low_rank=False, target_accept=settings.target_accept if fixed_accept
                               else plans.integrated_target_accept(settings.target_accept))
            t1 = time.perf_counter()
            idata = run_nutpie(fastlogp.pyfunc_model(model, {k: list(v) for k, v in d.coords().items()}),
                               settings, progress)
        else:  # a complete crossed design needs no per-cell arrays (crossed.py): same density, same coordinates
            cell_model = (crossed.CrossedModel(d, priors, per_term) if crossed.crossed_terms(d) is not None
                          else fastlogp.CellModel(d, priors, per_term))
            t1 = time.perf_counter()
            idata = run_nutpie(fastlogp.pyfunc_model(cell_model, {k: list(v) for k, v in d.coords().items()}),
                               settings, progress)
    else:
        model = pymcmodel.pymc_model(d, priors, parametrization)
        t1 = time.perf_counter()
        idata = pymcmodel.sample(model, settings, progress=progress)
    t2 = time.perf_counter()
    return Fit(d, priors, settings, parametrization, idata, {"build_s": t1 - t0, "sample_s": t2 - t1},
               items_integrated=integrated), backend
