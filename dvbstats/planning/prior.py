"""The design prior: what the next run's truth may be, as draws of a paired item-level model.

A planned run has *arms* (a model, or a model under a condition) that all answer the same ``n`` items,
each ``K`` times. The item-level truth behind it, per draw ``s`` of the design prior, is

    logit P(y = 1 | arm a, item i) = alpha[s, a] + u_i + v_{a,i},   u_i ~ N(0, tau_s^2),  v_{a,i} ~ N(0, omega_s^2)

``u`` is an item's difficulty shared by every arm (what pairs a contrast), ``v`` the part of an item's
pull that is the arm's own (a model x item interaction). ``alpha`` is set so that the arm's rate averaged
over the item population, ``E expit(alpha + u + v)``, is the arm's rate in the draw: the prior is stated
on the rate scale the package reports.

From a pilot run folder (:func:`from_run`) the draws are posterior draws: the arm rates are the pilot's
design-averaged rates (per model, or per model x condition), ``tau^2`` sums the variances the fit puts on
everything an item carries that is not the arm (random terms without ``model``: items, values, features,
contexts, scenario types; the fixed columns' variation within an arm), ``omega^2`` those of random terms
that cross ``model`` with an item-level factor (``(1|model:value)``). Stated effects (:func:`stated`) give
one draw: the rates, ``tau`` and ``omega`` as given.

For the scaling slope (:mod:`dvbstats.planning.slope`) the prior also carries a :class:`Trend`: the slope
and the models' SD around their family's line (the package's trend model), the families' level and
spread, and how many models a family has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import expit, logit

from dvbstats.benchmarks.binary import BINARY
from dvbstats.benchmarks.definition import Benchmark
from dvbstats.benchmarks.results import scaling_input
from dvbstats.constants import SEED
from dvbstats.results import scaling
from dvbstats.results.contrasts import parse_contrast
from dvbstats.results.fitted import Fit

#: Separates model and condition in an arm's name (``gpt-4o@targeted``).
ARM_SEP = "@"
#: Factors that define arms; every other factor of a pilot's formula varies from item to item.
ARM_FACTORS: tuple[str, ...] = ("model", "condition")
#: Gauss-Hermite nodes used to average over the item population.
_NODES = 40
#: Models per family of a planned run when neither the pilot nor the user says (``--family-size``).
FAMILY_SIZE = 3


class DesignError(ValueError):
    """A design question or input that cannot be planned; the message names the argument and what is allowed."""


@dataclass(frozen=True)
class Trend:
    """Draws (each (draws,)) of the scaling trend behind a planned run, on the logit scale of the rate:
    ``slope`` (beta: per within-family SD of size rank), ``model_sd`` (the models' SD around their family's
    line), ``level`` and ``family_sd`` (the families' mean logit rate and its SD); ``family_size`` models per
    family; ``source`` where the slope came from."""

    slope: np.ndarray
    model_sd: np.ndarray
    level: np.ndarray
    family_sd: np.ndarray
    family_size: int
    source: str

    def take(self, pick: np.ndarray) -> Trend:
        return replace(self, slope=self.slope[pick], model_sd=self.model_sd[pick], level=self.level[pick],
                       family_sd=self.family_sd[pick])


@dataclass(frozen=True)
class DesignPrior:
    """Draws of the planned run's truth: ``rates`` (draws, arms) on the rate scale, ``tau`` and ``omega``
    (draws,) on the logit scale (shared and arm-specific item SDs), and where they came from."""

    arms: tuple[str, ...]
    rates: np.ndarray
    tau: np.ndarray
    omega: np.ndarray
    source: str
    benchmark: Benchmark = BINARY
    trend: Trend | None = None

    def __post_init__(self) -> None:
        s = self.rates.shape[0]
        if self.rates.shape != (s, len(self.arms)) or self.tau.shape != (s,) or self.omega.shape != (s,):
            raise DesignError("design prior: rates must be (draws, arms) and tau, omega (draws,)")
        if not np.all((self.rates > 0) & (self.rates < 1)):
            raise DesignError("design prior: every rate must lie strictly between 0 and 1")
        if np.any(self.tau < 0) or np.any(self.omega < 0):
            raise DesignError("design prior: item SDs must be >= 0")

    @property
    def n_draws(self) -> int:
        return self.rates.shape[0]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(a.split(ARM_SEP)[0] for a in self.arms))

    @property
    def conditions(self) -> list[str]:
        return list(dict.fromkeys(a.split(ARM_SEP)[1] for a in self.arms if ARM_SEP in a))

    def index(self, arm: str) -> int:
        if arm not in self.arms:
            raise DesignError(f"{arm!r} is not an arm of the design prior (arms: {', '.join(self.arms)})")
        return self.arms.index(arm)

    def intercepts(self) -> np.ndarray:
        """``alpha`` (draws, arms): the logit intercepts whose item-population mean rate is ``rates``."""
        return marginal_intercepts(self.rates, np.hypot(self.tau, self.omega)[:, None])

    def resampled(self, n: int, seed: int) -> DesignPrior:
        """``n`` draws taken from this prior (without replacement when it has at least ``n``)."""
        rng = np.random.default_rng(seed)
        pick = rng.choice(self.n_draws, n, replace=self.n_draws < n)
        return replace(self, rates=self.rates[pick], tau=self.tau[pick], omega=self.omega[pick],
                       trend=self.trend.take(pick) if self.trend is not None else None)

    def primary_arms(self) -> list[int]:
        """The arms whose rates the scaling trend compares: each model under the benchmark's primary condition
        (HVSB: no system prompt; when the arms lack it, their first condition), or every arm when the arms
        carry no condition."""
        if not self.conditions:
            return list(range(len(self.arms)))
        primary = self.benchmark.primary_condition
        primary = primary if primary in self.conditions else self.conditions[0]
        return [i for i, a in enumerate(self.arms) if a.endswith(f"{ARM_SEP}{primary}")]

    def with_slope(self, slope: float | None, model_sd: float | None, family_size: int | None) -> DesignPrior:
        """The trend with a stated true slope, model SD or family size (each None: the prior's)."""
        if self.trend is None:
            raise DesignError("--scaling: the pilot has no scaling trend (no model family with two sizes in its "
                              "model table); state --slope and --model-sd with --rate instead")
        t, source = self.trend, self.source
        if slope is not None:
            t = replace(t, slope=np.full(self.n_draws, float(slope)), source=f"stated: {slope:g}")
            source = f"{source}; slope set to {slope:g}"
        if model_sd is not None:
            t = replace(t, model_sd=np.full(self.n_draws, float(model_sd)))
        if family_size is not None:
            t = replace(t, family_size=family_size)
        return replace(self, trend=t, source=source)

    def with_difference(self, a: str, b: str, difference: float) -> DesignPrior:
        """Arm ``a``'s rate set to arm ``b``'s plus ``difference`` in every draw (a stated true difference;
        everything else stays the prior's)."""
        rates = self.rates.copy()
        rates[:, self.index(a)] = rates[:, self.index(b)] + difference
        if not np.all((rates > 0) & (rates < 1)):
            raise DesignError(f"--difference {difference}: {b!r}'s rate plus it leaves (0, 1) in some draws")
        return replace(self, rates=rates, source=f"{self.source}; {a} set to {b} {difference:+g}")


def marginal_intercepts(rates: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The ``alpha`` with ``E expit(alpha + scale z) = rate``, z standard normal (Newton on Gauss-Hermite
    quadrature; the mean rate is increasing in ``alpha``, so the root is unique)."""
    z, w = gauss_hermite()
    alpha = logit(rates) * np.sqrt(1 + 0.346 * scale**2)  # the probit approximation as a start
    for _ in range(50):
        p = expit(alpha[..., None] + scale[..., None] * z)
        step = ((p * w).sum(-1) - rates) / np.maximum((p * (1 - p) * w).sum(-1), 1e-300)
        alpha = alpha - step
        if np.max(np.abs(step)) < 1e-12:
            break
    return alpha


def gauss_hermite(n: int = _NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for expectations over a standard normal (weights sum to 1)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


def stated(rates: Mapping[str, float], *, tau: float, omega: float = 0.0, benchmark: Benchmark = BINARY,
           slope: float | None = None, model_sd: float = 0.0, family_size: int = FAMILY_SIZE) -> DesignPrior:
    """A one-draw prior from stated effects: a rate per arm (``model`` or ``model@condition``), the item
    SD shared by every arm ``tau`` and the arm's own item SD ``omega`` (logit scale); the benchmark sets the
    words (its rate's name and direction). With ``slope``: a scaling trend with that slope and ``model_sd``,
    the families' level and spread the mean and SD of the stated (primary) rates' logits."""
    if len(rates) < 1:
        raise DesignError("--rate: give at least one arm's rate, e.g. --rate gpt-4o=0.55")
    bad = {a: r for a, r in rates.items() if not 0 < r < 1}
    if bad:
        raise DesignError(f"--rate: rates must lie strictly between 0 and 1, got {bad}")
    for name, value in (("--item-sd", tau), ("--arm-item-sd", omega)):
        if not (np.isfinite(value) and value >= 0):
            raise DesignError(f"{name}: must be a finite number >= 0 (logit scale), got {value}")
    if not (np.isfinite(model_sd) and model_sd >= 0):
        raise DesignError(f"--model-sd: must be a finite number >= 0 (logit scale), got {model_sd}")
    text = ", ".join(f"{a} {r:g}" for a, r in rates.items())
    prior = DesignPrior(tuple(rates), np.array([list(rates.values())], dtype=float), np.array([float(tau)]),
                        np.array([float(omega)]), f"stated: {text}; item SD {tau:g}, arm item SD {omega:g}", benchmark)
    if slope is None:
        return prior
    level, spread = family_level(prior)
    trend = Trend(np.array([float(slope)]), np.array([float(model_sd)]), level, spread, family_size,
                  f"stated: slope {slope:g}, model SD {model_sd:g}")
    return replace(prior, trend=trend, source=f"{prior.source}; slope {slope:g}, model SD {model_sd:g}")


def family_level(prior: DesignPrior) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the mean and SD of the primary arms' logit rates: the level and spread of a planned run's
    families."""
    logits = logit(prior.rates[:, prior.primary_arms()])
    return logits.mean(axis=1), logits.std(axis=1)


def from_run(path: str | Path) -> DesignPrior:
    """The posterior of a pilot run folder as the design prior (every posterior draw)."""
    try:
        fit = Fit.load(path)
    except FileNotFoundError as err:
        raise DesignError(f"--pilot {path}: not a run folder ({err})") from err
    return from_fit(fit, source=f"the posterior of {path}")


def from_fit(fit: Fit, source: str = "pilot") -> DesignPrior:
    """The posterior of ``fit`` as the design prior (see the module docstring)."""
    by = ("model", "condition") if "condition" in fit.cells.by else ("model",)
    da, keys = fit.average(by)
    rates = da.values.reshape(-1, da.sizes["group"])
    if len(by) == 2:
        arms = [f"{m}{ARM_SEP}{c}" for m, c in keys.select(pl_str(by)).iter_rows()]
    else:
        arms = [str(m) for m in keys["model"]]
    shared, own = item_variances(fit)
    benchmark = fit.data.benchmark if fit.data is not None else BINARY
    prior = DesignPrior(tuple(arms), rates, np.sqrt(shared), np.sqrt(own), source, benchmark)
    return replace(prior, trend=trend_from_fit(fit, prior))


def trend_from_fit(fit: Fit, prior: DesignPrior, seed: int = SEED) -> Trend | None:
    """The pilot's scaling trend as draws (None when its model table has no family with two sized models):
    slope and model SD drawn from the package's trend model fitted to the pilot's per-model rates (sizes as
    ranks within families), its posterior computed on a grid (:func:`dvbstats.results.scaling.slope_posterior`);
    the families' level and spread per draw from the pilot's rates (:func:`family_level`)."""
    if fit.model_table is None or fit.data is None:
        return None
    draws, _, _ = scaling_input(fit.data.benchmark, fit)
    try:
        rows, _, _, _ = scaling.size_design(fit.model_table, [str(m) for m in draws["model"].values], "rank")
    except scaling.ScalingUnavailable:
        return None
    names = rows["model"].to_list()
    flat = draws.sel(model=names).transpose("chain", "draw", "model").values.reshape(-1, len(names))
    logits = logit(np.clip(flat, 1e-12, 1 - 1e-12))
    families = rows["family"].to_list()
    family_idx = np.unique(families, return_inverse=True)[1]
    post = scaling.slope_posterior(logits.mean(axis=0), np.atleast_2d(np.cov(logits, rowvar=False)), family_idx,
                                   rows["size_std"].to_numpy())
    rng = np.random.default_rng(seed)
    grid = rng.choice(len(post.tau), prior.n_draws, p=post.weights / post.weights.sum())
    slope = rng.normal(post.mean[grid, -1], np.sqrt(post.cov[grid, -1, -1]))
    model_sd = post.tau[grid]
    level, spread = family_level(prior)
    size = int(np.median(np.unique(family_idx, return_counts=True)[1]))
    return Trend(slope, model_sd, level, spread, size,
                 f"the pilot's trend over {len(names)} models in {family_idx.max() + 1} families")


def pl_str(columns: Sequence[str]) -> list[pl.Expr]:
    """The columns as text (levels may be stored as categoricals or numbers)."""
    return [pl.col(c).cast(pl.String) for c in columns]


def item_variances(fit: Fit) -> tuple[np.ndarray, np.ndarray]:
    """Per posterior draw, the item-level variance shared by all arms and the arm's own (logit scale)."""
    post = fit.idata.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    shared, own = np.zeros(n), np.zeros(n)
    sd = post["sd"].values.reshape(n, -1) if "sd" in post else np.zeros((n, 0))
    labels = list(post["sd"].coords["term"].values) if "sd" in post else []
    for t in fit.design.random:
        item_level = [f for f in t.term.factors if f not in ARM_FACTORS]
        if not item_level:
            continue  # an arm-level term (the model's intercept and its condition slopes): in the rates
        var = sum(sd[:, labels.index(lb)] ** 2 for lb in t.sd_labels)
        if "model" in t.term.factors:
            own += var
        else:
            shared += var
    return shared + fixed_variance(fit), own


def fixed_variance(fit: Fit) -> np.ndarray:
    """Per draw, the trial-weighted variance of the fixed part within each arm, averaged over arms: what
    numeric and item-level fixed columns (``log_n_train``) add to item-to-item variation (``b' S b`` with
    ``S`` the columns' within-arm covariance, so no (cells, draws) array is formed)."""
    d = fit.design
    post = fit.idata.posterior
    if not d.fixed:
        return np.zeros(post.sizes["chain"] * post.sizes["draw"])
    b = np.stack([post[f"b_{x}"].values.ravel() for x in d.fixed], axis=1)  # (draws, fixed)
    arm_cols = [c for c in ARM_FACTORS if c in d.cells.by]
    arms = d.cells.data.select(pl_str(arm_cols)).with_row_index("_i").group_by(arm_cols, maintain_order=True)
    n = d.cells.data["n_trials"].to_numpy().astype(float)
    groups = [g["_i"].to_numpy() for _, g in arms]
    cov = np.zeros((len(d.fixed), len(d.fixed)))
    for rows in groups:
        w = n[rows] / max(n[rows].sum(), 1.0)
        centred = d.X[rows] - w @ d.X[rows]
        cov += (centred * w[:, None]).T @ centred
    return np.einsum("si,ij,sj->s", b, cov / len(groups), b)


def contrast_arms(prior: DesignPrior, text: str) -> list[tuple[str, str, str]]:
    """``--contrast A-B`` as (label, arm a, arm b): one per condition when the arms carry conditions."""
    a, b = _split(text, prior.models, "--contrast", "models")
    if not prior.conditions:
        return [(f"{a} - {b}", a, b)]
    found = [(f"{a} - {b} [{c}]", f"{a}{ARM_SEP}{c}", f"{b}{ARM_SEP}{c}") for c in prior.conditions
             if f"{a}{ARM_SEP}{c}" in prior.arms and f"{b}{ARM_SEP}{c}" in prior.arms]
    return found or _none(f"--contrast {text}", f"{a} and {b} share no condition")


def condition_arms(prior: DesignPrior, text: str) -> list[tuple[str, str, str]]:
    """``--condition C1-C0`` as (label, arm a, arm b), one per model that has both conditions."""
    if not prior.conditions:
        raise DesignError(f"--condition {text}: the design prior has no conditions (arms: {', '.join(prior.arms)}); "
                          "name arms MODEL@CONDITION to state them")
    c1, c0 = _split(text, prior.conditions, "--condition", "conditions")
    found = [(f"{c1} - {c0} [{m}]", f"{m}{ARM_SEP}{c1}", f"{m}{ARM_SEP}{c0}") for m in prior.models
             if f"{m}{ARM_SEP}{c1}" in prior.arms and f"{m}{ARM_SEP}{c0}" in prior.arms]
    return found or _none(f"--condition {text}", f"no model has both {c1} and {c0}")


def _none(argument: str, why: str):
    raise DesignError(f"{argument}: nothing to compare ({why})")


def _split(text: str, levels: Sequence[str], argument: str, what: str) -> tuple[str, str]:
    try:
        _, a, b = parse_contrast(text, {what: list(levels)}, default=what)
    except ValueError as err:
        raise DesignError(f"{argument} {text!r}: give two {what} as A-B ({what}: {', '.join(levels)})") from err
    return a, b
