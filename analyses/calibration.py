"""Calibration suite: simulation-based calibration (SBC) and interval coverage of the package's default fits.

    python analyses/calibration.py run [--classes dvb,slope,hvsb,rasch] [--simulators prior,independent] [--seeds 5 15]
                                       [--fits 200] [--jobs 1] [--draws 1000] [--tune 500] [--sampler-offset 0]
                                       [--out analyses/out/calibration]
    python analyses/calibration.py summarise [--out analyses/out/calibration]
    python analyses/calibration.py cost --classes dvb,rasch [--seed 7]      # where one default fit's CPU goes

``run`` appends one row per fit to ``OUT/fits.csv``, keyed by (class, simulator, seed); a rerun skips the
keys already there, so the suite is resumable and can be stopped at any time. ``--jobs N`` fits in N
processes. ``summarise`` writes ``sbc.csv`` (per quantity: fits, chi-square uniformity test of the ranks
in 10 bins, Bonferroni threshold), ``coverage.csv`` (per model class, simulator and estimand: fits,
intervals, covered, Wilson 95% interval, and a 95% interval resampling whole fits),
``coverage_pooled.csv`` (the same per estimand class and simulator, over the model classes), ``fits.csv``'s
counts per class and simulator (``fits_by_class.csv``), ``coverage.md`` (those counts, SBC per class and the
pooled coverage as Markdown, and the rank table), ``pbest.csv`` (calibration of P(best)), ``rank_mass.csv`` (rank
intervals' coverage beside the posterior mass they hold) and the figures ``sbc_<class>.png`` (rank histograms and
ECDF differences with 99% simultaneous bands). ``cost`` fits one data set per class with the defaults and
prints the CPU seconds of the fit and, on the PyMC backend, of compiling its graph alone, with the
sampler's leapfrog steps per draw, tree depth and divergences.

**Simulators.** ``prior``: parameters drawn from the fitted model's own prior and data from its likelihood
(PyMC's prior predictive of :func:`dvbstats.model.pymcmodel.pymc_model`, the package's defaults): the SBC
setting of Talts et al. (2018). ``independent``: a simpler simulator written here, not sharing the
model's assumptions: item and value effects from a centred, scaled exponential (skewed, not normal), per-model
slopes drawn independently of the per-model intercepts from uniform distributions, fixed SDs.

**Estimands and their truths.** Every interval is the package's 94% HDI (or the rank table's central
interval) and is scored against the truth of the estimand it claims:
- ``rate``: a model's design-averaged rate, the mean of its true cell probabilities weighted by the
  prompts of the cells actually asked (finite population: these values, items, conditions);
- ``contrast``: rate(first model) - rate(each other model), same finite-population truth;
- ``condition``: per model, rate in condition B - rate in condition A over the items asked (HVSB class);
- ``rank``: a model's rank by true rate (1 = highest) inside the rank interval;
- ``pbest``: P(best) against whether the model truly has the highest rate (calibration, not coverage);
- SBC ranks (``prior`` only): the intercept, fixed coefficients, every SD and correlation, and the derived rates and the
  first contrast (Modrák et al. 2023), truth ranked among 99 thinned draws (ranks 0-99).

- ``slope`` (class ``scaling``): the within-family size slope beta of the trend model (a superpopulation
  parameter: the slope of the distribution the models' logit rates are drawn from), given stage-1
  draws with known covariance; SBC ranks of beta, tau and each family's alpha.
- ``agreement`` and ``agreement_logit`` (class ``agreement``): the same-group agreement difference of
  :func:`dvbstats.results.agreement.bayes_fit`, ``diff_pp`` (points) and ``b`` (log-odds), for 9 models in
  groups of 2, 5 and 2. Its ``independent`` simulator is the package's harness-level one,
  :func:`dvbstats.simulate.shared_propensity_trials` (item-level propensities shared within a group; not
  the beta-binomial pair model), scored against the truth of the estimand the interval claims: the model's
  pair effects are a distribution, so its ``b`` is the population of pairs' effect,
  :func:`dvbstats.simulate.population_agreement_effect` (the least-squares fit of the logit of each pair's
  expected agreement over every pair the simulator could draw; these 36 pairs' own fit, ``effect_logit``, is
  a different estimand, which the interval over-covers: docs/calibration.md). Its
  ``prior`` simulator keeps those pairs and shared-item counts and redraws the agreement counts from
  :func:`~dvbstats.results.agreement_pymc.bayes_model`'s prior predictive (truth: the drawn ``diff_pp`` and ``b``; SBC ranks of a, b, sd_model, sd_pair, diff_pp).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import nutpie  # noqa: E402
import polars as pl  # noqa: E402
import xarray as xr  # noqa: E402
import pymc as pm  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.special import expit  # noqa: E402

from dvbstats.constants import HDI_PROB  # noqa: E402
from dvbstats.input.cells import CellTable  # noqa: E402
from dvbstats.input.schema import CELL_COUNTS  # noqa: E402
from dvbstats.model.design import design  # noqa: E402
from dvbstats.model.pymcmodel import pymc_model  # noqa: E402
from dvbstats.model.formula import parse  # noqa: E402
from dvbstats.model.priors import Priors  # noqa: E402
from dvbstats.model.sample import SamplerSettings  # noqa: E402
from dvbstats.input.registry import MODEL_SCHEMA, ModelTable  # noqa: E402
from dvbstats.results import agreement, agreement_pymc, contrasts, paired, scaling  # noqa: E402
from dvbstats.results.fitted import Fit, fit  # noqa: E402
from dvbstats.simulate import shared_propensity_trials  # noqa: E402

OUT = Path("analyses/out/calibration")
FITS = "fits.csv"
#: Posterior draws kept for SBC ranks (ranks 0..THINNED).
THINNED = 99
#: Rank-histogram bins of the uniformity test, and its level before the multiplicity correction.
BINS, ALPHA = 10, 0.01


@dataclass(frozen=True)
class ModelClass:
    """A model class of the suite: its formula and the design its data are laid out on."""

    formula: str
    levels: dict[str, int]  # factor -> number of levels (crossed)
    trials: int  # trials per cell
    numeric: dict[str, tuple[float, ...]] | None = None  # numeric factor -> its values


CLASSES: dict[str, ModelClass] = {
    "dvb": ModelClass("chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)", {"model": 6, "value": 8}, 60),
    "slope": ModelClass("chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value)",
                        {"model": 6, "value": 6}, 30, {"log_n_train": tuple(np.log([4.0, 20.0, 40.0]))}),
    "hvsb": ModelClass("chose_deep ~ 1 + condition + (1 + condition|model) + (1|item)",
                       {"model": 6, "condition": 2, "item": 40}, 1),
    "rasch": ModelClass("chose_deep ~ 1 + (1|model) + (1|item)", {"model": 6, "item": 60}, 1),
}


#: The scaling slope class: the paper's 9 models in 4 families (sizes ranked within each), fitted by the
#: two-stage trend model (:func:`dvbstats.results.scaling.trend`) on stage-1 draws with a known covariance.
SCALING_FAMILIES: dict[str, int] = {"f0": 3, "f1": 2, "f2": 2, "f3": 2}
#: Stage-1 posterior SDs of the models' logit rates (about those of 10,000 trials per model, wider).
STAGE1_SD = (0.03, 0.12)


def model_table(families: dict[str, int]) -> ModelTable:
    """Models ``<family>-<k>`` (k = 1..n, the size rank within the family), developer = family."""
    rows = [{"model_id": f"{f}-{k}", "short_name": f"{f}-{k}", "developer": f, "family": f,
             "size_rank_in_family": k, "params_b": None} for f, n in families.items() for k in range(1, n + 1)]
    return ModelTable(pl.DataFrame(rows, schema=MODEL_SCHEMA))


def scaling_models() -> ModelTable:
    return model_table(SCALING_FAMILIES)


def _thinned_ranks(post: xr.Dataset, truth: dict[str, np.ndarray]) -> dict[str, int]:
    """Rank of each true value among THINNED evenly thinned posterior draws (``name[j]`` for vectors)."""
    n = post.sizes["chain"] * post.sizes["draw"]
    keep = np.linspace(0, n - 1, THINNED).astype(int)
    ranks = {}
    for name, values in truth.items():
        flat = post[name].values.reshape(n, -1)
        for j, v in enumerate(values):
            label = name if len(values) == 1 else f"{name}[{j}]"
            ranks[label] = int((flat[keep, j] < v).sum())
    return ranks


def simulate_scaling(simulator: str, seed: int, draws: int) -> tuple[xr.DataArray, dict[str, np.ndarray]]:
    """Stage-1 DVGR draws whose logits have exactly the mean y and covariance Sigma, with y from the
    trend model: alpha[family] + beta x + deviation + stage-1 error. ``prior``: alpha, beta, tau from the
    trend's priors, Normal(0, tau) deviations; ``independent``: the same scales, centred exponential
    deviations (skewed)."""
    rng = np.random.default_rng(seed)
    table = scaling_models()
    names = table.data["short_name"].to_list()
    rows = scaling.size_design(table, names, "rank")[0]
    fam = rows["family"].rank("dense").cast(pl.Int64).to_numpy() - 1
    alpha = rng.normal(0, scaling.PRIOR_ALPHA_SD, len(SCALING_FAMILIES))
    beta, tau = rng.normal(0, scaling.PRIOR_BETA_SD), abs(rng.normal(0, scaling.PRIOR_TAU_SD))
    k = len(names)
    deviation = rng.normal(0, tau, k) if simulator == "prior" else _skewed(rng, k, tau)
    sd = rng.uniform(*STAGE1_SD, k)
    corr = 0.3 * np.ones((k, k)) + 0.7 * np.eye(k)
    sigma = corr * np.outer(sd, sd)
    y = alpha[fam] + beta * rows["size_std"].to_numpy() + deviation + rng.multivariate_normal(np.zeros(k), sigma)
    e = rng.standard_normal((4 * draws, k))
    e -= e.mean(axis=0)
    e = e @ np.linalg.inv(np.linalg.cholesky(np.cov(e, rowvar=False))).T  # exactly mean 0, covariance I
    logits = y + e @ np.linalg.cholesky(sigma).T
    da = xr.DataArray(expit(logits).reshape(4, draws, k), dims=("chain", "draw", "model"), coords={"model": names})
    return da, {"alpha": alpha, "beta": np.array([beta]), "tau": np.array([tau])}


def scaling_fit(simulator: str, seed: int, draws: int, sampler_seed: int) -> dict:
    """One trend fit on simulated stage-1 draws: SBC ranks of beta, tau and alpha; the slope's interval."""
    dvgr, truth = simulate_scaling(simulator, seed, draws)
    res = scaling.trend(dvgr, scaling_models(), size="rank",
                        settings=replace(scaling.TREND_SAMPLER, seed=sampler_seed, draws=draws))
    ranks = _thinned_ranks(res.idata.posterior, truth) if simulator == "prior" else {}
    slope = ["slope", "beta", res.slope_hdi_low, res.slope_hdi_high, float(truth["beta"][0])]
    diag = res.diagnostics.summary()
    return {"ok": bool(diag["ok"]), "max_r_hat": float(diag["max_r_hat"]), "min_ess_bulk": float(diag["min_ess_bulk"]),
            "divergences": int(diag["divergences"]), "degenerate": 0, "ranks": json.dumps(ranks),
            "intervals": json.dumps([slope])}


