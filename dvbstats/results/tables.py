"""The tables of a fit: what the run folder, the console and the report show."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import polars as pl
import xarray as xr

from dvbstats.benchmarks.definition import Benchmark, best_phrase
from dvbstats.input import cells as cellmod
from dvbstats.input.cells import CellTable
from dvbstats.model import lazy
from dvbstats.model.design import Design, predictor_layout, stacked_parameters
from dvbstats.model.priors import Priors
from dvbstats.model.sample import diagnose
from dvbstats.results import bounds, contrasts, estimands, population
from dvbstats.results.estimands import summarize

if TYPE_CHECKING:  # tables are read off a Fit, which uses them for its summaries
    from dvbstats.results.fitted import Fit

pymcmodel = lazy.module("dvbstats.model.pymcmodel")  # PyMC: imported for the prior predictive check only


#: The neutral names of the per-model rate table (``rates.csv``) and the DVB names they had (``dvgr.csv``,
#: kept as an alias for one release and read back from older run folders).
LEGACY_COLUMNS: dict[str, str] = {
    "raw_rate": "raw_dvgr", "rate_mean": "dvgr_mean", "rate_median": "dvgr_median", "rate_hdi_low": "dvgr_hdi_low",
    "rate_hdi_high": "dvgr_hdi_high", "p_below_reference": "p_below_half", "pop_rate_mean": "pop_dvgr_mean",
    "pop_rate_hdi_low": "pop_dvgr_hdi_low", "pop_rate_hdi_high": "pop_dvgr_hdi_high",
}


def tables(fit: Fit, hdi_prob: float, seed: int, benchmark: Benchmark | None = None, *,
           predictive: bool = True) -> dict[str, pl.DataFrame]:
    """Every table of the run folder that comes from the posterior, by file stem. ``benchmark`` (default: the
    fit's input's) gives the reference line, the direction ranks follow and the condition the per-model rate
    is taken under; without one there is no reference and no direction. ``predictive=False`` leaves out the
    posterior predictive check (``ppc``, :func:`ppc_table`) for a caller that runs it beside more than these
    tables (the run folder: beside all its writing)."""
    b = benchmark or (fit.data.benchmark if fit.data is not None else None)
    with ThreadPoolExecutor(1) as pool:
        # the posterior predictive check is Numba without the GIL: it runs beside the other tables
        ppc = pool.submit(ppc_table, fit, hdi_prob, seed) if predictive else None
        out = {
            "rates": rate_table(fit, hdi_prob, seed, b),
            "sd": sd_table(fit, hdi_prob),
            "fixed": fixed_table(fit, hdi_prob, seed),
            "cor": cor_table(fit, hdi_prob),
            "random_effects": random_effects_table(fit, hdi_prob),
            "margins": margins_table(fit, hdi_prob),
            **({"item_effects": item_effects_table(fit)} if item_factors(fit) else {}),
            "diagnostics": fit.diagnostics.table,
        }
        interaction = interaction_table(fit, hdi_prob)
        if interaction is not None:
            out["interaction_dvgr"] = interaction
        conditions = condition_table(fit, hdi_prob)
        if conditions is not None:
            out["condition_effects"] = conditions
        if len(fit.models) > 1:
            out |= rank_tables(fit, b, hdi_prob)
        if ppc is not None:
            out["ppc"] = ppc.result()
    return out


def rank_tables(fit: Fit, b: Benchmark | None, hdi_prob: float) -> dict[str, pl.DataFrame]:
    """``ranks`` (rank 1 = the best rate by the benchmark's direction; the highest rate when it has none;
    column ``ranked_by`` says which) and ``p_superior`` (P(rate of row > rate of column)), over the per-model
    rate of :func:`primary_draws`."""
    draws, _, _, condition = primary_draws(fit, b.primary_condition if b else None)
    samples, labels = draws.values.reshape(-1, draws.sizes["model"]), [str(m) for m in draws["model"].values]
    direction = b.direction if b else None
    rate = b.rate_label(condition) if b else "rate"
    pairwise = contrasts.pairwise_allowed(len(labels))  # models x models tables: bounded (bounds.notes)
    ranks = contrasts.rank_table(-samples if direction == "lower" else samples, labels, interval=hdi_prob,
                                 distribution=pairwise)
    out = {"ranks": ranks.with_columns(ranked_by=pl.lit(best_phrase(direction, rate)))}
    return out | ({"p_superior": contrasts.p_superior(samples, labels)} if pairwise else {})


def primary_draws(fit: Fit, condition: str | None) -> tuple[xr.DataArray, xr.DataArray, pl.DataFrame, str | None]:
    """The per-model rate a benchmark reports and ranks: draws (chain, draw, model), the overall rate
    (chain, draw), the cells behind them, and the condition they are taken under.

    With ``condition`` and a fit whose cells have that level of ``condition``: the design-averaged rate
    under that level alone (HVSB: the MR without a system prompt; never one rate pooled over conditions);
    otherwise the design average over every cell, and condition None.
    """
    cells = fit.cells.data
    if condition is None or "condition" not in fit.cells.by or condition not in set(cells["condition"].cast(pl.String)):
        return fit.dvgr, fit.overall, cells, None
    da, keys = fit.average(("model", "condition"))
    at = np.flatnonzero(keys["condition"].cast(pl.String).to_numpy() == condition)
    per_model = (da.isel(group=at).rename(group="model")
                 .assign_coords(model=keys["model"].cast(pl.String).to_numpy()[at]).rename("rate"))
    pooled, levels = fit.average(("condition",))
    overall = pooled.isel(group=int(np.flatnonzero(levels["condition"].cast(pl.String).to_numpy() == condition)[0]),
                          drop=True).rename("rate_overall")
    return per_model, overall, cells.filter(pl.col("condition").cast(pl.String) == condition), condition


def excluded_rows(fit: Fit, condition: str | None) -> pl.DataFrame | None:
    """Per model: rows read but not in the likelihood (``n_excluded`` = unparsed + conflicting rows; superseded
    copies are counted apart, in ``data_quality.csv``), under ``condition`` when given; None without the input."""
    data = fit.data
    if data is None:
        return None
    if condition is None or data.trials is None or not hasattr(data.trials, "status_counts") \
            or "condition" not in data.trials.data.columns:
        quality = data.quality()
    else:
        quality = (data.trials.status_counts(("model", "condition"))
                   .filter(pl.col("condition").cast(pl.String) == condition).drop("condition"))
    out = [c for c in ("n_unparsed", "n_conflict") if c in quality.columns]
    return quality.select("model", n_excluded=pl.sum_horizontal(out).cast(pl.Int64))


def rate_table(fit: Fit, hdi_prob: float, seed: int, b: Benchmark | None = None) -> pl.DataFrame:
    """Per model and overall: rows used and excluded, the raw rate with its Wilson interval (and the exact
    binomial test against the benchmark's reference, when it has one), the posterior rate with P(rate <
    reference), and the population rate (``rates.csv``). The rate is :func:`primary_draws`' (HVSB: the MR);
    ``condition`` names the level it is taken under (empty: over the design)."""
    reference = b.reference if b else None
    draws, overall, cells, condition = primary_draws(fit, b.primary_condition if b else None)
    counts = cellmod.collapse(CellTable(cells, fit.cells.by), ("model",)).data
    totals = counts.select(pl.lit("overall").alias("model"), pl.exclude("model").sum())
    raw = estimands.raw_rates(pl.concat([counts, totals]), reference).rename({"n_trials": "n_used"})
    excluded = excluded_rows(fit, condition)
    if excluded is None:  # a fit to cells alone: prompts in the cells that are not used trials
        raw = raw.with_columns(n_excluded=pl.col("n_prompts") - pl.col("n_used"))
    else:
        excluded = pl.concat([excluded, excluded.select(pl.lit("overall").alias("model"), pl.col("n_excluded").sum())])
        raw = raw.join(excluded, on="model", how="left").with_columns(pl.col("n_excluded").fill_null(0))
    raw = raw.drop("n_deep")
    post = pl.concat([summarize(draws, hdi_prob, dim="model", reference=reference),
                      summarize(overall, hdi_prob, reference=reference).with_columns(model=pl.lit("overall"))],
                     how="diagonal")
    post = post.rename({"mean": "rate_mean", "median": "rate_median", "hdi_low": "rate_hdi_low",
                        "hdi_high": "rate_hdi_high", "p_below_half": "p_below_reference"})
    table = raw.join(post, on="model", how="left")
    if condition is None:
        pop = summarize(estimands.population_dvgr(fit.design, fit.idata, fit.models, seed), hdi_prob, dim="model")
        table = table.join(pop.select("model", pop_rate_mean="mean", pop_rate_hdi_low="hdi_low",
                                      pop_rate_hdi_high="hdi_high"), on="model", how="left")
        labels = [f"dvgr[{m}]" for m in table["model"]]
        labels[-1] = "dvgr_overall"
        diagnosed = fit.diagnostics.table
    else:  # a new draw of the other factors under one condition is not defined by this model: no population rate
        table = table.with_columns(*[pl.lit(None, pl.Float64).alias(c) for c in
                                     ("pop_rate_mean", "pop_rate_hdi_low", "pop_rate_hdi_high")])
        labels = [f"rate[{m}]" for m in table["model"]]
        labels[-1] = "rate_overall"
        diagnosed = diagnose({"rate": draws, "rate_overall": overall}, fit.idata).table
    cols = ["model", "n_prompts", "n_used", "n_excluded", "raw_rate", "wilson_low", "wilson_high", "binom_p",
            "rate_mean", "rate_median", "rate_hdi_low", "rate_hdi_high", "p_below_reference",
            "pop_rate_mean", "pop_rate_hdi_low", "pop_rate_hdi_high"]
    table = table.rename({"raw_dvgr": "raw_rate"}).select(cols).with_columns(condition=pl.lit(condition, pl.String))
    diag = diagnosed.rename({"parameter": "_p"})
    return table.with_columns(_p=pl.Series(labels)).join(diag, on="_p", how="left").drop("_p")


def dvgr_table(fit: Fit, hdi_prob: float, seed: int, b: Benchmark | None = None) -> pl.DataFrame:
    """:func:`rate_table` under the DVB names it had (``dvgr.csv``: ``raw_dvgr``, ``dvgr_mean``, ``p_below_half``, ...)."""
    return legacy(rate_table(fit, hdi_prob, seed, b))


def legacy(rates: pl.DataFrame) -> pl.DataFrame:
    """A rate table (``rates.csv``) under its DVB names (``dvgr.csv``)."""
    return rates.rename(LEGACY_COLUMNS, strict=False).drop("condition", strict=False)


def neutral(dvgr: pl.DataFrame) -> pl.DataFrame:
    """A DVB rate table of an older run folder (``dvgr.csv``) under the neutral names of ``rates.csv``."""
    return dvgr.rename({old: new for new, old in LEGACY_COLUMNS.items()}, strict=False)


def _with_diagnostics(table: pl.DataFrame, fit: Fit, labels: list[str]) -> pl.DataFrame:
    diag = fit.diagnostics.table.rename({"parameter": "_p"})
    return table.with_columns(_p=pl.Series(labels)).join(diag, on="_p", how="left").drop("_p")


def sd_table(fit: Fit, hdi_prob: float) -> pl.DataFrame:
    """Posterior of each random-effect SD (logit scale): which factor moves choices most."""
    if "sd" not in fit.idata.posterior:
        return pl.DataFrame(schema={"term": pl.String, "mean": pl.Float64})
    s = summarize(fit.idata.posterior["sd"], hdi_prob, dim="term").drop("p_below_half")
    return _with_diagnostics(s, fit, [f"sd[{t}]" for t in s["term"]])


def fixed_table(fit: Fit, hdi_prob: float, seed: int = 0) -> pl.DataFrame:
    """Intercept and coefficients (logit scale) with P(> 0): ``term`` is the parameter, ``coefficient``
    its name in the formula's coding (``condition[B]:log_n_train``); ``estimand`` says whether ``mean``
    and the HDI are the mean over the fitted levels (zero-sum terms) or the population effect, and
    ``pop_*`` give the population effect lme4 and brms report (:mod:`dvbstats.results.population`)."""
    d = fit.design
    labels = dict(zip((f"b_{x}" for x in d.fixed), d.coefficients)) | {"Intercept": "Intercept"}
    forms = fit.parametrizations()
    pop = population.population_fixed_effects(d, fit.idata.posterior, forms, seed)
    rows = []
    for name, da in fit.top_level().items():
        if name in ("sd", "cor"):
            continue
        p = summarize(pop[name], hdi_prob)
        s = summarize(da, hdi_prob).drop("p_below_half").with_columns(
            term=pl.lit(name), coefficient=pl.lit(labels[name]), p_positive=pl.lit(float((da > 0).mean())),
            estimand=pl.lit(population.estimand(d, forms, name)), pop_mean=p["mean"], pop_hdi_low=p["hdi_low"],
            pop_hdi_high=p["hdi_high"])
        rows.append(s)
    columns = ["term", "coefficient", "mean", "median", "hdi_low", "hdi_high", "p_positive", "estimand", "pop_mean",
               "pop_hdi_low", "pop_hdi_high"]
    if not rows:
        return pl.DataFrame(schema={c: pl.String if c in ("term", "coefficient", "estimand") else pl.Float64
                                    for c in columns})
    table = pl.concat(rows).select(columns)
    return _with_diagnostics(table, fit, table["term"].to_list())


def cor_table(fit: Fit, hdi_prob: float) -> pl.DataFrame:
    """Posterior correlation of each pair of a random term's coefficients (``group|a,b``), with P(> 0)."""
    if "cor" not in fit.idata.posterior:
        return pl.DataFrame(schema={"pair": pl.String, "mean": pl.Float64})
    da = fit.idata.posterior["cor"]
    s = summarize(da, hdi_prob, dim="pair").drop("p_below_half").with_columns(
        p_positive=pl.Series((da > 0).mean(("chain", "draw")).values))
    return _with_diagnostics(s, fit, [f"cor[{p}]" for p in s["pair"]])


