"""Reading DVB harness dumps and aggregated cell tables into the canonical tables.

A harness dump has one row per test prompt (the DVB harness's result-dump format); :func:`read_dumps`
turns any number of them (CSV, JSON lines or Parquet) into a :class:`TrialTable` with exactly
:data:`dvbstats.input.schema.TRIAL_SCHEMA`: the ``context_correlation_pair`` parsed against the value
vocabulary, the outcome recoded from the answer, each row's status (used, unparsed, superseded,
conflict) and duplicate prompts reconciled. No row is dropped: a row out of the likelihood keeps a
status and a reason. :func:`read_cells` reads already aggregated binomial counts instead.

Every file is read with all columns as text and validated here, so a bad input raises
:class:`IngestError` naming the file, the 1-based data row and the problem rather than a cast
error from deep inside polars.
"""

from __future__ import annotations

import csv
import difflib
import glob
import gzip
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, get_args

import polars as pl

from dvbstats.input import schema
from dvbstats.input.manifest import sha256
from dvbstats.input.registry import ModelTable

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
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # a null partition value in hive folder names


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
    """Trial-level data (:data:`dvbstats.input.schema.TRIAL_SCHEMA`, then the dumps' extra columns), its sources and
    the duplicate log.

    ``reconciliation`` has one row per (model, prompt) seen more than once:
    ``model, prompt_id, n_copies, action`` (:data:`ACTIONS`).
    """

    data: pl.DataFrame
    sources: tuple[Source, ...]
    reconciliation: pl.DataFrame

    def __post_init__(self) -> None:
        if not schema.is_conformant(self.data):
            raise ValueError("TrialTable.data must have schema.TRIAL_SCHEMA, then extra number or text "
                             "columns (use schema.conform)")
        if dict(self.reconciliation.schema) != RECONCILIATION_SCHEMA:
            raise ValueError(f"TrialTable.reconciliation must have the columns {RECONCILIATION_SCHEMA}")

    def scan(self) -> pl.LazyFrame:
        """The table as a lazy frame (as :meth:`TrialFile.scan`), so callers work with either."""
        return self.data.lazy()

    def status_counts(self) -> pl.DataFrame:
        """Per model: rows, distinct prompts, and rows per status (used, unparsed, superseded, conflict)."""
        return status_counts(self.data)

    def model_ids(self) -> list[str]:
        return _distinct(self.data, "model_id").sort().to_list()

    def write(self, path: str | Path) -> None:
        """Write ``data`` to Parquet (zstd); sources and reconciliation go in its key-value metadata.

        The metadata keys are ``dvbstats.sources`` (JSON list of :class:`Source` fields) and
        ``dvbstats.reconciliation`` (JSON rows), so the file is self-contained and plain Parquet
        readers still see the trial table.
        """
        self.data.write_parquet(path, compression="zstd", metadata=_metadata(self.sources, self.reconciliation))

    @classmethod
    def read(cls, path: str | Path) -> TrialTable:
        """Read a table written by :meth:`write` (or :func:`stream_dumps`) into memory."""
        stored = TrialFile.open(path)
        try:
            data = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise IngestError(f"{path}: cannot read as Parquet: {exc}") from None
        extras = [c for c in data.columns if c not in schema.TRIAL_SCHEMA]
        return cls(schema.conform(data, extras), stored.sources, stored.reconciliation)


def status_counts(trials: Frame) -> pl.DataFrame:
    """Per model: rows, distinct prompts, and rows per status (used, unparsed, superseded, conflict)."""
    status = pl.col("status")
    return (
        trials.lazy().group_by("model")
        .agg(
            pl.len().alias("n_rows"),
            pl.col("prompt_id").n_unique().alias("n_prompts"),
            *[(status == s).sum().alias(f"n_{s}") for s in schema.STATUSES],
        )
        .with_columns(pl.exclude("model").cast(pl.Int64))
        .sort("model")
        .collect(engine="streaming")
    )


def _metadata(sources: Sequence[Source], reconciliation: pl.DataFrame) -> dict[str, str]:
    return {
        _META_SOURCES: json.dumps([asdict(s) for s in sources]),
        _META_RECONCILIATION: reconciliation.write_json(),
    }


