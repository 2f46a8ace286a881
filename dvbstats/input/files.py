"""Input files found and read as text: paths, folders, globs and hive ``key=value`` folders expanded; each file's
first bytes checked against its extension; its header and required columns; its rows read as text; and every
problem named by file and row (a parser's failure re-diagnosed with Python's csv and json modules).

What every reader of tables shares (DVB dumps and cell tables in :mod:`dvbstats.input.ingest`, binary and HVSB
judgments in :mod:`dvbstats.benchmarks`): a bad input raises :class:`IngestError` naming the file, the 1-based
data row and the problem rather than a cast error from deep inside polars.
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
import stat
import sys
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

#: File formats by extension.
FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class IngestError(ValueError):
    """A bad input file: ``"<file>: row <n>: <problem>"`` (the row omitted for file-level problems)."""


class IngestWarning(UserWarning):
    """Input that was read, but not exactly as written: normalised text, likely misspelt levels,
    skipped links or columns."""


@dataclass(frozen=True)
class Source:
    """One input file: the path as given, its SHA-256, its format and its number of data rows."""

    path: str
    sha256: str
    format: str
    n_rows: int


@dataclass(frozen=True)
class InputFile:
    """One data file to read: its path as found, its format, and the ``key=value`` folders of a
    hive-partitioned dataset between the directory given and the file (each adds a text column)."""

    path: str
    format: str
    partitions: tuple[tuple[str, str | None], ...] = ()


#: A problem of a row in words: a ``str.format`` template over the row's columns, or a function of the row.
Problem = str | Callable[[dict], str]
#: A table in memory or a lazy plan over files: the checks and tidying take either.
Frame = pl.DataFrame | pl.LazyFrame
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # a null partition value in hive folder names


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


def real_path(path: str | Path, folders: dict[str, str]) -> str:
    """The real path of ``path`` (``os.path.realpath``, as ``Path.resolve``), the key by which a file reached twice
    is read once, with each folder's worked out once in ``folders``: a file that is not a symbolic link is its
    folder's real path and its name, so that a tree of 1,728 files (the HVSB example) costs a system call per
    file, not one per folder above each."""
    text = os.fspath(path)
    if os.path.islink(text):
        return os.path.realpath(text)
    parent, name = os.path.split(text)
    if parent not in folders:
        folders[parent] = os.path.realpath(parent or os.curdir)
    return os.path.join(folders[parent], name)


def expand(paths: Sequence[str | Path] | str | Path) -> list[InputFile]:
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
            found.append(InputFile(str(path), file_format(path)))
        elif path.is_symlink():
            raise IngestError(f"{text}: a dangling symbolic link (to {os.readlink(path)}, which does not exist)")
        elif any(ch in text for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text))]
            _warn_dangling(text, matches)
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise IngestError(f"{text}: no file matches this pattern")
            found.extend(InputFile(str(m), file_format(m)) for m in matches)
        else:
            raise IngestError(f"{text}: no such file or directory")
    if not found:
        raise IngestError("no input files given")
    check_utf8_names(f.path for f in found)
    files: dict[str, InputFile] = {}
    folders: dict[str, str] = {}
    for file in found:
        files.setdefault(real_path(file.path, folders), file)
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


def file_format(path: Path) -> str:
    """The format of a data file by its extension (:data:`FORMATS`); an unknown extension raises."""
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


def columns(file: InputFile) -> list[str]:
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


def read_text(file: InputFile, wanted: Callable[[list[str]], list[str]]) -> pl.DataFrame:
    """:func:`_scan_text` collected into memory, partitions added; an empty file raises."""
    lf, partitions = _scan_text(file, wanted)
    with _parse_errors(file):
        df = lf.collect()
    if df.height == 0:
        raise IngestError(f"{file.path}: empty file (no rows)")
    return _add_partitions(df, partitions)


def stage(file: InputFile, wanted: Callable[[list[str]], list[str]], folder: Path) -> tuple[pl.LazyFrame, int]:
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
            check(df, {f"{key} is {{{key}!r}} but the file sits in the folder {key}={level}": (
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


def require(
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
    found = f"; found {quoted(present)}" if len(missing) > len(required) // 2 else ""
    raise IngestError(f"{path}: missing {what} column(s) {', '.join(problems)}{found}{_delimiter_hint(present)}")


def _did_you_mean(column: str, candidates: Sequence[str]) -> str:
    """`` (found 'x': did you mean 'column'?)`` for the closest candidate at a similarity >= 0.8."""
    key = level_key(column)
    scored = [(difflib.SequenceMatcher(None, key, level_key(c)).ratio(), c) for c in candidates]
    score, best = max(scored, default=(0.0, ""))
    return f" (found {best!r}: did you mean {column!r}?)" if score >= 0.8 else ""


def quoted(columns: Sequence[str], limit: int = 8) -> str:
    """Column names quoted for a message, the first ``limit`` of them (``'a', 'b' and 3 more``)."""
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return ", ".join(repr(c) for c in columns[:limit]) + more


def _delimiter_hint(present: Sequence[str]) -> str:
    """A hint when a one-column header looks like another delimiter's."""
    if len(present) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep.encode().decode("unicode_escape") in present[0]:
                return f"; the header is one column holding {name}: the file must be comma-separated"
    return ""


def level_key(level: str) -> str:
    """What two spellings of one level share: the text without case, spaces, ``_`` or ``-``."""
    return re.sub(r"[\s_\-]", "", level.casefold())


def check(df: Frame, checks: dict[Problem, pl.Expr]) -> None:
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
            text = problem(row) if callable(problem) else problem.format(**{k: clip(v) for k, v in row.items()})
            more = f" ({n_bad - 1} more row(s) like this)" if n_bad > 1 else ""
            raise IngestError(f"{path}: row {row['source_row']}: {text}{more}")


def clip(value: object, limit: int = 200) -> object:
    """Text longer than ``limit`` cut short for a message (a 2 MB field should not become one)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value):,} characters)"
    return value
