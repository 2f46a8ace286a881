"""Evaluation logs and wide matrices read as binary judgments: one module per format, registered here.

Each format (:class:`~dvbstats.benchmarks.sources.records.LogFormat`) says which files it reads
and turns them into trial records; :func:`read` codes them into the binary benchmark's
:class:`~dvbstats.benchmarks.common.JudgmentTable` (status, reason, reconciled copies, model
names), so everything downstream is the binary benchmark's. Adding a format is one module and one
entry in :data:`FORMATS`.

- ``inspect``: Inspect AI ``.eval`` and ``.json`` logs (:mod:`.inspect_logs`)
- ``lm_eval``: lm-evaluation-harness ``samples_<task>_<timestamp>.jsonl`` (:mod:`.lm_eval`)
- ``helm``: HELM run folders, ``per_instance_stats.json`` (:mod:`.helm`)
- ``every_eval_ever``: Every Eval Ever instance JSONL (:mod:`.every_eval_ever`)
- ``wide``: wide correctness matrices, read only when asked for (:mod:`.wide`)

Files, folders (searched recursively) and globs are accepted; in a folder, files no format reads
(and that are not known companions, such as lm-eval's ``results_*.json``) are skipped with one
warning; a file named explicitly that no format reads, beside files one does, is an error.
"""

from __future__ import annotations

import glob
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dvbstats.benchmarks.common import JudgmentTable, binary_judgments
from dvbstats.benchmarks.sources.every_eval_ever import EVERY_EVAL_EVER
from dvbstats.benchmarks.sources.helm import HELM
from dvbstats.benchmarks.sources.inspect_logs import INSPECT
from dvbstats.benchmarks.sources.lm_eval import LM_EVAL
from dvbstats.benchmarks.sources.records import RESERVED, LogFormat, Options
from dvbstats.benchmarks.sources.wide import WIDE
from dvbstats.input.files import IngestError, IngestWarning, real_path
from dvbstats.input.reconcile import ConflictPolicy
from dvbstats.input.registry import ModelTable

__all__ = ["FORMATS", "LogFormat", "Options", "detect", "read"]

FORMATS: dict[str, LogFormat] = {f.name: f for f in (INSPECT, LM_EVAL, HELM, EVERY_EVAL_EVER, WIDE)}
_SHOW = 3  # skipped files named in a warning


@dataclass(frozen=True)
class _Classified:
    files: dict[str, list[Path]]  # format name -> its files
    skipped: list[Path]  # files of folders and globs no format reads


def _expand(paths: Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """Every file of ``paths`` and whether it was named (not found in a folder or by a glob); paths
    that do not exist are left to the caller's own reader to report."""
    found: list[tuple[Path, bool]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += [(p, False) for p in sorted(path.rglob("*")) if p.is_file()]
        elif path.is_file():
            found.append((path, True))
        elif any(ch in str(given) for ch in "*?["):
            found += [(Path(m), False) for m in sorted(glob.glob(str(given), recursive=True)) if Path(m).is_file()]
    unique: dict[str, tuple[Path, bool]] = {}
    folders: dict[str, str] = {}
    for path, named in found:
        unique.setdefault(real_path(path, folders), (path, named))
    return list(unique.values())


def _candidates(options: Options) -> list[LogFormat]:
    if options.source is not None and options.source not in FORMATS:
        raise ValueError(f"source must be one of {', '.join(FORMATS)}, got {options.source!r}")
    if options.wide is not None and options.source not in (None, "wide"):
        raise ValueError(f"wide reads a wide matrix; it does not apply to source={options.source!r}")
    if options.source or options.wide:
        return [FORMATS[options.source or "wide"]]
    return [f for f in FORMATS.values() if f.detected]


def _classify(paths: Sequence[str | Path], options: Options) -> _Classified | None:
    """Which format reads which file; None when no format reads any (and none was asked for)."""
    formats = _candidates(options)
    files: dict[str, list[Path]] = {}
    skipped: list[Path] = []
    named_other: list[Path] = []
    for path, named in _expand(paths):
        fmt = next((f for f in formats if f.claims(path)), None)
        if fmt is not None:
            files.setdefault(fmt.name, []).append(path)
        elif named:
            named_other.append(path)
        elif not any(f.companion(path) for f in formats):
            skipped.append(path)
    asked = options.source or options.wide
    if not files:
        if asked:
            raise IngestError(f"{paths[0]}: no {FORMATS[asked].title} file found")
        return None
    if named_other:
        first = next(iter(files.values()))[0]
        what = " or ".join(f.title for f in formats)
        raise IngestError(f"{named_other[0]}: not a {what} (mixed with {first}); fit one kind of input at a time")
    return _Classified(files, skipped)


def detect(paths: Sequence[str | Path] | str | Path | None, options: Options = Options()) -> str | None:
    """The format of ``paths`` (the first one when several), or None when no format reads them
    (DVB dumps, HVSB trees, long binary tables)."""
    if paths is None or not isinstance(paths, (str, Path, list, tuple)):
        return None
    classified = _classify([paths] if isinstance(paths, (str, Path)) else list(paths), options)
    return next(iter(classified.files)) if classified else None


def read(
    paths: Sequence[str | Path] | str | Path,
    options: Options = Options(),
    *,
    models: ModelTable | None = None,
    on_conflict: ConflictPolicy = "error",
    outcome: str = "outcome",
) -> JudgmentTable:
    """Read evaluation logs (or a wide matrix) into the binary benchmark's judgment table.

    Options a format does not use are refused, naming the format. Formats read together must have
    the same design columns. ``outcome`` names the 0/1 column.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    classified = _classify(paths, options)
    if classified is None:
        raise IngestError(f"{paths[0]}: not a file of a known evaluation-log format ({', '.join(FORMATS)})")
    formats = [FORMATS[name] for name in classified.files]
    unused = [o for o in options.given() if not any(o in f.options for f in formats)]
    if unused:
        raise ValueError(f"{', '.join(unused)}: not an option of {' or '.join(f.title for f in formats)} input")
    if outcome in RESERVED - {"outcome"}:
        raise ValueError(f"outcome {outcome!r} is a column dvbstats gives its own name")
    if classified.skipped:
        shown = ", ".join(str(p) for p in classified.skipped[:_SHOW])
        warnings.warn(IngestWarning(f"{len(classified.skipped)} file(s) that are no {' or '.join(f.title for f in formats)} "
                                    f"were skipped: {shown}{' ...' if len(classified.skipped) > _SHOW else ''}"),
                      stacklevel=2)
    records = [f.read(classified.files[f.name], options) for f in formats]
    other = next((r for r in records if r.design != records[0].design), None)
    if other is not None:
        a, b = records[0], other
        raise IngestError(f"{b.sources[0].path}: design columns {list(b.design)} differ from those of "
                          f"{a.sources[0].path} {list(a.design)}; read these formats in separate fits")
    design = records[0].design
    if outcome in design:
        raise ValueError(f"outcome {outcome!r} is the name of a design column of this input")
    trials = pl.concat([r.data for r in records]).rename({"outcome": outcome}).with_columns(
        pl.when(pl.col(outcome).is_null()).then(pl.lit("unparsed")).otherwise(pl.lit("used")).alias("status"))
    return binary_judgments(trials, design, outcome, [s for r in records for s in r.sources], models, on_conflict)
