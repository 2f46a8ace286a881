"""Text columns read from input files, tidied and typed: whitespace around ids and codes removed, levels that
differ only by case or spacing warned about (naming the rows), integers and numbers recognised in text; each
in streaming passes over the columns it needs.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import polars as pl

from dvbstats.input.files import Frame, IngestWarning, clip, level_key

_SHOW_ROWS = 5  # rows named in a warning


def first_copy(keys: list[str]) -> pl.Expr:
    """``file:row`` of the first row sharing ``keys`` (column ``_first``)."""
    return pl.format("{}:{}", "source_file", "source_row").first().over(keys).alias("_first")


def integer(text: pl.Expr) -> pl.Expr:
    """Integer value of text such as ``4`` or ``4.0`` (null when not an integer, or beyond +-2^53,
    where floats stop being exact and 64-bit casts would overflow)."""
    number = text.str.strip_chars().cast(pl.Float64, strict=False)
    exact = number.is_finite() & (number == number.round()) & (number.abs() <= 2.0**53)
    return pl.when(exact).then(number).cast(pl.Int64)


def distinct(df: Frame, column: str) -> pl.Series:
    """The distinct non-null texts of a column (one streaming pass over that column)."""
    return df.lazy().select(pl.col(column).drop_nulls().unique()).collect(engine="streaming").to_series()


def _per_text(df: Frame, column: str, function: Callable[[pl.Expr], pl.Expr]) -> tuple[pl.Series, pl.Series]:
    """(distinct non-null texts of a column, ``function`` of each): computed once per distinct text."""
    texts = distinct(df, column)
    return texts, texts.to_frame().select(function(pl.col(column))).to_series()


def integer_per_text(df: Frame, column: str) -> pl.Expr:
    """:func:`integer` of a column with few distinct texts, computed once per distinct text."""
    distinct, integers = _per_text(df, column, integer)
    return pl.col(column).replace_strict(distinct, integers, default=None, return_dtype=pl.Int64)


def texts_where(df: Frame, where: dict[str, pl.Expr]) -> dict[str, pl.Series]:
    """Per column, its distinct texts where the condition holds, in order of first appearance
    (one streaming pass for all columns)."""
    found = df.lazy().select(
        pl.col(c).filter(condition).unique(maintain_order=True).implode() for c, condition in where.items()
    ).collect(engine="streaming")
    return {c: found.get_column(c).explode().drop_nulls() for c in where}


def _rows_named(df: pl.LazyFrame, where: pl.Expr) -> list[str]:
    """``file: rows 3, 8 (and 12 more)`` per file for the rows where ``where`` holds (files in
    row-index ``_i`` order)."""
    named = (
        df.filter(where).group_by("source_file")
        .agg(pl.col("source_row").sort().head(_SHOW_ROWS), pl.len(), pl.col("_i").min())
        .sort("_i").collect(engine="streaming")
    )
    return [
        f"{path}: row(s) {', '.join(map(str, rows))}"
        + (f" (and {n - _SHOW_ROWS} more)" if n > _SHOW_ROWS else "")
        for path, rows, n, _ in named.iter_rows()
    ]


def tidy_whitespace(df: pl.LazyFrame, ids: Sequence[str], codes: Sequence[str]) -> pl.LazyFrame:
    """Remove whitespace around ``ids`` and ``codes`` and collapse runs of it inside ``codes``.

    The format gives such whitespace no meaning, but left alone ``"finance "`` or a model id with
    a trailing space would become a level of its own. Warns naming the rows changed.
    """
    def strip(expr: pl.Expr) -> pl.Expr:
        return expr.str.strip_chars()

    def collapse(expr: pl.Expr) -> pl.Expr:
        return expr.str.strip_chars().str.replace_all(r"\s+", " ")

    # What the tidying would change, found by a cheap match; the tidying then runs on those texts only.
    padded, loose = r"^\s|\s$", r"^\s|\s$|\s\s|[^\S ]"
    tidy = {c: strip for c in ids} | {c: collapse for c in codes}
    suspects = texts_where(df, {c: pl.col(c).str.contains(padded if c in ids else loose) for c in tidy})
    changes: dict[str, tuple[pl.Series, pl.Series]] = {}
    for column, before in suspects.items():
        after = before.to_frame().select(tidy[column](pl.col(column))).to_series()
        if (before != after).any():
            changes[column] = (before.filter(before != after), after.filter(before != after))
    if not changes:
        return df
    where = pl.any_horizontal(pl.col(c).is_in(before.implode()) for c, (before, _) in changes.items())
    example = next(iter(changes.values()))
    warnings.warn(
        f"whitespace removed around (or collapsed inside) the text of {', '.join(changes)}, e.g. "
        f"{clip(example[0][0])!r} -> {clip(example[1][0])!r}, in {'; '.join(_rows_named(df, where))}",
        IngestWarning,
        stacklevel=3,
    )
    return df.with_columns(
        pl.col(c).replace(before, after) for c, (before, after) in changes.items()
    )


def warn_case_variants(df: pl.LazyFrame, groups: dict[str, tuple[Sequence[str], Iterable[str]]]) -> None:
    """Warn, naming rows, where levels differ from a known or more frequent one only by case or spacing.

    ``groups`` maps a name to (columns sharing one set of levels, levels known in advance). The
    levels are kept apart (the data may mean them apart); the warning lets the user decide.
    """
    for name, (columns, known) in groups.items():
        counts: Counter[str] = Counter()
        for column in columns:
            counts.update(dict(df.group_by(column).len().drop_nulls().collect(engine="streaming").iter_rows()))
        known = set(known)
        by_key: dict[str, list[str]] = {}
        for level in [*counts, *(k for k in known if k not in counts)]:
            by_key.setdefault(level_key(level), []).append(level)
        for levels in (ls for ls in by_key.values() if len(ls) > 1):
            reference = max(levels, key=lambda level: (level in known, counts[level], level))
            for odd in (level for level in levels if level != reference and counts[level]):
                where = pl.any_horizontal(pl.col(c) == odd for c in columns)
                warnings.warn(
                    f"{name} {clip(odd)!r} differs from {'the known ' if reference in known else ''}"
                    f"{clip(reference)!r} only "
                    f"by case or spacing; kept as a separate level ({counts[odd]} row(s): "
                    f"{'; '.join(_rows_named(df, where))}). Correct the input if they are the same {name}",
                    IngestWarning,
                    stacklevel=3,
                )


def infer(text: pl.Series) -> pl.Series:
    """A text column as integers or numbers when every non-empty entry is one, else as text."""
    return text.to_frame().select(as_inferred(text.to_frame(), [text.name])).to_series()


def as_inferred(df: Frame, columns: Sequence[str]) -> list[pl.Expr]:
    """Expressions turning text ``columns`` into integers or numbers where every non-empty entry of
    the column is one (decided in one streaming pass), leaving the others text."""
    if not columns:
        return []
    numeric = (pl.Int64, pl.Float64)

    def parses(c: str, dtype: pl.DataType) -> pl.Expr:
        cast = pl.col(c).str.strip_chars().cast(dtype, strict=False)
        return (cast.null_count() == pl.col(c).null_count()) & (pl.col(c).null_count() < pl.len())

    found = df.lazy().select(
        parses(c, dtype).alias(f"{c}\0{k}") for c in columns for k, dtype in enumerate(numeric)
    ).collect(engine="streaming").row(0)
    flags = iter(found)
    exprs = []
    for c in columns:
        fits = [next(flags) for _ in numeric]
        dtype = next((d for d, ok in zip(numeric, fits) if ok), None)
        exprs.append(pl.col(c).str.strip_chars().cast(dtype, strict=False) if dtype else pl.col(c))
    return exprs
