"""Reading DVB harness dumps and aggregated cell tables into the canonical tables.

A harness dump has one row per test prompt (the DVB harness's result-dump format); :func:`read_dumps`
turns any number of them (CSV, JSON lines or Parquet) into a :class:`~dvbstats.input.trials.TrialTable` with
exactly :data:`dvbstats.input.schema.TRIAL_SCHEMA`: the ``context_correlation_pair`` parsed against the value
vocabulary, the outcome recoded from the answer, each row's status (used, unparsed, superseded, conflict) and
duplicate prompts reconciled. No row is dropped: a row out of the likelihood keeps a status and a reason.
:func:`read_cells` reads already aggregated binomial counts instead.

This module is the DVB parsing; what every reader shares lives beside it: finding, sniffing and reading files
and naming a bad row (:mod:`dvbstats.input.files`), tidying and typing text columns (:mod:`dvbstats.input.tidy`),
reconciling copies of a trial (:mod:`dvbstats.input.reconcile`) and the trial table itself
(:mod:`dvbstats.input.trials`). Their public names used with ingestion are importable from here too
(:data:`__all__`), as before the split.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from dvbstats.input import schema
from dvbstats.input.files import (FORMATS, IngestError, IngestWarning, InputFile, Source, check, clip, columns, expand,
                                  file_format, quoted, read_text, require, stage)
from dvbstats.input.manifest import sha256
from dvbstats.input.reconcile import ACTIONS, RECONCILIATION_SCHEMA, ConflictPolicy, check_conflict_policy, reconcile
from dvbstats.input.registry import ModelTable
from dvbstats.input.tidy import (as_inferred, distinct, first_copy, infer, integer, integer_per_text, texts_where,
                                 tidy_whitespace, warn_case_variants)
from dvbstats.input.trials import TrialFile, TrialTable, parquet_metadata, status_counts

__all__ = [
    "ACTIONS", "FORMATS", "RECONCILIATION_SCHEMA", "ConflictPolicy", "IngestError", "IngestWarning", "InputFile",
    "Source", "TrialFile", "TrialTable", "is_cell_table", "load", "pair_pattern", "parse_pairs", "read_cells",
    "read_dumps", "sources", "status_counts", "stream_dumps",
]

_TRUE = ("True", "true", "1")
_FALSE = ("False", "false", "0")


def _vocabulary(values: Iterable[str]) -> list[str]:
    """The distinct value names, checked."""
    if isinstance(values, str):
        raise TypeError("values must be a collection of value names, not one string")
    vocabulary = list(dict.fromkeys(values))
    if not vocabulary or not all(isinstance(v, str) and v for v in vocabulary):
        raise ValueError("values must be a non-empty collection of non-empty names")
    return vocabulary


def pair_pattern(values: Iterable[str]) -> str:
    """Anchored regex for ``<v_pref>_<f_pref>_vs_<v_less>_<f_less> - <context>``.

    Values come from the vocabulary (longest first, so ``self_improvement`` wins over ``self``),
    which is what lets values and features both contain underscores. A feature may not start or end
    with ``_`` (a doubled underscore is a typo, not a feature named ``_intuitive``); a single space
    around the ``_`` separators is tolerated.
    """
    vocabulary = sorted(_vocabulary(values), key=lambda v: (-len(v), v))
    alternation = "|".join(re.escape(v) for v in vocabulary)
    feature = r"[^_ ](?:.*?[^_ ])?"  # a name neither starting nor ending with '_' or a space
    return (
        rf"^(?P<value>{alternation})_ ?(?P<feature>{feature}) ?_vs_ ?"
        rf"(?P<value_less>{alternation})_ ?(?P<feature_less>{feature}) - (?P<context>.+)$"
    )


def _pair_problem(text: str, values: Sequence[str]) -> str:
    """Say which part of an unparseable pair text is wrong."""
    options, sep, context = text.partition(" - ")
    if not sep or not context:
        return "no ' - <context>' at the end"
    if "_vs_" not in options:
        return "no '_vs_' between the preferred and the less preferred option"
    for side in options.split("_vs_", 1):
        if not any(side.startswith(f"{v}_") and len(side) > len(v) + 1 for v in values):
            cased = [v for v in values if side.lower().startswith(f"{v.lower()}_")]
            hint = f" (values are case-sensitive: {cased[0]!r}?)" if cased else ""
            return f"{side!r} is not '<value>_<feature>' with a known value{hint}"
    if "__" in options or options.endswith("_"):
        return "a doubled underscore leaves a feature name starting or ending with '_'"
    return "it does not match '<value>_<feature>_vs_<value>_<feature> - <context>'"


def parse_pairs(pairs: pl.Series, values: Iterable[str]) -> pl.DataFrame:
    """Parse distinct pair texts into ``value, feature, value_less, feature_less, feature_dim, context``.

    Returns one row per distinct text with a ``context_correlation_pair`` key column; unparseable
    texts have null parts.
    """
    parts = ("value", "feature", "value_less", "feature_less", "context")
    feature, less = pl.col("feature"), pl.col("feature_less")
    return (
        pairs.unique().alias("context_correlation_pair").to_frame()
        .with_columns(
            pl.col("context_correlation_pair").str.extract_groups(pair_pattern(values)).alias("_p")
        )
        .with_columns(pl.col("_p").struct.field(*parts))
        .drop("_p")
        .with_columns(
            pl.when(feature <= less)
            .then(pl.concat_str(feature, pl.lit("/"), less))
            .otherwise(pl.concat_str(less, pl.lit("/"), feature))
            .alias("feature_dim")
        )
    )


#: Harness columns holding identifiers: whitespace around them is removed.
_ID_COLUMNS = ("prompt_id", "model", "test_id")
#: Harness columns holding codes or levels: whitespace around them removed, runs inside collapsed.
_CODE_COLUMNS = (
    "context_correlation_pair", "n_training_examples", "model_choice", "expected_deep_value_choice",
    "shallow_preference_choice", "generalized_deep_value", "success",
)
_CONTROL = r"[\x00-\x1f\x7f]"
_INT32_MAX = 2**31 - 1


def _code_trials(raw: pl.LazyFrame, vocabulary: list[str], models: ModelTable) -> pl.LazyFrame:
    """Validate harness rows and add the parsed design, short model name, status and outcome."""
    options = ", ".join(repr(o) for o in schema.OPTIONS)
    choice, expected = pl.col("model_choice"), pl.col("expected_deep_value_choice")
    n_train = integer_per_text(raw, "n_training_examples")
    verdict = integer_per_text(raw, "generalized_deep_value")
    pair = pl.col("context_correlation_pair")
    pairs = parse_pairs(distinct(raw, "context_correlation_pair"), vocabulary)
    bad_pairs = pairs.filter(pl.col("value").is_null())["context_correlation_pair"].to_list()

    def pair_problem(row: dict) -> str:
        text = row["context_correlation_pair"]
        return (
            f"cannot parse context_correlation_pair {clip(text)!r}: {_pair_problem(text, vocabulary)}. "
            f"Expected '<value>_<feature>_vs_<value>_<feature> - <context>' with values in "
            f"{sorted(vocabulary)}; pass values=... to extend the vocabulary"
        )

    check(
        raw,
        {
            "empty prompt_id": pl.col("prompt_id").is_null(),
            "empty model": pl.col("model").is_null(),
            "empty context_correlation_pair": pair.is_null(),
            **{
                f"{c} {{{c}!r}} contains a control character (such as NUL)": pl.col(c).is_in(texts.implode())
                for c, texts in texts_where(
                    raw, {c: pl.col(c).str.contains(_CONTROL) for c in (*_ID_COLUMNS, "context_correlation_pair")}
                ).items()
                if not texts.is_empty()
            },
            pair_problem: pair.is_in(bad_pairs),
            f"n_training_examples must be a positive integer up to {_INT32_MAX:,}, got {{n_training_examples!r}}": (
                n_train.is_null() | (n_train <= 0) | (n_train > _INT32_MAX)
            ),
            "model_choice must be empty or one of " + options + ", got {model_choice!r}": (
                choice.is_not_null() & ~choice.is_in(schema.OPTIONS)
            ),
            "expected_deep_value_choice must be one of " + options
            + ", got {expected_deep_value_choice!r}": ~expected.is_in(schema.OPTIONS).fill_null(False),
            "success must be True/False/true/false/1/0, got {success!r}": (
                ~pl.col("success").is_in(_TRUE + _FALSE).fill_null(False)
            ),
            "generalized_deep_value must be empty, 0 or 1, got {generalized_deep_value!r}": (
                pl.col("generalized_deep_value").is_not_null() & ~verdict.is_in([0, 1]).fill_null(False)
            ),
        },
    )

    in_order = raw.group_by("model").agg(pl.col("_i").min()).sort("_i").collect(engine="streaming")
    names = models.resolve(in_order["model"]).data
    used = (pl.col("success").is_in(_TRUE) & choice.is_in(schema.OPTIONS)).fill_null(False)
    key = pairs.get_column("context_correlation_pair")
    trials = (
        raw.with_columns(  # a lookup per part: a join would copy every column, raw_response included
            pl.col("context_correlation_pair").replace_strict(key, pairs.get_column(part), default=None).alias(part)
            for part in pairs.columns if part != "context_correlation_pair"
        )
        .with_columns(
            pl.col("model").alias("model_id"),
            pl.col("model").replace_strict(names["model_id"], names["short_name"]).alias("model"),
            n_train.cast(pl.Int32).alias("n_train"),
            pl.when(used).then(pl.lit("used")).otherwise(pl.lit("unparsed")).alias("status"),
            pl.when(~used).then(pl.coalesce("error", pl.lit("no parsed choice"))).alias("reason"),
            pl.when(used).then((choice == expected).cast(pl.Int8)).alias("chose_deep"),
        )
    )
    check(
        trials,
        {
            "generalized_deep_value is {generalized_deep_value} but model_choice {model_choice!r} vs "
            "expected_deep_value_choice {expected_deep_value_choice!r} gives {chose_deep}; "
            "the dump is internally inconsistent": (
                (pl.col("status") == "used") & (verdict != pl.col("chose_deep"))
            )
        },
    )
    return trials


def read_dumps(
    paths: Sequence[str | Path] | str | Path,
    *,
    values: Iterable[str] = schema.DVB_VALUES,
    models: ModelTable | None = None,
    on_conflict: ConflictPolicy = "error",
) -> TrialTable:
    """Read harness result dumps into one :class:`TrialTable`.

    ``paths``: files, directories (their .csv/.jsonl/.ndjson/.parquet files) or glob patterns, read
    in the order given; a file may hold several models. ``values``: the value vocabulary pair texts
    are parsed against (extend it for benchmarks with other values). ``models``: maps model ids to
    short names (default :meth:`ModelTable.default`; unknown ids get derived names and a warning).
    ``on_conflict``: what to do when copies of a prompt carry different parsed answers: raise
    (``error``), keep the earliest (``first``) or latest (``last``) copy by file order then row, or
    use none (``exclude``). Every input row is kept; see :data:`dvbstats.input.schema.STATUSES`.

    A directory's hive ``key=value`` sub-folders are read too, each key becoming a column. Columns
    beyond the harness's (say ``condition`` or ``run``) are kept after the trial columns, as numbers
    when every entry is one and as text otherwise, so a formula can use them.
    """
    _vocabulary(values)  # bad arguments before any file is touched
    check_conflict_policy(on_conflict)
    return _read_dump_files(expand(paths), values=values, models=models, on_conflict=on_conflict)


def _read_dump_files(
    files: Sequence[InputFile], *, values: Iterable[str], models: ModelTable | None, on_conflict: ConflictPolicy
) -> TrialTable:
    """:func:`read_dumps` of files already found."""
    with tempfile.TemporaryDirectory(prefix="dvbstats-ingest-") as folder:
        trials, sources, reconciliation = _trials_plan(files, Path(folder), values, models, on_conflict)
        return TrialTable(trials.collect(engine="streaming"), sources, reconciliation)


def _trials_plan(
    files: Sequence[InputFile], folder: Path, values: Iterable[str], models: ModelTable | None,
    on_conflict: ConflictPolicy,
) -> tuple[pl.LazyFrame, tuple[Source, ...], pl.DataFrame]:
    """Validate dump files and return the trial table as a lazy plan (over Parquet files staged in
    ``folder``, which must outlive it), the sources and the reconciliation log.

    Every check, warning and the reconciliation run here in streaming passes over the few columns
    each needs; the long text columns (``raw_response``) are only read when the plan runs.
    """
    check_conflict_policy(on_conflict)
    vocabulary = _vocabulary(values)
    models = models or ModelTable.default()
    with ThreadPoolExecutor(max_workers=1) as pool:  # hash while polars parses
        digests = [pool.submit(sha256, file.path) for file in files]
        staged = [stage(file, lambda present: _dump_columns(file.path, present), folder) for file in files]
        sources = tuple(
            Source(file.path, digest.result(), file.format, n_rows)
            for file, digest, (_, n_rows) in zip(files, digests, staged)
        )
    raw = pl.concat([frame for frame, _ in staged], how="diagonal").with_row_index("_i")  # all text here
    extras = [c for c in raw.collect_schema() if c not in ("_i", "source_file", "source_row", *schema.HARNESS_COLUMNS)]
    raw = tidy_whitespace(raw, _ID_COLUMNS, (*_CODE_COLUMNS, *extras))
    trials = _code_trials(raw, vocabulary, models)
    data, reconciliation = reconcile(trials, on_conflict)
    data = data.with_columns(as_inferred(data, extras))
    dtypes = data.collect_schema()
    warn_case_variants(
        data,
        {
            "model id": (["model_id"], models.data["model_id"]),
            "feature": (["feature", "feature_less"], ()),
            "context": (["context"], schema.DVB_CONTEXTS),
            **{c: ([c], ()) for c in extras if dtypes[c] == pl.String},
        },
    )
    return schema.conform(data, extras), sources, reconciliation


def stream_dumps(
    paths: Sequence[str | Path] | str | Path,
    out: str | Path | None = None,
    *,
    values: Iterable[str] = schema.DVB_VALUES,
    models: ModelTable | None = None,
    on_conflict: ConflictPolicy = "error",
) -> TrialFile:
    """:func:`read_dumps`, written straight to the Parquet file ``out`` (as :meth:`TrialTable.write`
    writes it) without holding the trial table in memory: for dumps larger than memory. Without
    ``out``, the file goes to a temporary folder deleted with the returned :class:`TrialFile`."""
    _vocabulary(values)
    check_conflict_policy(on_conflict)
    return _stream_dump_files(expand(paths), out, values=values, models=models, on_conflict=on_conflict)


def _stream_dump_files(
    files: Sequence[InputFile], out: str | Path | None, *, values: Iterable[str], models: ModelTable | None,
    on_conflict: ConflictPolicy,
) -> TrialFile:
    scratch = None if out else tempfile.TemporaryDirectory(prefix="dvbstats-trials-")
    path = Path(out or Path(scratch.name) / "trials.parquet")
    with tempfile.TemporaryDirectory(prefix="dvbstats-ingest-") as folder:
        trials, sources, reconciliation = _trials_plan(files, Path(folder), values, models, on_conflict)
        trials.sink_parquet(path, compression="zstd", metadata=parquet_metadata(sources, reconciliation), engine="streaming")
    return TrialFile(path, sources, reconciliation, scratch)


def _dump_columns(path: str, present: list[str]) -> list[str]:
    """The columns to read from a harness dump: the harness's, then any others the formula may use.

    ``traceback`` is dropped; a column named like one the trial table derives (``value``, ``status``,
    ...) is dropped with a warning. A cell table is refused with the cell table's own complaint.
    """
    if _looks_like_cells(present):
        _cell_columns(path, present)
        raise IngestError(f"{path}: an aggregated cell table (n_trials, n_deep), not a harness dump; "
                          "read it with read_cells() or load()")
    harness = require(path, present, schema.HARNESS_COLUMNS, "harness", known=schema.IGNORED_COLUMNS)
    others = [c for c in present if c not in harness and c not in schema.IGNORED_COLUMNS]
    taken = [c for c in others if c in schema.TRIAL_SCHEMA or c in schema.DERIVED]
    if taken:
        warnings.warn(
            f"{path}: column(s) {quoted(taken)} not kept: the trial table derives its own "
            "(rename them in the dump to use them)",
            IngestWarning,
            stacklevel=4,
        )
    return harness + [c for c in others if c not in taken]


def sources(paths: Sequence[str | Path] | str | Path) -> tuple[Source, ...]:
    """Every input file behind ``paths`` with its SHA-256, format and number of data rows."""
    scan = {"csv": pl.scan_csv, "jsonl": pl.scan_ndjson, "parquet": pl.scan_parquet}
    return tuple(
        Source(f.path, sha256(f.path), f.format, scan[f.format](f.path).select(pl.len()).collect().item())
        for f in expand(paths)
    )


def is_cell_table(path: str | Path | InputFile) -> bool:
    """Whether a file holds aggregated counts (``n_trials`` or ``n_deep``, no ``prompt_id``) rather
    than trials; a cell table lacking one count column is still a cell table (and is told so)."""
    file = path if isinstance(path, InputFile) else InputFile(str(path), file_format(Path(path)))
    return _looks_like_cells(columns(file))


def _looks_like_cells(columns: Sequence[str]) -> bool:
    return ("n_trials" in columns or "n_deep" in columns) and "prompt_id" not in columns


def _cell_columns(path: str, present: list[str]) -> list[str]:
    """Check a cell table's columns; return them all (the model id column first)."""
    ids = "model_id" if "model_id" in present else "model"
    return require(path, present, (ids, "n_trials", "n_deep"), "cell table") + [
        c for c in present if c not in (ids, "n_trials", "n_deep")
    ]