@dataclass(frozen=True)
class TrialFile:
    """A trial table written to Parquet by :func:`stream_dumps`, read lazily: its path, sources and
    duplicate log (as in :class:`TrialTable`)."""

    path: Path
    sources: tuple[Source, ...]
    reconciliation: pl.DataFrame
    scratch: tempfile.TemporaryDirectory | None = field(default=None, repr=False)  # owns ``path`` if set

    @classmethod
    def open(cls, path: str | Path) -> TrialFile:
        """A trial table written by :meth:`TrialTable.write` or :func:`stream_dumps`, checked from its
        metadata and schema only (nothing is read into memory)."""
        name = str(path)
        try:
            metadata = pl.read_parquet_metadata(path)
            columns = pl.read_parquet_schema(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise IngestError(f"{name}: cannot read as Parquet: {exc}") from None
        if _META_SOURCES not in metadata or _META_RECONCILIATION not in metadata:
            raise IngestError(f"{name}: not a trial table written by dvbstats (no dvbstats metadata)")
        missing = [c for c in schema.TRIAL_SCHEMA if c not in columns]
        if missing:
            raise IngestError(f"{name}: missing trial column(s) {', '.join(missing)}")
        sources = tuple(Source(**s) for s in json.loads(metadata[_META_SOURCES]))
        reconciliation = pl.read_json(io.StringIO(metadata[_META_RECONCILIATION]), schema=RECONCILIATION_SCHEMA)
        return cls(Path(path), sources, reconciliation)

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path)

    def status_counts(self) -> pl.DataFrame:
        return status_counts(self.scan())

    def model_ids(self) -> list[str]:
        return _distinct(self.scan(), "model_id").sort().to_list()

    def write(self, path: str | Path) -> None:
        """Copy the file to ``path``."""
        shutil.copyfile(self.path, path)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class InputFile:
    """One data file to read: its path as found, its format, and the ``key=value`` folders of a
    hive-partitioned dataset between the directory given and the file (each adds a text column)."""

    path: str
    format: str
    partitions: tuple[tuple[str, str | None], ...] = ()


class IngestWarning(UserWarning):
    """Input that was read, but not exactly as written: normalised text, likely misspelt levels,
    skipped links or columns."""


def printable_path(path: str | Path) -> str:
    """A path as text that can be printed and stored: bytes that are not UTF-8 shown as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_utf8_names(paths: Iterable[str | Path]) -> None:
    """Refuse a path whose name is not UTF-8 (tables, manifests and reports hold paths as UTF-8 text)."""
    for path in paths:
        if printable_path(path) != str(path):
            raise IngestError(f"{printable_path(path)}: the file or folder name is not valid UTF-8; rename it")


def check_regular(path: str | Path) -> None:
    """Refuse a path that is not a regular file: reading a FIFO with no writer would block for ever."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                else "a device or socket")
        raise IngestError(f"{printable_path(path)}: {kind}, not a regular file; give a data file")


def _expand(paths: Sequence[str | Path] | str | Path) -> list[InputFile]:
    """Every input file: files as given, directories' data files (hive ``key=value`` sub-folders
    included), glob matches. A file reached twice (say through a directory and a glob) is read once.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    check_utf8_names(paths)
    found: list[InputFile] = []
    for given in paths:
        text, path = str(given), Path(given)
        if path.is_dir():
            inside = _directory_files(path)
            if not inside:
                raise IngestError(f"{text}: directory holds no {'/'.join(FORMATS)} files")
            found.extend(inside)
        elif path.exists():
            check_regular(path)
            found.append(InputFile(str(path), _format(path)))
        elif path.is_symlink():
            raise IngestError(f"{text}: a dangling symbolic link (to {os.readlink(path)}, which does not exist)")
        elif any(ch in text for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text))]
            _warn_dangling(text, matches)
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise IngestError(f"{text}: no file matches this pattern")
            found.extend(InputFile(str(m), _format(m)) for m in matches)
        else:
            raise IngestError(f"{text}: no such file or directory")
    if not found:
        raise IngestError("no input files given")
    check_utf8_names(f.path for f in found)
    files: dict[Path, InputFile] = {}
    for file in found:
        files.setdefault(Path(file.path).resolve(), file)
    return list(files.values())


def _directory_files(directory: Path, partitions: tuple[tuple[str, str | None], ...] = ()) -> list[InputFile]:
    """Data files of a directory, then those of its hive ``key=value`` sub-folders (recursively)."""
    inside = sorted(directory.iterdir())
    _warn_dangling(str(directory), inside)
    files = [
        InputFile(str(p), FORMATS[p.suffix.lower()], partitions)
        for p in inside
        if p.is_file() and p.suffix.lower() in FORMATS
    ]
    for sub in inside:
        key, sep, value = sub.name.partition("=")
        if sep and key and sub.is_dir():
            level = None if value == _HIVE_NULL else urllib.parse.unquote(value)
            files.extend(_directory_files(sub, (*partitions, (urllib.parse.unquote(key), level))))
    return files


def _warn_dangling(where: str, paths: Iterable[Path]) -> None:
    """Warn about symbolic links whose target is missing (a data file that is not there)."""
    dangling = [p for p in paths if p.is_symlink() and not p.exists()]
    if dangling:
        links = ", ".join(f"{p.name} -> {os.readlink(p)}" for p in dangling)
        warnings.warn(
            f"{where}: skipped {len(dangling)} dangling symbolic link(s) (their targets do not exist): {links}",
            IngestWarning,
            stacklevel=4,
        )


def _format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise IngestError(
            f"{path}: unknown file extension {path.suffix!r}; expected one of {', '.join(FORMATS)}"
        ) from None


#: Leading bytes of formats a data file is sometimes confused with, longest first where they overlap.
MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"PAR1", "a Parquet file", "rename it to .parquet"),
    (b"\xff\xfe\x00\x00", "UTF-32 text", "re-save it as UTF-8 (e.g. iconv -f UTF-32 -t UTF-8)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text", "re-save it as UTF-8 (e.g. iconv -f UTF-32 -t UTF-8)"),
    (b"\xff\xfe", "UTF-16 text (byte-order mark FF FE)", "re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (byte-order mark FE FF)", "re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"),
    (b"\x1f\x8b", "gzip-compressed data", "decompress it first (gunzip)"),  # text inside is read
    (b"BZh", "bzip2-compressed data", "decompress it first (bunzip2)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data", "decompress it first (unzstd)"),
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook?)", "export it as CSV or unzip it first"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
)
_UTF8_ADVICE = "re-save it as UTF-8 text"


def _sniff(path: str, fmt: str) -> None:
    """Refuse a file whose first bytes say it is not what its extension says, before parsing it.

    Empty files, Parquet named ``.csv``, UTF-16/32 text, compressed archives and binary data
    each get a message saying what the file is, instead of a parser's complaint about columns.
    """
    try:
        with open(path, "rb") if fmt == "parquet" else _open_text_bytes(path) as f:
            head = f.read(1 << 16)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise IngestError(f"{path}: cannot open: {getattr(exc, 'strerror', None) or exc}") from None
    if not head:
        raise IngestError(f"{path}: empty file (no rows)")
    what, advice = _what(head)
    if fmt == "parquet":
        if what != "a Parquet file":
            raise IngestError(
                f"{path}: not a Parquet file (it does not start with the bytes PAR1); it looks like {what}"
            )
    elif what != "text":
        noun = {"csv": "CSV", "jsonl": "JSON lines"}[fmt]
        raise IngestError(f"{path}: this is {what}, not UTF-8 {noun} text; {advice}")


def _open_text_bytes(path: str) -> BinaryIO:
    """A text data file's bytes, decompressed when it is gzip-compressed (polars reads those too)."""
    f = open(path, "rb")
    if f.read(2) == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")
    f.seek(0)
    return f


