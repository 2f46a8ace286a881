"""The Bayesian agreement model (:func:`dvbstats.results.agreement.bayes_fit`) written in PyMC: the reference its
hand-written density (:mod:`dvbstats.results.agreement_logp`) equals, sampled with ``sampler="pymc"``. It imports
PyMC (about 2.5 s), so :mod:`dvbstats.results.agreement` reaches it through :mod:`dvbstats.model.lazy`."""

from __future__ import annotations

import arviz as az
import polars as pl
import pymc as pm

from dvbstats.model import pymcmodel
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.agreement import pair_design


def bayes_model(table: pl.DataFrame, *, centred: bool = True):
    """``n_agree ~ BetaBinomial(n_shared, mean logit^-1(a + b same + u[m1] + u[m2]), pair SD sd_pair)``.

    The binomial model with multi-membership model effects ``u`` and a pair effect whose
    distribution is integrated out: each pair's agreement probability is Beta with mean
    ``p = logit^-1(eta)`` and concentration ``1 / (sd_pair^2 p (1 - p))``, so its SD is about
    ``sd_pair p (1 - p)`` and ``sd_pair`` is, to first order, the SD of the pair effects on the
    logit scale. Priors (logit scale): ``a ~ Normal(0, 1.5)``, ``b ~ Normal(0, 1)``,
    ``u ~ ZeroSumNormal(sd_model)`` (zero-sum: a common shift of every u is otherwise the same as a
    shift of ``a`` by twice it), ``sd_model, sd_pair ~ HalfNormal(1)``. ``diff_pp`` is the
    difference in expected agreement (percentage points) between a same-group and a cross-group
    pair of average models (u = 0).

    ``centred``: ``u`` centred or non-centred (:func:`centred_model_effects` chooses). The
    pair effects are chosen by measurement (4 x 1000 draws): with explicit normal pair effects, centred, 5 of 16
    simulated data sets of 3,000 items failed (R-hat up to 1.61, divergences) and non-centred the
    synthetic example did (R-hat 1.013, bulk ESS 500); the beta-binomial passed both (example:
    R-hat 1.001, ESS 2,166; the three hardest simulations: R-hat <= 1.003, ESS >= 1,411).
    """
    _, same, members, names = pair_design(table)
    pairs = table.filter(pl.col("n_shared") > 0)
    coords = {"model": names, "pair": [f"{a}|{b}" for a, b in zip(pairs["model1"], pairs["model2"], strict=True)]}
    with pm.Model(coords=coords) as model:
        a = pm.Normal("a", 0.0, 1.5)
        b = pm.Normal("b", 0.0, 1.0)
        sd_model = pm.HalfNormal("sd_model", 1.0)
        sd_pair = pm.HalfNormal("sd_pair", 1.0)
        if centred:
            u = pm.ZeroSumNormal("u", sd_model, dims="model")
        else:
            u = pm.Deterministic("u", sd_model * pm.ZeroSumNormal("z_model", 1.0, dims="model"), dims="model")
        p = pm.math.invlogit(a + b * same + pm.math.dot(members, u))
        concentration = 1.0 / (sd_pair**2 * p * (1.0 - p))
        pm.BetaBinomial("n_agree", n=pairs["n_shared"].to_numpy(), alpha=p * concentration,
                        beta=(1.0 - p) * concentration, observed=pairs["n_agree"].to_numpy(), dims="pair")
        pm.Deterministic("diff_pp", 100 * (pm.math.invlogit(a + b) - pm.math.invlogit(a)))
    return model


def sample(table: pl.DataFrame, settings: SamplerSettings, *, centred: bool, progress: bool) -> az.InferenceData:
    """The posterior of :func:`bayes_model` drawn by ``settings.sampler`` (PyMC's NUTS, or nutpie on the PyMC graph)."""
    return pymcmodel.sample(bayes_model(table, centred=centred), settings, progress=progress)