def _level_effects(fit: Fit) -> Iterator[tuple[str, xr.DataArray]]:
    """Each random term's deviations per level, as (label, (chain, draw, level) array)."""
    for t in fit.design.terms:
        da = fit.idata.posterior[f"r_{t.name}"]
        if len(t.dims) > 1:
            labels = [":".join(ix) for ix in itertools.product(*t.levels)]
            da = xr.DataArray(da.values.reshape(*da.shape[:2], -1), dims=("chain", "draw", "level"),
                              coords={"level": labels})
        else:
            da = da.rename({t.dims[0]: "level"})
        yield t.term.label, da
    for sl in fit.design.slopes:
        da = fit.idata.posterior[f"r_{sl.name}"]
        for k, label in enumerate(sl.sd_labels):
            yield label, da.isel({sl.coef_dim: k}, drop=True).rename({sl.dim: "level"})


def random_effects_table(fit: Fit, hdi_prob: float) -> pl.DataFrame:
    """Every level's deviation from the intercept (logit scale), except item-level terms' (their
    levels go to :func:`item_effects_table`; :data:`dvbstats.results.bounds.MAX_LEVELS_LISTED`)."""
    parts = [summarize(da, hdi_prob, dim="level").drop("p_below_half", "median").with_columns(term=pl.lit(label))
             for label, da in _level_effects(fit) if not bounds.item_level(da.sizes["level"])]
    if not parts:
        return pl.DataFrame(schema={"term": pl.String, "level": pl.String})
    return pl.concat(parts).select("term", "level", "mean", "hdi_low", "hdi_high")


