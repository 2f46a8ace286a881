"""Model x value binomial counts rebuilt from the published DVB aggregates.

The paper's trial-level dumps are not public; its aggregates are (shipped in ``dvbstats/paper2025/data``). They fix
per-model trials and deep-value choices and per-value trials exactly, and the model x value DVGR
heatmap, the per-value DVGR and its Wilson interval to 2 decimals. This module rebuilds the finest
table those figures support -- trials and deep-value choices per model x preferred value -- so that
every exact figure is matched exactly and every rounded figure within its rounding, and reports the
residual against every published figure.

Trials are rebuilt from the design (every model saw the same prompts; parse failures are taken as
independent of the value), deep-value counts as the integer table closest to the heatmap that meets
every published constraint; both integer steps are exact convex integer programs solved with
``scipy.optimize.milp``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import LinearConstraint, milp

from dvbstats.results.frequentist import wilson

#: The published figures, shipped with the package (provenance: the README.md beside them).
DEFAULT_ROOT = Path(str(files("dvbstats.paper2025") / "data"))

#: Decimals of every rounded published rate, and the tolerance they imply.
PRECISIONS: dict[str, float] = {"exact": 0.0, "2dp": 0.005, "4dp": 0.00005}

#: A deep-value count is searched within this distance (on the rate scale) of its heatmap rate;
#: a reconstruction needing more is reported as infeasible rather than silently distorted.
SEARCH_HALF_WIDTH = 0.05

#: Note on published margins that are not cross-classified by model or value.
NOT_CROSS_CLASSIFIED = "not used (not cross-classified)"

_FLOAT_SLACK = 1e-9  # float representation error allowed when comparing to a rounding interval


class PublishedDataError(ValueError):
    """A published table that cannot be read or is inconsistent; names the file, row and problem."""


class ReconstructionError(ValueError):
    """The published figures admit no table of counts meeting all constraints."""


@dataclass(frozen=True)
class OverallFigures:
    """The overall figures the paper states in prose (``dvb2025_overall.csv``)."""

    prompts_per_model: int
    n_trials: int
    n_deep: int
    dvgr: float  # 4 decimals
    parse_success_rate: float  # 2 decimals


@dataclass(frozen=True)
class PublishedAggregates:
    """Typed access to every published table.

    ``heatmap`` is long: ``model`` (short name), ``value``, ``dvgr``. The other frames keep the
    published columns (see ``dvbstats/paper2025/data/README.md``), in published row order.
    """

    models: pl.DataFrame
    heatmap: pl.DataFrame
    values: pl.DataFrame
    contexts: pl.DataFrame
    n_train: pl.DataFrame
    size_pairs: pl.DataFrame
    overall: OverallFigures


_FILES: dict[str, tuple[str, dict[str, pl.DataType], tuple[str, ...]]] = {
    # attribute: (file, column dtypes, columns that may be empty)
    "models": (
        "dvb2025_models.csv",
        {
            "model_id": pl.String(),
            "short_name": pl.String(),
            "developer": pl.String(),
            "family": pl.String(),
            "size_rank_in_family": pl.Int32(),
            "params_b": pl.Float64(),
            "n_trials_parsed": pl.Int64(),
            "n_chose_deep": pl.Int64(),
        },
        ("size_rank_in_family", "params_b"),
    ),
    "values": (
        "dvb2025_value_margins.csv",
        {
            "value": pl.String(),
            "value_set": pl.String(),
            "n_trials_parsed": pl.Int64(),
            "dvgr": pl.Float64(),
            "ci95_low": pl.Float64(),
            "ci95_high": pl.Float64(),
        },
        (),
    ),
    "contexts": (
        "dvb2025_context_margins.csv",
        {
            "context": pl.String(),
            "n_trials_parsed": pl.Int64(),
            "dvgr": pl.Float64(),
            "ci95_low": pl.Float64(),
            "ci95_high": pl.Float64(),
            "n_chose_deep_if_exact": pl.Int64(),
        },
        ("n_chose_deep_if_exact",),
    ),
    "n_train": (
        "dvb2025_ntrain_margins.csv",
        {
            "n_training_examples": pl.Int32(),
            "dvgr": pl.Float64(),
            "ci95_low": pl.Float64(),
            "ci95_high": pl.Float64(),
        },
        (),
    ),
    "size_pairs": (
        "dvb2025_size_pairs.csv",
        {
            "smaller": pl.String(),
            "larger": pl.String(),
            "dvgr_smaller": pl.Float64(),
            "dvgr_larger": pl.Float64(),
        },
        (),
    ),
    "overall": (
        "dvb2025_overall.csv",
        {
            "prompts_per_model": pl.Int64(),
            "n_trials_parsed": pl.Int64(),
            "n_chose_deep": pl.Int64(),
            "dvgr": pl.Float64(),
            "parse_success_rate": pl.Float64(),
        },
        (),
    ),
}
_HEATMAP_FILE = "dvb2025_model_value_dvgr.csv"


# --------------------------------------------------------------------------------------- reading


def _fail(path: Path, row: int | None, problem: str) -> PublishedDataError:
    where = f"{path}" if row is None else f"{path}, row {row}"
    return PublishedDataError(f"{where}: {problem}")


def _read_typed(
    path: Path, dtypes: dict[str, pl.DataType], nullable: Sequence[str] = ()
) -> pl.DataFrame:
    """Read a CSV as text, then cast each column, naming the first cell that does not parse."""
    if not path.is_file():
        raise _fail(path, None, "file not found")
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise _fail(path, None, f"not a readable CSV ({err})") from None
    missing = [c for c in dtypes if c not in raw.columns]
    if missing:
        raise _fail(path, None, f"missing column(s) {missing}; found {raw.columns}")
    if raw.height == 0:
        raise _fail(path, None, "no data rows")
    out = {}
    for col, dtype in dtypes.items():
        text = raw[col].str.strip_chars()
        cast = text.cast(dtype, strict=False)
        bad = (text.is_not_null() & (text != "") & cast.is_null()).arg_true()
        if bad.len():
            i = bad[0]
            raise _fail(path, i + 1, f"column {col!r}: cannot read {text[i]!r} as {dtype}")
        if col not in nullable and cast.null_count():
            raise _fail(path, cast.is_null().arg_true()[0] + 1, f"column {col!r} is empty")
        out[col] = cast
    return pl.DataFrame(out)


def _check_rows(path: Path, df: pl.DataFrame, ok: pl.Expr, problem: str) -> None:
    """Raise naming the first row where ``ok`` is false."""
    bad = df.select(ok.fill_null(True).not_()).to_series().arg_true()
    if bad.len():
        raise _fail(path, bad[0] + 1, f"{problem}: {df.row(bad[0], named=True)}")


def _check_unique(path: Path, df: pl.DataFrame, col: str) -> None:
    dup = df[col].is_duplicated().arg_true()
    if dup.len():
        raise _fail(path, dup[1] + 1, f"duplicate {col} {df[col][dup[1]]!r} (also row {dup[0] + 1})")


def _check_rates(path: Path, df: pl.DataFrame, cols: Sequence[str]) -> None:
    for col in cols:
        _check_rows(path, df, pl.col(col).is_between(0, 1), f"{col} outside [0, 1]")


def _read_heatmap(path: Path, models: pl.DataFrame, values: pl.DataFrame) -> pl.DataFrame:
    """The model x value heatmap, long: one row per published cell, checked against the margins."""
    value_names = values["value"].to_list()
    wide = _read_typed(
        path, {"short_name": pl.String(), **{v: pl.Float64() for v in value_names}}
    )
    extra = [c for c in wide.columns if c not in ("short_name", *value_names)]
    if extra:
        raise _fail(path, None, f"column(s) {extra} are not values of dvb2025_value_margins.csv")
    _check_unique(path, wide, "short_name")
    if set(wide["short_name"]) != set(models["short_name"]):
        raise _fail(
            path,
            None,
            f"rows {sorted(wide['short_name'])} do not match the models' short names "
            f"{sorted(models['short_name'])}",
        )
    _check_rates(path, wide, value_names)
    return (
        wide.unpivot(index="short_name", on=value_names, variable_name="value", value_name="dvgr")
        .rename({"short_name": "model"})
        .select("model", "value", "dvgr")
    )


def published_aggregates(root: Path = DEFAULT_ROOT) -> PublishedAggregates:
    """Read and cross-check every published table under ``root``.

    Checks types, uniqueness, 0 <= deep <= trials, rates in [0, 1], that the heatmap covers exactly
    the published models and values, and that the model and value margins add up to the overall
    counts. Raises :class:`PublishedDataError` naming the file, row and problem.
    """
    root = Path(root)
    tables = {
        name: _read_typed(root / file, dtypes, nullable)
        for name, (file, dtypes, nullable) in _FILES.items()
    }
    models, values, overall = tables["models"], tables["values"], tables["overall"]
    models_path, values_path, overall_path = (root / _FILES[n][0] for n in ("models", "values", "overall"))

    for col in ("model_id", "short_name"):
        _check_unique(models_path, models, col)
    _check_unique(values_path, values, "value")
    if overall.height != 1:
        raise _fail(overall_path, None, f"expected one data row, found {overall.height}")
    figures = OverallFigures(
        prompts_per_model=overall["prompts_per_model"][0],
        n_trials=overall["n_trials_parsed"][0],
        n_deep=overall["n_chose_deep"][0],
        dvgr=overall["dvgr"][0],
        parse_success_rate=overall["parse_success_rate"][0],
    )
    _check_rows(
        models_path,
        models,
        pl.col("n_trials_parsed").is_between(0, figures.prompts_per_model),
        f"n_trials_parsed outside [0, prompts_per_model = {figures.prompts_per_model}]",
    )
    _check_rows(
        models_path,
        models,
        pl.col("n_chose_deep").is_between(0, pl.col("n_trials_parsed")),
        "n_chose_deep outside [0, n_trials_parsed]",
    )
    _check_rows(values_path, values, pl.col("n_trials_parsed") >= 0, "negative n_trials_parsed")
    for name in ("values", "contexts", "n_train"):
        _check_rates(root / _FILES[name][0], tables[name], ("dvgr", "ci95_low", "ci95_high"))
    _check_rates(root / _FILES["size_pairs"][0], tables["size_pairs"], ("dvgr_smaller", "dvgr_larger"))
    unknown = set(tables["size_pairs"]["smaller"]) | set(tables["size_pairs"]["larger"])
    unknown -= set(models["short_name"])
    if unknown:
        raise _fail(root / _FILES["size_pairs"][0], None, f"unknown model(s) {sorted(unknown)}")

    sums = {
        (models_path, "n_trials_parsed"): (models["n_trials_parsed"].sum(), figures.n_trials),
        (models_path, "n_chose_deep"): (models["n_chose_deep"].sum(), figures.n_deep),
        (values_path, "n_trials_parsed"): (values["n_trials_parsed"].sum(), figures.n_trials),
    }
    for (path, col), (total, expected) in sums.items():
        if total != expected:
            raise _fail(path, None, f"{col} sums to {total}, but {overall_path.name} says {expected}")

    return PublishedAggregates(
        models=models,
        heatmap=_read_heatmap(root / _HEATMAP_FILE, models, values),
        values=values,
        contexts=tables["contexts"],
        n_train=tables["n_train"],
        size_pairs=tables["size_pairs"],
        overall=figures,
    )


# ------------------------------------------------------------------------------------ statistics


def within_rounding(reconstructed: ArrayLike, published: ArrayLike, precision: str) -> NDArray[np.bool_]:
    """Whether each reconstructed figure rounds to the published one (closed interval: ties count)."""
    diff = np.abs(np.asarray(reconstructed, dtype=float) - np.asarray(published, dtype=float))
    return diff <= PRECISIONS[precision] + _FLOAT_SLACK


def rounding_count_bounds(
    rate: ArrayLike, n: ArrayLike, decimals: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Smallest and largest k with k/n inside the rounding interval of ``rate`` (``decimals`` places).

    Integer arithmetic: with R = rate * 10^d, k/n in [(R - 1/2), (R + 1/2)] / 10^d iff
    2 * 10^d * k in [(2R - 1) n, (2R + 1) n].
    """
    scale = 10**decimals
    r = np.rint(np.asarray(rate, dtype=float) * scale).astype(np.int64)
    n_arr = np.asarray(n, dtype=np.int64)
    lo = -((-(2 * r - 1) * n_arr) // (2 * scale))
    hi = ((2 * r + 1) * n_arr) // (2 * scale)
    return np.clip(lo, 0, n_arr), np.clip(hi, 0, n_arr)


def admissible_value_counts(n: int, dvgr: float, ci95_low: float, ci95_high: float) -> tuple[int, int]:
    """Range of deep-value counts k out of n whose rate and Wilson 95% interval all round as published.

    The rate and both Wilson limits increase with k, so the admissible k form one interval.
    """
    k = np.arange(n + 1)
    low, high = wilson(k, n)
    ok = (
        within_rounding(k / n, dvgr, "2dp")
        & within_rounding(low, ci95_low, "2dp")
        & within_rounding(high, ci95_high, "2dp")
    )
    if not ok.any():
        raise ReconstructionError(
            f"no count out of {n} has DVGR {dvgr:.2f} and Wilson interval [{ci95_low:.2f}, {ci95_high:.2f}]"
        )
    return int(k[ok].min()), int(k[ok].max())


def rake(
    seed: ArrayLike, row_sums: ArrayLike, col_sums: ArrayLike, tol: float = 1e-10, max_iter: int = 10_000
) -> NDArray[np.float64]:
    """Iterative proportional fitting: scale rows and columns of ``seed`` until both margins match.

    Converges to the table closest to ``seed`` in Kullback-Leibler divergence with the given margins
    (Deming & Stephan 1940; Ireland & Kullback 1968).
    """
    x = np.asarray(seed, dtype=float).copy()
    rows, cols = np.asarray(row_sums, dtype=float), np.asarray(col_sums, dtype=float)
    if np.any(x < 0) or np.any(rows < 0) or np.any(cols < 0):
        raise ValueError("raking needs a non-negative seed and margins")
    if not math.isclose(rows.sum(), cols.sum(), rel_tol=1e-12):
        raise ValueError(f"row margins sum to {rows.sum()}, column margins to {cols.sum()}")

    def scale(current: NDArray[np.float64], target: NDArray[np.float64]) -> NDArray[np.float64]:
        if np.any((current == 0) & (target > 0)):
            raise ValueError("a margin is positive where the seed is all zero")
        return np.divide(target, current, out=np.zeros_like(target), where=current > 0)

    for _ in range(max_iter):
        x *= scale(x.sum(axis=1), rows)[:, None]
        x *= scale(x.sum(axis=0), cols)[None, :]
        if np.max(np.abs(x.sum(axis=1) - rows)) <= tol * max(rows.max(), 1.0):
            return x
    raise ValueError(f"raking did not converge in {max_iter} iterations")


def closest_integer_table(
    target: ArrayLike,
    weight: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    row_sums: ArrayLike,
    col_lower: ArrayLike,
    col_upper: ArrayLike,
    soft_lower: ArrayLike | None = None,
    soft_upper: ArrayLike | None = None,
) -> NDArray[np.int64]:
    """The integer table closest to ``target`` with exact row sums and bounded column sums.

    Over integer tables x with lower <= x <= upper, x.sum(1) == row_sums and
    col_lower <= x.sum(0) <= col_upper, minimises first the total distance (in units) of the cells
    from their soft intervals [soft_lower, soft_upper] (default: no soft intervals), then
    sum(weight * (x - target)**2). Exact: each cell is ``lower`` plus unit increments priced at the
    successive differences of its convex cost, and the soft-interval term is weighted above any
    possible difference of the quadratic term, so the lexicographic order holds. Solved with
    ``scipy.optimize.milp`` (HiGHS), which is deterministic. Raises :class:`ReconstructionError`
    when no table meets the hard constraints.
    """
    t = np.asarray(target, dtype=float)
    w = np.broadcast_to(np.asarray(weight, dtype=float), t.shape)
    lo = np.asarray(lower, dtype=np.int64)
    hi = np.asarray(upper, dtype=np.int64)
    s_lo = lo if soft_lower is None else np.asarray(soft_lower, dtype=np.int64)
    s_hi = hi if soft_upper is None else np.asarray(soft_upper, dtype=np.int64)
    if np.any(hi < lo):
        raise ValueError("closest_integer_table: a cell has upper < lower")
    n_rows, n_cols = t.shape

    steps = (hi - lo).ravel()
    cell = np.repeat(np.arange(t.size), steps)  # the cell each unit increment belongs to
    start = np.repeat(np.cumsum(steps) - steps, steps)
    reached = lo.ravel()[cell] + np.arange(cell.size) - start + 1  # cell value after the increment

    def quadratic(x: NDArray[np.int64]) -> NDArray[np.float64]:
        return w.ravel()[cell] * (x - t.ravel()[cell]) ** 2

    def outside(x: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.maximum(s_lo.ravel()[cell] - x, 0) + np.maximum(x - s_hi.ravel()[cell], 0)

    marginal = quadratic(reached) - quadratic(reached - 1)
    penalty = 1.0 + np.abs(marginal).sum()
    cost = marginal + penalty * (outside(reached) - outside(reached - 1))

    incidence = sp.vstack(
        [
            sp.csr_array((np.ones(cell.size), (cell // n_cols, np.arange(cell.size))), shape=(n_rows, cell.size)),
            sp.csr_array((np.ones(cell.size), (cell % n_cols, np.arange(cell.size))), shape=(n_cols, cell.size)),
        ]
    )
    rows_free = np.asarray(row_sums, dtype=float) - lo.sum(axis=1)
    cols_lo = np.asarray(col_lower, dtype=float) - lo.sum(axis=0)
    cols_hi = np.asarray(col_upper, dtype=float) - lo.sum(axis=0)
    result = milp(
        cost,
        integrality=np.ones(cell.size),
        bounds=(0, 1),
        constraints=LinearConstraint(
            incidence, np.concatenate([rows_free, cols_lo]), np.concatenate([rows_free, cols_hi])
        ),
    )
    if not result.success:
        raise ReconstructionError(f"no integer table meets the constraints: {result.message}")
    added = np.bincount(cell, weights=np.rint(result.x), minlength=t.size)
    return lo + added.reshape(t.shape).astype(np.int64)


# -------------------------------------------------------------------------------- reconstruction


@dataclass(frozen=True)
class Reconstruction:
    """Rebuilt model x value counts, their residuals against every published figure, and the method.

    ``cells``: model, model_id, value, value_set, n_prompts, n_trials, n_deep (one row per model x
    value). ``residuals``: table, key, statistic, published, reconstructed, difference, precision,
    within_precision (null where the figure cannot be reconstructed), note.
    """

    cells: pl.DataFrame
    residuals: pl.DataFrame
    method: str

    def write(self, out_dir: Path) -> None:
        """Write ``cells.csv`` (an aggregated cell table for ``ingest``), ``residuals.csv``, ``method.md``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.cells.select("model_id", "value", "n_prompts", "n_trials", "n_deep").write_csv(
            out_dir / "cells.csv"
        )
        self.residuals.write_csv(out_dir / "residuals.csv")
        (out_dir / "method.md").write_text(self.method + "\n")


def _design_counts(value_trials: NDArray[np.int64], prompts_per_model: int) -> NDArray[np.int64]:
    """Prompts per value in the shared design: the integers summing to ``prompts_per_model``
    closest to the value's share of parsed trials (its expectation when parsing is value-independent)."""
    share = prompts_per_model * value_trials / value_trials.sum()
    floor, ceil = np.floor(share), np.ceil(share)
    one_row = closest_integer_table(
        share[None, :], 1.0, floor[None, :], ceil[None, :], [prompts_per_model], floor, ceil
    )
    return one_row[0]


def _trial_counts(
    model_trials: NDArray[np.int64],
    value_trials: NDArray[np.int64],
    design: NDArray[np.int64],
    prompts_per_model: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Parsed trials per model x value, and the raked (real-valued) table they round.

    A model that parsed every prompt has the design row itself. For the others the seed is
    design x parse rate (failures independent of value), raked to the remaining value margins and
    rounded to integers in [floor, ceil] with both margins exact (controlled rounding; Cox 1987).
    """
    complete = model_trials == prompts_per_model
    rest = value_trials - complete.sum() * design
    if np.any(rest < 0) or np.any(rest > (~complete).sum() * design):
        raise ReconstructionError(
            "value trial margins are incompatible with the reconstructed design counts "
            f"{design.tolist()} and the {int(complete.sum())} model(s) that parsed every prompt"
        )
    raked = np.tile(design.astype(float), (model_trials.size, 1))
    raked[~complete] = rake(
        np.outer(model_trials[~complete], design) / prompts_per_model, model_trials[~complete], rest
    )
    trials = np.tile(design, (model_trials.size, 1))
    trials[~complete] = closest_integer_table(
        raked[~complete],
        1.0,
        np.minimum(np.floor(raked[~complete]), design),
        np.minimum(np.ceil(raked[~complete]), design),
        model_trials[~complete],
        rest,
        rest,
    )
    return trials, raked


def _deep_counts(
    trials: NDArray[np.int64],
    heatmap: NDArray[np.float64],
    model_deep: NDArray[np.int64],
    value_bounds: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Deep-value choices per cell: closest to heatmap x trials (squared rate error weighted by trials)
    with exact model sums, value sums inside ``value_bounds`` and, where possible, every cell's rate
    inside its heatmap rounding interval."""
    soft_lo, soft_hi = rounding_count_bounds(heatmap, trials, decimals=2)
    lower = np.clip(np.floor((heatmap - SEARCH_HALF_WIDTH) * trials), 0, trials)
    upper = np.clip(np.ceil((heatmap + SEARCH_HALF_WIDTH) * trials), 0, trials)
    weight = np.divide(1.0, trials, out=np.zeros(trials.shape), where=trials > 0)
    return closest_integer_table(
        heatmap * trials,
        weight,
        np.minimum(lower, soft_lo),
        np.maximum(upper, soft_hi),
        model_deep,
        value_bounds[:, 0],
        value_bounds[:, 1],
        soft_lo,
        soft_hi,
    )


def reconstruct(agg: PublishedAggregates) -> Reconstruction:
    """Rebuild trials and deep-value choices per model x preferred value from the published aggregates."""
    models, values = agg.models, agg.values
    model_trials = models["n_trials_parsed"].to_numpy()
    value_trials = values["n_trials_parsed"].to_numpy()
    heatmap = (
        agg.heatmap.pivot(on="value", index="model", values="dvgr")
        .join(models.select(pl.col("short_name").alias("model")), on="model", how="right", maintain_order="right")
        .select(values["value"].to_list())
        .to_numpy()
    )
    design = _design_counts(value_trials, agg.overall.prompts_per_model)
    trials, raked = _trial_counts(model_trials, value_trials, design, agg.overall.prompts_per_model)
    value_bounds = np.array(
        [
            admissible_value_counts(r["n_trials_parsed"], r["dvgr"], r["ci95_low"], r["ci95_high"])
            for r in values.iter_rows(named=True)
        ]
    )
    deep = _deep_counts(trials, heatmap, models["n_chose_deep"].to_numpy(), value_bounds)

    n_models, n_values = trials.shape
    cells = pl.DataFrame(
        {
            "model": np.repeat(models["short_name"].to_numpy(), n_values),
            "model_id": np.repeat(models["model_id"].to_numpy(), n_values),
            "value": np.tile(values["value"].to_numpy(), n_models),
            "value_set": np.tile(values["value_set"].to_numpy(), n_models),
            "n_prompts": np.tile(design, n_models),
            "n_trials": trials.ravel(),
            "n_deep": deep.ravel(),
        },
        schema_overrides={c: pl.Int64 for c in ("n_prompts", "n_trials", "n_deep")},
    )
    residuals = residual_table(agg, cells)
    return Reconstruction(
        cells=cells,
        residuals=residuals,
        method=_method_text(agg, design, trials, raked, value_bounds, residuals),
    )


# ------------------------------------------------------------------------------------- residuals


def _rows(
    table: str,
    key: Sequence[str],
    statistic: str,
    published: Sequence[float | None],
    reconstructed: Sequence[float | None] | None,
    precision: str,
) -> pl.DataFrame:
    """Residual rows for one statistic; ``reconstructed=None`` marks figures the table cannot reach."""
    n = len(key)
    rec = [None] * n if reconstructed is None else list(reconstructed)
    frame = pl.DataFrame(
        {
            "table": [table] * n,
            "key": list(key),
            "statistic": [statistic] * n,
            "published": list(published),
            "reconstructed": rec,
        },
        schema_overrides={"published": pl.Float64, "reconstructed": pl.Float64},
    ).filter(pl.col("published").is_not_null())
    tol = PRECISIONS[precision] + _FLOAT_SLACK
    return frame.with_columns(
        difference=pl.col("reconstructed") - pl.col("published"),
        precision=pl.lit(precision),
        within_precision=(pl.col("reconstructed") - pl.col("published")).abs() <= tol,
        note=pl.lit(None if reconstructed is not None else NOT_CROSS_CLASSIFIED, dtype=pl.String),
    )


def _margins(cells: pl.DataFrame, by: str) -> pl.DataFrame:
    """Trials, deep choices, DVGR and Wilson interval of the reconstructed cells, by ``by``."""
    out = cells.group_by(by, maintain_order=True).agg(pl.sum("n_prompts", "n_trials", "n_deep"))
    low, high = wilson(out["n_deep"].to_numpy(), out["n_trials"].to_numpy())
    return out.with_columns(dvgr=pl.col("n_deep") / pl.col("n_trials"), ci95_low=low, ci95_high=high)


def residual_table(agg: PublishedAggregates, cells: pl.DataFrame) -> pl.DataFrame:
    """One row per published figure: published vs reconstructed value and whether it is within precision."""
    rates = ("dvgr", "ci95_low", "ci95_high")
    model = agg.models.join(_margins(cells, "model"), left_on="short_name", right_on="model", how="left")
    value = agg.values.join(_margins(cells, "value"), on="value", how="left", suffix="_rec")
    heat = agg.heatmap.join(
        cells.select("model", "value", rate=pl.col("n_deep") / pl.col("n_trials")),
        on=["model", "value"],
        how="left",
    ).with_columns(key=pl.format("{} / {}", "model", "value"))
    rate = dict(zip(model["short_name"], model["dvgr"], strict=True))
    pairs = agg.size_pairs.with_columns(key=pl.format("{} vs {}", "smaller", "larger"))
    n_trials, n_deep, n_prompts = (int(cells[c].sum()) for c in ("n_trials", "n_deep", "n_prompts"))
    o = agg.overall
    contexts = agg.contexts["context"]
    n_train = agg.n_train["n_training_examples"].cast(pl.String)
    parts = [
        _rows("model", model["short_name"], "n_trials", model["n_trials_parsed"], model["n_trials"], "exact"),
        _rows("model", model["short_name"], "n_deep", model["n_chose_deep"], model["n_deep"], "exact"),
        _rows("value", value["value"], "n_trials", value["n_trials_parsed"], value["n_trials"], "exact"),
        *(_rows("value", value["value"], s, value[s], value[f"{s}_rec"], "2dp") for s in rates),
        _rows("heatmap", heat["key"], "dvgr", heat["dvgr"], heat["rate"], "2dp"),
        _rows("overall", ["all"], "n_trials", [o.n_trials], [n_trials], "exact"),
        _rows("overall", ["all"], "n_deep", [o.n_deep], [n_deep], "exact"),
        _rows("overall", ["all"], "dvgr", [o.dvgr], [n_deep / n_trials], "4dp"),
        _rows("overall", ["all"], "parse_success_rate", [o.parse_success_rate], [n_trials / n_prompts], "2dp"),
        *(
            _rows("size_pairs", pairs["key"], f"dvgr_{s}", pairs[f"dvgr_{s}"], pairs[s].replace_strict(rate), "2dp")
            for s in ("smaller", "larger")
        ),
        _rows("context", contexts, "n_trials", agg.contexts["n_trials_parsed"], None, "exact"),
        _rows("context", contexts, "n_deep", agg.contexts["n_chose_deep_if_exact"], None, "exact"),
        *(_rows("context", contexts, s, agg.contexts[s], None, "2dp") for s in rates),
        *(_rows("n_train", n_train, s, agg.n_train[s], None, "2dp") for s in rates),
    ]
    return pl.concat(parts)


def summarise_residuals(residuals: pl.DataFrame) -> pl.DataFrame:
    """Per table and statistic: figures, how many are within precision, and the largest |difference|."""
    return residuals.group_by("table", "statistic", "precision", maintain_order=True).agg(
        n_figures=pl.len(),
        n_within=pl.col("within_precision").sum(),
        n_not_used=pl.col("within_precision").is_null().sum(),
        max_abs_difference=pl.col("difference").abs().max(),
    )


def _method_text(
    agg: PublishedAggregates,
    design: NDArray[np.int64],
    trials: NDArray[np.int64],
    raked: NDArray[np.float64],
    value_bounds: NDArray[np.int64],
    residuals: pl.DataFrame,
) -> str:
    """The method paragraph for the report, with the figures of this reconstruction."""
    heat = residuals.filter(pl.col("table") == "heatmap")
    outside = heat.filter(~pl.col("within_precision"))["key"].to_list()
    checked = residuals.filter(pl.col("within_precision").is_not_null())
    n_models, n_values = trials.shape
    complete = agg.models.filter(pl.col("n_trials_parsed") == agg.overall.prompts_per_model)["short_name"]
    widths = value_bounds[:, 1] - value_bounds[:, 0] + 1
    return (
        "**Reconstructed model x value counts.** The trial-level dumps are not public, so the "
        f"{n_models} x {n_values} table of parsed trials and deep-value choices per model and preferred value was "
        "rebuilt from the published aggregates. *Trials.* Every model was given the same "
        f"{agg.overall.prompts_per_model:,} prompts, so the prompts per value are one shared design vector; with "
        "parse failures independent of the value its expectation is the value's share of all parsed trials, "
        f"rounded to integers summing to {agg.overall.prompts_per_model:,} (range {design.min()}-{design.max()}). "
        f"Models that parsed every prompt ({', '.join(complete) or 'none'}) have exactly that row; the other rows "
        "were seeded with design x the model's parse rate, raked (iterative proportional fitting) to the exact "
        "per-model and per-value trial counts, and rounded by controlled rounding (each cell to the floor or ceiling "
        "of its raked value, both margins exact, squared rounding error minimised; largest |rounded - raked| = "
        f"{np.abs(trials - raked).max():.2f}). *Deep-value choices.* For each value the published DVGR and both "
        "Wilson 95% limits (2 decimals) bound the value's deep-value count to an interval "
        f"({widths.min()}-{widths.max()} admissible counts). The cell counts are the integers closest to heatmap "
        "rate x trials (squared rate error weighted by the cell's trials) subject to the exact per-model counts, the "
        "per-value intervals and, lexicographically first, every cell's rate rounding to its heatmap entry; this is "
        "an exact convex integer program (unit increments, `scipy.optimize.milp`/HiGHS; deterministic). "
        f"Result: {heat.height - len(outside)} of {heat.height} heatmap cells within rounding"
        f"{' (outside: ' + ', '.join(outside) + ')' if outside else ''}; "
        f"{int(checked['within_precision'].sum())} of {checked.height} checkable published figures reproduced within "
        "their precision. Context and number-of-examples margins are not cross-classified by model or value and "
        "were not used. The reconstruction is one table consistent with every published figure, not the unique "
        "one: analyses of it inherit the rounding of the published rates."
    )


# ----------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dvbstats.paper2025.reconstruct --out DIR``: write the reconstruction and print the residual summary."""
    parser = argparse.ArgumentParser(prog="python -m dvbstats.paper2025.reconstruct", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="folder of the published CSVs")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    result = reconstruct(published_aggregates(args.root))
    result.write(args.out)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200):
        print(summarise_residuals(result.residuals))


if __name__ == "__main__":
    main()
