"""What every log reader shares: the reading options, the log-format record, score coding and JSON access.

A reader turns its files into :class:`Records`: one row per trial record of the log (a sample and
epoch, a document, an instance, a matrix cell) with ``source_file, source_row, model_id, item``,
its design columns, the coded ``outcome`` (Int8, null when the record cannot be scored) and a
``reason`` (why a record is out of the likelihood, or how a partial score was counted). Nothing is
dropped: a record that cannot be used stays as an ``unparsed`` row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import polars as pl

from dvbstats.input.files import IngestError, Source
from dvbstats.input.manifest import sha256

#: What ``partial`` may say about partial credit (Inspect ``P``, numbers strictly between 0 and 1).
PARTIAL = ("exclude", "0", "1")
#: What the rows of a wide matrix are.
WIDE = ("model", "item")
#: Columns a reader writes itself; a design column (a label-pattern group) may not take these names.
RESERVED = frozenset({"source_file", "source_row", "model_id", "model", "item", "outcome", "status", "reason"})
#: Characters of a value shown in a message.
_CLIP = 80


@dataclass(frozen=True)
class Options:
    """How logs are read: the format (``source``, else detected) and each format's choices.

    ``scorer``: the Inspect scorer (needed when a log has several); ``metric``: the lm-evaluation-
    harness metric or HELM stat; ``filter``: the lm-evaluation-harness filter (needed when a file
    has several); ``partial``: what partial credit counts as (``exclude``, ``0``, ``1``; default:
    left unparsed with a reason); ``wide``: what the rows of a wide matrix are (``model``/``item``);
    ``label_pattern``: a regular expression with named groups splitting a wide matrix's model
    labels into ``model`` and design columns.
    """

    source: str | None = None
    scorer: str | None = None
    metric: str | None = None
    filter: str | None = None
    partial: str | None = None
    wide: str | None = None
    label_pattern: str | None = None

    def __post_init__(self) -> None:
        if self.partial is not None and self.partial not in PARTIAL:
            raise ValueError(f"partial must be one of {', '.join(PARTIAL)}, got {self.partial!r}")
        if self.wide is not None and self.wide not in WIDE:
            raise ValueError(f"wide must be 'model' (rows are models) or 'item' (rows are items), got {self.wide!r}")
        if self.label_pattern is not None:
            if self.wide is None:
                raise ValueError("label_pattern splits the model labels of a wide matrix: give wide ('model' or 'item') too")
            groups = set(label_groups(self.label_pattern))
            if "model" not in groups:
                raise ValueError(f"label_pattern {self.label_pattern!r} needs a named group 'model', as in "
                                 "'(?P<model>.+)_(?P<condition>zero_shot|one_shot)'")
            clash = sorted(groups & (RESERVED - {"model"}))
            if clash:
                raise ValueError(f"label_pattern group(s) {clash} are names dvbstats gives its own columns; rename them")

    def given(self) -> list[str]:
        """The format choices set (every option but ``source``)."""
        return [f.name for f in fields(self) if f.name != "source" and getattr(self, f.name) is not None]


def label_groups(pattern: str) -> list[str]:
    """The named groups of a label pattern, in order (a bad expression is a ValueError saying so)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"label_pattern {pattern!r} is not a regular expression: {exc}") from None
    return sorted(compiled.groupindex, key=compiled.groupindex.get)


@dataclass(frozen=True)
class Records:
    """What a reader returns: the trial records, the files read and the design columns."""

    data: pl.DataFrame
    sources: tuple[Source, ...]
    design: tuple[str, ...]


@dataclass(frozen=True)
class LogFormat:
    """One log format: which files it reads, which it uses beside them, how it reads them.

    ``claims(path)``: a file of this format; ``companion(path)``: a file read beside a claimed one
    or known to belong to the same output (never warned about when a folder is read);
    ``read(files, options)``: the :class:`Records` of the claimed files; ``options``: the
    :class:`Options` fields it uses; ``detected``: whether inputs are recognised without being named.
    """

    name: str
    title: str
    claims: Callable[[Path], bool]
    companion: Callable[[Path], bool]
    read: Callable[[Sequence[Path], Options], Records]
    options: frozenset[str]
    detected: bool = True


def clip(value: object) -> str:
    """A value as shown in a message (long text cut short)."""
    text = str(value)
    return text if len(text) <= _CLIP else f"{text[:_CLIP]}... ({len(text):,} characters)"


def _partial(what: str, partial: str | None) -> tuple[int | None, str]:
    if partial is None:
        return None, f"{what}: not counted (choose --partial exclude, 0 or 1)"
    if partial == "exclude":
        return None, f"{what}: excluded (--partial exclude)"
    return int(partial), f"{what}: counted as {partial} (--partial {partial})"