#: Levels per block of :func:`level_moments`: 4,000 draws x 1,024 levels in float64 is 33 MB.
LEVEL_BLOCK = 1024


def level_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and SD (ddof 1) of each column of a (draws, levels) array, in float64 one block of
    LEVEL_BLOCK levels at a time: the item effects are stored in float32 (12,000 prompts x 4,000 draws:
    192 MB), and a float64 copy of all of them, plus NumPy's temporaries for the SD, would be 3-4 times that."""
    mean, sd = np.empty(values.shape[1]), np.empty(values.shape[1])
    for a in range(0, values.shape[1], LEVEL_BLOCK):
        block = values[:, a:a + LEVEL_BLOCK].astype(np.float64)
        mean[a:a + LEVEL_BLOCK] = block.mean(axis=0)
        sd[a:a + LEVEL_BLOCK] = block.std(axis=0, ddof=1)
    return mean, sd


def item_effects_table(fit: Fit) -> pl.DataFrame:
    """The compact table of item-level terms (``(1|prompt)``): each level's posterior mean and SD
    (logit scale), without the HDIs that would cost seconds per thousand levels."""
    parts = []
    for label, da in _level_effects(fit):
        if bounds.item_level(da.sizes["level"]):
            mean, sd = level_moments(da.values.reshape(-1, da.sizes["level"]))
            parts.append(pl.DataFrame({"term": label, "level": [str(x) for x in da["level"].values],
                                       "mean": mean, "sd": sd}))
    return pl.concat(parts) if parts else pl.DataFrame(schema={"term": pl.String, "level": pl.String})