def _what(head: bytes) -> tuple[str, str]:
    """(what the bytes look like, advice) for the first bytes of a file: a known magic, UTF-16 without
    a byte-order mark (NULs at every other byte), binary data (many control bytes), or text."""
    for magic, what, advice in MAGIC:
        if head.startswith(magic):
            return what, advice
    nuls = head.count(0)
    if nuls > len(head) // 5:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if max(even, odd) > 0.9 * nuls:
            return "UTF-16 text without a byte-order mark", "re-save it as UTF-8 (e.g. iconv -f UTF-16LE -t UTF-8)"
        return "binary data", _UTF8_ADVICE
    control = sum(head.count(b) for b in (*range(0, 9), *range(14, 27), *range(28, 32)))
    if control > len(head) // 20:
        return "binary data", _UTF8_ADVICE
    return "text", ""


def _decoded_lines(f: Iterable[bytes], bad: list[tuple[int, UnicodeDecodeError]]) -> Iterator[str]:
    """Lines of a binary file decoded as UTF-8 (a leading byte-order mark dropped), one at a time;
    stops at the first line that is not UTF-8, recording (its number, the error) in ``bad``."""
    for number, raw in enumerate(f, 1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, exc))
            return


def _not_utf8(number: int, exc: UnicodeDecodeError) -> str:
    return (f"invalid UTF-8 (byte 0x{exc.object[exc.start]:02x} at character {exc.start + 1} of line "
            f"{number}); {_UTF8_ADVICE}")


@contextmanager
def _unlimited_csv_fields() -> Iterator[None]:
    """Lift Python's csv field size limit (128 KiB) for a read; LLM responses can be longer."""
    limit = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(limit)


def _csv_header(path: str) -> list[str]:
    """A CSV file's column names (Python's csv module, byte-order mark dropped)."""
    bad: list[tuple[int, UnicodeDecodeError]] = []
    with _open_text_bytes(path) as f, _unlimited_csv_fields():
        try:
            header = next(csv.reader(_decoded_lines(f, bad), strict=True), [])
        except csv.Error as exc:
            raise IngestError(f"{path}: header (line 1): {exc}") from None
    if bad and not header:
        raise IngestError(f"{path}: header: {_not_utf8(*bad[0])}")
    return header


class _Keys(list):
    """A JSON object as the list of its keys, repeated ones included (a ``json`` object_pairs_hook)."""

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(key for key, _ in pairs)


