"""The PyMC model of a design, and sampling a PyMC model.

:func:`pymc_model` is the posterior that the hand-written densities (:mod:`dvbstats.model.fastlogp`,
:mod:`~dvbstats.model.itemmarginal`, :mod:`~dvbstats.model.crossed`) equal: the reference they are tested
against, what ``backend="pymc"`` and ``sampler="pymc"`` sample, and what the prior predictive check draws from.
Its parametrisations are described in :mod:`dvbstats.model.design`.

PyMC and PyTensor take about 2.5 s to import and the default fit needs neither, so this module, which imports
them, is reached only by the paths that build a PyMC model: ``results.fitted`` with the PyMC backend and
``results.tables``' prior predictive check, through :mod:`dvbstats.model.lazy`, and
:mod:`dvbstats.results.agreement_pymc`, itself reached that way. Nothing on the fit path imports it.
"""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager

import arviz as az
import numpy as np
import nutpie
import polars as pl
import pymc as pm
import pytensor.tensor as pt

from dvbstats.model.design import Design, SlopeTerm, Term
from dvbstats.model.plan import Parametrization, centred_columns, check_parametrization, term_parametrizations
from dvbstats.model.priors import Prior, Priors
from dvbstats.model.sample import SamplerSettings, complete, run_nutpie, ticker


def prior_variable(prior: Prior, name: str, **kwargs):
    """The random variable ``name`` with distribution ``prior``, inside the current PyMC model."""
    return getattr(pm, prior.family)(name, **prior.parameters, **kwargs)


def prior_logp(prior: Prior, value):
    """The log density of ``prior`` at ``value`` (a PyTensor expression) in PyMC's terms."""
    return pm.logp(getattr(pm, prior.family).dist(**prior.parameters), value)


def pymc_model(d: Design, priors: Priors, parametrization: Parametrization = "auto") -> pm.Model:
    """The PyMC model of ``n_deep ~ Binomial(n_trials, logit^-1(eta))`` over observed cells."""
    priors.check(d.prior_names)
    per_term = term_parametrizations(d, check_parametrization(parametrization))
    obs = d.observed
    data = d.cells.data.filter(pl.Series(obs))
    # check_bounds=False: the parametrisation keeps every argument in its support, and the
    # bound checks would otherwise cost a pass over the cells at every gradient evaluation.
    with pm.Model(coords=d.coords(), check_bounds=False) as model:
        eta = pt.zeros(int(obs.sum()))
        if d.formula.intercept:
            eta = eta + prior_variable(priors.get("intercept"), "Intercept")
        if d.fixed:
            b = pt.stack([prior_variable(priors.get(f"b_{name}"), f"b_{name}") for name in d.fixed])
            eta = eta + pt.dot(d.X[obs], b)
        signed = {t.name: _signed_scale(t.name, priors.get(f"sd_{t.name}"))
                  for t in d.terms if per_term[t.name] == "zerosum_signed"}
        sd = {n: pt.abs(signed[n]) if n in signed else prior_variable(priors.get(f"sd_{n}"), f"sd_{n}")
              for t in d.random for n in t.sd_names}
        for t in d.terms:
            scale = signed[t.name] if t.name in signed else _sigma(d, t, sd, per_term)
            r = _random_intercepts(t, scale, per_term[t.name])
            eta = eta + r[tuple(t.index[obs, a] for a in range(len(t.dims)))]
        cors = []
        for s in d.slopes:
            r, chol = _random_slopes(s, pt.stack([sd[n] for n in s.sd_names]), priors, per_term[s.name])
            cors += [pt.dot(chol[i], chol[j]) for i, j in s.pairs]
            eta = eta + (s.Z[obs] * r[s.index[obs]]).sum(axis=1)
        for n in signed:
            pm.Deterministic(f"sd_{n}", sd[n])
        if sd:
            pm.Deterministic("sd", pt.stack(list(sd.values())), dims="term")
        if cors:
            pm.Deterministic("cor", pt.stack(cors), dims="pair")
        pm.Binomial("n_deep", n=data["n_trials"].to_numpy(), logit_p=eta, observed=data["n_deep"].to_numpy())
    return model


def prior_predictive(d: Design, priors: Priors, parametrization: Parametrization, draws: int, seed: int) -> np.ndarray:
    """Successes of every observed cell drawn from the priors alone: (draws, observed cells)."""
    prior = pm.sample_prior_predictive(draws=draws, model=pymc_model(d, priors, parametrization), random_seed=seed,
                                       var_names=["n_deep"])
    return prior.prior_predictive["n_deep"].values.reshape(-1, int(d.observed.sum()))


