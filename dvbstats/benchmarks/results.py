"""A benchmark's own tables of a fit (the record of the benchmark the run folder keeps,
:func:`dvbstats.benchmarks.describe`, lives with the registry).

:func:`tables` adds, for a benchmark whose design has a ``condition`` (HVSB), the posterior
rate per model x condition, the paired posterior contrasts between conditions per model, the
data-quality counts per model x condition, and the tables of the benchmark's own analyses
(``Benchmark.extra_tables``; HVSB: by scenario type, and the frequentist first look of
:mod:`dvbstats.benchmarks.first_look`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
import xarray as xr

from dvbstats.benchmarks.common import JudgmentTable
from dvbstats.benchmarks.definition import Benchmark, analysis
from dvbstats.results import contrasts, tables as summaries
from dvbstats.results.estimands import summarize
from dvbstats.results.fitted import Fit

# The shipped definitions name their own analyses (Benchmark.agreement, extra_tables); the modules that implement
# them register them when imported: here, beside the code that runs them (and the pipeline, which imports this).
import dvbstats.benchmarks.consistency  # noqa: F401  (HVSB's judgment consistency)
import dvbstats.benchmarks.first_look  # noqa: F401  (HVSB's first look)
import dvbstats.benchmarks.scenarios  # noqa: F401  (HVSB's scenario tables)
import dvbstats.results.agreement  # noqa: F401  (DVB's model agreement)

_SEP = "\x1f"


def condition_rates(fit: Fit, b: Benchmark, hdi_prob: float) -> pl.DataFrame:
    """Posterior rate per model x condition (design-averaged) with its name, beside the raw counts; ``observed``
    is false where the model has no trial under the condition (a prediction: no counts, no raw rate)."""
    da, keys = fit.average(("model", "condition"))
    post = summarize(da.assign_coords(group=np.arange(keys.height)), hdi_prob, dim="group").drop("group")
    raw = fit.cells.data.group_by("model", "condition").agg(pl.col("n_trials").sum(), pl.col("n_deep").sum())
    table = pl.concat([keys.select(pl.col("model", "condition").cast(pl.String)), post], how="horizontal")
    return (
        table.join(raw, on=["model", "condition"], how="left")
        .with_columns(pl.col("n_trials", "n_deep").fill_null(0))
        .with_columns(
            pl.col("condition").replace_strict(dict(b.rate_by_condition), default=b.rate_name).alias("rate"),
            pl.when(pl.col("n_trials") > 0).then(pl.col("n_deep") / pl.col("n_trials")).alias("raw_rate"),
            (pl.col("n_trials") > 0).alias("observed"),  # else the posterior is a prediction (Fit.predicted)
        )
        .rename({"n_deep": "n_outcome", "p_below_half": "p_below_reference"})
        .select("model", "condition", "rate", "observed", "n_trials", "n_outcome", "raw_rate", "mean", "median",
                "hdi_low", "hdi_high", "p_below_reference")
    )


def condition_contrasts(fit: Fit, hdi_prob: float, pairs) -> pl.DataFrame:
    """Per model and condition pair (a, b): the posterior of rate(a) - rate(b), paired within each draw;
    ``observed`` is false where the model lacks a trial under a or b (one side is a prediction)."""
    da, keys = fit.average(("model", "condition"))
    labels = [f"{m}{_SEP}{c}" for m, c in keys.select(pl.col("model", "condition").cast(pl.String)).iter_rows()]
    draws = da.values.reshape(-1, da.sizes["group"])
    present = set(labels)
    rows = []
    for model in keys["model"].cast(pl.String).unique(maintain_order=True):
        wanted = [(f"{model}{_SEP}{a}", f"{model}{_SEP}{b}") for a, b in pairs
                  if f"{model}{_SEP}{a}" in present and f"{model}{_SEP}{b}" in present]
        if wanted:
            rows.append(contrasts.contrast_table(draws, labels, wanted, factor="condition", hdi_prob=hdi_prob))
    if not rows:
        return pl.DataFrame(schema={"model": pl.String, "a": pl.String, "b": pl.String})
    table = pl.concat(rows).with_columns(
        pl.col("a").str.split(_SEP).list.first().alias("model"),
        pl.col("a").str.split(_SEP).list.last(),
        pl.col("b").str.split(_SEP).list.last(),
    ).select("model", pl.exclude("model", "factor"))
    return summaries.mark_observed(table, fit, "condition")


def scaling_input(b: Benchmark, fit: Fit) -> tuple[xr.DataArray, pl.DataFrame, Mapping[str, frozenset[str]]]:
    """What the scaling tests (:func:`dvbstats.results.scaling.scaling_tests`) compare across model sizes: per-model rate
    draws ``(chain, draw, model)``, the counts behind them, and the big/small codings to test (the benchmark's
    ``size_codings``: DVB's are the paper's).

    The benchmark's per-model rate (:func:`dvbstats.results.tables.primary_draws`): the design average over every
    cell (DVB: the DVGR), or under its ``primary_condition`` alone (HVSB: the misalignment rate without a system
    prompt; attack prompts are compared in their own sections).
    """
    draws, _, cells, _ = summaries.primary_draws(fit, b.primary_condition)
    return draws, cells, b.size_codings


def quality_by_condition(trials: JudgmentTable, refusals: str | None = None) -> pl.DataFrame:
    """Per model x condition: rows read and rows per status (rows = used + unparsed + superseded + conflict); with
    the benchmark's column of refusals (``Benchmark.refusals``; HVSB: ``refused``), refused and malformed responses
    among the final unparsed rows."""
    by = ["model", "condition"]
    counts = trials.status_counts(by).with_columns(pl.col("condition").cast(pl.String))
    if refusals is None:
        return counts.sort(by)
    final = pl.col("status").is_in(["used", "unparsed"])
    extra = trials.data.group_by(by).agg(
        (final & (pl.col("status") == "unparsed")).sum().cast(pl.Int64).alias("n_unparsed_final"),
        pl.col(refusals).sum().cast(pl.Int64).alias("n_refused"),
    ).with_columns(pl.col("condition").cast(pl.String))
    return counts.join(extra, on=by).with_columns(
        (pl.col("n_unparsed_final") - pl.col("n_refused")).alias("n_malformed"),
    ).drop("n_unparsed_final").sort(by)


def tables(b: Benchmark, fit: Fit, trials: Any, hdi_prob: float) -> dict[str, pl.DataFrame]:
    """The benchmark's own run-folder tables, by file stem: the counts per model x condition whenever the trials
    have a condition (whatever the formula); with a condition in the fit, the rates per model x condition, the
    benchmark's condition contrasts and, on judgments, the tables of its own analyses (``extra_tables``; none for
    DVB and condition-free data)."""
    judged = isinstance(trials, JudgmentTable) and "condition" in trials.data.columns
    out = {"quality_by_condition": quality_by_condition(trials, b.refusals)} if judged else {}
    if "condition" not in fit.cells.by:
        return out
    # condition_effects.csv (summaries.condition_table) has each level against the reference per model;
    # condition_contrasts.csv adds only the benchmark's pairs it lacks (HVSB: targeted minus untargeted).
    covered = {pair for var, pairs in summaries.condition_pairs(fit).items() if var.name == "condition"
               for pair in pairs}
    out |= {"condition_rates": condition_rates(fit, b, hdi_prob),
            "condition_contrasts": condition_contrasts(fit, hdi_prob,
                                                       [p for p in b.condition_pairs if p not in covered])}
    if isinstance(trials, JudgmentTable):
        for named in b.extra_tables:
            out |= analysis(named)(b, fit, trials, hdi_prob)
    return out