def code_score(value: Any, partial: str | None) -> tuple[int | None, str | None]:
    """The 0/1 outcome of one score value and the reason it is not used (or how it was counted).

    ``C``/``I``, booleans and the numbers 0 and 1 are outcomes; ``P`` and numbers strictly between
    0 and 1 are partial credit (``partial`` says what it counts as; by default it is not counted);
    ``N`` (no answer), missing scores, other numbers, text and structured values are not outcomes.
    """
    if isinstance(value, bool):
        return int(value), None
    if value is None:
        return None, "no score"
    if isinstance(value, str):
        letter = value.strip()
        if letter in ("C", "I"):
            return int(letter == "C"), None
        if letter == "N":
            return None, "no answer (N)"
        if letter == "P":
            return _partial("partial credit (P)", partial)
        return None, f"score {clip(value)!r} is not C, I, P, N, a boolean or a number"
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return int(value), None
        if 0 < value < 1:
            return _partial(f"partial credit {value:g}", partial)
        return None, f"score {value:g} is not 0 or 1{'' if math.isnan(value) else ' (nor partial credit in (0, 1))'}"
    kind = f"keys {', '.join(map(repr, value))}" if isinstance(value, dict) else f"{len(value)} entries"
    return None, f"score is a {type(value).__name__} ({clip(kind)}), not one value"


def is_binary_value(value: Any) -> bool:
    """Whether a metric value is a 0/1 outcome (a boolean or the number 0 or 1)."""
    return isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1))


def load_json(path: Path, text: str | bytes | None = None, member: str = "") -> Any:
    """A JSON document (``text``, else the file's), an error naming the file (and archive member)."""
    where = f"{path}: {member}" if member else str(path)
    try:
        return json.loads(path.read_bytes() if text is None else text)
    except UnicodeDecodeError as exc:
        raise IngestError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise IngestError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of every non-empty line of a JSON-lines file; errors name the line."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except UnicodeDecodeError as exc:
                raise IngestError(f"{path}: line {number}: not UTF-8 text ({exc.reason})") from None
            except json.JSONDecodeError as exc:
                raise IngestError(f"{path}: line {number}: not valid JSON (column {exc.colno}: {exc.msg})") from None
            if not isinstance(record, dict):
                raise IngestError(f"{path}: line {number}: a JSON {type(record).__name__}, not an object")
            yield number, record


def first_line(path: Path) -> dict | None:
    """The first non-empty line of a file as a JSON object, or None (for recognising a format)."""
    try:
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None
    return None


def need(record: dict, key: str, where: str, kind: type | tuple[type, ...] = object) -> Any:
    """``record[key]``, an error naming ``where`` when it is missing, null or not of ``kind``."""
    value = record.get(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is None:
        raise IngestError(f"{where}: no {key!r}")
    if not isinstance(value, kinds) or (isinstance(value, bool) and not {bool, object} & set(kinds)):
        raise IngestError(f"{where}: {key!r} is a {type(value).__name__} ({clip(value)!r}), not a "
                          f"{' or '.join(k.__name__ for k in kinds)}")
    return value


def identifier(value: Any, where: str, key: str) -> str:
    """A sample or document id as text (ids are numbers or text in the logs)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and not value.strip()):
        raise IngestError(f"{where}: {key} {clip(value)!r} is not an id (text or a whole number)")
    return str(value).strip()


def same_content(seen: dict[tuple[str, str], tuple[str, str]], task: str, item: str, digest: Any, where: str,
                 what: str) -> None:
    """Check that an item id carries one content hash across files (``seen``: (task, id) -> (hash,
    where first seen)); the same id over different content is an error, never a merge."""
    if digest is None:
        return
    first, at = seen.setdefault((task, item), (str(digest), where))
    if first != str(digest):
        raise IngestError(f"{where}: {what} {item} of {task} has {what.split('_')[0]}_hash {digest}, but {first} at "
                          f"{at}: different content under one id is not merged")


def frame(rows: list[dict], design: dict[str, pl.DataType]) -> pl.DataFrame:
    """Trial records (dicts) as a frame with the columns every reader gives, then ``design``."""
    schema = {"source_file": pl.String, "source_row": pl.Int64, "model_id": pl.String, "item": pl.String,
              **design, "outcome": pl.Int8, "reason": pl.String}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def source(path: Path, fmt: str, n_rows: int) -> Source:
    """Provenance of one file read."""
    return Source(str(path), sha256(path), fmt, n_rows)
