"""The fitted model: a formula fitted to binomial cells, with its posterior and diagnostics."""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from pathlib import Path
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd
import polars as pl
import xarray as xr

from dvbstats.constants import HDI_PROB, SEED
from dvbstats.input.cells import CellTable, predicted_cells
from dvbstats.input.registry import ModelTable
from dvbstats.model import crossed, fastlogp, itemmarginal
from dvbstats.model.design import (Design, Parametrization, check_parametrization, design, pymc_model,
                                   term_parametrizations, trials_per_level)
from dvbstats.model.formula import Formula
from dvbstats.model.priors import Priors
from dvbstats.model.sample import Diagnostics, SamplerSettings, diagnose, run_nutpie, sample
from dvbstats.results import bounds, contrasts, estimands, predictive
from dvbstats.results import tables as summaries

if TYPE_CHECKING:
    from dvbstats.data import Data


@dataclass(frozen=True)
class Fit:
    """A formula fitted to binomial cells: its design, priors, sampler settings, posterior and diagnostics.

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
    retry: str | None = None  # why ``auto``'s first form was refitted in the other one (see fit)
    auto_form: str | None = None  # the benchmark's form that ``auto`` sampled first, instead of its rule's (see fit)
    backend: str = "pymc"  # "fastlogp" (hand-written density) or "pymc" (the PyMC graph)
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
        tables ask for it, and a pass over HVSB's 72,000 item cells costs about 10 CPU s."""
        groupings = [("model",), ()]
        groupings += [(f,) for f in self.cells.by if f != "model"]
        groupings += [t.term.factors for t in self.design.terms if len(t.term.factors) > 1]
        by_condition = [("model", v.name) for v in summaries.condition_variables(self)]
        groupings = [g for g in dict.fromkeys(groupings + by_condition)
                     if not g or not bounds.item_level(self.cells.data.select(g).n_unique())]
        averages = dict(zip(groupings, estimands.design_averages(self.design, self.idata, groupings)))
        for by in by_condition:
            if self.predicted(by[1]) is not None:
                averages[by] = self._predicted_average(by)
        return averages

    def average(self, by: Sequence[str]) -> tuple[xr.DataArray, pl.DataFrame]:
        """Prompt-weighted posterior DVGR per group of design cells: ((chain, draw, group), keys). By model x a
        condition, models absent from a level have their predicted rate there (:meth:`predicted`)."""
        key = tuple(by)
        if key not in self._averages:
            predicted = len(key) == 2 and key[0] == "model" and self.predicted(key[1]) is not None
            self._averages[key] = (self._predicted_average(key) if predicted
                                   else estimands.design_averages(self.design, self.idata, [key])[0])
        return self._averages[key]

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
        """Posterior rate per model with its HDI beside the raw rate and Wilson interval (a Figure)."""
        from dvbstats.report import plots  # the report layer sits above results: imported when a plot is asked for

        table = summaries.dvgr_table(self, hdi_prob, self.settings.seed).to_pandas()
        models, overall = table[table["model"] != "overall"], table[table["model"] == "overall"].iloc[0]
        return plots.forest(models, hdi_prob=hdi_prob, overall=overall)

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
        out = replace(self, data=data, empty_models=tuple(empty_models), model_table=model_table)
        for name in ("_averages", "diagnostics"):  # cached_property values live in the instance dict
            if name in vars(self):
                vars(out)[name] = vars(self)[name]
        return out

    def save(self, path: str | Path, **options) -> Path:
        """Write the run folder (posterior, cells, manifest, the tables derived from them); no inference runs:
        the analyses after a fit are :class:`dvbstats.pipeline.Analysis`'s steps, whose results ``analyses=``
        writes beside. Options as :func:`dvbstats.input.runfolder.write`."""
        from dvbstats.input import runfolder  # the run-folder layer sits above results: the method spelling only

        return runfolder.write(self, path, **options)

    @classmethod
    def load(cls, path: str | Path) -> Fit:
        """Read a run folder back (no refitting)."""
        from dvbstats.input import runfolder  # the run-folder layer sits above results: the method spelling only

        return runfolder.read_fit(path)

    def parametrizations(self) -> dict[str, str]:
        """The parametrisation each random term was sampled in."""
        return term_parametrizations(self.design, self.parametrization)

    def priors_used(self) -> dict[str, str]:
        return self.priors.describe(self.design.prior_names)