def _jsonl_header(path: str) -> list[str]:
    """The keys of a JSON lines file's first record (every key, repeated ones included)."""
    with _open_text_bytes(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    record = json.loads(line, object_pairs_hook=_Keys)
                except (UnicodeDecodeError, ValueError) as exc:
                    raise IngestError(f"{path}: row 1 (line {number}): not valid JSON: {exc}") from None
                if not isinstance(record, _Keys):
                    raise IngestError(f"{path}: row 1 (line {number}): a JSON {type(record).__name__}, not an object")
                return list(record)
    raise IngestError(f"{path}: empty file (no rows)")


def _stored_columns(file: InputFile) -> list[str]:
    """Column names stored in a data file (after checking its bytes), refusing repeated names."""
    path = file.path
    _sniff(path, file.format)
    try:
        if file.format == "csv":
            names = _csv_header(path)
        elif file.format == "jsonl":
            names = _jsonl_header(path)
        else:
            names = list(pl.read_parquet_schema(path))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise IngestError(f"{path}: cannot read as {file.format}: {exc}") from None
    repeated = [name for name, n in Counter(names).items() if n > 1]
    if repeated:
        where = "; ".join(
            f"{name!r} (columns {', '.join(str(i + 1) for i, c in enumerate(names) if c == name)})"
            for name in repeated
        )
        raise IngestError(f"{path}: repeated column name(s) {where}; each column must be named once")
    return names


def _columns(file: InputFile) -> list[str]:
    """Column names of a data file, its hive partition keys appended."""
    stored = _stored_columns(file)
    return stored + [key for key, _ in file.partitions if key not in stored]


def _scan_text(file: InputFile, wanted: Callable[[list[str]], list[str]]) -> tuple[pl.LazyFrame, dict]:
    """A data file's columns as text (empty text as null) with ``source_file`` and ``source_row``,
    lazily, and the hive partition values to add (``{key: level}``).

    ``wanted`` receives the file's column names, raises if some are missing and returns those to keep.
    Blank CSV lines are not rows (their numbers are skipped). Nothing is parsed yet: parse errors
    surface when the frame is collected (see :func:`_parse_errors`).
    """
    path, fmt = file.path, file.format
    stored = _stored_columns(file)
    keep = wanted(stored + [key for key, _ in file.partitions if key not in stored])
    partitions = {k: v for k, v in file.partitions if k in keep}
    columns = [c for c in keep if c in stored]
    with _parse_errors(file):
        if fmt == "csv":
            lf = pl.scan_csv(path, infer_schema=False, null_values="", row_index_name="source_row",
                             row_index_offset=1).select("source_row", *columns)
            lf = lf.filter(~pl.all_horizontal(pl.col(columns).is_null()))
        else:
            if fmt == "jsonl":
                lf = pl.read_ndjson(_without_bom(path), infer_schema_length=None).select(columns).lazy()
            else:
                lf = pl.scan_parquet(path).select(columns)
            lf = lf.with_columns(_text(c) for c in columns).with_row_index("source_row", offset=1)
    lf = lf.select(pl.lit(path).alias("source_file"), pl.col("source_row").cast(pl.Int64), *columns)
    return lf, partitions


def _text(column: str) -> pl.Expr:
    """A column as text, empty text as null. (Not ``.replace("", None)``: streamed over many files with a row
    index, polars 2.1 spent 0.25 s per file of 12,000 rows on it, 26 s CPU for 100 dumps against 1 s this way.)"""
    text = pl.col(column).cast(pl.String)
    return pl.when(text != "").then(text).alias(column)


@contextmanager
def _parse_errors(file: InputFile) -> Iterator[None]:
    """Turn a reader's failure on ``file`` into an :class:`IngestError` naming the malformed row
    (CSV and JSON lines are re-read with Python's parsers, only on this error path)."""
    try:
        yield
    except (OSError, pl.exceptions.PolarsError) as exc:
        path, fmt = file.path, file.format
        try:
            problem = {"csv": _csv_problem, "jsonl": _jsonl_problem}.get(fmt, lambda _: None)(path)
        except (OSError, EOFError) as cause:  # say, a gzip stream cut short
            problem = f"cannot read: {cause}"
        raise IngestError(f"{path}: {problem or f'cannot read as {fmt}: {exc}'}") from None


def _read_text(file: InputFile, wanted: Callable[[list[str]], list[str]]) -> pl.DataFrame:
    """:func:`_scan_text` collected into memory, partitions added; an empty file raises."""
    lf, partitions = _scan_text(file, wanted)
    with _parse_errors(file):
        df = lf.collect()
    if df.height == 0:
        raise IngestError(f"{file.path}: empty file (no rows)")
    return _add_partitions(df, partitions)


def _stage(file: InputFile, wanted: Callable[[list[str]], list[str]], folder: Path) -> tuple[pl.LazyFrame, int]:
    """:func:`_scan_text` of a file ready to be read many times, and its number of rows.

    Text files are parsed once, streaming, into a Parquet file in ``folder``; later passes read
    only the columns they need from it. A Parquet input is scanned as it is.
    """
    lf, partitions = _scan_text(file, wanted)
    with _parse_errors(file):
        if file.format != "parquet":
            staged = folder / f"{len(list(folder.iterdir()))}.parquet"
            lf.sink_parquet(staged, compression="lz4", engine="streaming")
            lf = pl.scan_parquet(staged)
        else:
            lf.head(1000).collect()  # a column polars cannot read as text fails here, not later
        n_rows = lf.select(pl.len()).collect().item()
    if n_rows == 0:
        raise IngestError(f"{file.path}: empty file (no rows)")
    return _add_partitions(lf, partitions), n_rows


def _without_bom(path: str) -> str | io.BytesIO:
    """The path, or the file's bytes after a UTF-8 byte-order mark (which polars' JSON reader refuses)."""
    with open(path, "rb") as f:
        if f.read(3) != b"\xef\xbb\xbf":
            return path
        return io.BytesIO(f.read())


def _add_partitions(df: Frame, partitions: dict[str, str | None]) -> Frame:
    """Add the hive folder values as columns; a column also stored in the file must agree with its folder."""
    for key, level in partitions.items():
        if key in df.collect_schema():
            _check(df, {f"{key} is {{{key}!r}} but the file sits in the folder {key}={level}": (
                pl.col(key).ne_missing(pl.lit(level, pl.String))
            )})
        else:
            df = df.with_columns(pl.lit(level, pl.String).alias(key))
    return df


def _csv_problem(path: str, upto: int | None = None) -> str | None:
    """``row <n> (line <l>): <problem>`` for the first malformed CSV record, or None.

    Reads the file again with Python's csv module (slow, so only on the error path): invalid UTF-8,
    a quote never closed, a record with more or fewer fields than the header. Rows are counted as
    polars counts them (blank lines included). With ``upto``, only that row's width is checked
    (a row-level symptom explained by its own raggedness) and reading stops there.
    """
    bad: list[tuple[int, UnicodeDecodeError]] = []
    row, start = 0, 2
    with _open_text_bytes(path) as f, _unlimited_csv_fields():
        reader = csv.reader(_decoded_lines(f, bad), strict=True)
        try:
            width = len(next(reader, []))
            for record in reader:
                row += 1
                if record and len(record) != width and upto in (None, row):
                    end = reader.line_num
                    where = f"line {start}" if end == start else f"lines {start}-{end}"
                    why = "; a quote left open joins lines: an unbalanced quote?" if end > start else ""
                    return f"row {row} ({where}): {len(record)} fields where the header has {width}{why}"
                if upto is not None and row >= upto:
                    return None
                start = reader.line_num + 1
        except csv.Error as exc:
            reason = "a quote opened here is never closed" if "end of data" in str(exc) else str(exc)
            return f"row {row + 1} (line {start}): {reason}; an unbalanced quote?"
    if bad:
        return f"row {row + 1} (line {bad[0][0]}): {_not_utf8(*bad[0])}"
    return None


def _jsonl_problem(path: str) -> str | None:
    """``row <n> (line <l>): <problem>`` for the first line of a JSON lines file that is not one JSON
    object (invalid UTF-8, truncated or otherwise invalid JSON), or None. Rows skip blank lines."""
    row = 0
    with _open_text_bytes(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row += 1
            try:
                record = json.loads(line)
            except UnicodeDecodeError:
                return f"row {row} (line {number}): invalid UTF-8; {_UTF8_ADVICE}"
            except ValueError as exc:
                cut = " (a truncated line?)" if not line.rstrip().endswith(b"}") else ""
                return f"row {row} (line {number}): not valid JSON{cut}: {exc}"
            if not isinstance(record, dict):
                return f"row {row} (line {number}): a JSON {type(record).__name__}, not an object"
    return None


def _require(
    path: str, present: Sequence[str], required: Iterable[str], what: str, known: Iterable[str] = ()
) -> list[str]:
    """Raise naming every missing column, with a present column of a similar name as a suggestion.

    Columns the reader knows (``required`` and ``known``) are never suggested for another one, and
    names are compared ignoring case, spaces, ``_`` and ``-``. Returns ``required`` (as a list).
    """
    required = list(required)
    missing = [c for c in required if c not in present]
    if not missing:
        return required
    unknown = [c for c in present if c not in required and c not in set(known)]
    problems = [f"{column!r}{_did_you_mean(column, unknown)}" for column in missing]
    found = f"; found {_names(present)}" if len(missing) > len(required) // 2 else ""
    raise IngestError(f"{path}: missing {what} column(s) {', '.join(problems)}{found}{_delimiter_hint(present)}")


def _did_you_mean(column: str, candidates: Sequence[str]) -> str:
    """`` (found 'x': did you mean 'column'?)`` for the closest candidate at a similarity >= 0.8."""
    key = _level_key(column)
    scored = [(difflib.SequenceMatcher(None, key, _level_key(c)).ratio(), c) for c in candidates]
    score, best = max(scored, default=(0.0, ""))
    return f" (found {best!r}: did you mean {column!r}?)" if score >= 0.8 else ""


def _names(columns: Sequence[str], limit: int = 8) -> str:
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return ", ".join(repr(c) for c in columns[:limit]) + more


def _delimiter_hint(present: Sequence[str]) -> str:
    """A hint when a one-column header looks like another delimiter's."""
    if len(present) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep.encode().decode("unicode_escape") in present[0]:
                return f"; the header is one column holding {name}: the file must be comma-separated"
    return ""


# --------------------------------------------------------------------------- validation


Problem = str | Callable[[dict], str]
Frame = pl.DataFrame | pl.LazyFrame


def _check(df: Frame, checks: dict[Problem, pl.Expr]) -> None:
    """Raise for the first failing check at its first offending row.

    ``checks`` maps a problem (a ``str.format`` template over the row's columns, or a function of
    the row) to a boolean expression that is true on bad rows (null counts as good); all checks are
    evaluated in one (streaming) pass, which counts the bad rows and finds the first by the row
    index ``_i`` (added when absent).
    """
    lf = df.lazy()
    if "_i" not in lf.collect_schema():
        lf = lf.with_row_index("_i")
    bad = [b.fill_null(False) for b in checks.values()]
    flags = lf.select(
        *[b.sum().alias(f"n{k}") for k, b in enumerate(bad)],
        *[pl.when(b).then(pl.col("_i")).min().alias(f"i{k}") for k, b in enumerate(bad)],
    ).collect(engine="streaming").row(0)
    for problem, n_bad, first in zip(checks, flags[: len(bad)], flags[len(bad):]):
        if n_bad:
            row = lf.filter(pl.col("_i") == first).drop("_i").collect().row(0, named=True)
            path = row["source_file"]
            if path.lower().endswith(".csv"):  # a ragged row or stray quote explains any symptom
                cause = _csv_problem(path, upto=row["source_row"])
                if cause:
                    raise IngestError(f"{path}: {cause}")
            text = problem(row) if callable(problem) else problem.format(**{k: _clip(v) for k, v in row.items()})
            more = f" ({n_bad - 1} more row(s) like this)" if n_bad > 1 else ""
            raise IngestError(f"{path}: row {row['source_row']}: {text}{more}")


def _clip(value: object, limit: int = 200) -> object:
    """Text longer than ``limit`` cut short for a message (a 2 MB field should not become one)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value):,} characters)"
    return value


def _first_copy(keys: list[str]) -> pl.Expr:
    """``file:row`` of the first row sharing ``keys`` (column ``_first``)."""
    return pl.format("{}:{}", "source_file", "source_row").first().over(keys).alias("_first")


def _integer(text: pl.Expr) -> pl.Expr:
    """Integer value of text such as ``4`` or ``4.0`` (null when not an integer, or beyond +-2^53,
    where floats stop being exact and 64-bit casts would overflow)."""
    number = text.str.strip_chars().cast(pl.Float64, strict=False)
    exact = number.is_finite() & (number == number.round()) & (number.abs() <= 2.0**53)
    return pl.when(exact).then(number).cast(pl.Int64)


def _distinct(df: Frame, column: str) -> pl.Series:
    """The distinct non-null texts of a column (one streaming pass over that column)."""
    return df.lazy().select(pl.col(column).drop_nulls().unique()).collect(engine="streaming").to_series()


def _per_text(df: Frame, column: str, function: Callable[[pl.Expr], pl.Expr]) -> tuple[pl.Series, pl.Series]:
    """(distinct non-null texts of a column, ``function`` of each): computed once per distinct text."""
    distinct = _distinct(df, column)
    return distinct, distinct.to_frame().select(function(pl.col(column))).to_series()


def _integer_per_text(df: Frame, column: str) -> pl.Expr:
    """:func:`_integer` of a column with few distinct texts, computed once per distinct text."""
    distinct, integers = _per_text(df, column, _integer)
    return pl.col(column).replace_strict(distinct, integers, default=None, return_dtype=pl.Int64)


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


# --------------------------------------------------------------------------- trials

#: Harness columns holding identifiers: whitespace around them is removed.
_ID_COLUMNS = ("prompt_id", "model", "test_id")
#: Harness columns holding codes or levels: whitespace around them removed, runs inside collapsed.
_CODE_COLUMNS = (
    "context_correlation_pair", "n_training_examples", "model_choice", "expected_deep_value_choice",
    "shallow_preference_choice", "generalized_deep_value", "success",
)
_CONTROL = r"[\x00-\x1f\x7f]"
_INT32_MAX = 2**31 - 1
_SHOW_ROWS = 5  # rows named in a warning


def _texts_where(df: Frame, where: dict[str, pl.Expr]) -> dict[str, pl.Series]:
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


def _tidy_whitespace(df: pl.LazyFrame, ids: Sequence[str], codes: Sequence[str]) -> pl.LazyFrame:
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
    suspects = _texts_where(df, {c: pl.col(c).str.contains(padded if c in ids else loose) for c in tidy})
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
        f"{_clip(example[0][0])!r} -> {_clip(example[1][0])!r}, in {'; '.join(_rows_named(df, where))}",
        IngestWarning,
        stacklevel=3,
    )
    return df.with_columns(
        pl.col(c).replace(before, after) for c, (before, after) in changes.items()
    )


def _level_key(level: str) -> str:
    """What two spellings of one level share: the text without case, spaces, ``_`` or ``-``."""
    return re.sub(r"[\s_\-]", "", level.casefold())


def _warn_case_variants(df: pl.LazyFrame, groups: dict[str, tuple[Sequence[str], Iterable[str]]]) -> None:
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
            by_key.setdefault(_level_key(level), []).append(level)
        for levels in (ls for ls in by_key.values() if len(ls) > 1):
            reference = max(levels, key=lambda level: (level in known, counts[level], level))
            for odd in (level for level in levels if level != reference and counts[level]):
                where = pl.any_horizontal(pl.col(c) == odd for c in columns)
                warnings.warn(
                    f"{name} {_clip(odd)!r} differs from {'the known ' if reference in known else ''}"
                    f"{_clip(reference)!r} only "
                    f"by case or spacing; kept as a separate level ({counts[odd]} row(s): "
                    f"{'; '.join(_rows_named(df, where))}). Correct the input if they are the same {name}",
                    IngestWarning,
                    stacklevel=3,
                )



def _code_trials(raw: pl.LazyFrame, vocabulary: list[str], models: ModelTable) -> pl.LazyFrame:
    """Validate harness rows and add the parsed design, short model name, status and outcome."""
    options = ", ".join(repr(o) for o in schema.OPTIONS)
    choice, expected = pl.col("model_choice"), pl.col("expected_deep_value_choice")
    n_train = _integer_per_text(raw, "n_training_examples")
    verdict = _integer_per_text(raw, "generalized_deep_value")
    pair = pl.col("context_correlation_pair")
    pairs = parse_pairs(_distinct(raw, "context_correlation_pair"), vocabulary)
    bad_pairs = pairs.filter(pl.col("value").is_null())["context_correlation_pair"].to_list()

    def pair_problem(row: dict) -> str:
        text = row["context_correlation_pair"]
        return (
            f"cannot parse context_correlation_pair {_clip(text)!r}: {_pair_problem(text, vocabulary)}. "
            f"Expected '<value>_<feature>_vs_<value>_<feature> - <context>' with values in "
            f"{sorted(vocabulary)}; pass values=... to extend the vocabulary"
        )

    _check(
        raw,
        {
            "empty prompt_id": pl.col("prompt_id").is_null(),
            "empty model": pl.col("model").is_null(),
            "empty context_correlation_pair": pair.is_null(),
            **{
                f"{c} {{{c}!r}} contains a control character (such as NUL)": pl.col(c).is_in(texts.implode())
                for c, texts in _texts_where(
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


def _reconcile(trials: Frame, on_conflict: ConflictPolicy) -> tuple[Frame, pl.DataFrame]:
    """Give every duplicate (model_id, prompt_id) copy but one the status superseded (or conflict).

    One copy stays in the likelihood: a parsed copy over failures; among parsed copies that agree
    the earliest; among parsed copies that disagree, whichever ``on_conflict`` says (none for
    ``exclude``, whose parsed copies become ``conflict``). Copies of a prompt must share its design.

    Only the copies are held in memory: a streaming pass finds the keys seen twice by a 64-bit hash
    (a collision merely brings a non-duplicate along, which the exact grouping then leaves out), and
    the new status and reason of the rows changed are joined back in while the trials stream.
    Rows are told apart by the row index ``_i`` (added, and dropped again, if absent); a DataFrame
    comes back as a DataFrame.
    """
    if isinstance(trials, pl.DataFrame):
        reconciled, reconciliation = _reconcile(trials.with_row_index("_i").lazy(), on_conflict)
        return reconciled.drop("_i").collect(), reconciliation
    key = ["model_id", "prompt_id"]
    hashed = pl.struct(key).hash().alias("_h")
    repeated = (
        trials.group_by(hashed).agg(pl.len()).filter(pl.col("len") > 1).select("_h")
        .collect(engine="streaming").to_series()
    )
    if repeated.is_empty():  # no prompt seen twice: no second pass
        return trials, pl.DataFrame(schema=RECONCILIATION_SCHEMA)
    design = ["test_id", "context_correlation_pair", "n_train", "expected_deep_value_choice"]
    copies = (
        trials.filter(hashed.is_in(repeated.implode()))
        .select("_i", "source_file", "source_row", "model", *key, "status", "model_choice", *design)
        .collect(engine="streaming")
        .sort("_i")
        .filter(pl.len().over(key) > 1)
    )
    if copies.is_empty():
        return trials, pl.DataFrame(schema=RECONCILIATION_SCHEMA)

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
        a, b = (copies.row(by_predicate=pl.col("_i") == first[k], named=True) for k in ("first_used", "other"))
        raise IngestError(
            f"{a['source_file']}: row {a['source_row']}: {n_conflicts} prompt(s) have conflicting "
            f"parsed answers; the first: prompt {_clip(a['prompt_id'])!r} of model {_clip(a['model_id'])!r} answered "
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
        )
    )
    changes = changed.lazy().select(
        "_i", pl.lit(True).alias("_changed"), pl.col("status").alias("_status"), pl.col("reason").alias("_reason")
    )
    changed_row = pl.col("_changed").fill_null(False)
    reconciled = (
        trials.join(changes, on="_i", how="left", maintain_order="left")
        .with_columns(
            pl.when(changed_row).then(pl.col("_status")).otherwise(pl.col("status")).alias("status"),
            pl.when(changed_row).then(pl.col("_reason")).otherwise(pl.col("reason")).alias("reason"),
            pl.when(~changed_row).then(pl.col("chose_deep")).alias("chose_deep"),
        )
        .drop("_changed", "_status", "_reason")
    )
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
    use none (``exclude``). Every input row is kept; see :data:`dvbstats.input.schema.STATUSES`.

    A directory's hive ``key=value`` sub-folders are read too, each key becoming a column. Columns
    beyond the harness's (say ``condition`` or ``run``) are kept after the trial columns, as numbers
    when every entry is one and as text otherwise, so a formula can use them.
    """
    _vocabulary(values)  # bad arguments before any file is touched
    _conflict_policy(on_conflict)
    return _read_dump_files(_expand(paths), values=values, models=models, on_conflict=on_conflict)


def _conflict_policy(on_conflict: str) -> None:
    if on_conflict not in get_args(ConflictPolicy):
        raise ValueError(f"on_conflict must be one of {get_args(ConflictPolicy)}, got {on_conflict!r}")


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
    _conflict_policy(on_conflict)
    vocabulary = _vocabulary(values)
    models = models or ModelTable.default()
    with ThreadPoolExecutor(max_workers=1) as pool:  # hash while polars parses
        digests = [pool.submit(sha256, file.path) for file in files]
        staged = [_stage(file, lambda present: _dump_columns(file.path, present), folder) for file in files]
        sources = tuple(
            Source(file.path, digest.result(), file.format, n_rows)
            for file, digest, (_, n_rows) in zip(files, digests, staged)
        )
    raw = pl.concat([frame for frame, _ in staged], how="diagonal").with_row_index("_i")  # all text here
    extras = [c for c in raw.collect_schema() if c not in ("_i", "source_file", "source_row", *schema.HARNESS_COLUMNS)]
    raw = _tidy_whitespace(raw, _ID_COLUMNS, (*_CODE_COLUMNS, *extras))
    trials = _code_trials(raw, vocabulary, models)
    data, reconciliation = _reconcile(trials, on_conflict)
    data = data.with_columns(_as_inferred(data, extras))
    dtypes = data.collect_schema()
    _warn_case_variants(
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
    _conflict_policy(on_conflict)
    return _stream_dump_files(_expand(paths), out, values=values, models=models, on_conflict=on_conflict)


def _stream_dump_files(
    files: Sequence[InputFile], out: str | Path | None, *, values: Iterable[str], models: ModelTable | None,
    on_conflict: ConflictPolicy,
) -> TrialFile:
    scratch = None if out else tempfile.TemporaryDirectory(prefix="dvbstats-trials-")
    path = Path(out or Path(scratch.name) / "trials.parquet")
    with tempfile.TemporaryDirectory(prefix="dvbstats-ingest-") as folder:
        trials, sources, reconciliation = _trials_plan(files, Path(folder), values, models, on_conflict)
        trials.sink_parquet(path, compression="zstd", metadata=_metadata(sources, reconciliation), engine="streaming")
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
    harness = _require(path, present, schema.HARNESS_COLUMNS, "harness", known=schema.IGNORED_COLUMNS)
    others = [c for c in present if c not in harness and c not in schema.IGNORED_COLUMNS]
    taken = [c for c in others if c in schema.TRIAL_SCHEMA or c in schema.DERIVED]
    if taken:
        warnings.warn(
            f"{path}: column(s) {_names(taken)} not kept: the trial table derives its own "
            "(rename them in the dump to use them)",
            IngestWarning,
            stacklevel=4,
        )
    return harness + [c for c in others if c not in taken]


# --------------------------------------------------------------------------- cells


def sources(paths: Sequence[str | Path] | str | Path) -> tuple[Source, ...]:
    """Every input file behind ``paths`` with its SHA-256, format and number of data rows."""
    scan = {"csv": pl.scan_csv, "jsonl": pl.scan_ndjson, "parquet": pl.scan_parquet}
    return tuple(
        Source(f.path, sha256(f.path), f.format, scan[f.format](f.path).select(pl.len()).collect().item())
        for f in _expand(paths)
    )


def is_cell_table(path: str | Path | InputFile) -> bool:
    """Whether a file holds aggregated counts (``n_trials`` or ``n_deep``, no ``prompt_id``) rather
    than trials; a cell table lacking one count column is still a cell table (and is told so)."""
    file = path if isinstance(path, InputFile) else InputFile(str(path), _format(Path(path)))
    return _looks_like_cells(_columns(file))


def _looks_like_cells(columns: Sequence[str]) -> bool:
    return ("n_trials" in columns or "n_deep" in columns) and "prompt_id" not in columns


def _cell_columns(path: str, present: list[str]) -> list[str]:
    """Check a cell table's columns; return them all (the model id column first)."""
    ids = "model_id" if "model_id" in present else "model"
    return _require(path, present, (ids, "n_trials", "n_deep"), "cell table") + [
        c for c in present if c not in (ids, "n_trials", "n_deep")
    ]


def _read_cell_files(files: Sequence[InputFile], models: ModelTable) -> pl.DataFrame:
    """Read, validate and concatenate cell tables that share their columns."""
    frames = []
    for file in files:
        frame = _read_text(file, lambda present: _cell_columns(file.path, present))
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

    counts = {c: _integer(pl.col(c)) for c in schema.CELL_COUNTS if c in text.columns}
    typed = {
        c: (_integer(pl.col(c)) if dtype.is_integer() else pl.col(c)).cast(dtype, strict=False)
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
    """A text column as integers or numbers when every non-empty entry is one, else as text."""
    return text.to_frame().select(_as_inferred(text.to_frame(), [text.name])).to_series()


def _as_inferred(df: Frame, columns: Sequence[str]) -> list[pl.Expr]:
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
    stream: bool = False,
) -> TrialTable | TrialFile | pl.DataFrame:
    """Read trial dumps (-> :class:`TrialTable`) or cell tables (-> DataFrame), whichever ``paths`` hold.

    ``values`` and ``on_conflict`` apply to dumps only; with ``stream``, dumps are written to a
    temporary file by :func:`stream_dumps` (-> :class:`TrialFile`). Mixing the two kinds is an error.
    """
    files = _expand(paths)
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
