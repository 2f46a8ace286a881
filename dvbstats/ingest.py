"""Reading DVB harness dumps and aggregated cell tables into the canonical tables.

A harness dump has one row per test prompt (the DVB harness's result-dump format); :func:`read_dumps`
turns any number of them (CSV, JSON lines or Parquet) into a :class:`TrialTable` with exactly
:data:`dvbstats.schema.TRIAL_SCHEMA`: the ``context_correlation_pair`` parsed against the value
vocabulary, the outcome recoded from the answer, each row's status (used, unparsed, superseded,
conflict) and duplicate prompts reconciled. No row is dropped: a row out of the likelihood keeps a
status and a reason. :func:`read_cells` reads already aggregated binomial counts instead.

Every file is read with all columns as text and validated here, so a bad input raises
:class:`IngestError` naming the file, the 1-based data row and the problem rather than a cast
error from deep inside polars.
"""

from __future__ import annotations

import difflib
import glob
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import polars as pl

from dvbstats import schema
from dvbstats.manifest import sha256
from dvbstats.registry import ModelTable

#: File formats by extension.
FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

ConflictPolicy = Literal["error", "first", "last", "exclude"]

#: What reconciliation did with a prompt seen more than once.
ACTIONS: tuple[str, ...] = (
    "identical",  # every copy parsed, all with the same answer: the first kept
    "parsed_supersedes_failure",  # parsed copies replace failed ones
    "conflict_first",  # parsed copies disagree: the earliest kept (on_conflict="first")
    "conflict_last",  # ... the latest kept (on_conflict="last")
    "conflict_excluded",  # ... none used (on_conflict="exclude")
    "failures_only",  # no copy parsed: the first kept as unparsed
)
RECONCILIATION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "prompt_id": pl.String(),
    "n_copies": pl.Int64(),
    "action": pl.Enum(list(ACTIONS)),
}

_TRUE = ("True", "true", "1")
_FALSE = ("False", "false", "0")
_META_SOURCES = "dvbstats.sources"
_META_RECONCILIATION = "dvbstats.reconciliation"


class IngestError(ValueError):
    """A bad input file: ``"<file>: row <n>: <problem>"`` (the row omitted for file-level problems)."""


@dataclass(frozen=True)
class Source:
    """One input file: the path as given, its SHA-256, its format and its number of data rows."""

    path: str
    sha256: str
    format: str
    n_rows: int


@dataclass(frozen=True)
class TrialTable:
    """Trial-level data (exactly :data:`schema.TRIAL_SCHEMA`), its sources and the duplicate log.

    ``reconciliation`` has one row per (model, prompt) seen more than once:
    ``model, prompt_id, n_copies, action`` (:data:`ACTIONS`).
    """

    data: pl.DataFrame
    sources: tuple[Source, ...]
    reconciliation: pl.DataFrame

    def __post_init__(self) -> None:
        if dict(self.data.schema) != schema.TRIAL_SCHEMA:
            raise ValueError("TrialTable.data must have exactly schema.TRIAL_SCHEMA (use schema.conform)")
        if dict(self.reconciliation.schema) != RECONCILIATION_SCHEMA:
            raise ValueError(f"TrialTable.reconciliation must have the columns {RECONCILIATION_SCHEMA}")

    def status_counts(self) -> pl.DataFrame:
        """Per model: rows, distinct prompts, and rows per status (used, unparsed, superseded, conflict)."""
        status = pl.col("status")
        return (
            self.data.group_by("model")
            .agg(
                pl.len().alias("n_rows"),
                pl.col("prompt_id").n_unique().alias("n_prompts"),
                *[(status == s).sum().alias(f"n_{s}") for s in schema.STATUSES],
            )
            .with_columns(pl.exclude("model").cast(pl.Int64))
            .sort("model")
        )

    def write(self, path: str | Path) -> None:
        """Write ``data`` to Parquet (zstd); sources and reconciliation go in its key-value metadata.

        The metadata keys are ``dvbstats.sources`` (JSON list of :class:`Source` fields) and
        ``dvbstats.reconciliation`` (JSON rows), so the file is self-contained and plain Parquet
        readers still see the trial table.
        """
        self.data.write_parquet(
            path,
            compression="zstd",
            metadata={
                _META_SOURCES: json.dumps([asdict(s) for s in self.sources]),
                _META_RECONCILIATION: self.reconciliation.write_json(),
            },
        )

    @classmethod
    def read(cls, path: str | Path) -> TrialTable:
        """Read a table written by :meth:`write`."""
        name = str(path)
        try:
            metadata = pl.read_parquet_metadata(path)
            data = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise IngestError(f"{name}: cannot read as Parquet: {exc}") from None
        if _META_SOURCES not in metadata or _META_RECONCILIATION not in metadata:
            raise IngestError(f"{name}: not a trial table written by dvbstats (no dvbstats metadata)")
        missing = [c for c in schema.TRIAL_SCHEMA if c not in data.columns]
        if missing:
            raise IngestError(f"{name}: missing trial column(s) {', '.join(missing)}")
        sources = tuple(Source(**s) for s in json.loads(metadata[_META_SOURCES]))
        reconciliation = pl.read_json(
            io.StringIO(metadata[_META_RECONCILIATION]), schema=RECONCILIATION_SCHEMA
        )
        return cls(schema.conform(data), sources, reconciliation)