#: A random-slope term with fewer levels than this, sampled with non-centred slope columns, gets target
#: acceptance 0.99: HVSB's ``(1 + condition|model)`` on 4 models (3 SDs and 3 correlations from 4 levels)
#: passed its checks in 2 of 3 trees of 400 items at 0.95 and 3 of 3 at 0.99 (docs/hvsb-format.md); from
#: 6 models on 0.95 passed.
FEW_SLOPE_LEVELS = 6


def default_target_accept(d: Design, parametrization: Parametrization) -> float:
    """0.8 when every random term is centred (data-rich: long trajectories would only cost time) or an
    item term with a signed scale beside centred ones (the ridge of its SD is straight and the low-rank
    mass matrix follows it: 20 leapfrog steps per draw against 31 at 0.95, every check passing, with and
    without item variation); 0.95 when some term is non-centred with a log SD (thin data, where
    divergences come from curvature and the gradients are cheap); 0.99 when a slope term of fewer than
    FEW_SLOPE_LEVELS levels has non-centred slope columns (its SDs and correlations barely pinned down:
    smaller steps: 63 leapfrog steps per draw against 31 at 0.95). Measured in docs/model.md and docs/hvsb-format.md."""
    kinds = term_parametrizations(d, parametrization)
    if any(len(s.levels) < FEW_SLOPE_LEVELS and "noncentered" in kinds[s.name] for s in d.slopes):
        return 0.99
    return 0.95 if any("noncentered" in k for k in kinds.values()) else 0.8


def default_low_rank(d: Design, parametrization: Parametrization) -> bool:
    """nutpie's low-rank mass matrix when an item term has a signed scale: the ridge that ties its SD
    to one direction of the item deviations is straight there, and a diagonal mass matrix cannot
    follow it (bulk ESS of sd[prompt] 367 against 2,816 with it, docs/model.md)."""
    return any(k == "zerosum_signed" for k in term_parametrizations(d, parametrization).values())


#: A benchmark's measured form for a formula (``Benchmark.forms``) is sampled first only when every random
#: intercept holds at least this many trials per level (median); thinner data go by ``auto``'s rule. HVSB's
#: all-centred form with item effects (measured on the example, 34 judgments per item) failed its checks on
#: 6 of 6 simulated trees of 4 models (11-12 judgments per item: divergences in the slope SDs) and passed on
#: trees of 6 models (17 per item); docs/hvsb-format.md, ``benchmarks/bench_hvsb_items.py --tree``.
MEASURED_FORM_MIN_TRIALS = 15


def first_form(d: Design, parametrization: Parametrization, auto_form: str | None) -> Parametrization:
    """The form :func:`fit` samples ``d`` in first: ``parametrization``, except that ``auto`` takes the
    benchmark's measured form ``auto_form`` (if any) on data at least MEASURED_FORM_MIN_TRIALS deep, where it
    was measured to pass its checks."""
    if parametrization != "auto" or not auto_form:
        return parametrization
    n = d.cells.data["n_trials"].to_numpy()
    depth = [np.median(trials_per_level(t, n)) for t in d.random]
    return check_parametrization(auto_form) if min(depth, default=np.inf) >= MEASURED_FORM_MIN_TRIALS else "auto"


def fit(
    formula: Formula,
    cells: CellTable,
    *,
    priors: Priors | None = None,
    settings: SamplerSettings = SamplerSettings(),
    parametrization: Parametrization = "auto",
    progress: bool = True,
    backend: str = "auto",
    auto_form: str | None = None,
) -> Fit:
    """Build the hierarchical logistic model of ``formula`` on ``cells`` and sample it.

    With ``auto``, a fit that fails its checks is sampled once more in the other zero-sum form
    (``_retry_in_other_form``), which is said on the console and kept in ``Fit.retry``.
    ``auto_form`` (a parametrisation) is the form ``auto`` samples first instead of its rule's choice on
    data deep enough for it (:func:`first_form`): a benchmark's measured form for the formula
    (``Benchmark.forms``); the retry applies to it as to the rule's choice.
    ``backend="auto"`` samples the hand-written density of :mod:`dvbstats.model.fastlogp` with nutpie
    when it supports the design (same posterior, no per-model compilation), else the PyMC model.
    """
    if backend not in ("auto", "fastlogp", "pymc"):
        raise ValueError(f"backend must be auto, fastlogp or pymc, not {backend!r}")
    priors = priors or Priors({})
    d = design(formula, cells)
    first = first_form(d, check_parametrization(parametrization), auto_form)
    result = _fit_once(d, priors, settings, first, progress, backend)
    if parametrization == "auto" and result.design.terms and not result.diagnostics.ok and _other_form(result):
        result = _retry_in_other_form(result, settings, progress)
    return replace(result, auto_form=first) if first != parametrization else result