def _sigma(d: Design, t: Term, sd: dict, per_term: dict[str, str]):
    """The scale of a random intercept's zero-sum prior: its own SD plus the margins of the interactions
    laid out over it, ``sqrt(sd_t² + Σ sd_I² / L)`` (the row means of a doubly zero-sum ``I`` over ``L``
    levels are iid ``Normal(0, sd_I²/L)`` and land in ``t``); so ``sd_t`` keeps lme4's meaning."""
    if not per_term[t.name].startswith("zerosum"):
        return sd[t.name]
    extra = [sd[i] ** 2 / n for i, n in d.absorbed.get(t.name, ()) if per_term[i].startswith("zerosum")]
    return pt.sqrt(sd[t.name] ** 2 + sum(extra)) if extra else sd[t.name]


def _signed_scale(name: str, prior):
    """The signed scale ``v`` of a ``zerosum_signed`` term (``sd = |v|``): ``v`` and ``-v`` share the
    prior density of ``|v|``, so ``(|v|, z sign(v))`` is the non-centred form's ``(sd, z)`` exactly."""
    v = pm.Flat(f"sd_{name}_signed")
    pm.Potential(f"sd_{name}_prior", prior_logp(prior, pt.abs(v)) - np.log(2.0))
    return v


def _random_intercepts(t: Term, sd, parametrization: str):
    name = f"r_{t.name}"
    if parametrization == "zerosum_signed":  # ``sd`` is the signed scale v: r = v z, z reported as r / |v|
        z = pm.ZeroSumNormal(f"zs_{t.name}", sigma=1.0, dims=t.dims, n_zerosum_axes=len(t.dims))
        pm.Deterministic(f"z_{t.name}", z * pt.sign(sd), dims=t.dims)
        return pm.Deterministic(name, z * sd, dims=t.dims)
    if parametrization == "zerosum":
        return pm.ZeroSumNormal(name, sigma=sd, dims=t.dims, n_zerosum_axes=len(t.dims))
    if parametrization == "zerosum_noncentered":
        z = pm.ZeroSumNormal(f"z_{t.name}", sigma=1.0, dims=t.dims, n_zerosum_axes=len(t.dims))
        return pm.Deterministic(name, z * sd, dims=t.dims)
    if parametrization == "centered":
        return pm.Normal(name, 0.0, sd, dims=t.dims)
    z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=t.dims)
    return pm.Deterministic(name, z * sd, dims=t.dims)


def _random_slopes(s: SlopeTerm, sd, priors: Priors, parametrization: str):
    """Rows ``r[level] ~ MvNormal(0, diag(sd) R diag(sd))`` (R ~ LKJ), zero-sum over levels when allowed.

    Zero-sum rows are ``L - 1`` free rows mapped by an orthonormal basis of the zero-sum subspace:
    exactly iid rows re-expressed relative to their mean, as ``ZeroSumNormal`` does for scalars.
    The first :func:`centred_columns` columns are sampled as the coefficients themselves (``u``),
    the others standardised (``z``, with ``rows / sd = z R_chol^T``): that is, each non-centred
    column is drawn given the centred ones.
    Returns the rows and the Cholesky factor of R (None when the term is uncorrelated).
    """
    p, zerosum = len(s.coefficients), parametrization.startswith("zerosum")
    c = centred_columns(s, parametrization)
    chol = _lkj_cholesky(s.name, p, priors.get(f"cor_{s.name}").args[0]) if s.pairs else None
    rows = len(s.levels) - 1 if zerosum else len(s.levels)
    parts, z_centred = [], []
    if c and chol is None:
        parts.append(pm.Normal(f"u_{s.name}", 0.0, sd[:c], shape=(rows, c)))
    elif c:
        # centred MvNormal columns, written out: the log density of w = u / sd is that of z L^T.
        parts.append(pm.Flat(f"u_{s.name}", shape=(rows, c)))
        z_centred.append(_forward_solve(chol, parts[0] / sd[:c], c))
        pm.Potential(f"u_{s.name}_logp", -0.5 * (z_centred[0] ** 2).sum()
                     - rows * (pt.log(sd[:c]).sum() + pt.log(pt.diag(chol)[:c]).sum()))
    if c < p:
        z = pm.Normal(f"z_{s.name}", 0.0, 1.0, shape=(rows, p - c))
        parts.append((z if chol is None else pt.dot(pt.concatenate([*z_centred, z], axis=1), chol[c:].T)) * sd[c:])
    free = pt.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    r = pm.Deterministic(f"r_{s.name}", _zero_sum_rows(free) if zerosum else free, dims=(s.dim, s.coef_dim))
    return r, chol


