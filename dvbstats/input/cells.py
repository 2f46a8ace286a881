"""Binomial cells: the sufficient statistics of the trial table for a given design.

A logistic model whose predictors are all categorical (or take few values) depends on the
trials only through, per design cell, how many trials were used and how many chose the deep
value. Fitting cells instead of trials gives the same posterior at a fraction of the cost.

A formula may use any column of the trials (the harness's and any extra dump column ingest kept)
and the model table's columns (``developer``, ``family``, ``size_rank_in_family``, ``params_b``),
which are joined by model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dvbstats.input.schema import CELL_COUNTS, DERIVED

Frame = pl.DataFrame | pl.LazyFrame


@dataclass(frozen=True)
class CellTable:
    """Design columns ``by`` plus ``n_prompts`` (distinct prompts, parsed or not),
    ``n_trials`` (parsed trials in the likelihood) and ``n_deep`` (of those, deep choices)."""

    data: pl.DataFrame
    by: tuple[str, ...]

    @property
    def n_trials(self) -> int:
        return int(self.data["n_trials"].sum())

    @property
    def n_deep(self) -> int:
        return int(self.data["n_deep"].sum())

    def by_model(self) -> pl.DataFrame:
        """Per-model totals (``model, n_prompts, n_trials, n_deep``), in model order."""
        return collapse(self, ("model",)).data

    def write(self, path: Path) -> None:
        self.data.write_parquet(path)


#: Model-table columns a formula may use, joined onto the data by model (short name).
MODEL_COLUMNS: tuple[str, ...] = ("developer", "family", "size_rank_in_family", "params_b")


def from_trials(
    trials: pl.DataFrame | pl.LazyFrame, by: Sequence[str], models: pl.DataFrame | None = None
) -> CellTable:
    """Aggregate a canonical trial table (``ingest.TrialTable.data``, or a lazy scan of one such
    as ``ingest.TrialFile.scan()``) into cells over ``by``, by a streaming group-by.

    ``models`` (``ModelTable.data``) supplies the model-table columns ``by`` asks for.
    """
    by = _with_model(by)
    columns = trials.collect_schema().names()
    live = trials.lazy().filter(pl.col("status") != "superseded")
    live = _derive(_join_models(live, by, models), by, available=[*columns, *_model_columns(models)])
    data = (
        live.group_by(by)
        .agg(
            n_prompts=pl.col("prompt_id").n_unique(),
            n_trials=(pl.col("status") == "used").sum(),
            n_deep=pl.col("chose_deep").fill_null(0).cast(pl.Int64).sum(),
        )
        .sort(by)
        .collect(engine="streaming")
    )
    return CellTable(_counts_as_int(data), by)


def missing_levels(cells: CellTable, factor: str) -> dict[str, list[str]]:
    """Per model without a used trial at some level of ``factor``: those levels (models with every level: absent).

    Such a model is named before sampling: its rate at those levels is a prediction from the hierarchy
    (:func:`predicted_cells`), not data.
    """
    used = cells.data.filter(pl.col("n_trials") > 0)
    levels = sorted(str(x) for x in cells.data[factor].unique().to_list())
    seen = used.group_by("model").agg(pl.col(factor).cast(pl.String).unique())
    out = {}
    for model, have in seen.sort("model").iter_rows():
        lacking = [lv for lv in levels if lv not in set(have)]
        if lacking:
            out[model] = lacking
    return out


def from_counts(counts: pl.DataFrame, by: Sequence[str], models: pl.DataFrame | None = None) -> CellTable:
    """Collapse an aggregated count table (``ingest.read_cells``) onto the design ``by``."""
    by = _with_model(by)
    available = [*counts.columns, *_model_columns(models)]
    counts = _derive(_join_models(counts, by, models), by, available=available)
    return collapse(CellTable(counts, tuple(c for c in counts.columns if c not in CELL_COUNTS)), by)


def collapse(cells: CellTable, by: Sequence[str]) -> CellTable:
    """Sum the counts of ``cells`` over every design column not in ``by``."""
    missing = [c for c in by if c not in cells.data.columns]
    if missing:
        raise KeyError(f"cells have no column {missing[0]!r} (they have {', '.join(cells.by)})")
    data = cells.data.group_by(list(by)).agg(pl.col(c).sum() for c in CELL_COUNTS).sort(list(by))
    return CellTable(_counts_as_int(data), tuple(by))


def _with_model(by: Sequence[str]) -> tuple[str, ...]:
    """Every cell table is split by model: the DVGR is reported per model."""
    return ("model", *(c for c in by if c != "model"))


def _model_columns(models: pl.DataFrame | None) -> list[str]:
    return [c for c in MODEL_COLUMNS if models is not None and c in models.columns]


def _join_models(df: Frame, by: Sequence[str], models: pl.DataFrame | None) -> Frame:
    """Add the model-table columns ``by`` needs and the data lack, matched on the short name."""
    wanted = [c for c in _model_columns(models) if c in by and c not in df.collect_schema()]
    if not wanted:
        return df
    table = models.select(pl.col("short_name").alias("model"), *wanted).unique("model")
    return df.join(table.lazy() if isinstance(df, pl.LazyFrame) else table, on="model", how="left")


def _derive(df: Frame, by: Sequence[str], available: Sequence[str]) -> Frame:
    """Add derived design columns (``log_n_train``) and check the design is available."""
    derived = {c: DERIVED[c] for c in by if c in DERIVED and c not in df.collect_schema()}
    df = df.with_columns(**derived) if derived else df
    absent = [c for c in by if c not in df.collect_schema()]
    if absent:
        have = ", ".join(c for c in available if c not in CELL_COUNTS)
        raise ValueError(
            f"the formula uses {', '.join(map(repr, absent))} but the input has no such column "
            f"(available: {have})"
        )
    return df


def _counts_as_int(data: pl.DataFrame) -> pl.DataFrame:
    return data.with_columns(pl.col(c).cast(pl.Int64) for c in CELL_COUNTS)


def predicted_cells(cells: CellTable, factor: str) -> CellTable:
    """The model x ``factor`` cells the data lack, to be predicted, never fitted: for each model absent from
    a level of ``factor``, its cells at its first level present, moved to the missing level, with no trials
    (``n_trials = n_deep = 0``) and the same prompt weights (the same items, so that its rate there is
    averaged over the items it was judged on)."""
    levels = cells.data[factor].unique().sort()
    present = cells.data.select("model", factor).unique()
    wanted = (present.select("model").unique().join(pl.DataFrame({factor: levels}), how="cross")
              .join(present, on=["model", factor], how="anti"))
    first = present.sort("model", factor).group_by("model", maintain_order=True).first()
    mirrored = (wanted.join(first, on="model", suffix="_from")
                .join(cells.data, left_on=["model", f"{factor}_from"], right_on=["model", factor])
                .drop(f"{factor}_from")
                .with_columns(pl.lit(0, pl.Int64).alias("n_trials"), pl.lit(0, pl.Int64).alias("n_deep")))
    return CellTable(mirrored.select(cells.data.columns).sort(list(cells.by)), cells.by)