def _other_form(first: Fit) -> str | None:
    """The zero-sum form to retry a failed ``auto`` fit in, or None. With random slopes it is the
    non-centred form unless that one failed: centred slope columns cannot sample a slope SD near zero
    (189 divergences at published scale, docs/model.md), so a failed non-centred slope fit stands; so
    does a fit with an item term (the other form would centre it). A failed all-centred fit with slopes
    (a benchmark's measured form) keeps its random intercepts centred and non-centres only the slope
    columns: on 8-model HVSB trees where it diverged in the slope SDs, that passed 3 of 3 times and the
    all-non-centred form, mixing badly in the intercepts, 0 of 2 (docs/hvsb-format.md). A failed fit
    with a signed item term beside a slope term of fewer than FEW_SLOPE_LEVELS levels is retried with
    its items centred and only the slope columns non-centred: on 4-model HVSB trees of 2,000 items, at
    0.99, the first form passed 1 of 3 and that one 2 of 3, the seed where the first failed included
    (docs/hvsb-format.md)."""
    chosen = set(first.parametrizations().values())
    if "zerosum_signed" in chosen:  # an item term: centred, thousands of items cannot sample their SD near 0
        few = any(len(s.levels) < FEW_SLOPE_LEVELS for s in first.design.slopes)
        return "zerosum_slopes_noncentered" if few else None  # (ESS 3), but few slope levels fail first
    if chosen == {"zerosum"}:
        return "zerosum_slopes_noncentered" if first.design.slopes else "zerosum_noncentered"
    if first.design.slopes:
        return None if chosen == {"zerosum_noncentered"} else "zerosum_noncentered"
    return "zerosum"


def _fit_once(d: Design, priors: Priors, settings: SamplerSettings, parametrization: Parametrization,
              progress: bool, backend: str) -> Fit:
    t0 = time.perf_counter()
    if settings.target_accept is None:
        settings = replace(settings, target_accept=default_target_accept(d, parametrization))
    if settings.low_rank is None:
        settings = replace(settings, low_rank=default_low_rank(d, parametrization))
    auto_backend = backend == "auto"
    if auto_backend:
        backend = "fastlogp" if settings.sampler == "nutpie" and fastlogp.supports(d) else "pymc"
    integrated = None
    if backend == "fastlogp":
        per_term = term_parametrizations(d, check_parametrization(parametrization))
        item = itemmarginal.item_term(d) if auto_backend else None
        model = itemmarginal.ItemMarginalModel(d, priors, per_term, item) if item is not None else None
        if model is not None and model.worthwhile:
            integrated = model.describe()
            settings = replace(settings, low_rank=False)  # no item ridge is left for a low-rank matrix to follow
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
        model = pymc_model(d, priors, parametrization)
        t1 = time.perf_counter()
        idata = sample(model, settings, progress=progress)
    t2 = time.perf_counter()
    return Fit(d, priors, settings, parametrization, idata, {"build_s": t1 - t0, "sample_s": t2 - t1}, backend=backend,
               items_integrated=integrated)


def _retry_in_other_form(first: Fit, settings: SamplerSettings, progress: bool) -> Fit:
    """A fit in the zero-sum form ``auto`` did not choose for ``first``, whose checks failed.

    Near the threshold between the forms either can fail where the other passes (docs/model.md).
    ``settings`` are the requested ones (a default target acceptance follows the new form). The
    second fit is returned even if it fails too, so that its checks are the ones reported.
    """
    chosen, other = set(first.parametrizations().values()), _other_form(first)
    note = (f"auto parametrisation ({', '.join(sorted(chosen))}) failed its checks "
            f"({'; '.join(first.diagnostics.failures)}); refitted with --parametrization {other}")
    if progress:  # wrapped to the terminal, like the console's other prose
        print(textwrap.fill(f"{note}...", shutil.get_terminal_size((100, 24)).columns, subsequent_indent="  ",
                            break_on_hyphens=False, break_long_words=False), flush=True)
    second = _fit_once(first.design, first.priors, settings, other, progress,
                       "auto" if first.items_integrated else first.backend)
    timing = {k: first.timing[k] + second.timing[k] for k in second.timing}
    return replace(second, timing=timing, retry=note)
