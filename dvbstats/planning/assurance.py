"""Simulation-based Bayesian assurance: draw the truth from the design prior, simulate a run, analyse it,
score the question; the assurance is the share of simulated runs that answer it.

A simulated run: ``n`` items, each answered ``K`` times by every arm, ``y[a, i] ~ Binomial(K,
expit(alpha_a + u_i + v_{a,i}))`` with ``u``, ``v`` drawn afresh per run (:mod:`dvbstats.planning.prior`).

Two analyses of a run:

* :func:`paired_estimates` (inside the sweep): per item the arms' mean scores; a contrast's estimate is the
  mean of the items' differences with the paired standard error ``sd(d_i) / sqrt(n)``, a rate's the mean
  of the items' scores with ``sd(ybar_i) / sqrt(n)`` (Miller's clustered error); the posterior of a flat
  prior is approximately normal with that mean and SD. Milliseconds per run.
* :func:`full_fit_estimates` (validation, ``--check``): the package's own fit of the run,
  ``y ~ 1 + model + (1|prompt)`` on the item cells with nutpie, its design-averaged rates' posterior
  (mean and SD of the contrast or rate). Seconds per run.

The assurance's Monte Carlo standard error is ``sqrt(a (1 - a) / S)`` over ``S`` simulated runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import expit

from dvbstats.constants import DRAWS, SEED, TUNE
from dvbstats.input.cells import CellTable
from dvbstats.model.formula import parse
from dvbstats.model.sample import SamplerSettings
from dvbstats.planning.prior import DesignPrior
from dvbstats.planning.questions import Question
from dvbstats.results.fitted import fit as fit_cells

#: The formula of the full fit of a simulated run: a fixed effect per arm (two or three arms give a random
#: term's SD nothing to stand on) and item effects shared by the arms; without ``model`` for one arm.
CHECK_FORMULA = "y ~ 1 + model + (1|prompt)"
ONE_ARM_FORMULA = "y ~ 1 + (1|prompt)"


@dataclass(frozen=True)
class SimulatedRuns:
    """``scores`` (runs, arms, items): each arm's number of 1s out of ``reps`` per item; ``arms`` their names."""

    arms: tuple[str, ...]
    scores: np.ndarray
    reps: int

    @property
    def n_runs(self) -> int:
        return self.scores.shape[0]

    @property
    def n_items(self) -> int:
        return self.scores.shape[2]


def simulate_runs(prior: DesignPrior, arms: tuple[str, ...], n_items: int, reps: int, seed: int) -> SimulatedRuns:
    """One simulated run per draw of ``prior`` (the truth of run ``s`` is draw ``s``), for the given arms."""
    rng = np.random.default_rng(seed)
    alpha = prior.intercepts()[:, [prior.index(a) for a in arms]]  # (runs, arms)
    s = prior.n_draws
    u = rng.standard_normal((s, 1, n_items)) * prior.tau[:, None, None]
    v = rng.standard_normal((s, len(arms), n_items)) * prior.omega[:, None, None]
    p = expit(alpha[:, :, None] + u + v)
    return SimulatedRuns(tuple(arms), rng.binomial(reps, p), reps)


def paired_estimates(runs: SimulatedRuns, question: Question) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the estimate and standard error of the question's estimand from the item means."""
    means = runs.scores / runs.reps
    a = means[:, runs.arms.index(question.a)]
    x = a - means[:, runs.arms.index(question.b)] if question.kind == "contrast" else a
    return x.mean(axis=1), x.std(axis=1, ddof=1) / np.sqrt(runs.n_items)


def run_cells(runs: SimulatedRuns, k: int) -> CellTable:
    """Run ``k`` as the package's cell table: one cell per arm (``model``) and item (``prompt``)."""
    n_arms, n_items = runs.scores.shape[1:]
    data = pl.DataFrame({
        "model": np.repeat(np.array(runs.arms, dtype=object), n_items).tolist(),
        "prompt": np.tile([f"i{i:05d}" for i in range(n_items)], n_arms).tolist(),
        "n_prompts": np.ones(n_arms * n_items, dtype=np.int64),
        "n_trials": np.full(n_arms * n_items, runs.reps, dtype=np.int64),
        "n_deep": runs.scores[k].ravel().astype(np.int64),
    })
    return CellTable(data, ("model", "prompt"))


def full_fit_estimates(runs: SimulatedRuns, question: Question, k: int, *, seed: int = SEED,
                       draws: int = DRAWS, tune: int = TUNE, chains: int = 4,
                       backend: str = "auto") -> tuple[float, float, bool, str]:
    """Run ``k`` fitted by the package (:data:`CHECK_FORMULA`): the posterior mean and SD of the question's
    estimand (design-averaged rates), whether the fit passed its sampler checks, and how the item effects
    were handled (``integrated``: the item-marginal density of ``backend="auto"``; ``sampled``)."""
    settings = SamplerSettings(draws=draws, tune=tune, chains=chains, seed=seed + k)
    formula = parse(CHECK_FORMULA if len(runs.arms) > 1 else ONE_ARM_FORMULA)
    fitted = fit_cells(formula, run_cells(runs, k), settings=settings, progress=False, backend=backend)
    rates, levels = fitted.level_draws("model")
    x = rates[:, levels.index(question.a)]
    if question.kind == "contrast":
        x = x - rates[:, levels.index(question.b)]
    items = "integrated" if fitted.items_integrated else "sampled"
    return float(x.mean()), float(x.std(ddof=1)), fitted.diagnostics.ok, items


def assurance(successes: np.ndarray) -> tuple[float, float]:
    """The share of successful runs and its Monte Carlo standard error."""
    a = float(np.mean(successes))
    return a, float(np.sqrt(a * (1 - a) / len(successes)))