def item_factors(fit: Fit) -> dict[str, int]:
    """Design factors with more levels than :data:`dvbstats.results.bounds.MAX_LEVELS_LISTED`, and their numbers of levels."""
    counts = {f: fit.cells.data[f].n_unique() for f in fit.cells.by if f != "model"}
    return {f: n for f, n in counts.items() if bounds.item_level(n)}


def grouped(fit: Fit, by: list[str], hdi_prob: float) -> pl.DataFrame:
    da, keys = fit.average(by)
    s = summarize(da.assign_coords(group=np.arange(keys.height)), hdi_prob, dim="group").drop("group", "p_below_half")
    raw = fit.cells.data.group_by(by).agg(pl.col("n_trials").sum(), pl.col("n_deep").sum())
    raw = raw.with_columns(raw_dvgr=pl.col("n_deep") / pl.col("n_trials")).drop("n_deep")
    return pl.concat([keys, s.rename({c: f"dvgr_{c}" for c in s.columns})], how="horizontal").join(
        raw, on=by, how="left")


def interaction_table(fit: Fit, hdi_prob: float) -> pl.DataFrame | None:
    """Posterior DVGR per model x level for the first interaction term involving ``model``."""
    for t in fit.design.terms:
        if "model" in t.term.factors and len(t.term.factors) > 1:
            return grouped(fit, list(t.term.factors), hdi_prob)
    return None