# --------------------------------------------------------------------------- files


def _expand(paths: Sequence[str | Path] | str | Path) -> list[tuple[str, str]]:
    """(path, format) of every input file: files as given, directories' data files, glob matches.

    A file reached twice (say through a directory and a glob) is read once.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    for given in paths:
        text, path = str(given), Path(given)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
            if not inside:
                raise IngestError(f"{text}: directory holds no {'/'.join(FORMATS)} files")
            found.extend(inside)
        elif path.exists():
            found.append(path)
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())
            if not matches:
                raise IngestError(f"{text}: no file matches this pattern")
            found.extend(matches)
        else:
            raise IngestError(f"{text}: no such file or directory")
    if not found:
        raise IngestError("no input files given")
    files: dict[Path, tuple[str, str]] = {}
    for path in found:
        files.setdefault(path.resolve(), (str(path), _format(path)))
    return list(files.values())


def _format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise IngestError(
            f"{path}: unknown file extension {path.suffix!r}; expected one of {', '.join(FORMATS)}"
        ) from None


def _refuse_empty(path: str) -> None:
    if Path(path).stat().st_size == 0:
        raise IngestError(f"{path}: empty file (no rows)")


def _columns(path: str, fmt: str) -> list[str]:
    """Column names of a data file from its header, schema or first record."""
    _refuse_empty(path)
    try:
        if fmt == "csv":
            return pl.read_csv(path, n_rows=0, infer_schema=False).columns
        if fmt == "parquet":
            return list(pl.read_parquet_schema(path))
        with open(path, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "{}")
        return list(json.loads(first))
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise IngestError(f"{path}: cannot read as {fmt}: {exc}") from None


def _read_text(path: str, fmt: str, wanted: Callable[[list[str]], list[str]]) -> pl.DataFrame:
    """A data file's columns as text (empty text as null), with ``source_file`` and ``source_row``.

    ``wanted`` receives the file's column names, raises if some are missing and returns those to keep.
    """
    _refuse_empty(path)
    try:
        if fmt == "csv":
            header = pl.read_csv(path, n_rows=0, infer_schema=False).columns
            df = pl.read_csv(path, columns=wanted(header), infer_schema=False, null_values="")
        else:
            if fmt == "jsonl":
                df = pl.read_ndjson(path, infer_schema_length=None)
                df = df.select(wanted(df.columns))
            else:
                df = pl.read_parquet(path, columns=wanted(list(pl.read_parquet_schema(path))))
            df = df.with_columns(pl.all().cast(pl.String).replace("", None))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise IngestError(f"{path}: cannot read as {fmt}: {exc}") from None
    if df.height == 0:
        raise IngestError(f"{path}: empty file (no rows)")
    return df.select(
        pl.lit(path).alias("source_file"),
        pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("source_row"),
        pl.all(),
    )


def _require(path: str, present: Sequence[str], required: Iterable[str], what: str) -> list[str]:
    """Raise naming every missing column, with the closest present name as a suggestion.

    Returns ``required`` (as a list) when all are present.
    """
    problems = []
    for column in required:
        if column not in present:
            close = difflib.get_close_matches(column, present, n=1, cutoff=0.6)
            hint = f" (found {close[0]!r}: did you mean {column!r}?)" if close else ""
            problems.append(f"{column!r}{hint}")
    if problems:
        raise IngestError(f"{path}: missing {what} column(s) {', '.join(problems)}")
    return list(required)


# --------------------------------------------------------------------------- validation


Problem = str | Callable[[dict], str]


def _check(df: pl.DataFrame, checks: dict[Problem, pl.Expr]) -> None:
    """Raise for the first failing check at its first offending row.

    ``checks`` maps a problem (a ``str.format`` template over the row's columns, or a function of
    the row) to a boolean expression that is true on bad rows (null counts as good); all checks are
    evaluated in one pass.
    """
    flags = df.select(bad.fill_null(False).alias(str(k)) for k, bad in enumerate(checks.values()))
    for problem, n_bad, column in zip(checks, flags.sum().row(0), flags.columns):
        if n_bad:
            row = df.row(flags[column].arg_max(), named=True)
            text = problem(row) if callable(problem) else problem.format(**row)
            more = f" ({n_bad - 1} more row(s) like this)" if n_bad > 1 else ""
            raise IngestError(f"{row['source_file']}: row {row['source_row']}: {text}{more}")


def _first_copy(keys: list[str]) -> pl.Expr:
    """``file:row`` of the first row sharing ``keys`` (column ``_first``)."""
    return pl.format("{}:{}", "source_file", "source_row").first().over(keys).alias("_first")


def _integer(text: pl.Expr) -> pl.Expr:
    """Integer value of text such as ``4`` or ``4.0`` (null when not an integer)."""
    number = text.str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(number.is_finite() & (number == number.round())).then(number).cast(pl.Int64)


def _integer_per_text(df: pl.DataFrame, column: str) -> pl.Expr:
    """:func:`_integer` of a column with few distinct texts, computed once per distinct text."""
    distinct = df.select(pl.col(column).drop_nulls().unique())
    integers = distinct.select(_integer(pl.col(column))).to_series()
    return pl.col(column).replace_strict(distinct[column], integers, default=None, return_dtype=pl.Int64)


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
    which is what lets values and features both contain underscores.
    """
    vocabulary = sorted(_vocabulary(values), key=lambda v: (-len(v), v))
    alternation = "|".join(re.escape(v) for v in vocabulary)
    return (
        rf"^(?P<value>{alternation})_(?P<feature>.+?)_vs_"
        rf"(?P<value_less>{alternation})_(?P<feature_less>.+?) - (?P<context>.+)$"
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
            return f"{side!r} is not '<value>_<feature>' with a known value"
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


# --------------------------------------------------------------------------- trials


def _code_trials(raw: pl.DataFrame, vocabulary: list[str], models: ModelTable) -> pl.DataFrame:
    """Validate harness rows and add the parsed design, short model name, status and outcome."""
    options = ", ".join(repr(o) for o in schema.OPTIONS)
    choice, expected = pl.col("model_choice"), pl.col("expected_deep_value_choice")
    n_train = _integer_per_text(raw, "n_training_examples")
    verdict = _integer_per_text(raw, "generalized_deep_value")
    pair = pl.col("context_correlation_pair")
    pairs = parse_pairs(raw["context_correlation_pair"].drop_nulls(), vocabulary)
    bad_pairs = pairs.filter(pl.col("value").is_null())["context_correlation_pair"].to_list()

    def pair_problem(row: dict) -> str:
        text = row["context_correlation_pair"]
        return (
            f"cannot parse context_correlation_pair {text!r}: {_pair_problem(text, vocabulary)}. "
            f"Expected '<value>_<feature>_vs_<value>_<feature> - <context>' with values in "
            f"{sorted(vocabulary)}; pass values=... to extend the vocabulary"
        )

    _check(
        raw,
        {
            "empty prompt_id": pl.col("prompt_id").is_null(),
            "empty model": pl.col("model").is_null(),
            "empty context_correlation_pair": pair.is_null(),
            pair_problem: pair.is_in(bad_pairs),
            "n_training_examples must be a positive integer, got {n_training_examples!r}": (
                n_train.is_null() | (n_train <= 0)
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

    names = models.resolve(raw["model"].unique(maintain_order=True)).data
    used = (pl.col("success").is_in(_TRUE) & choice.is_in(schema.OPTIONS)).fill_null(False)
    trials = (
        raw.join(pairs, on="context_correlation_pair", how="left", maintain_order="left")
        .with_columns(
            pl.col("model").alias("model_id"),
            pl.col("model").replace_strict(names["model_id"], names["short_name"]).alias("model"),
            n_train.cast(pl.Int32).alias("n_train"),
            pl.when(used).then(pl.lit("used")).otherwise(pl.lit("unparsed")).alias("status"),
            pl.when(~used).then(pl.coalesce("error", pl.lit("no parsed choice"))).alias("reason"),
            pl.when(used).then((choice == expected).cast(pl.Int8)).alias("chose_deep"),
        )
    )
    _check(
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


def _reconcile(trials: pl.DataFrame, on_conflict: ConflictPolicy) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give every duplicate (model_id, prompt_id) copy but one the status superseded (or conflict).

    One copy stays in the likelihood: a parsed copy over failures; among parsed copies that agree
    the earliest; among parsed copies that disagree, whichever ``on_conflict`` says (none for
    ``exclude``, whose parsed copies become ``conflict``). Copies of a prompt must share its design.
    """
    key = ["model_id", "prompt_id"]
    df = trials.with_row_index("_i")
    copies = df.filter(pl.len().over(key) > 1)
    if copies.is_empty():
        return df.drop("_i"), pl.DataFrame(schema=RECONCILIATION_SCHEMA)

    design = ["test_id", "context_correlation_pair", "n_train", "expected_deep_value_choice"]
    differs = [pl.when(pl.col(c).ne_missing(pl.col(c).first().over(key))).then(pl.lit(c)) for c in design]
    _check(
        copies.with_columns(
            _first_copy(key), pl.concat_list(differs).list.drop_nulls().list.join(", ").alias("_differs")
        ),
        {
            "prompt {prompt_id!r} of model {model_id!r} differs from its copy at {_first} in {_differs}; "
            "copies of a prompt must share its design": pl.col("_differs") != "",
        },
    )

    used = pl.col("status") == "used"
    first_choice = pl.col("model_choice").filter(used).first()
    groups = copies.group_by(key, maintain_order=True).agg(
        pl.col("model").first(),
        pl.len().alias("n_copies"),
        used.sum().alias("n_used"),
        pl.col("model_choice").filter(used).n_unique().alias("n_choices"),
        pl.col("_i").first().alias("first"),
        pl.col("_i").filter(used).first().alias("first_used"),
        pl.col("_i").filter(used).last().alias("last_used"),
        pl.col("_i").filter(used & (pl.col("model_choice") != first_choice)).first().alias("other"),
    )
    conflict = pl.col("n_choices") > 1
    n_conflicts = groups.select(conflict.sum()).item()
    if n_conflicts and on_conflict == "error":
        first = groups.filter(conflict).row(0, named=True)
        a, b = (df.row(first[k], named=True) for k in ("first_used", "other"))
        raise IngestError(
            f"{a['source_file']}: row {a['source_row']}: {n_conflicts} prompt(s) have conflicting "
            f"parsed answers; the first: prompt {a['prompt_id']!r} of model {a['model_id']!r} answered "
            f"{a['model_choice']!r} here and {b['model_choice']!r} at {b['source_file']}:{b['source_row']}. "
            "Pass on_conflict='first', 'last' or 'exclude' to resolve"
        )

    conflict_action = {"first": "conflict_first", "last": "conflict_last", "exclude": "conflict_excluded"}
    keep_in_conflict = {"last": pl.col("last_used"), "exclude": pl.lit(None, pl.UInt32)}
    groups = groups.with_columns(
        pl.when(pl.col("n_used") == 0).then(pl.lit("failures_only"))
        .when(conflict).then(pl.lit(conflict_action.get(on_conflict, "")))
        .when(pl.col("n_used") < pl.col("n_copies")).then(pl.lit("parsed_supersedes_failure"))
        .otherwise(pl.lit("identical"))
        .alias("action"),
        pl.when(pl.col("n_used") == 0).then(pl.col("first"))
        .when(conflict).then(keep_in_conflict.get(on_conflict, pl.col("first_used")))
        .otherwise(pl.col("first_used"))
        .alias("keep"),
    ).with_columns(pl.coalesce("keep", "first_used").alias("ref"))
    labels = copies.select(
        pl.col("_i").alias("ref"), pl.format("{}:{}", "source_file", "source_row").alias("_ref")
    )
    changed = (
        copies.select("_i", *key, "status")
        .join(groups.select(*key, "keep", "ref", "action"), on=key)
        .join(labels, on="ref")
        .filter(pl.col("keep").is_null() | (pl.col("_i") != pl.col("keep")))
        .select(
            "_i",
            pl.when(used & (pl.col("action") == "conflict_excluded"))
            .then(pl.lit("conflict")).otherwise(pl.lit("superseded")).alias("status"),
            pl.when(used & (pl.col("action") == "conflict_excluded"))
            .then(pl.lit("conflicting parsed copies; on_conflict='exclude'"))
            .when(used & pl.col("action").str.starts_with("conflict"))
            .then(pl.format(f"conflicts with {{}}; on_conflict={on_conflict!r}", "_ref"))
            .otherwise(pl.format("duplicate of {}", "_ref"))
            .alias("reason"),
            pl.lit(None, pl.Int8).alias("chose_deep"),
        )
    )
    reconciled = df.update(changed, on="_i", how="left", include_nulls=True).drop("_i")
    reconciliation = groups.select(list(RECONCILIATION_SCHEMA)).cast(RECONCILIATION_SCHEMA)
    return reconciled, reconciliation


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
    use none (``exclude``). Every input row is kept; see :data:`schema.STATUSES`.
    """
    if on_conflict not in get_args(ConflictPolicy):
        raise ValueError(f"on_conflict must be one of {get_args(ConflictPolicy)}, got {on_conflict!r}")
    vocabulary = _vocabulary(values)
    files = _expand(paths)
    with ThreadPoolExecutor(max_workers=1) as pool:  # hash while polars parses
        digests = [pool.submit(sha256, path) for path, _ in files]
        frames = []
        for path, fmt in files:
            frames.append(_read_text(
                path, fmt, lambda present: _require(path, present, schema.HARNESS_COLUMNS, "harness")
            ))
        sources = tuple(
            Source(path, digest.result(), fmt, frame.height)
            for (path, fmt), digest, frame in zip(files, digests, frames)
        )
    trials = _code_trials(pl.concat(frames), vocabulary, models or ModelTable.default())
    data, reconciliation = _reconcile(trials, on_conflict)
    return TrialTable(schema.conform(data), sources, reconciliation)


# --------------------------------------------------------------------------- cells


def sources(paths: Sequence[str | Path] | str | Path) -> tuple[Source, ...]:
    """Every input file behind ``paths`` with its SHA-256, format and number of data rows."""
    scan = {"csv": pl.scan_csv, "jsonl": pl.scan_ndjson, "parquet": pl.scan_parquet}
    return tuple(
        Source(path, sha256(path), fmt, scan[fmt](path).select(pl.len()).collect().item())
        for path, fmt in _expand(paths)
    )


def is_cell_table(path: str | Path) -> bool:
    """Whether a file holds aggregated counts (has ``n_trials`` and ``n_deep``) rather than trials."""
    columns = _columns(str(path), _format(Path(path)))
    return "n_trials" in columns and "n_deep" in columns


def _cell_columns(path: str, present: list[str]) -> list[str]:
    """Check a cell table's columns; return them all (the model id column first)."""
    ids = "model_id" if "model_id" in present else "model"
    return _require(path, present, (ids, "n_trials", "n_deep"), "cell table") + [
        c for c in present if c not in (ids, "n_trials", "n_deep")
    ]


def _read_cell_files(files: Sequence[tuple[str, str]], models: ModelTable) -> pl.DataFrame:
    """Read, validate and concatenate cell tables that share their columns."""
    frames = []
    for path, fmt in files:
        frame = _read_text(path, fmt, lambda present: _cell_columns(path, present))
        if frames and set(frame.columns) != set(frames[0].columns):
            raise IngestError(
                f"{path}: columns {sorted(frame.columns)} differ from those of "
                f"{files[0][0]} {sorted(frames[0].columns)}"
            )
        frames.append(frame.select(frames[0].columns) if frames else frame)
    text = pl.concat(frames)
    id_column = text.columns[2]  # after source_file, source_row
    extra = ("model", "model_id", "source_file", "source_row", *schema.CELL_COUNTS)
    design = [c for c in text.columns if c not in extra]

    counts = {c: _integer(pl.col(c)) for c in schema.CELL_COUNTS if c in text.columns}
    typed = {
        c: (_integer(pl.col(c)) if dtype.is_integer() else pl.col(c)).cast(dtype)
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
    _check(text.with_columns(_first_copy(keys)), checks)

    # An id may also be one of the table's short names (as in a cell table dvbstats wrote).
    table = models.data
    alias = dict(zip(table["short_name"], table["model_id"]))
    ids = text[id_column].replace({k: v for k, v in alias.items() if k not in table["model_id"]})
    names = models.resolve(ids.unique(maintain_order=True)).data.select(
        "model_id", pl.col("short_name").alias("_short")
    )
    cells = text.with_columns(ids.alias("model_id")).join(names, on="model_id", maintain_order="left")
    if id_column == "model_id" and "model" in cells.columns:
        _check(
            cells,
            {"model {model!r} is not the model table's short name {_short!r} of {model_id!r}": (
                pl.col("model") != pl.col("_short")
            )},
        )
    return cells.select(
        pl.col("_short").alias("model"),
        "model_id",
        *[typed[c].alias(c) if c in typed else _infer(cells[c]) for c in design],
        *[counts[c].alias(c) for c in schema.CELL_COUNTS],
    )


def _infer(text: pl.Series) -> pl.Series:
    """A text design column as integers or numbers when every entry is one, else as text."""
    for dtype in (pl.Int64, pl.Float64):
        cast = text.str.strip_chars().cast(dtype, strict=False)
        if cast.null_count() == 0:
            return cast
    return text


def read_cells(path: str | Path, *, models: ModelTable | None = None) -> pl.DataFrame:
    """Read an aggregated cell table (or several: a directory or glob with the same columns).

    Input columns: ``model`` or ``model_id`` (an id or a short name of ``models``), design columns,
    ``n_trials``, ``n_deep`` and optionally ``n_prompts`` (default ``n_trials``). Returns
    ``model, model_id, <design columns>, n_prompts, n_trials, n_deep``; design columns of the trial
    schema (``n_train``, ``value``, ...) take its dtype, others become numbers when they all parse.
    """
    return _read_cell_files(_expand(path), models or ModelTable.default())


def load(
    paths: Sequence[str | Path] | str | Path,
    *,
    values: Iterable[str] = schema.DVB_VALUES,
    models: ModelTable | None = None,
    on_conflict: ConflictPolicy = "error",
) -> TrialTable | pl.DataFrame:
    """Read trial dumps (-> :class:`TrialTable`) or cell tables (-> DataFrame), whichever ``paths`` hold.

    ``values`` and ``on_conflict`` apply to dumps only. Mixing the two kinds is an error.
    """
    files = _expand(paths)
    kinds = [is_cell_table(path) for path, _ in files]
    if all(kinds):
        return _read_cell_files(files, models or ModelTable.default())
    if not any(kinds):
        return read_dumps([path for path, _ in files], values=values, models=models, on_conflict=on_conflict)
    cells = [path for (path, _), kind in zip(files, kinds) if kind]
    dumps = [path for (path, _), kind in zip(files, kinds) if not kind]
    raise IngestError(
        f"{cells[0]}: a cell table mixed with harness dumps ({dumps[0]}); "
        "read trial dumps and cell tables separately"
    )
