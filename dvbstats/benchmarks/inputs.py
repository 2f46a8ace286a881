"""Reading any benchmark's input into what a fit needs: :func:`read` (used by :func:`dvbstats.api.load`).

DVB inputs are read by :mod:`dvbstats.input.ingest` as before; HVSB and binary judgments into a
:class:`~dvbstats.benchmarks.common.JudgmentTable`, aggregated over a formula's variables by
:func:`~dvbstats.benchmarks.common.to_cells`. The per-model quality counts have the columns of
DVB's (``n_rows, n_prompts, n_used, n_unparsed, n_superseded, n_conflict``), a "prompt" being one
trial key (HVSB: a model's judgment of one item under one condition).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import polars as pl

from dvbstats.benchmarks import BENCHMARKS, detect, sources
from dvbstats.benchmarks.common import JudgmentTable
from dvbstats.benchmarks.definition import Benchmark, Example, register_example, simulated
from dvbstats.input import schema
from dvbstats.input.files import IngestError
from dvbstats.input.registry import ModelTable
from dvbstats.simulate.example import is_example, write_example
from dvbstats.simulate.hvsb import example_models, is_hvsb_example, write_hvsb_example


#: Columns a binary-judgment table gets from its reader, not from the user's design.
READER_COLUMNS = frozenset({"source_file", "source_row", "model_id", "model", "item", "status", "reason"})


#: The embedded examples the definitions name (``DVB.simulated``, ``HVSB.simulated``): written by
#: :mod:`dvbstats.simulate`, which sits above the definitions and below this module. DVB's names the published
#: models, as DVB's input does.
register_example("dvb example", Example(write_example, is_example, ModelTable.default))
register_example("hvsb example", Example(write_hvsb_example, is_hvsb_example, example_models))


def default_models(b: Benchmark, synthetic: bool) -> ModelTable:
    """The model table ``b`` uses when none is given: its own (HVSB: its published models), or its embedded
    example's when the input is the example (HVSB: plus the synthetic stand-ins)."""
    example = simulated(b)
    return example.models() if synthetic and example is not None else b.models()


def example_of(benchmark: str | None, judgments: bool = True) -> Example | None:
    """The embedded example of ``benchmark``, else of the first registered benchmark that has one among those of
    judgments (HVSB's, which :func:`read` reads) or, ``judgments=False``, the others (DVB's, which
    :func:`dvbstats.api.load` reads); None when there is none."""
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
    asked = [BENCHMARKS[benchmark]] if benchmark is not None else [
        b for b in BENCHMARKS.values() if b.judgments == judgments]
    return next((e for e in map(simulated, asked) if e is not None), None)


def embedded(benchmark: str | None, judgments: bool = True) -> Example:
    """The embedded example read when given no input (:func:`example_of`); an error when there is none."""
    example = example_of(benchmark, judgments)
    if example is None:
        raise ValueError(f"the {benchmark} benchmark has no embedded example: give its input files")
    return example


def trial_key(b: Benchmark) -> tuple[str, ...]:
    """The columns that, with the model, identify one trial of ``b``: its design variables (HVSB: condition
    and item, with the dataset and scenario type the item determines; binary: item and design columns)."""
    return tuple(c for c in b.design if c != "model")


def quality_counts(table: JudgmentTable, key: Sequence[str]) -> pl.DataFrame:
    """Per model: rows, trials (distinct ``key``), rows per status; the columns of DVB's table."""
    counts = table.status_counts(("model",))
    trials = table.data.group_by("model").agg(pl.struct(list(key)).n_unique().cast(pl.Int64).alias("n_prompts"))
    return counts.join(trials, on="model").select(
        "model", "n_rows", "n_prompts", *[f"n_{s}" for s in schema.STATUSES]).sort("model")