def margins_table(fit: Fit, hdi_prob: float) -> pl.DataFrame:
    """Design-averaged posterior DVGR by each design factor other than model (value, n_train, ...),
    item-level factors (:func:`item_factors`) left out."""
    parts = []
    for factor in fit.cells.by:
        if factor == "model" or factor in item_factors(fit):
            continue
        g = grouped(fit, [factor], hdi_prob)
        level = g[factor]
        if factor == "log_n_train":
            factor, level = "n_train", level.exp().round(0).cast(pl.Int64)
        parts.append(g.drop(g.columns[0]).with_columns(factor=pl.lit(factor), level=level.cast(pl.String)))
    if not parts:
        return pl.DataFrame(schema={"factor": pl.String, "level": pl.String})
    return pl.concat(parts).select("factor", "level", pl.exclude("factor", "level"))


def ppc_table(fit: Fit, hdi_prob: float, seed: int, max_draws: int = 500) -> pl.DataFrame:
    """Posterior predictive check: observed vs replicated rates per model and per value."""
    d, post = fit.design, fit.idata.posterior
    n_total = post.sizes["chain"] * post.sizes["draw"]
    keep = np.linspace(0, n_total - 1, min(max_draws, n_total)).astype(int)
    stacked = {n: v[keep] for n, v in estimands.stacked_draws(fit.idata, estimands.parameter_names(d)).items()}
    groups = _predictive_groups(d.cells.data)
    rep = np.zeros((len(groups), len(keep), max((len(levels) for _, levels, _ in groups), default=1)))
    n = d.cells.data["n_trials"].to_numpy().astype(np.int64)
    margins = estimands.crossed_margins(d, [(by,) for by, _, _ in groups],
                                        [pl.DataFrame({by: levels}) for by, levels, _ in groups], n.astype(float))
    if margins is not None:  # a complete crossed design: replicated per row and column, no cell layout
        estimands.crossed_replicated(margins, stacked, seed, rep)
    else:
        index = np.array([g for _, _, g in groups], np.int64).reshape(len(groups), d.cells.data.height)
        _replicated_sums(stacked_parameters(d, stacked), *estimands.item_layout(*predictor_layout(d)), n, index,
                         seed, rep)
    return _predictive_summary(d.cells.data, groups, [rep[k, :, :len(levels)] for k, (_, levels, _) in
                                                      enumerate(groups)], hdi_prob)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _replicated_sums(theta, cols, vals, item, design_of, n, group, seed, out):
    """Replicated counts ``Binomial(n[c], logit^-1(eta[i, c]))`` for the draws ``theta``, summed straight into
    ``out[g, i, group[g, c]]``: no (draws, cells) arrays of probabilities and counts (at 182,600 cells x 500
    draws they were 1.5 GB). Seeded: the same ``seed`` gives the same replications."""
    np.random.seed(seed)
    for i in range(theta.shape[0]):
        p = estimands.item_sigmoid(theta[i], cols, vals, item, design_of)
        for c in range(p.shape[0]):
            y = np.random.binomial(n[c], p[c]) if n[c] > 0 else 0
            for g in range(group.shape[0]):
                out[g, i, group[g, c]] += y


