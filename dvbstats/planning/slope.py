"""The scaling slope's sign with a given number of models: the package's trend estimand
(:func:`dvbstats.results.scaling.trend`: the change in the logit rate per within-family SD of size), planned
over the number of models, items and repetitions.

A planned run of ``M`` models: families of ``family_size`` models (:func:`layout`), sizes ranked within each
family and standardised as the package does (:func:`dvbstats.results.scaling.size_design`, size = rank; with
sizes centred in each family and scaled by their SD, ``sum x^2 = M``). Per draw ``s`` of the design prior
(:class:`dvbstats.planning.prior.Trend`), model ``m`` of family ``f`` has the rate

    logit r_m = a_f + beta_s x_m + e_m,    a_f ~ N(level_s, family_sd_s^2),   e_m ~ N(0, model_sd_s^2)

and answers the run's ``n`` items ``K`` times under the item model of :mod:`dvbstats.planning.prior`.

**Simulation** (:func:`simulated_estimates`): per simulated run, stage 1 from the item means (each model's
rate the mean of its items' mean scores, their covariance across models the items' covariance over ``n``:
Miller's clustered covariance; both moved to the logit scale by the delta method), stage 2 the package's
trend model with its posterior computed exactly on a grid of its model SD
(:func:`dvbstats.results.scaling.slope_posterior`) instead of by NUTS; the question's rule is applied to the
slope's posterior mean and SD.

**Closed form** (:func:`power`, an approximation): with sizes centred in each family the family intercepts
drop out, and the slope's estimate has variance ``(model_sd^2 + s^2) / M``, ``s^2`` the logit-scale variance
of one model's rate that it does not share with the other models, ``(Var(x_a) - Cov(x_a, x_b) + E x (1 - x)
/ K) / (n (r (1 - r))^2)`` at the families' level ``r``: the model SD taken as known, the slope's prior
ignored, every model at the level's rate. It is optimistic with few families (the model SD is estimated
from few models).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl
from scipy.special import expit, logit

from dvbstats.planning import closed_form
from dvbstats.planning.prior import DesignError, DesignPrior, marginal_intercepts
from dvbstats.planning.questions import Question
from dvbstats.results import scaling

#: Grid points of the trend model's SD inside the loop (the package's Bayes factor uses 2,001).
GRID = 201


def layout(n_models: int, family_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Family index and standardised within-family size of ``n_models`` models in families of
    ``family_size`` (a remainder of at least two models is one more family; a single one joins the last)."""
    if family_size < 2 or n_models < 2:
        raise DesignError(f"--models {n_models} with --family-size {family_size}: the scaling trend compares "
                          "sizes within families, so it needs at least 2 models and families of at least 2")
    sizes = [family_size] * (n_models // family_size) or [n_models]
    rest = n_models - sum(sizes)
    if rest >= 2:
        sizes.append(rest)
    elif rest == 1:
        sizes[-1] += 1
    family = np.repeat(np.arange(len(sizes)), sizes)
    rank = np.concatenate([np.arange(1, g + 1) for g in sizes])
    names = [f"m{i}" for i in range(n_models)]
    table = pl.DataFrame({"model_id": names, "short_name": names, "developer": None,
                          "family": [f"f{f}" for f in family], "size_rank_in_family": rank, "params_b": None},
                         schema_overrides={"developer": pl.String, "params_b": pl.Float64})
    rows, _, _, _ = scaling.size_design(table, names, "rank")
    return family, rows["size_std"].to_numpy()


def simulate_scores(prior: DesignPrior, n_models: int, n_items: int, reps: int, seed: int) -> Iterator[np.ndarray]:
    """One simulated run per draw of ``prior``: each model's mean score per item, (models, items)."""
    trend = _trend(prior)
    rng = np.random.default_rng(seed)
    family, x = layout(n_models, trend.family_size)
    s = prior.n_draws
    a = trend.level[:, None] + trend.family_sd[:, None] * rng.standard_normal((s, family.max() + 1))
    rates = expit(a[:, family] + trend.slope[:, None] * x + trend.model_sd[:, None] * rng.standard_normal((s, n_models)))
    alpha = marginal_intercepts(rates, np.hypot(prior.tau, prior.omega)[:, None])
    for i in range(s):
        u = prior.tau[i] * rng.standard_normal(n_items)
        v = prior.omega[i] * rng.standard_normal((n_models, n_items))
        yield rng.binomial(reps, expit(alpha[i][:, None] + u + v)) / reps


def stage_one(scores: np.ndarray, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """The models' logit rates and their covariance from a run's item mean scores (models, items): the mean
    over items and the items' covariance over ``n`` (clustered), by the delta method. A model with no 1s (or
    no 0s) counts half a trial's worth, so that its logit stays finite, and its variance is at least the
    binomial variance of that rate (its items' variance is 0)."""
    n_items = scores.shape[1]
    floor = 0.5 / (n_items * reps)
    r = np.clip(scores.mean(axis=1), floor, 1 - floor)
    cov = np.atleast_2d(np.cov(scores)) / n_items
    np.fill_diagonal(cov, np.maximum(np.diag(cov), r * (1 - r) / (n_items * reps)))
    jacobian = 1 / (r * (1 - r))
    return logit(r), cov * np.outer(jacobian, jacobian)


def simulated_estimates(prior: DesignPrior, n_models: int, n_items: int, reps: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per simulated run (:func:`simulate_scores`), the slope's posterior mean and SD under the package's trend
    model (:func:`stage_one`, then :func:`dvbstats.results.scaling.slope_posterior`)."""
    family, x = layout(n_models, _trend(prior).family_size)
    out = [scaling.slope_posterior(*stage_one(scores, reps), family, x, n_grid=GRID).slope_moments()
           for scores in simulate_scores(prior, n_models, n_items, reps, seed)]
    estimate, sd = np.array(out).T
    return estimate, sd


def power(prior: DesignPrior, question: Question, n_models: int, n_items: int, reps: int) -> np.ndarray:
    """Closed-form P(success) per prior draw of the slope question (the approximation of the module)."""
    trend = _trend(prior)
    alpha = marginal_intercepts(expit(trend.level)[:, None], np.hypot(prior.tau, prior.omega)[:, None])[:, 0]
    m = closed_form.moments(alpha, alpha, prior.tau, prior.omega)
    own = (m.var_a - m.cov + m.within_a / reps) / n_items / (m.mean_a * (1 - m.mean_a)) ** 2
    return question.power(trend.slope, np.sqrt((trend.model_sd**2 + own) / n_models))


def _trend(prior: DesignPrior):
    if prior.trend is None:
        raise DesignError("--scaling: the design prior has no scaling trend (state --slope, or give a pilot whose "
                          "model table has a family with two sizes)")
    return prior.trend