def read(
    paths: Sequence[str | Path] | str | Path | None,
    *,
    benchmark: str | None = None,
    models: ModelTable | str | Path | None = None,
    on_conflict: str = "error",
    model_column: str = "model",
    item_column: str = "item",
    outcome: str = "outcome",
    reference: float | None = None,
    direction: str | None = None,
    reading: sources.Options = sources.Options(),
) -> tuple[Benchmark, JudgmentTable, ModelTable, list[dict], bool]:
    """Read HVSB or binary-judgment ``paths`` (the benchmark detected unless given).

    Returns the benchmark, its judgment table, the model-table rows of the models present, the
    input provenance and whether the input is a synthetic example (``paths=None`` writes and reads
    the embedded synthetic HVSB example). ``model_column``, ``item_column``, ``outcome``: a
    binary-judgment table's columns; ``reference``, ``direction``: its reference rate and which way it is
    better (none by default: see :func:`~dvbstats.benchmarks.binary.binary_benchmark`). ``reading``: how
    evaluation logs and wide matrices are read (:mod:`dvbstats.benchmarks.sources`). DVB inputs are
    :mod:`dvbstats.input.ingest`'s, not this function's.
    """
    synthetic = False
    if paths is None:
        paths, synthetic = embedded(benchmark).paths(), True
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    b = BENCHMARKS[detect(paths, benchmark, reading)]
    if b.configure is None and (reference is not None or direction is not None):
        raise ValueError(f"a reference or direction is given for binary judgments only; {b.name} defines its own")
    log_format = sources.detect(paths, reading) if b.logs else None
    if reading.given() and log_format is None:
        raise ValueError(f"{', '.join(reading.given())}: options of evaluation logs and wide matrices, which "
                         "this input is not")
    if b.configure is not None:
        b = b.configure(outcome=outcome, reference=reference, direction=direction)
    if not b.judgments:  # DVB: harness dumps and cell tables, read by ingest
        raise ValueError(f"{paths[0]}: a {b.name} input, not judgments; read it with dvbstats.load")
    example = simulated(b)
    if example is not None and not synthetic:
        synthetic = example.recognises(paths)
    table = models if isinstance(models, ModelTable) else (
        ModelTable.read(models) if models else default_models(b, synthetic))
    options = {"model": model_column, "item": item_column, "outcome": outcome} if b.columns else {}
    trials: JudgmentTable = (
        sources.read(paths, reading, models=table, on_conflict=on_conflict, outcome=outcome) if log_format
        else b.read(paths, models=table, on_conflict=on_conflict, **options))
    trials = replace(trials, benchmark=b.name)  # the shared builders label their tables binary judgments
    if b.configure is not None:  # its default formula and design follow the table's columns (a condition or not)
        design = [c for c in trials.data.columns if c not in READER_COLUMNS and c != outcome]
        b = b.configure(outcome=outcome, reference=reference, direction=direction, design=design)
    with warnings.catch_warnings():  # the reader has already warned about unknown ids
        warnings.simplefilter("ignore")
        present = table.resolve(trials.data["model_id"].unique(maintain_order=True).to_list())
    return b, trials, present, [asdict(s) | {"kind": "trials"} for s in trials.sources], synthetic


def judged(source, reading: sources.Options = sources.Options()) -> bool:
    """Whether ``source`` (paths) is an HVSB judgment tree or file, evaluation logs or a wide matrix
    (``reading``): read by :func:`read`, not by ingest."""
    if source is None or not isinstance(source, (str, Path, list, tuple)):
        return False
    paths = [source] if isinstance(source, (str, Path)) else source
    trees = [b.tree for b in BENCHMARKS.values() if b.tree is not None and b.judgments]
    return any(tree.holds(Path(p)) for tree in trees for p in map(str, paths)) \
        or sources.detect(paths, reading) is not None


def judged_as(paths) -> str | None:
    """The benchmark other than DVB that ingest-refused ``paths`` are detected as (binary judgments, or a
    registered benchmark whose definition recognises them), or None."""
    try:
        found = detect(paths)
    except (IngestError, ValueError, OSError):
        return None
    return found if BENCHMARKS[found].judgments else None
