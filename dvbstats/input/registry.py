"""The model table: model id -> short name, developer, family, size rank, parameter count.

Harness dumps identify a model by the id sent to the API (``gpt-4o-2024-08-06``,
``replicate/meta/meta-llama-3-8b-instruct``); analyses and reports use short names and need the
family and within-family size order for the scaling comparisons. The published benchmark's 9 models
ship with the package (:meth:`ModelTable.default`); other runs can supply their own CSV.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import polars as pl

#: Columns and dtypes of a model table.
MODEL_SCHEMA: dict[str, pl.DataType] = {
    "model_id": pl.String(),
    "short_name": pl.String(),
    "developer": pl.String(),
    "family": pl.String(),
    "size_rank_in_family": pl.Int32(),  # 1 = smallest within the family; null when unknown
    "params_b": pl.Float64(),  # parameters in billions; null when not public
}

#: Unknown model ids named in the warning (a leaderboard matrix may have thousands).
IDS_SHOWN = 20
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


class UnknownModelWarning(UserWarning):
    """Model ids missing from the model table; they get defaults derived from the id."""


class ModelTableError(ValueError):
    """An invalid model table; the message names the source, the row and the problem."""


def short_name_from_id(model_id: str) -> str:
    """Default short name: the last path segment of the id without a trailing release date.

    ``replicate/meta/meta-llama-3-8b-instruct`` -> ``meta-llama-3-8b-instruct``;
    ``gpt-4o-2024-08-06`` -> ``gpt-4o``; ``claude-3-haiku-20240307`` -> ``claude-3-haiku``.
    """
    return _DATE_SUFFIX.sub("", model_id.rsplit("/", 1)[-1])


def _first_duplicate(df: pl.DataFrame, keys: list[str]) -> tuple[int, int] | None:
    """1-based (first, repeat) rows of the earliest repeated ``keys`` (nulls never match), or None."""
    repeats = (
        df.with_row_index("_row", offset=1)
        .drop_nulls(keys)
        .with_columns(pl.col("_row").first().over(keys).alias("_first"))
        .filter(~pl.struct(keys).is_first_distinct())
    )
    return (repeats["_first"][0], repeats["_row"][0]) if repeats.height else None


def _validate(df: pl.DataFrame, source: str) -> None:
    """Check a typed model table: required ids and names, unique ids, names and size ranks."""
    for column in ("model_id", "short_name", "family"):
        empty = df.with_row_index("_row", offset=1).filter(pl.col(column).is_null())
        if empty.height:
            raise ModelTableError(f"{source}: row {empty['_row'][0]}: empty {column}")
    ranks = df.with_row_index("_row", offset=1).filter(pl.col("size_rank_in_family") < 1)
    if ranks.height:
        raise ModelTableError(
            f"{source}: row {ranks['_row'][0]}: size_rank_in_family must be >= 1 (1 = smallest)"
        )
    for keys, what in (
        (["model_id"], "model_id"),
        (["short_name"], "short_name"),
        (["family", "size_rank_in_family"], "size_rank_in_family within a family"),
    ):
        dup = _first_duplicate(df, keys)
        if dup:
            value = "/".join(str(df[k][dup[0] - 1]) for k in keys)
            raise ModelTableError(
                f"{source}: row {dup[1]}: duplicate {what} {value!r} (first at row {dup[0]})"
            )


def _cast_column(df: pl.DataFrame, column: str, dtype: pl.DataType, source: str) -> pl.Expr:
    """Cast a text column, raising with the first row whose text is not a ``dtype``."""
    parsed = pl.col(column).cast(dtype, strict=False)
    bad = df.with_row_index("_row", offset=1).filter(pl.col(column).is_not_null() & parsed.is_null())
    if bad.height:
        kind = "an integer" if dtype.is_integer() else "a number"
        raise ModelTableError(
            f"{source}: row {bad['_row'][0]}: {column} must be {kind}, got {bad[column][0]!r}"
        )
    return parsed


@dataclass(frozen=True)
class ModelTable:
    """Model metadata, one row per model id (columns :data:`MODEL_SCHEMA`)."""

    data: pl.DataFrame

    def __post_init__(self) -> None:
        missing = [c for c in MODEL_SCHEMA if c not in self.data.columns]
        if missing:
            raise ModelTableError(f"model table: missing column(s) {', '.join(missing)}")
        try:
            typed = self.data.select([pl.col(c).cast(t) for c, t in MODEL_SCHEMA.items()])
        except pl.exceptions.PolarsError as exc:
            raise ModelTableError(f"model table: wrong column type: {exc}") from None
        _validate(typed, "model table")
        object.__setattr__(self, "data", typed)

    @classmethod
    def default(cls) -> ModelTable:
        """The 9 models of the published DVB run: the model columns of the published
        ``dvbstats/paper2025/data/dvb2025_models.csv`` (its count columns are not read)."""
        resource = files("dvbstats.paper2025") / "data" / "dvb2025_models.csv"
        return cls._from_csv(io.BytesIO(resource.read_bytes()), "dvb2025_models.csv")

    @classmethod
    def read(cls, path: str | Path) -> ModelTable:
        """Read a user model table (CSV with the :data:`MODEL_SCHEMA` columns; extras ignored).

        Empty ``developer``, ``size_rank_in_family`` and ``params_b`` mean unknown; an empty
        ``family`` makes the model its own family.
        """
        return cls._from_csv(path, str(path))

    @classmethod
    def _from_csv(cls, source: str | Path | io.BytesIO, name: str) -> ModelTable:
        try:
            text = pl.read_csv(source, infer_schema=False)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise ModelTableError(f"{name}: cannot read model table: {exc}") from None
        missing = [c for c in MODEL_SCHEMA if c not in text.columns]
        if missing:
            raise ModelTableError(
                f"{name}: missing column(s) {', '.join(missing)}; "
                f"a model table needs {', '.join(MODEL_SCHEMA)}"
            )
        text = text.with_columns(pl.col(c).str.strip_chars() for c in MODEL_SCHEMA)
        typed = text.select(
            "model_id",
            "short_name",
            "developer",
            pl.coalesce("family", "short_name").alias("family"),
            _cast_column(text, "size_rank_in_family", pl.Int32(), name),
            _cast_column(text, "params_b", pl.Float64(), name),
        )
        _validate(typed, name)
        return cls(typed)

    def resolve(self, model_ids: Iterable[str]) -> ModelTable:
        """Rows for exactly ``model_ids`` (first-appearance order), defaults for unknown ids.

        An id missing from the table gets the short name :func:`short_name_from_id`, is its own
        family, and has no developer, size rank or parameter count; one
        :class:`UnknownModelWarning` counts them and names the first :data:`IDS_SHOWN`. Raises :class:`ModelTableError` when two
        resolved models would share a short name.
        """
        ids = list(dict.fromkeys(model_ids))
        if any(i is None for i in ids):
            raise ModelTableError("model table: cannot resolve an empty model id")
        known = set(self.data.filter(pl.col("model_id").is_in(ids))["model_id"].to_list())
        unknown = [i for i in ids if i not in known]
        if unknown:
            warnings.warn(
                UnknownModelWarning(
                    f"{len(unknown)} model id(s) not in the model table, using defaults derived "
                    f"from the id (no family or size information): {', '.join(unknown[:IDS_SHOWN])}"
                    f"{f' and {len(unknown) - IDS_SHOWN} more' if len(unknown) > IDS_SHOWN else ''}. "
                    "Pass a ModelTable (ModelTable.read) to describe them."
                ),
                stacklevel=2,
            )
        names = [short_name_from_id(i) for i in unknown]
        defaults = pl.DataFrame(
            {
                "model_id": unknown,
                "short_name": names,
                "developer": [None] * len(unknown),
                "family": names,
                "size_rank_in_family": [None] * len(unknown),
                "params_b": [None] * len(unknown),
            },
            schema=MODEL_SCHEMA,
        )
        rows = pl.concat([self.data.filter(pl.col("model_id").is_in(ids)), defaults])
        order = pl.DataFrame({"model_id": ids}).with_row_index("_order")
        rows = rows.join(order, on="model_id").sort("_order").drop("_order")
        dup = _first_duplicate(rows, ["short_name"])
        if dup:
            first, second = (rows["model_id"][r - 1] for r in dup)
            raise ModelTableError(
                f"model ids {first!r} and {second!r} would both be called "
                f"{rows['short_name'][dup[0] - 1]!r}; give them distinct short names in a model table"
            )
        return ModelTable(rows)

    def families_with_sizes(self) -> list[str]:
        """Families with at least two models of known size rank (the ones scaling can compare)."""
        return (
            self.data.drop_nulls("size_rank_in_family")
            .group_by("family")
            .len()
            .filter(pl.col("len") >= 2)
            .sort("family")["family"]
            .to_list()
        )

    def adjacent_pairs(self, present: Sequence[str]) -> list[tuple[str, str]]:
        """(smaller, larger) short names of size-adjacent models within each family.

        Only models in ``present`` (short names) with a known size rank take part, so a family
        missing its middle model pairs its smallest and largest present ones. Names not in the
        table have no size rank and are not paired.
        """
        ranked = (
            self.data.filter(
                pl.col("short_name").is_in(list(present)) & pl.col("size_rank_in_family").is_not_null()
            )
            .sort("family", "size_rank_in_family")
            .with_columns(pl.col("short_name").shift(-1).over("family").alias("larger"))
            .drop_nulls("larger")
        )
        return list(zip(ranked["short_name"].to_list(), ranked["larger"].to_list()))
