"""Formula terms → numeric design-matrix columns, as R's ``model.matrix`` codes them.

* A numeric column enters as it is; ``log``, ``log2`` and ``scale`` (trial-weighted mean and SD)
  transform it first.
* A string, boolean or ``C()`` column is a factor. In a term whose margin (the term without the
  factor; for a main effect, the intercept) is in the model, it is coded by contrasts: treatment
  (an indicator per level other than the reference, first level by default) or sum (level ``j``
  +1, last level -1). Otherwise it is coded by indicators for every level (``0 + f`` gives one
  column per level), which is R's rule.
* An interaction's columns are the products of its components' columns.

Every error names the variable and says what is wrong; nothing here knows about PyMC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from dvbstats.model.formula import FixedTerm, Variable


class DesignError(ValueError):
    """A formula the data cannot support (a missing level, a constant column, ...)."""


@dataclass(frozen=True)
class Factor:
    levels: tuple[str, ...]
    codes: np.ndarray  # (n_cells,) position of each cell's level


def natural(level: str) -> tuple:
    """Sort numeric-looking levels by number (``4 < 20 < 40``), others alphabetically."""
    try:
        return (0, float(level), "")
    except ValueError:
        return (1, 0.0, level)


def factor(column: pl.Series) -> Factor:
    """Levels (natural order) and codes of a column read as a factor."""
    if column.null_count():
        raise DesignError(f"variable {column.name!r} is missing in {column.null_count()} of {len(column)} design cells")
    text = column.cast(pl.String)
    levels = tuple(sorted(text.unique().to_list(), key=natural))
    codes = text.replace_strict(list(levels), list(range(len(levels))), return_dtype=pl.Int64)  # vectorised:
    return Factor(levels, codes.to_numpy())  # a dict per cell took 35 s at 10 M cells (benchmarks/bench_big.py)


def is_factor(v: Variable, dtype: pl.DataType) -> bool:
    if v.factor:
        return True
    if v.transform and not dtype.is_numeric():
        raise DesignError(f"{v.label}: {v.name!r} is not numeric (it is {dtype})")
    if v.transform is None and (dtype in (pl.String, pl.Boolean, pl.Categorical) or isinstance(dtype, pl.Enum)):
        return True
    if dtype.is_numeric():
        return False
    raise DesignError(f"variable {v.name!r} has type {dtype}, which is neither numeric nor a factor")


def evaluate(v: Variable, df: pl.DataFrame, weights: np.ndarray) -> np.ndarray | Factor:
    """A variable's values on the cells: a numeric vector, or a :class:`Factor`."""
    column = df[v.name]
    if column.null_count():
        raise DesignError(f"variable {v.name!r} is missing in {column.null_count()} of {len(column)} design cells")
    if is_factor(v, column.dtype):
        f = factor(column)
        if len(f.levels) < 2:
            raise DesignError(f"factor {v.label} has a single level ({f.levels[0]!r}) in the data: "
                              "there is no contrast to estimate; drop it from the formula")
        if v.ref is not None and v.ref not in f.levels:
            raise DesignError(f"{v.label}: {v.ref!r} is not a level of {v.name!r} "
                              f"(levels: {', '.join(f.levels)})")
        return f
    x = column.cast(pl.Float64).to_numpy()
    if v.transform in ("log", "log2"):
        if (x <= 0).any():
            raise DesignError(f"{v.label}: {v.name!r} has values <= 0 (smallest {x.min():g}); the log needs positive values")
        return np.log(x) if v.transform == "log" else np.log2(x)
    if v.transform == "scale":
        mean = weights @ x / weights.sum()
        sd = np.sqrt(weights @ (x - mean) ** 2 / weights.sum())
        if sd == 0:
            raise DesignError(f"{v.label}: {v.name!r} takes one value over the trials; it cannot be scaled")
        return (x - mean) / sd
    return x


def _factor_columns(v: Variable, f: Factor, contrasts: bool) -> list[tuple[str, np.ndarray]]:
    eye = np.eye(len(f.levels))[f.codes]
    if not contrasts:
        return [(f"{v.name}[{lv}]", eye[:, i]) for i, lv in enumerate(f.levels)]
    if v.coding == "sum":
        return [(f"{v.name}[S.{lv}]", eye[:, i] - eye[:, -1]) for i, lv in enumerate(f.levels[:-1])]
    ref = f.levels.index(v.ref) if v.ref is not None else 0
    return [(f"{v.name}[{lv}]", eye[:, i]) for i, lv in enumerate(f.levels) if i != ref]


def model_matrix(
    terms: Sequence[FixedTerm], intercept: bool, df: pl.DataFrame, weights: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Coefficient labels and the (n_cells, n_columns) matrix of ``terms`` (no intercept column)."""
    present = {frozenset(t) for t in terms}
    # R: without an intercept, the first factor main effect is coded by indicators (it takes the
    # intercept's place) and every later one by contrasts.
    empty_margin = intercept
    cache: dict[Variable, np.ndarray | Factor] = {}
    labels: list[str] = []
    columns: list[np.ndarray] = []
    for term in terms:
        parts: list[tuple[str, np.ndarray]] = [("", np.ones(df.height))]
        for v in term:
            if v not in cache:
                cache[v] = evaluate(v, df, weights)
            value = cache[v]
            if isinstance(value, Factor):
                margin = frozenset(term) - {v}
                contrasts = (empty_margin and not margin) or margin in present
                coded = _factor_columns(v, value, contrasts)
                empty_margin = empty_margin or not margin
            else:
                coded = [(v.label, value)]
            parts = [(f"{a}:{b}" if a else b, x * y) for a, x in parts for b, y in coded]
        for label, x in parts:
            labels.append(label)
            columns.append(x)
    repeated = sorted({lb for lb in labels if labels.count(lb) > 1})
    if repeated:
        raise DesignError(f"the formula codes the column {repeated[0]!r} twice (e.g. both x and C(x))")
    matrix = np.column_stack(columns) if columns else np.zeros((df.height, 0))
    return labels, matrix


def check_identified(labels: Sequence[str], X: np.ndarray, intercept: bool, used: np.ndarray) -> None:
    """Refuse columns the data cannot tell apart: constant, or a combination of the others."""
    Xu = X[used]
    for label, x in zip(labels, Xu.T):
        if intercept and np.ptp(x) == 0:
            raise DesignError(f"the fixed-effect column {label!r} is constant over the trials, so it cannot be told "
                              "apart from the intercept; drop it or check the data")
        if not intercept and not x.any():
            raise DesignError(f"the fixed-effect column {label!r} is zero in every cell with trials")
    full = np.column_stack([np.ones(len(Xu)), Xu]) if intercept else Xu
    if full.shape[1] and np.linalg.matrix_rank(full) < full.shape[1]:
        raise DesignError(f"the fixed-effect columns ({', '.join(labels)}) are collinear on the cells with trials: "
                          "some combination of levels is never observed or two terms say the same thing")
