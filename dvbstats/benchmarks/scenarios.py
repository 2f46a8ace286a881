"""HVSB's second question: do models prefer some scenario types? MR and ASR per dataset and per part of the
scenario type, and paired contrasts between parts, per model and for all models.

A scenario type (the judgment file's name) has parts (:data:`dvbstats.benchmarks.hvsb.PARTS`): the bias
category, BBQ's question polarity (``neg``/``pos``) and the answer type (BBQ ``stereotype``/``nonstereotype``/
``unknown``, StereoSet and CrowS-Pairs ``pro``/``anti``, BiasDPO ``chosen``/``rejected``). The fit's rate of
every cell (model x condition x scenario type x item) is averaged, per posterior draw, over the cells of each
dataset or part level (weighted by items, as every design average), so a contrast such as negative minus
non-negative BBQ questions is paired within each draw, on one model's items under one condition. A tree written
one file per dataset (``cp.tsv``) has no scenario types: its rates are per dataset only, and the tables say why.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from dvbstats.benchmarks.common import JudgmentTable
from dvbstats.benchmarks.definition import Benchmark, register_analysis
from dvbstats.benchmarks.hvsb import PARTS
from dvbstats.input.cells import CellTable
from dvbstats.results.contrasts import summarize_difference
from dvbstats.results.estimands import design_averages, summarize
from dvbstats.results.fitted import Fit

#: The paired contrasts (part, a, b) reported per dataset as rate(a) - rate(b), when both levels are in it:
#: negative minus non-negative questions, and stereotyped minus anti-stereotyped answers (the paper's question).
CONTRASTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "bbq": (("polarity", "neg", "pos"), ("answer_type", "stereotype", "nonstereotype")),
    "ss": (("answer_type", "pro", "anti"),),
    "cp": (("answer_type", "pro", "anti"),),
    "biasdpo": (("answer_type", "rejected", "chosen"),),
}
ALL = "all models"
NONE = "\x1f"  # the level of a part a scenario type lacks (a dataset's types without polarity)


def _types(trials: JudgmentTable) -> pl.DataFrame:
    """Each scenario type with its dataset and parts (null where the file name has none)."""
    return trials.data.select("scenario_type", "dataset", *PARTS).unique("scenario_type").sort("scenario_type")


def why_no_types(trials: JudgmentTable) -> str:
    """Why a run has no scenario-type breakdown ('' when it has one)."""
    types = _types(trials)
    if types.select(pl.any_horizontal(pl.col(p).is_not_null() for p in PARTS)).to_series().any():
        return ""
    return ("the judgment files are named by dataset (for example cp.tsv: the sampled items of a dataset gathered "
            "in one file), so no file name carries a scenario type; rates are per dataset only")


@register_analysis("hvsb scenario tables")
def tables(b: Benchmark, fit: Fit, trials: JudgmentTable, hdi_prob: float) -> dict[str, pl.DataFrame]:
    """``scenario_rates`` (rate per model or all models x condition x dataset or part level) and
    ``scenario_contrasts`` (the paired contrasts of :data:`CONTRASTS`), when the fit's cells carry the
    scenario type (or the item) and a condition; empty otherwise."""
    by = fit.cells.by
    key = next((k for k in ("scenario_type", "item") if k in by), None)
    if key is None or "condition" not in by or "scenario_type" not in trials.data.columns:
        return {}
    mapping = trials.data.select(key, "dataset", *PARTS).unique(key).with_columns(
        pl.col(p).fill_null(NONE) for p in PARTS)  # a type without the part: grouped apart, not reported
    cells = fit.cells.data.join(mapping, on=key, how="left", maintain_order="left").with_columns(
        pl.col(p).fill_null(NONE) for p in PARTS)
    parts = [p for p in PARTS if (cells[p] != NONE).any()]
    groupings = [(*who, "condition", "dataset", *what) for who in (("model",), ()) for what in ((), *((p,) for p in parts))]
    # from the fit's finest grouping when it holds the key (HVSB's model x condition x scenario type), else a pass over
    # the cells, which the design averages read by their grouping columns and weights only: the parts ride along
    averaged = (fit.regrouped(groupings, mapping)
                or design_averages(replace(fit.design, cells=CellTable(cells, by)), fit.idata, groupings))
    raw = {g: cells.group_by(list(g)).agg(pl.col("n_trials").sum(), pl.col("n_deep").sum()) for g in groupings}
    rates, contrasts = [], []
    for g, (da, keys) in zip(groupings, averaged):
        part = g[-1] if g[-1] != "dataset" else "dataset"
        post = summarize(da.assign_coords(group=np.arange(keys.height)), hdi_prob, dim="group",
                         reference=None).drop("group", "p_below_half", "median")
        table = pl.concat([keys, post], how="horizontal").join(raw[g], on=list(g), how="left")
        level = pl.col(part).cast(pl.String) if part != "dataset" else pl.col("dataset")
        rates.append(table.select(
            (pl.col("model").cast(pl.String) if "model" in g else pl.lit(ALL)).alias("model"),
            pl.col("condition").cast(pl.String), "dataset", pl.lit(part).alias("part"), level.alias("level"),
            "n_trials", (pl.col("n_deep") / pl.col("n_trials")).alias("raw_rate"),
            "mean", "hdi_low", "hdi_high").filter(pl.col("level") != NONE))
        if part != "dataset":
            contrasts += _contrasts(da.values.reshape(-1, keys.height), keys, g, part, hdi_prob)
    rate_table = pl.concat(rates).with_columns(
        pl.col("condition").replace_strict(dict(b.rate_by_condition), default=b.rate_name).alias("rate"))
    out = {"scenario_rates": rate_table.select("model", "condition", "rate", pl.exclude("model", "condition", "rate"))}
    if contrasts:
        out["scenario_contrasts"] = pl.DataFrame(contrasts)
    return out


def _contrasts(draws: np.ndarray, keys: pl.DataFrame, grouping: tuple[str, ...], part: str,
               hdi_prob: float) -> list[dict]:
    """The :data:`CONTRASTS` of ``part`` within each (model,) condition and dataset of one grouping, paired by draw."""
    rows = []
    labels = keys.with_row_index("_at").with_columns(pl.col(part).cast(pl.String))
    within = [c for c in grouping if c != part]
    for group in labels.partition_by(within, maintain_order=True):
        first = group.row(0, named=True)
        index = dict(zip(group[part].to_list(), group["_at"].to_list()))
        for on, a, b in CONTRASTS.get(first["dataset"], ()):
            if on != part or a not in index or b not in index:
                continue
            rows.append({"model": str(first["model"]) if "model" in first else ALL,
                         "condition": str(first["condition"]), "dataset": first["dataset"], "part": part,
                         "a": a, "b": b, "rate_a": float(draws[:, index[a]].mean()),
                         "rate_b": float(draws[:, index[b]].mean()),
                         **summarize_difference(draws[:, index[a]] - draws[:, index[b]], hdi_prob, None)})
    return rows