def _lkj_cholesky(name: str, p: int, eta: float):
    """Cholesky factor of a correlation matrix with an LKJ(eta) prior, from unconstrained canonical partial
    correlations (Stan's ``cholesky_corr_constrain`` and ``lkj_corr_cholesky_lpdf``). Written with
    elementwise operations only: PyMC's ``LKJCorr`` + ``cholesky`` measured 100 times slower to sample."""
    z = pt.tanh(pm.Flat(f"cpc_{name}", shape=p * (p - 1) // 2))
    logp = pt.log1p(-z ** 2).sum()  # Jacobian of tanh
    rows, k = [], 0
    for i in range(p):
        row, ss = [], 0.0
        for j in range(i):
            if j > 0:
                logp += 0.5 * pt.log1p(-ss)  # Jacobian of the stick-breaking scale
            row.append(z[k] if j == 0 else z[k] * pt.sqrt(1.0 - ss))
            ss, k = ss + row[-1] ** 2, k + 1
        row.append(pt.sqrt(1.0 - ss) if i else pt.constant(1.0))
        if i:
            logp += (p - i - 1 + 2 * eta - 2) * 0.5 * pt.log1p(-ss)  # LKJ density of the Cholesky factor
        rows.append(pt.stack(row + [pt.constant(0.0)] * (p - i - 1)))
    pm.Potential(f"cpc_{name}_logp", logp)
    return pt.stack(rows)


def _forward_solve(chol, w, p: int):
    """``z`` with ``w = z chol^T`` for lower-triangular ``chol`` (rows of ``w``), unrolled over the few columns."""
    cols = []
    for i in range(p):
        acc = w[:, i]
        for j in range(i):
            acc = acc - chol[i, j] * cols[j]
        cols.append(acc / chol[i, i])
    return pt.stack(cols, axis=1)


def _zero_sum_rows(free):
    """``(L-1, p)`` free rows → ``(L, p)`` rows summing to zero, through an orthonormal basis (PyMC's
    ``ZeroSumTransform``), so iid rows map to iid rows re-expressed relative to their mean."""
    n = free.shape[0] + 1
    total = free.sum(axis=0, keepdims=True)
    norm = total / (pt.sqrt(n) + n)
    return pt.concatenate([free, norm - total / pt.sqrt(n)], axis=0) - norm


def sample(model: pm.Model, settings: SamplerSettings, *, progress: bool = True) -> az.InferenceData:
    """Draw from the posterior of ``model``; the InferenceData has a posterior and sample stats."""
    if settings.sampler == "nutpie":
        return _sample_nutpie(model, settings, progress)
    if settings.sampler == "pymc":
        with model, warnings.catch_warnings(), pymc_log_level(logging.INFO if progress else logging.WARNING):
            warnings.simplefilter("ignore", UserWarning)  # PyMC repeats its own R-hat warnings; we report ours
            return complete(pm.sample(
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                cores=min(settings.chains, 2),
                random_seed=settings.seed,
                target_accept=settings.target_accept,
                progressbar=progress,
                compute_convergence_checks=False,
            ), settings)
    raise ValueError(f"sampler must be 'nutpie' or 'pymc', not {settings.sampler!r}")


#: PyTensor looks for a BLAS library while rewriting the graph; nutpie's Numba backend does not use one.
_BLAS_WARNING = "PyTensor could not link to a BLAS installation"


def _sample_nutpie(model: pm.Model, settings: SamplerSettings, progress: bool) -> az.InferenceData:
    """Compile ``model`` for nutpie (a progress line while it compiles, off a terminal) and sample it."""
    with ticker("compiling the model" if progress and not sys.stderr.isatty() else None), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BLAS_WARNING, category=UserWarning)
        compiled = nutpie.compile_pymc_model(model)
    return run_nutpie(compiled, settings, progress)


@contextmanager
def pymc_log_level(level: int):
    """Temporarily set PyMC's logger level (its sampler announces every step at INFO)."""
    logger = logging.getLogger("pymc")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