def check_prior_predictive(d: Design) -> None:
    """Refuse a design whose priors PyMC cannot draw from: random slopes carry their LKJ prior and
    centred rows as a density on flat variables (``pymcmodel._lkj_cholesky``), which has no forward sampler."""
    if d.slopes:
        raise ValueError("the prior predictive check is not available for formulas with random slopes "
                         f"({', '.join(s.name for s in d.slopes)}): their LKJ prior is written as a density, "
                         "which cannot be drawn from directly; check the priors on the formula without the slopes")


def prior_predictive_table(d: Design, priors: Priors, parametrization: str, hdi_prob: float, seed: int,
                           draws: int = 500) -> pl.DataFrame:
    """Prior predictive check: the rates per model and per value the priors alone expect, beside the data.

    Wide intervals that cover the observed rates mean the priors let the data speak; intervals piled
    at 0 and 1 would mean the priors on the logit scale are too wide to be weakly informative.
    """
    check_prior_predictive(d)
    y_rep = pymcmodel.prior_predictive(d, priors, parametrization, draws, seed)
    return predictive_table(d.cells.data.filter(pl.Series(d.observed)), y_rep, hdi_prob)


def predictive_table(cells: pl.DataFrame, y_rep: np.ndarray, hdi_prob: float) -> pl.DataFrame:
    """Observed rates per model and per value beside the rates of replicated counts ``y_rep`` (draws, cells)."""
    groups = _predictive_groups(cells)
    sums = [np.stack([np.bincount(g, weights=row, minlength=len(levels)) for row in y_rep])
            for _, levels, g in groups]
    return _predictive_summary(cells, groups, sums, hdi_prob)


def _predictive_groups(cells: pl.DataFrame) -> list[tuple[str, list[str], np.ndarray]]:
    """The groupings of a predictive check: (column, its levels as sorted text, each cell's level index)."""
    groups = []
    for by in ("model", "value"):
        if by in cells.columns:
            keys = cells[by].cast(pl.String).to_numpy()
            levels = np.unique(keys)
            groups.append((by, levels.tolist(), np.searchsorted(levels, keys).astype(np.int64)))
    return groups


