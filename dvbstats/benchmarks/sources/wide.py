"""Wide per-item correctness matrices (CSV or Parquet) as binary judgments.

The matrices IRT and leaderboard papers publish: one row per model and one column per item
(``wide="model"``), or the transpose (``wide="item"``); the first column holds the row labels,
the header the column labels. Cells are 0/1, -1/+1, true/false (``1.0``-style numbers too); a
blank cell is a judgment that was not made (unparsed). A file coded -1/+1 that also holds 0 is
refused: 0 could mean incorrect or missing.

A model label that carries more than the model (``Qwen_Qwen3_8B_zero_shot``) is split by
``label_pattern``, a regular expression matched against the whole label, whose named group
``model`` is the model and whose other named groups become design columns
(``(?P<model>.+)_(?P<condition>zero_shot|one_shot)``). One row per cell: the item is the item
label as written.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from dvbstats.benchmarks.sources.records import LogFormat, Options, Records, clip, label_groups, source
from dvbstats.input.files import IngestError, IngestWarning

_ONE = ("1", "+1", "1.0", "+1.0", "true", "True", "TRUE")
_ZERO = ("0", "0.0", "false", "False", "FALSE")
_MINUS = ("-1", "-1.0")
_SHOW = 5  # labels named in a warning


def claims(path: Path) -> bool:
    """A CSV or Parquet file (wide matrices are read only when asked for)."""
    return path.suffix.lower() in (".csv", ".parquet")


def companion(path: Path) -> bool:
    return False


def _text_table(path: Path) -> pl.DataFrame:
    """Every cell of the file as text (null when blank), the header checked for repeated labels."""
    try:
        if path.suffix.lower() == ".parquet":
            table = pl.read_parquet(path)
            header = table.columns
            table = table.with_columns(pl.all().cast(pl.String))
        else:
            with path.open(newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), [])
            table = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except (OSError, UnicodeDecodeError, pl.exceptions.PolarsError, csv.Error) as exc:
        raise IngestError(f"{path}: cannot be read as a {path.suffix.lstrip('.')} table: {clip(exc)}") from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise IngestError(f"{path}: the header repeats the column label(s) {', '.join(map(repr, repeated[:_SHOW]))}")
    if table.width < 2 or table.height == 0:
        raise IngestError(f"{path}: a wide matrix needs a label column and at least one data column and row")
    return table


def _split_labels(path: Path, labels: pl.Series, pattern: str | None) -> pl.DataFrame:
    """``_label`` -> ``model_id`` and the pattern's other groups, for every distinct model label."""
    distinct = labels.unique(maintain_order=True)
    if pattern is None:
        return pl.DataFrame({"_label": distinct, "model_id": distinct})
    groups = label_groups(pattern)
    compiled = re.compile(pattern)
    parts = []
    for label in distinct:
        match = compiled.fullmatch(label)
        if match is None:
            raise IngestError(f"{path}: model label {clip(label)!r} does not match the label pattern {pattern!r}")
        missing = [g for g in groups if not match[g]]
        if missing:
            raise IngestError(f"{path}: model label {clip(label)!r}: the group(s) {', '.join(missing)} of the label "
                              "pattern matched nothing")
        parts.append([label, *(match[g] for g in groups)])
    return pl.DataFrame(parts, schema=["_label", *("model_id" if g == "model" else g for g in groups)],
                        orient="row")


def _warn_unbalanced(labels: pl.DataFrame, design: Sequence[str]) -> None:
    """Name models without judgments under every level of a label's design column, and model ids
    that differ only by letter case (kept apart)."""
    for column in design:
        levels = labels[column].n_unique()
        short = labels.group_by("model_id").agg(pl.col(column).unique().sort()).filter(pl.col(column).list.len() < levels).sort("model_id")
        if short.height:
            named = [f"{r['model_id']} (only {', '.join(r[column])})" for r in short.head(_SHOW).iter_rows(named=True)]
            more = f" and {short.height - _SHOW} more" if short.height > _SHOW else ""
            warnings.warn(IngestWarning(f"{short.height} model(s) have judgments under some levels of {column} "
                                        f"only: {'; '.join(named)}{more}"), stacklevel=3)
    ids = labels["model_id"].unique()
    folded = ids.to_frame().group_by(pl.col("model_id").str.to_lowercase().alias("_key")).agg("model_id")
    alike = folded.filter(pl.col("model_id").list.len() > 1)
    if alike.height:
        pairs = ["/".join(sorted(r)) for r in alike["model_id"].head(_SHOW)]
        warnings.warn(IngestWarning(f"model ids that differ only by letter case are kept as different models: "
                                    f"{'; '.join(pairs)}"), stacklevel=3)


def read(files: Sequence[Path], options: Options) -> Records:
    """One row per cell; rows are models (``wide="model"``) or items (``wide="item"``)."""
    if options.wide is None:
        raise ValueError("a wide matrix needs wide='model' (rows are models) or wide='item' (rows are items)")
    design = [g for g in label_groups(options.label_pattern) if g != "model"] if options.label_pattern else []
    frames, sources = [], []
    for path in files:
        table = _text_table(path)
        label = table.columns[0]
        cells = (table.with_row_index("source_row", offset=1)
                 .with_columns(pl.col("source_row").cast(pl.Int64), pl.col(label).str.strip_chars().alias("_row"))
                 .drop(label)
                 .unpivot(index=["source_row", "_row"], variable_name="_column", value_name="_value"))
        empty = cells.filter(pl.col("_row").is_null() | (pl.col("_row") == ""))
        if empty.height:
            raise IngestError(f"{path}: row {empty['source_row'][0]}: empty row label")
        value = pl.col("_value").str.strip_chars()
        bad = cells.filter(value.is_not_null() & (value != "") & ~value.is_in(_ONE + _ZERO + _MINUS))
        if bad.height:
            first = bad.row(0, named=True)
            more = f" ({bad.height - 1} more cell(s) like this)" if bad.height > 1 else ""
            raise IngestError(f"{path}: row {first['source_row']} ({clip(first['_row'])!r}), column "
                              f"{clip(first['_column'])!r}: {clip(first['_value'])!r} is not 0/1, -1/+1, true/false "
                              f"or blank{more}")
        if cells.select(value.is_in(_MINUS).any() & value.is_in(_ZERO).any()).item():
            raise IngestError(f"{path}: cells hold -1 and 0: is 0 incorrect (0/1 coding) or missing (-1/+1 coding)? "
                              "Recode it (blank for missing)")
        model, item = ("_row", "_column") if options.wide == "model" else ("_column", "_row")
        labels = _split_labels(path, cells[model].unique(maintain_order=True), options.label_pattern)
        frames.append(cells.rename({model: "_label", item: "item"}).join(labels, on="_label", how="left", maintain_order="left")
                      .select(pl.lit(str(path)).alias("source_file"), "source_row", "model_id", "item", *design,
                              pl.when(value.is_in(_ONE)).then(1).when(value.is_null() | (value == "")).then(None)
                              .otherwise(0).cast(pl.Int8).alias("outcome"),
                              pl.when(value.is_null() | (value == "")).then(pl.lit("blank cell")).alias("reason")))
        sources.append(source(path, f"wide-{path.suffix.lower().lstrip('.')}", cells.height))
    data = pl.concat(frames)
    _warn_unbalanced(data.select("model_id", *design).unique(), design)
    return Records(data, tuple(sources), tuple(design))


WIDE = LogFormat(
    name="wide",
    title="wide correctness matrix",
    claims=claims,
    companion=companion,
    read=read,
    options=frozenset({"wide", "label_pattern"}),
    detected=False,
)