def _read_cell_files(files: Sequence[InputFile], models: ModelTable) -> pl.DataFrame:
    """Read, validate and concatenate cell tables that share their columns."""
    frames = []
    for file in files:
        frame = read_text(file, lambda present: _cell_columns(file.path, present))
        if frames and set(frame.columns) != set(frames[0].columns):
            raise IngestError(
                f"{file.path}: columns {sorted(frame.columns)} differ from those of "
                f"{files[0].path} {sorted(frames[0].columns)}"
            )
        frames.append(frame.select(frames[0].columns) if frames else frame)
    text = pl.concat(frames)
    id_column = text.columns[2]  # after source_file, source_row
    extra = ("model", "model_id", "source_file", "source_row", *schema.CELL_COUNTS)
    design = [c for c in text.columns if c not in extra]

    counts = {c: integer(pl.col(c)) for c in schema.CELL_COUNTS if c in text.columns}
    typed = {
        c: (integer(pl.col(c)) if dtype.is_integer() else pl.col(c)).cast(dtype, strict=False)
        for c in design
        if (dtype := schema.TRIAL_SCHEMA.get(c)) is not None
    }
    keys = [id_column, *design]
    checks = {f"empty {c}": pl.col(c).is_null() for c in keys}
    checks |= {
        f"{c} must be a non-negative integer, got {{{c}!r}}": e.is_null() | (e < 0) for c, e in counts.items()
    }
    checks |= {
        f"{c} must be an integer, got {{{c}!r}}": e.is_null()
        for c, e in typed.items()
        if schema.TRIAL_SCHEMA[c].is_integer()
    }
    counts.setdefault("n_prompts", counts["n_trials"])
    checks["counts must satisfy n_deep <= n_trials <= n_prompts, got n_deep={n_deep}, n_trials={n_trials}"
           + (", n_prompts={n_prompts}" if "n_prompts" in text.columns else "")] = (
        (counts["n_deep"] > counts["n_trials"]) | (counts["n_trials"] > counts["n_prompts"])
    )
    checks["duplicate design row (first at {_first})"] = ~pl.struct(keys).is_first_distinct()
    check(text.with_columns(first_copy(keys)), checks)

    # An id may also be one of the table's short names (as in a cell table dvbstats wrote).
    table = models.data
    alias = dict(zip(table["short_name"], table["model_id"]))
    ids = text[id_column].replace({k: v for k, v in alias.items() if k not in table["model_id"]})
    names = models.resolve(ids.unique(maintain_order=True)).data.select(
        "model_id", pl.col("short_name").alias("_short")
    )
    cells = text.with_columns(ids.alias("model_id")).join(names, on="model_id", maintain_order="left")
    if id_column == "model_id" and "model" in cells.columns:
        check(
            cells,
            {"model {model!r} is not the model table's short name {_short!r} of {model_id!r}": (
                pl.col("model") != pl.col("_short")
            )},
        )
    return cells.select(
        pl.col("_short").alias("model"),
        "model_id",
        *[typed[c].alias(c) if c in typed else infer(cells[c]) for c in design],
        *[counts[c].alias(c) for c in schema.CELL_COUNTS],
    )


