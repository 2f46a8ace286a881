"""The analyses after a fit as explicit steps, run by one object that the CLI, the Python API and the
paper reanalysis share.

    import dvbstats as dvb
    model = dvb.Model(formula, dvb.load("dumps/"))
    analysis = dvb.Analysis(contrasts=["all"], rope=0.02)
    analysis.check(model)                 # before sampling: scaling pairs, contrasts, prior predictive
    fit = model.fit()
    results = analysis.run(fit)           # contrasts, scaling, agreement, prior predictive: result objects
    fit.save("runs/x", analyses=results)  # serialisation only: no inference

A :class:`~dvbstats.results.fitted.Fit` is data plus statistics; whatever samples beyond the fit (the
pooled size slope of the scaling tests, the agreement models) runs here, and ``Fit.save`` writes what
it is given. Each step's result is an object with ``tables()`` (the run folder's tables) and
``record()`` (its ``<step>_methods.json``, or None), and a note for the manifest saying whether it ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from dvbstats.api import Model
from dvbstats.benchmarks import Benchmark, JudgmentTable
from dvbstats.benchmarks import results as extras
from dvbstats.benchmarks.definition import analysis
from dvbstats.constants import HDI_PROB
from dvbstats.input.trials import TrialFile, TrialTable
from dvbstats.input.registry import ModelTable
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import contrasts as contrastmod
from dvbstats.results import scaling
from dvbstats.results import tables as summaries
from dvbstats.results.fitted import Fit


def _quiet(*_args) -> None:
    """The default log of library calls: say nothing (the CLI passes ``print``)."""


@dataclass(frozen=True)
class TableResult:
    """A step whose result is tables only (contrasts, the prior predictive check): no methods record."""

    frames: Mapping[str, pl.DataFrame]

    def tables(self) -> dict[str, pl.DataFrame]:
        return dict(self.frames)

    def record(self) -> None:
        return None


@dataclass(frozen=True)
class Analyses:
    """What the steps after a fit found: ``results`` (step name -> result object with ``tables()`` and
    ``record()``), ``notes`` (step name -> "run" or why it did not run: the manifest's words) and the
    seconds each step took."""

    results: Mapping[str, Any] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)
    timing: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Analysis:
    """The analyses run after a fit, and their options.

    ``scaling``: the scaling-trend tests (None: when a fitted family has two sizes); ``pairs``: their
    explicit (smaller, larger) pairs; ``contrasts``: ``A-B``, ``FACTOR:A-B`` or ``all``, with
    P(|difference| < ``rope``) when ``rope`` is given; ``agreement``: the benchmark's agreement analysis
    between models (when trials of two models or more exist); ``prior_predictive``: the rates the
    priors alone expect.
    """

    hdi_prob: float = HDI_PROB
    scaling: bool | None = None
    pairs: Sequence[tuple[str, str]] | None = None
    contrasts: Sequence[str] = ()
    rope: float | None = None
    agreement: bool = True
    prior_predictive: bool = False

    def check(self, model: Model) -> None:
        """Refuse, before sampling, what the analyses would refuse after it: misspelled scaling pairs,
        contrasts of unknown levels, a prior predictive check the design does not support."""
        cells = model.cells
        if self.pairs:
            scaling.pairs(model.models, cells.by_model()["model"].to_list(), explicit=self.pairs)
        contrastmod.resolve(self.contrasts, contrastmod.factor_levels(cells.data, cells.by))
        if self.prior_predictive:
            summaries.check_prior_predictive(model.design)

    def run(self, fit: Fit, log: Callable[..., None] = _quiet) -> Analyses:
        """Every step on ``fit``: the agreement analysis (it needs only the trials) beside the others."""
        if fit.data is None:
            raise ValueError("this Fit carries no input record (fitted with fitting.fit): fit it through "
                             "dvbstats.Model(formula, data).fit() to analyse it")
        results, notes, timing = {}, {}, {}
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(_timed, self.agreement_step, fit, log) if self.agreement else None
            for name, step in (("contrasts", self.contrast_step), ("prior_predictive", self.prior_predictive_step),
                               ("scaling", self.scaling_step)):
                (result, note), timing[f"{name}_s"] = _timed(step, fit, log)
                notes[name] = note
                if result is not None:
                    results[name] = result
            t = time.perf_counter()
            (result, notes["agreement"]), timing["agreement_s"] = (
                job.result() if job else ((None, "not run (switched off)"), 0.0))
            timing["agreement_wait_s"] = time.perf_counter() - t  # what the agreement added beside the others
            if result is not None:
                results["agreement"] = result
        return Analyses(results, notes, timing)

    def contrast_step(self, fit: Fit, log: Callable[..., None] = _quiet) -> tuple[TableResult | None, str]:
        """The posterior of every wanted contrast (``contrasts.csv``)."""
        wanted = contrastmod.resolve(self.contrasts, contrastmod.factor_levels(fit.cells.data, fit.cells.by))
        if not wanted:
            return None, "not run: no contrast asked for"
        table = pl.concat([
            contrastmod.contrast_table(*fit.level_draws(factor), pairs, factor=factor, hdi_prob=self.hdi_prob,
                                       rope=self.rope)
            for factor, pairs in wanted.items()
        ])
        return TableResult({"contrasts": table}), "run"

    def prior_predictive_step(self, fit: Fit, log: Callable[..., None] = _quiet) -> tuple[TableResult | None, str]:
        """Rates per model and per value that the priors alone expect (``prior_predictive.csv``)."""
        if not self.prior_predictive:
            return None, "not run: not asked for"
        log("Prior predictive check...")
        table = summaries.prior_predictive_table(fit.design, fit.priors, fit.parametrization, self.hdi_prob,
                                                 fit.settings.seed, draws=500)
        return TableResult({"prior_predictive": table}), "run"

    def scaling_step(self, fit: Fit, log: Callable[..., None] = _quiet) -> tuple[scaling.ScalingResult | None, str]:
        """The scaling-trend tests when asked, or by default when a family has two sizes."""
        table = fit.model_table
        wanted = self.scaling
        if wanted is None:
            wanted = bool(table.families_with_sizes())
            if not wanted:
                return None, "not run: no model family with two sizes among the fitted models"
        if not wanted:
            return None, "not run (--no-scaling)"
        log("Scaling-trend tests (pairs within families, pooled size slope)...")
        try:
            draws, counts, codings = extras.scaling_input(fit.data.benchmark, fit)
            res = scaling.scaling_tests(draws, counts, table.data, pairs=self.pairs, codings=codings,
                                        hdi_prob=self.hdi_prob, seed=fit.settings.seed)
        except scaling.ScalingUnavailable as exc:
            log(f"Scaling tests not run: {exc}")
            return None, f"not run: {exc}"
        return res, "run"

    def agreement_step(self, fit: Fit, log: Callable[..., None] = _quiet) -> tuple[Any, str]:
        """The benchmark's agreement analysis between the fitted input's models (:func:`agreement_analysis`)."""
        return agreement_analysis(fit.data.benchmark, fit.data.trials, fit.model_table, fit.settings, self.hdi_prob, log)


def agreement_analysis(bench: Benchmark, trials: TrialTable | TrialFile | JudgmentTable | None, models: ModelTable,
                       settings: SamplerSettings, hdi_prob: float = HDI_PROB,
                       log: Callable[..., None] = _quiet) -> tuple[Any, str]:
    """``bench``'s agreement analysis (``Benchmark.agreement``) when trials of >= 2 models exist, and the
    manifest's note. It gets the used rows lazily (a streamed trial file stays on disk)."""
    if bench.agreement is None:
        return None, f"not run: {bench.title} define no agreement analysis"
    if trials is None:
        return None, "not run: needs a trial table with at least two models"
    used = (trials.data.lazy() if isinstance(trials, JudgmentTable) else trials.scan()).filter(
        pl.col("status") == "used")
    if used.select(pl.col("model").n_unique()).collect().item() < 2:
        return None, "not run: needs a trial table with at least two models"
    log("Agreement between models and paired tests...")
    res = analysis(bench.agreement)(used, models, settings=settings, hdi_prob=hdi_prob)
    return res, res.notes.get("not_run", "run")


def _timed(func, *args):
    """``func(*args)`` and the seconds it took."""
    t = time.perf_counter()
    return func(*args), time.perf_counter() - t