#: The agreement class: 9 models of 3 developers (2, 5 and 2 models: the DVB developers' shape) on these items.
AGREEMENT_FAMILIES: dict[str, int] = {"a": 2, "b": 5, "c": 2}
AGREEMENT_ITEMS = 1000
#: Parameters of the agreement model ranked in SBC (prior simulator).
AGREEMENT_PARAMETERS = ("a", "b", "sd_model", "sd_pair", "diff_pp")


def simulate_agreement(simulator: str, seed: int) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """The pair table (:func:`dvbstats.results.agreement.agreement_table`) of one harness-level simulation
    (:func:`dvbstats.simulate.shared_propensity_trials`, group-item SD uniform on 0-1.2) and the truth of
    ``diff_pp`` and ``b`` (its population of pairs'); ``prior``: the same pairs with agreement counts from the
    model's prior predictive."""
    rng = np.random.default_rng(seed)
    table = model_table(AGREEMENT_FAMILIES)
    groups = dict(zip(table.data["short_name"], table.data["developer"]))
    sim = shared_propensity_trials(groups, n_items=AGREEMENT_ITEMS, seed=seed, sd_group_item=rng.uniform(0, 1.2))
    counts = paired.pair_counts(sim.trials, agreement.model_order(table, list(groups), "developer"))
    pairs = agreement.agreement_table(counts, table, "developer")
    if simulator != "prior":
        return pairs, {"diff_pp": np.array([sim.population_pp]), "b": np.array([sim.population_logit])}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The effect of Potentials")
        prior = pm.sample_prior_predictive(draws=1, model=agreement_pymc.bayes_model(pairs), random_seed=seed)
    n_agree = prior.prior_predictive["n_agree"].values.reshape(-1).astype(np.int64)
    pairs = pairs.filter(pl.col("n_shared") > 0).with_columns(
        n_agree=pl.Series(n_agree), agreement=pl.Series(n_agree) / pl.col("n_shared"))
    return pairs, {name: prior.prior[name].values.reshape(-1) for name in AGREEMENT_PARAMETERS}