def read_cells(path: str | Path, *, models: ModelTable | None = None) -> pl.DataFrame:
    """Read an aggregated cell table (or several: a directory or glob with the same columns).

    Input columns: ``model`` or ``model_id`` (an id or a short name of ``models``), design columns,
    ``n_trials``, ``n_deep`` and optionally ``n_prompts`` (default ``n_trials``). Returns
    ``model, model_id, <design columns>, n_prompts, n_trials, n_deep``; design columns of the trial
    schema (``n_train``, ``value``, ...) take its dtype, others become numbers when they all parse.
    """
    return _read_cell_files(expand(path), models or ModelTable.default())


def load(
    paths: Sequence[str | Path] | str | Path,
    *,
    values: Iterable[str] = schema.DVB_VALUES,
    models: ModelTable | None = None,
    on_conflict: ConflictPolicy = "error",
    stream: bool = False,
) -> TrialTable | TrialFile | pl.DataFrame:
    """Read trial dumps (-> :class:`TrialTable`) or cell tables (-> DataFrame), whichever ``paths`` hold.

    ``values`` and ``on_conflict`` apply to dumps only; with ``stream``, dumps are written to a
    temporary file by :func:`stream_dumps` (-> :class:`TrialFile`). Mixing the two kinds is an error.
    """
    files = expand(paths)
    kinds = [is_cell_table(file) for file in files]
    if all(kinds):
        return _read_cell_files(files, models or ModelTable.default())
    if not any(kinds) and stream:
        return _stream_dump_files(files, None, values=values, models=models, on_conflict=on_conflict)
    if not any(kinds):
        return _read_dump_files(files, values=values, models=models, on_conflict=on_conflict)
    cells = [file.path for file, kind in zip(files, kinds) if kind]
    dumps = [file.path for file, kind in zip(files, kinds) if not kind]
    raise IngestError(
        f"{cells[0]}: a cell table mixed with harness dumps ({dumps[0]}); "
        "read trial dumps and cell tables separately"
    )
