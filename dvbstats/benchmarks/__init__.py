"""Benchmarks as a concept: DVB, HVSB and generic binary judgments, and which one an input is.

Each benchmark is one :class:`Benchmark` record (:data:`BENCHMARKS`): how its files are read, its
outcome and rate, its reference line, default formula, design variables and wording.
:func:`detect` says which benchmark every input file belongs to, and refuses inputs that mix two;
:func:`load` reads the input with the detected (or the given) benchmark.

Adding a benchmark is one module holding its :class:`Benchmark` definition and one :func:`register` call
(``docs/design.md``, "Adding a benchmark").

Detection, per path, asks the definitions: a benchmark whose input is a folder tree told by its paths
(``Benchmark.tree``: under a ``<dataset>_judgment`` folder, or a ``.tsv`` file -> ``hvsb``); otherwise, per file,
the first registered benchmark whose definition ``recognises`` the file (the one asked for when it does too): a
harness dump or DVB cell table -> ``dvb``; a table with the columns ``model``, ``item`` and ``outcome`` ->
``binary``. Other tables are the input of a benchmark whose columns the caller names (``Benchmark.columns``)
only when it is asked for (``benchmark="binary"`` with their column names). Evaluation logs (Inspect,
lm-evaluation-harness, HELM, Every Eval Ever) and wide matrices, which :mod:`.sources` reads and tells
(``sources.detect``), are the input of the benchmark that reads logs (``Benchmark.logs``: binary judgments).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvbstats.benchmarks import sources
from dvbstats.benchmarks.binary import BINARY, binary_benchmark, read_binary
from dvbstats.benchmarks.common import JudgmentTable, is_judgment_table
from dvbstats.benchmarks.definition import Benchmark
from dvbstats.benchmarks.dvb import DVB
from dvbstats.benchmarks.hvsb import HVSB, read_judgments
from dvbstats.input import files

__all__ = [
    "BENCHMARKS", "Benchmark", "JudgmentTable", "binary_benchmark", "describe", "detect", "from_record", "is_judgment_table", "load",
    "read_binary", "read_judgments", "register", "sources",
]

#: Every benchmark by name, in the order :func:`detect` asks them (:func:`register` adds one).
BENCHMARKS: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    """Add ``benchmark`` to :data:`BENCHMARKS`: the API, the pipeline, the run folder and the report then know it
    by its name (``dvb.load(paths, benchmark=name)``). A name taken by another definition is an error; the same
    definition registered again is a no-op."""
    known = BENCHMARKS.get(benchmark.name)
    if known is not None and known is not benchmark:
        raise ValueError(f"a benchmark named {benchmark.name!r} is already registered")
    BENCHMARKS[benchmark.name] = benchmark
    return benchmark


register(DVB)
register(HVSB)
register(BINARY)


def _kind(file: files.InputFile, asked: str | None = None) -> str | None:
    """The benchmark a data file (not in a judgment tree) belongs to: ``asked`` when its definition recognises
    the file, else the first registered benchmark that does; None when none does."""
    claims = [name for name, b in BENCHMARKS.items() if b.recognises is not None and b.recognises(file)]
    return asked if asked in claims else next(iter(claims), None)


def unrecognised() -> str:
    """What a file no benchmark recognises is not, and how a table whose columns the caller names is read, in the
    words of the registered definitions (``input_files``, ``columns``)."""
    named = [b.input_files for b in BENCHMARKS.values() if b.input_files]
    hints = [f"for a table of {b.title} pass benchmark={b.name!r} (--benchmark {b.name}) and name its model, item "
             "and outcome columns" for b in BENCHMARKS.values() if b.columns]
    what = f"not {' nor '.join(named)}" if named else "no registered benchmark recognises it"
    return "; ".join([what, *hints])


def detect(paths: Sequence[str | Path] | str | Path, benchmark: str | None = None,
           reading: sources.Options = sources.Options()) -> str:
    """The benchmark of ``paths`` (``dvb``, ``hvsb`` or ``binary``); ``benchmark`` to choose it.

    Every file is classified; files of two benchmarks in one input is an error naming one file of
    each. A table no benchmark recognises is an error unless a benchmark whose columns the caller names is
    given (``benchmark="binary"``). Evaluation logs, and inputs ``reading`` names a log format or wide matrix
    for, are the input of the benchmark that reads logs (``binary``).
    """
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    asked = BENCHMARKS[benchmark] if benchmark is not None else None
    log_format = sources.detect(paths, reading)
    if log_format is not None:
        if asked is not None and not asked.logs:
            raise files.IngestError(f"{paths[0]}: {sources.FORMATS[log_format].title} input: binary judgments, "
                                     f"but benchmark={benchmark!r} was asked for")
        return benchmark or next(name for name, b in BENCHMARKS.items() if b.logs)
    kinds: dict[str, str] = {}  # benchmark -> first file
    trees = False  # whether a path is a benchmark's folder tree
    unknown: list[str] = []
    data_paths = []
    for given in paths:
        path = Path(given)
        tree = next((b for b in BENCHMARKS.values() if b.tree is not None and b.tree.holds(path)), None)
        if tree is not None:
            kinds.setdefault(tree.name, tree.tree.files([given])[0])
            trees = True
        if path.is_dir() and tree:  # data files beside the tree are classified too, never skipped
            data_paths += [str(p) for p in sorted(path.iterdir())
                           if p.is_file() and p.suffix.lower() in files.FORMATS]
        elif not tree:
            data_paths.append(given)
    if data_paths:
        for file in files.expand(data_paths):
            kind = _kind(file, benchmark)
            if kind is None:
                unknown.append(file.path)
            else:
                kinds.setdefault(kind, file.path)
    if asked is not None and asked.columns and not trees:
        return benchmark  # any table, its columns named by the caller
    if len(kinds) > 1:
        (a, file_a), (b, file_b) = list(kinds.items())[:2]
        raise files.IngestError(
            f"{file_b}: a {b} input mixed with a {a} input ({file_a}); fit one benchmark at a time"
        )
    if unknown:
        raise files.IngestError(f"{unknown[0]}: {unrecognised()}")
    found = next(iter(kinds))
    if benchmark is not None and benchmark != found:
        raise files.IngestError(f"{kinds[found]}: a {found} input, but benchmark={benchmark!r} was asked for")
    return found


def load(
    paths: Sequence[str | Path] | str | Path, benchmark: str | None = None, **options: Any
) -> tuple[Benchmark, Any]:
    """Detect (or take) the benchmark of ``paths`` and read them with its reader and ``options``
    (evaluation logs and wide matrices: :func:`sources.read`, with the :class:`sources.Options` fields)."""
    reading = sources.Options(**{k: options.pop(k) for k in sources.Options.__dataclass_fields__ if k in options})
    found = BENCHMARKS[detect(paths, benchmark, reading)]
    if found.logs and sources.detect(paths, reading):
        return found, sources.read(paths, reading, **options)
    return found, found.read(paths, **options)


def describe(b: Benchmark) -> dict[str, Any]:
    """The benchmark as ``manifest.json`` records it: name, rate names, direction, reference line, primary
    estimands and wording (what the report and console say; what :func:`from_record` rebuilds)."""
    return {
        "name": b.name, "title": b.title, "outcome": b.outcome, "item": b.item,
        "rate_name": b.rate_name, "rate_long": b.rate_long, "rate_by_condition": dict(b.rate_by_condition),
        "reference": b.reference, "reference_label": b.reference_label, "direction": b.direction,
        "primary": b.primary, "primary_condition": b.primary_condition, "ranked_rate": b.ranked_rate,
        "best": b.best, "design": list(b.design), "aliases": dict(b.aliases),
        "default_formula": b.default_formula, "wording": dict(b.wording),
    }


def from_record(record: dict[str, Any] | None) -> Benchmark:
    """The benchmark a run folder's manifest records (:func:`describe`); DVB when it records none."""
    if not record:
        return BENCHMARKS["dvb"]
    b = BENCHMARKS[record["name"]]
    if b.configure is not None:
        return b.configure(outcome=record["outcome"], rate_name=record.get("rate_name", "rate"),
                           reference=record.get("reference"), reference_label=record.get("reference_label", ""),
                           direction=record.get("direction"), design=record.get("design", ()))
    return b.for_outcome(record.get("outcome", b.outcome))