def agreement_fit(simulator: str, seed: int, draws: int, tune: int, sampler_seed: int) -> dict:
    """One fit of the agreement model (the package's defaults, model effects' form by its rule): SBC ranks
    and the intervals of ``diff_pp`` and ``b``."""
    pairs, truth = simulate_agreement(simulator, seed)
    res = agreement.bayes_fit(pairs, SamplerSettings(seed=sampler_seed, draws=draws, tune=tune))
    ranks = _thinned_ranks(res.idata.posterior, truth) if simulator == "prior" else {}
    rows = {r["scale"]: r for r in res.rows}
    out = [["agreement", "diff_pp", rows["percentage points"]["low"], rows["percentage points"]["high"],
            float(truth["diff_pp"][0])],
           ["agreement_logit", "b", rows["log-odds"]["low"], rows["log-odds"]["high"], float(truth["b"][0])]]
    diag = res.diagnostics
    degenerate = int(pairs["n_agree"].sum() in (0, int(pairs["n_shared"].sum())))
    return {"ok": bool(diag["ok"]), "max_r_hat": float(diag["max_r_hat"]), "min_ess_bulk": float(diag["min_ess_bulk"]),
            "divergences": int(diag["divergences"]), "degenerate": degenerate, "ranks": json.dumps(ranks),
            "intervals": json.dumps(out)}


def layout(c: ModelClass) -> pl.DataFrame:
    """The crossed cells of a class (counts filled in by a simulator)."""
    grid = pl.DataFrame({"_": [0]})
    for factor, n in c.levels.items():
        labels = [f"{factor[0]}{i}" for i in range(n)] if factor != "condition" else ["A", "B"][:n]
        grid = grid.join(pl.DataFrame({factor: labels}), how="cross")
    for factor, values in (c.numeric or {}).items():
        grid = grid.join(pl.DataFrame({factor: list(values)}), how="cross")
    return grid.drop("_").with_columns(n_prompts=pl.lit(c.trials), n_trials=pl.lit(c.trials), n_deep=pl.lit(0))


def _cells(c: ModelClass, data: pl.DataFrame) -> CellTable:
    by = tuple(k for k in data.columns if k not in CELL_COUNTS)
    return CellTable(data.select(*by, *CELL_COUNTS), by)


# --------------------------------------------------------------------------- simulators


def simulate_prior(c: ModelClass, seed: int) -> tuple[pl.DataFrame, az.InferenceData]:
    """Parameters from the model's prior and counts from its likelihood (one prior predictive draw)."""
    data = layout(c)
    d = design(parse(c.formula), _cells(c, data))
    # Random slopes carry their LKJ prior as a density on flat canonical partial correlations, which PyMC
    # cannot draw from: draw the correlation (one per two-coefficient term: (r + 1) / 2 ~ Beta(eta, eta))
    # here and fix it; every other column non-centred, the same prior as the fit's parametrisation.
    rng = np.random.default_rng(seed)
    fixed = {}
    for s in d.slopes:
        if s.pairs:
            if len(s.coefficients) != 2:
                raise ValueError(f"{s.name}: the suite draws LKJ correlations of two coefficients only")
            eta = Priors({}).get(f"cor_{s.name}").args[0]
            fixed[f"cpc_{s.name}"] = np.array([np.arctanh(2 * rng.beta(eta, eta) - 1)])
    model = pymc_model(d, Priors({}), "zerosum_noncentered" if d.slopes else "auto")
    with pm.do(model, fixed) if fixed else model, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The effect of Potentials")
        prior = pm.sample_prior_predictive(draws=1, random_seed=seed)
    counts = prior.prior_predictive["n_deep"].values.reshape(-1)
    truth = az.InferenceData(posterior=prior.prior)
    return data.with_columns(n_deep=pl.Series(counts.astype(int))), truth