def _predictive_summary(cells: pl.DataFrame, groups: list[tuple[str, list[str], np.ndarray]],
                        replicated: list[np.ndarray], hdi_prob: float) -> pl.DataFrame:
    """The predictive check's table from each grouping's replicated counts per level (draws, levels)."""
    n = cells["n_trials"].to_numpy()
    parts = []
    for (by, levels, g), rep_sums in zip(groups, replicated):
        trials = np.bincount(g, weights=n, minlength=len(levels))
        with np.errstate(invalid="ignore", divide="ignore"):  # a model without trials (--keep-empty-models): NaN
            obs = np.bincount(g, weights=cells["n_deep"].to_numpy(), minlength=len(levels)) / trials
            rep = rep_sums / trials
        rep_da = xr.DataArray(rep[None], dims=("chain", "draw", "level"), coords={"level": levels})
        s = summarize(rep_da, hdi_prob, dim="level")
        parts.append(pl.DataFrame({
            "by": by, "level": levels, "observed": obs, "predicted_mean": s["mean"],
            "predicted_low": s["hdi_low"], "predicted_high": s["hdi_high"], "n_trials": trials.astype(int)}))
    return pl.concat(parts)


def condition_table(fit: Fit, hdi_prob: float) -> pl.DataFrame | None:
    """Each categorical fixed effect (a condition: prompt template, attack prompt, re-run, ...) on the
    probability scale: every level minus the reference level, design-averaged, for all models
    together (``model = "all models"``, the population-level effect) and for each model (with a
    ``(1 + condition|model)`` term these differ by model; ``observed`` false where a model lacks one of the two
    levels, whose rate there is a prediction). None when the formula has no such term."""
    rows = []
    for var, pairs in condition_pairs(fit).items():
        draws, labels = fit.level_draws(var.name)
        rows.append(contrasts.contrast_table(draws, labels, pairs, factor=var.name, hdi_prob=hdi_prob)
                    .with_columns(model=pl.lit("all models")))
        da, keys = fit.average(("model", var.name))
        values = da.values.reshape(-1, da.sizes["group"])
        for model in fit.models:
            at = [i for i, m in enumerate(keys["model"].to_list()) if m == model]
            rows.append(contrasts.contrast_table(values[:, at], [str(x) for x in keys[var.name][at]], pairs,
                                                 factor=var.name, hdi_prob=hdi_prob).with_columns(model=pl.lit(model)))
    if not rows:
        return None
    table = pl.concat(rows).select("factor", "model", pl.exclude("factor", "model"))
    return pl.concat([mark_observed(table.filter(pl.col("factor") == var.name), fit, var.name)
                      for var in condition_pairs(fit)])


def mark_observed(table: pl.DataFrame, fit: Fit, factor: str) -> pl.DataFrame:
    """``observed`` beside per-model contrasts of levels ``a`` and ``b`` of ``factor``: false where the model
    has no used trial at one of them (that side is a prediction, :meth:`Fit.predicted`); true for all models."""
    used = fit.cells.data.filter(pl.col("n_trials") > 0).select(
        "model", pl.col(factor).cast(pl.String).alias("_level")).unique()
    seen = {(m, lv) for m, lv in used.iter_rows()}
    observed = [m == "all models" or ((m, a) in seen and (m, b) in seen)
                for m, a, b in table.select("model", "a", "b").iter_rows()]
    return table.with_columns(pl.Series("observed", observed, dtype=pl.Boolean))


def condition_pairs(fit: Fit) -> dict:
    """Per condition variable of :func:`condition_table`, its (level, reference level) pairs."""
    out = {}
    for var in condition_variables(fit):
        levels = sorted(str(x) for x in fit.cells.data[var.name].unique().to_list())
        ref = var.ref if var.ref is not None else levels[0]
        out[var] = [(level, ref) for level in levels if level != ref]
    return out


def condition_variables(fit: Fit) -> list:
    """Main-effect fixed terms that are factors (not ``model``): the conditions a report contrasts."""
    out = []
    for term in fit.formula.fixed:
        if len(term) != 1 or term[0].name == "model" or term[0].name not in fit.cells.data.columns:
            continue
        var = term[0]
        if var.factor or not fit.cells.data[var.name].dtype.is_numeric():
            out.append(var)
    return out