def _skewed(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """Centred exponential effects with SD ``sd`` (skewness 2)."""
    return (rng.exponential(1.0, n) - 1.0) * sd


def simulate_independent(c: ModelClass, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Counts from fixed SDs, skewed item/value effects and per-model slopes independent of intercepts;
    returns the cells and their true probabilities."""
    rng = np.random.default_rng(seed)
    data = layout(c)
    eta = np.full(data.height, rng.uniform(-1.0, 0.5))
    for factor, n in c.levels.items():
        codes = data[factor].rank("dense").cast(pl.Int64).to_numpy() - 1
        if factor == "model":
            eta += rng.normal(0, 0.7, n)[codes]
        elif factor == "condition":
            shift = rng.uniform(-0.5, 1.0) + rng.uniform(-0.6, 0.6, c.levels["model"])  # per-model, uncorrelated
            model = data["model"].rank("dense").cast(pl.Int64).to_numpy() - 1
            eta += np.where(codes == 1, shift[model], 0.0)
        else:
            eta += _skewed(rng, n, 0.6 if factor == "value" else 1.0)[codes]
    if "model:value" in c.formula:
        eta += _skewed(rng, data.height, 0.3)
    for factor, values in (c.numeric or {}).items():
        x = data[factor].to_numpy() - np.mean(values)
        model = data["model"].rank("dense").cast(pl.Int64).to_numpy() - 1
        eta += (rng.uniform(-0.4, 0.2) + rng.uniform(-0.3, 0.3, c.levels["model"])[model]) * x
    p = expit(eta)
    return data.with_columns(n_deep=pl.Series(rng.binomial(data["n_trials"].to_numpy(), p))), p


# --------------------------------------------------------------------------- one fit


def _truth_fit(fitted: Fit, truth: az.InferenceData) -> Fit:
    """The fitted model with the true parameters as its only draw: the derived quantities of the truth."""
    return replace(fitted, idata=truth)


def _rates(f: Fit) -> tuple[np.ndarray, list[str]]:
    return f.level_draws("model")


def _weighted_rates(data: pl.DataFrame, p: np.ndarray, by: list[str]) -> pl.DataFrame:
    return data.with_columns(_p=pl.Series(p) * pl.col("n_prompts")).group_by(by, maintain_order=True).agg(
        rate=pl.col("_p").sum() / pl.col("n_prompts").sum()).sort(by)


def _interval(draws: np.ndarray) -> tuple[float, float]:
    low, high = az.hdi(np.asarray(draws, dtype=float), hdi_prob=HDI_PROB)
    return float(low), float(high)


def intervals(f: Fit, true_rates: np.ndarray, true_condition: np.ndarray | None) -> list[list]:
    """[estimand, name, low, high, truth] of every interval scored (rank intervals also the posterior mass they
    hold: a central interval of a discrete rank holds at least 94%, often all of it), and ``pbest`` rows
    [p_best, is_best]."""
    draws, labels = _rates(f)
    out = []
    for j, m in enumerate(labels):
        out.append(["rate", m, *_interval(draws[:, j]), float(true_rates[j])])
        if j:
            out.append(["contrast", f"{labels[0]}-{m}", *_interval(draws[:, 0] - draws[:, j]),
                        float(true_rates[0] - true_rates[j])])
    ranks = contrasts.rank_table(draws, labels, interval=HDI_PROB)
    true_rank = contrasts.rank_draws(true_rates[None, :])[0]
    best = int(np.argmax(true_rates))
    for j, r in enumerate(ranks.iter_rows(named=True)):
        mass = sum(r[f"p_rank_{k}"] for k in range(r["rank_low"], r["rank_high"] + 1))
        out.append(["rank", labels[j], float(r["rank_low"]), float(r["rank_high"]), float(true_rank[j]), float(mass)])
        out.append(["pbest", labels[j], float(r["p_best"]), float(r["p_best"]), float(j == best)])
    if true_condition is not None:
        da, keys = f.average(("model", "condition"))
        cond = da.values.reshape(-1, keys.height)
        for j, m in enumerate(labels):
            a = keys.with_row_index().filter((pl.col("model") == m) & (pl.col("condition") == "A"))["index"][0]
            b = keys.with_row_index().filter((pl.col("model") == m) & (pl.col("condition") == "B"))["index"][0]
            out.append(["condition", m, *_interval(cond[:, b] - cond[:, a]), float(true_condition[j])])
    return out


def sbc_ranks(f: Fit, truth_fit: Fit) -> dict[str, int]:
    """Rank of the truth among THINNED evenly thinned draws, per parameter and derived quantity."""
    post, true = f.idata.posterior, truth_fit.idata.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    keep = np.linspace(0, n - 1, THINNED).astype(int)
    out = {}

    def rank(name: str, draws: np.ndarray, value: float) -> None:
        out[name] = int((np.asarray(draws).reshape(-1)[keep] < value).sum())

    for name, da in f.top_level().items():
        flat = da.values.reshape(n, -1)
        t = np.asarray(true[name].values).reshape(-1)
        dim = {"sd": "term", "cor": "pair"}.get(name)
        labels = [f"{name}[{x}]" for x in da[dim].values] if dim else [name]
        for k, label in enumerate(labels):
            rank(label, flat[:, k], t[k])
    draws, labels = _rates(f)
    tdraws, _ = _rates(truth_fit)
    for j, m in enumerate(labels):
        rank(f"rate[{m}]", draws[:, j], tdraws[0, j])
    rank(f"contrast[{labels[0]}-{labels[1]}]", draws[:, 0] - draws[:, 1], tdraws[0, 0] - tdraws[0, 1])
    return out


def one_fit(cls: str, simulator: str, seed: int, draws: int, tune: int, sampler_offset: int = 0) -> dict:
    """Simulate data set ``seed``, fit with the package's defaults (except ``draws``/``tune``; sampler seed
    ``seed + sampler_offset``: another offset refits the same data with other Monte Carlo draws), rank and
    score: one CSV row."""
    start = time.perf_counter()
    sampler_seed = seed + sampler_offset
    if cls in ("scaling", "agreement"):
        row = (scaling_fit(simulator, seed, draws, sampler_seed) if cls == "scaling"
               else agreement_fit(simulator, seed, draws, tune, sampler_seed))
        return {"class": cls, "simulator": simulator, "seed": seed, **row,
                "seconds": round(time.perf_counter() - start, 1), "draws": draws, "tune": tune,
                "sampler_seed": sampler_seed}
    c = CLASSES[cls]
    if simulator == "prior":
        data, truth = simulate_prior(c, seed)
    else:
        data, p = simulate_independent(c, seed)
    degenerate = int(data["n_deep"].sum() in (0, int(data["n_trials"].sum())))
    res = fit(parse(c.formula), _cells(c, data), settings=SamplerSettings(seed=sampler_seed, draws=draws, tune=tune),
              progress=False)
    if simulator == "prior":
        truth_fit = _truth_fit(res, truth)
        true_rates = _rates(truth_fit)[0][0]
        ranks = sbc_ranks(res, truth_fit)
        true_condition = None
        if "condition" in c.levels:
            da, keys = truth_fit.average(("model", "condition"))
            v = da.values.reshape(-1)
            k = keys.with_columns(v=pl.Series(v)).pivot(on="condition", index="model", values="v").sort("model")
            true_condition = (k["B"] - k["A"]).to_numpy()
    else:
        true_rates = _weighted_rates(data, p, ["model"])["rate"].to_numpy()
        ranks = {}
        true_condition = None
        if "condition" in c.levels:
            r = _weighted_rates(data, p, ["model", "condition"]).pivot(on="condition", index="model", values="rate")
            true_condition = (r.sort("model")["B"] - r.sort("model")["A"]).to_numpy()
    diag = res.diagnostics.summary()
    return {"class": cls, "simulator": simulator, "seed": seed, "ok": bool(diag["ok"]),
            "max_r_hat": float(diag["max_r_hat"]), "min_ess_bulk": float(diag["min_ess_bulk"]),
            "divergences": int(diag["divergences"]), "degenerate": degenerate,
            "seconds": round(time.perf_counter() - start, 1), "draws": draws, "tune": tune,
            "ranks": json.dumps(ranks), "intervals": json.dumps(intervals(res, true_rates, true_condition)),
            "sampler_seed": sampler_seed}


# --------------------------------------------------------------------------- running


def _done(path: Path) -> set[tuple[str, str, int]]:
    if not path.is_file():
        return set()
    t = pl.read_csv(path, columns=["class", "simulator", "seed"])
    return set(t.iter_rows())


#: The columns of ``fits.csv``, in order (files written before ``sampler_seed`` lack it: there it equals ``seed``).
COLUMNS: tuple[str, ...] = ("class", "simulator", "seed", "ok", "max_r_hat", "min_ess_bulk", "divergences",
                            "degenerate", "seconds", "draws", "tune", "ranks", "intervals", "sampler_seed")


def _append(path: Path, row: dict) -> None:
    """Append a row in the file's column order (a file without ``sampler_seed`` takes only rows whose sampler
    seed is their seed, so that no row's sampler seed is lost)."""
    columns = COLUMNS
    if path.is_file() and path.stat().st_size:
        with path.open(encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split(",")
        if "sampler_seed" not in header:
            if row["sampler_seed"] != row["seed"]:
                raise ValueError(f"{path}: written before sampler seeds were recorded (each row's sampler seed is its "
                                 f"data seed); write fits with --sampler-offset to another --out")
            columns = COLUMNS[:-1]
    df = pl.DataFrame([row]).select(columns)
    with path.open("a", encoding="utf-8") as fh:
        df.write_csv(fh, include_header=fh.tell() == 0)


def run(classes: list[str], simulators: list[str], fits: int, jobs: int, draws: int, tune: int, out: Path,
        log=print, seeds: list[int] | None = None, sampler_offset: int = 0) -> int:
    """Fit every missing (class, simulator, seed) up to ``fits`` seeds (or of ``seeds``; sampler seeds ``seed +
    sampler_offset``); return the number of new rows."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / FITS
    done = _done(path)
    todo = [(c, s, seed) for seed in seeds or range(1, fits + 1) for c in classes for s in simulators
            if (c, s, seed) not in done]
    log(f"{len(done)} fits on file, {len(todo)} to do ({jobs} process(es))")
    n = 0
    if jobs <= 1:
        for key in todo:
            row = one_fit(*key, draws, tune, sampler_offset)
            _append(path, row)
            n += 1
            log(f"{key}: ok={row['ok']} {row['seconds']} s")
        return n
    # spawned, not forked: a fork of this process (Numba's and polars' threads running) left the workers
    # waiting on a lock copied in its held state, and --jobs 2 never fitted anything
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        n_todo = len(todo)
        for row in pool.map(one_fit, *zip(*todo), [draws] * n_todo, [tune] * n_todo, [sampler_offset] * n_todo):
            _append(path, row)
            n += 1
            log(f"{(row['class'], row['simulator'], row['seed'])}: ok={row['ok']} {row['seconds']} s")
    return n


# --------------------------------------------------------------------------- summaries


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95% interval of k successes in n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def fit_bootstrap(covered: np.ndarray, fit: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the covered share when whole fits are resampled (the intervals of one fit share its
    data and posterior, so they are not independent, and the Wilson interval is too narrow)."""
    _, codes = np.unique(fit, return_inverse=True)
    k, n = np.bincount(codes, weights=covered), np.bincount(codes)
    pick = np.random.default_rng(seed).integers(0, len(n), (reps, len(n)))
    share = k[pick].sum(axis=1) / n[pick].sum(axis=1)
    return float(np.quantile(share, 0.025)), float(np.quantile(share, 0.975))


def coverage_table(fits: pl.DataFrame, by: tuple[str, ...] = ("class", "simulator", "estimand")) -> pl.DataFrame:
    """Per group ``by`` (of class, simulator, estimand): fits contributing, intervals, covered, share, its
    Wilson interval and its fit-bootstrap interval (:func:`fit_bootstrap`)."""
    rows = []
    for r in fits.iter_rows(named=True):
        for estimand, name, low, high, truth, *_ in json.loads(r["intervals"]):
            if estimand != "pbest":
                rows.append({"class": r["class"], "simulator": r["simulator"], "estimand": estimand,
                             "fit": f"{r['class']}/{r['seed']}", "covered": low <= truth <= high})
    if not rows:
        return pl.DataFrame()
    t = pl.DataFrame(rows).group_by(*by, maintain_order=True).agg(
        fits=pl.col("fit").n_unique(), intervals=pl.len(), covered=pl.col("covered").sum(),
        _covered=pl.col("covered"), _fit=pl.col("fit"))
    boot = [fit_bootstrap(np.asarray(c, dtype=float), np.asarray(f)) for c, f in t.select("_covered", "_fit").iter_rows()]
    return _with_share(t.drop("_covered", "_fit")).with_columns(
        boot_low=pl.Series([b[0] for b in boot]), boot_high=pl.Series([b[1] for b in boot]))


def _with_share(t: pl.DataFrame) -> pl.DataFrame:
    """``t`` (with ``covered`` of ``intervals``) and the covered share with its Wilson interval."""
    bounds = [wilson(k, n) for k, n in t.select("covered", "intervals").iter_rows()]
    return t.with_columns(coverage=pl.col("covered") / pl.col("intervals"),
                          wilson_low=pl.Series([b[0] for b in bounds]), wilson_high=pl.Series([b[1] for b in bounds]))


def markdown(t: pl.DataFrame) -> str:
    """A coverage table as Markdown (shares and Wilson bounds in percent)."""
    keys = [c for c in ("estimand", "simulator", "class") if c in t.columns]
    lines = ["| " + " | ".join([*keys, "fits", "intervals", "covered", "share", "Wilson 95%", "fit bootstrap 95%"]) + " |",
             "|" + ":--|" * len(keys) + "--:|" * 4 + ":--|:--|"]
    for r in t.sort(keys).iter_rows(named=True):
        lines.append("| " + " | ".join([*(str(r[k]) for k in keys), str(r["fits"]), str(r["intervals"]), str(r["covered"]),
                                        f"{100 * r['coverage']:.1f}%",
                                        f"{100 * r['wilson_low']:.1f}-{100 * r['wilson_high']:.1f}%",
                                        f"{100 * r['boot_low']:.1f}-{100 * r['boot_high']:.1f}%"]) + " |")
    return "\n".join(lines) + "\n"


def rank_mass_table(fits: pl.DataFrame) -> pl.DataFrame:
    """Rank intervals against what they claim: per class and simulator, over the fits that recorded it, the
    share covered beside the mean posterior mass the intervals hold (their nominal coverage; a discrete rank's
    central 94% interval holds more), with the share's Wilson interval."""
    rows = [(r["class"], r["simulator"], low <= truth <= high, rest[0]) for r in fits.iter_rows(named=True)
            for estimand, _, low, high, truth, *rest in json.loads(r["intervals"]) if estimand == "rank" and rest]
    if not rows:
        return pl.DataFrame()
    t = pl.DataFrame(rows, schema=["class", "simulator", "covered", "mass"], orient="row").group_by(
        "class", "simulator", maintain_order=True).agg(
        intervals=pl.len(), covered=pl.col("covered").sum(), mean_mass=pl.col("mass").mean()).sort("class", "simulator")
    return _with_share(t)


def pbest_table(fits: pl.DataFrame) -> pl.DataFrame:
    """P(best) calibration in five bins: mean stated P(best) against the share truly best."""
    rows = [(r["class"], r["simulator"], low, truth) for r in fits.iter_rows(named=True)
            for estimand, _, low, _, truth, *_ in json.loads(r["intervals"]) if estimand == "pbest"]
    if not rows:
        return pl.DataFrame()
    t = pl.DataFrame(rows, schema=["class", "simulator", "p_best", "is_best"], orient="row")
    return t.with_columns(bin=(pl.col("p_best") * 5).floor().clip(0, 4)).group_by(
        "class", "simulator", "bin").agg(n=pl.len(), mean_p_best=pl.col("p_best").mean(),
                                         share_best=pl.col("is_best").mean()).sort("class", "simulator", "bin")


def ranks_by_class(fits: pl.DataFrame) -> dict[str, tuple[int, dict[str, list[int]]]]:
    """Per class: the number of prior-simulator fits and each quantity's SBC ranks over them."""
    out = {}
    for cls in fits["class"].unique(maintain_order=True):
        sub = fits.filter((pl.col("class") == cls) & (pl.col("simulator") == "prior"))
        ranks: dict[str, list[int]] = {}
        for r in sub.iter_rows(named=True):
            for q, v in json.loads(r["ranks"]).items():
                ranks.setdefault(q, []).append(v)
        out[cls] = (sub.height, ranks)
    return out


def sbc_table(fits: pl.DataFrame) -> pl.DataFrame:
    """Per class and quantity: fits, chi-square test of uniform ranks in BINS bins, and whether it rejects
    at ALPHA after Bonferroni over every quantity tested (the multiplicity)."""
    rows = []
    for cls, (_, ranks) in ranks_by_class(fits).items():
        for q, v in ranks.items():
            counts = np.bincount(np.minimum(np.asarray(v) * BINS // (THINNED + 1), BINS - 1), minlength=BINS)
            p = float(stats.chisquare(counts).pvalue) if len(v) >= BINS else float("nan")
            rows.append({"class": cls, "quantity": q, "fits": len(v), "chi2_p": p})
    t = pl.DataFrame(rows)
    if t.is_empty():
        return t
    m = t.height
    return t.with_columns(tests=pl.lit(m), threshold=pl.lit(ALPHA / m), rejects=pl.col("chi2_p") < ALPHA / m)


def _band(n: int, grid: np.ndarray, level: float = 0.99, sims: int = 2000, seed: int = 0) -> np.ndarray:
    """Half-width of a simultaneous ``level`` band for ECDF(u) - u of n uniform ranks, per grid point: the
    pointwise binomial SD scaled so that ``level`` of simulated uniform samples stay inside everywhere."""
    rng = np.random.default_rng(seed)
    sd = np.sqrt(grid * (1 - grid) / n)
    sup = np.empty(sims)
    for i in range(sims):
        u = np.sort(rng.integers(0, THINNED + 1, n) / (THINNED + 1))
        ecdf = np.searchsorted(u, grid, side="right") / n
        sup[i] = np.max(np.abs(ecdf - grid) / np.where(sd > 0, sd, np.inf))
    return np.quantile(sup, level) * sd


def figures(fits: pl.DataFrame, out: Path) -> list[Path]:
    """Per class, rank histograms and ECDF differences with 99% simultaneous bands (one panel per quantity)."""
    paths = []
    for cls, (n_fits, ranks) in ranks_by_class(fits).items():
        if not ranks:
            continue
        k = len(ranks)
        fig, axes = plt.subplots(2, k, figsize=(2.2 * k, 4.4), squeeze=False)
        grid = np.linspace(0, 1, 101)
        for j, (q, v) in enumerate(ranks.items()):
            v = np.asarray(v)
            axes[0, j].hist(v, bins=BINS, range=(0, THINNED + 1), color="#4477aa")
            axes[0, j].axhline(len(v) / BINS, color="k", lw=0.8, ls="--")
            axes[0, j].set_title(q, fontsize=7)
            u = np.sort(v / (THINNED + 1))
            ecdf = np.searchsorted(u, grid, side="right") / len(v)
            band = _band(len(v), grid)
            axes[1, j].fill_between(grid, -band, band, color="#dddddd")
            axes[1, j].plot(grid, ecdf - grid, color="#cc3311")
            axes[1, j].set_xlabel("fractional rank", fontsize=7)
        axes[0, 0].set_ylabel("fits")
        axes[1, 0].set_ylabel("ECDF - uniform")
        fig.suptitle(f"SBC ranks, {cls} ({n_fits} fits; 99% simultaneous band)", fontsize=9)
        fig.tight_layout()
        path = out / f"sbc_{cls}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def fits_table(fits: pl.DataFrame) -> pl.DataFrame:
    """Per class and simulator: fits, fits passing the sampler checks, median and total wall seconds."""
    return fits.group_by("class", "simulator").agg(
        fits=pl.len(), passed=pl.col("ok").sum(), median_s=pl.col("seconds").median(),
        total_s=pl.col("seconds").sum()).sort("class", "simulator")


def sbc_by_class(sbc: pl.DataFrame) -> pl.DataFrame:
    """Per class: prior-simulator fits, quantities tested, the smallest p-value and the rejections."""
    return sbc.group_by("class").agg(fits=pl.col("fits").max(), quantities=pl.len(), min_p=pl.col("chi2_p").min(),
                                     rejects=pl.col("rejects").sum()).sort("class")


def summary_markdown(tables: dict[str, pl.DataFrame]) -> str:
    """``coverage.md``: fits per class and simulator, SBC per class (with the multiplicity) and pooled coverage."""
    f, s = tables["fits_by_class"], tables["sbc"]
    lines = ["| class | simulator | fits | passed the sampler checks | median s per fit |", "|:--|:--|--:|--:|--:|"]
    lines += [f"| {r['class']} | {r['simulator']} | {r['fits']} | {r['passed']} | {r['median_s']:.1f} |"
              for r in f.iter_rows(named=True)]
    if not s.is_empty():
        lines += ["", f"SBC: chi-square on {BINS} rank bins, {s['tests'][0]} quantities, each at {ALPHA:.0%} / "
                      f"{s['tests'][0]} = {s['threshold'][0]:.2g} (Bonferroni).", "",
                  "| class | fits | quantities | smallest p | rejections |", "|:--|--:|--:|--:|--:|"]
        lines += [f"| {r['class']} | {r['fits']} | {r['quantities']} | {r['min_p']:.3g} | {r['rejects']} |"
                  for r in sbc_by_class(s).iter_rows(named=True)]
    if not tables["coverage_pooled"].is_empty():
        lines += ["", markdown(tables["coverage_pooled"])]
    if not tables["rank_mass"].is_empty():
        lines += ["Rank intervals against the posterior mass they hold (fits that recorded it):", "",
                  "| class | simulator | intervals | covered | share | Wilson 95% | mean mass held |",
                  "|:--|:--|--:|--:|--:|:--|--:|"]
        lines += [f"| {r['class']} | {r['simulator']} | {r['intervals']} | {r['covered']} | {100 * r['coverage']:.1f}% | "
                  f"{100 * r['wilson_low']:.1f}-{100 * r['wilson_high']:.1f}% | {100 * r['mean_mass']:.1f}% |"
                  for r in tables["rank_mass"].iter_rows(named=True)]
    return "\n".join(lines).rstrip("\n") + "\n"


def summarise(out: Path) -> dict[str, pl.DataFrame]:
    fits = pl.read_csv(out / FITS)
    tables = {"coverage": coverage_table(fits), "coverage_pooled": coverage_table(fits, ("estimand", "simulator")),
              "sbc": sbc_table(fits), "pbest": pbest_table(fits), "rank_mass": rank_mass_table(fits), "fits_by_class": fits_table(fits)}
    for name, t in tables.items():
        if not t.is_empty():
            t.write_csv(out / f"{name}.csv")
    (out / "coverage.md").write_text(summary_markdown(tables), encoding="utf-8")
    figures(fits, out)
    return tables


# --------------------------------------------------------------------------- cost of one fit


def fit_cost(cls: str, seed: int) -> dict:
    """CPU seconds of one default fit of class ``cls`` (independent simulator) and, when it samples the PyMC
    graph, of compiling that graph alone for nutpie (the fixed cost of every such fit), with its sampler
    statistics: what a fit's time is spent on. ``scaling`` and ``agreement`` (not formula fits): the CPU
    seconds of one suite fit, simulation included."""
    if cls not in CLASSES:
        cpu = time.process_time()
        row = one_fit(cls, "independent", seed, SamplerSettings().draws, SamplerSettings().tune)
        return {"class": cls, "seed": seed, "fit_cpu_s": round(time.process_time() - cpu, 1), "ok": row["ok"],
                "divergences": row["divergences"]}
    c = CLASSES[cls]
    data, _ = simulate_independent(c, seed)
    cpu = time.process_time()
    res = fit(parse(c.formula), _cells(c, data), settings=SamplerSettings(seed=seed), progress=False)
    fit_cpu = time.process_time() - cpu
    compile_cpu = float("nan")
    if res.sampling.backend == "pymc":
        cpu = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nutpie.compile_pymc_model(pymc_model(res.design, res.priors, res.parametrization))
        compile_cpu = time.process_time() - cpu
    stats_ = res.idata.sample_stats
    return {"class": cls, "seed": seed, "backend": res.sampling.backend, "forms": res.parametrizations(),
            "fit_cpu_s": round(fit_cpu, 1), "compile_cpu_s": round(compile_cpu, 1),
            "steps_per_draw": round(float(stats_["n_steps"].mean()), 1), "mean_depth": round(float(stats_["depth"].mean()), 2),
            "divergences": int(stats_["diverging"].sum()), "target_accept": res.settings.target_accept}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--classes", default=",".join([*CLASSES, "scaling", "agreement"]))
    r.add_argument("--simulators", default="prior,independent")
    r.add_argument("--fits", type=int, default=200, help="seeds per class and simulator")
    r.add_argument("--seeds", type=int, nargs="+", help="these seeds instead of 1..--fits")
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--draws", type=int, default=SamplerSettings().draws)
    r.add_argument("--tune", type=int, default=SamplerSettings().tune)
    r.add_argument("--sampler-offset", type=int, default=0,
                   help="sampler seed = data seed + this: refit the same data sets with other Monte Carlo draws")
    for s in (r, sub.add_parser("summarise")):
        s.add_argument("--out", type=Path, default=OUT)
    k = sub.add_parser("cost")
    k.add_argument("--classes", default=",".join(CLASSES))
    k.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    if args.command == "cost":
        for cls in args.classes.split(","):
            print(fit_cost(cls, args.seed), flush=True)
        return
    if args.command == "run":
        start = time.perf_counter()
        n = run(args.classes.split(","), args.simulators.split(","), args.fits, args.jobs, args.draws, args.tune,
                args.out, seeds=args.seeds, sampler_offset=args.sampler_offset)
        print(f"{n} fits in {time.perf_counter() - start:.0f} s wall ({os.cpu_count()} CPUs)")
    tables = summarise(args.out)
    with pl.Config(tbl_rows=-1, tbl_width_chars=200):
        for name, t in tables.items():
            print(name, t, sep="\n")


if __name__ == "__main__":
    main()
