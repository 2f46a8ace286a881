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
from dataclasses import asdict
from pathlib import Path

import polars as pl

from dvbstats.benchmarks import BENCHMARKS, in_judgment_tree, detect, sources
from dvbstats.benchmarks.binary import binary_benchmark
from dvbstats.benchmarks.common import JudgmentTable
from dvbstats.benchmarks.definition import Benchmark
from dvbstats.benchmarks.hvsb import model_table
from dvbstats.input import schema
from dvbstats.input.files import IngestError
from dvbstats.input.registry import ModelTable
from dvbstats.simulate.hvsb import example_models, is_hvsb_example, write_hvsb_example


#: Columns a binary-judgment table gets from its reader, not from the user's design.
READER_COLUMNS = frozenset({"source_file", "source_row", "model_id", "model", "item", "status", "reason"})


def default_models(benchmark: str, paths: Sequence[str | Path]) -> ModelTable:
    """The model table a benchmark uses when none is given (HVSB: its published models, plus the
    synthetic example's stand-ins when the input is the example)."""
    if benchmark != "hvsb":
        return ModelTable.default()
    return example_models() if is_hvsb_example(paths) else model_table()


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
        paths, synthetic = [str(write_hvsb_example())], True
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    name = detect(paths, benchmark, reading)
    if name != "binary" and (reference is not None or direction is not None):
        raise ValueError(f"a reference or direction is given for binary judgments only; {name} defines its own")
    log_format = sources.detect(paths, reading) if name == "binary" else None
    if reading.given() and log_format is None:
        raise ValueError(f"{', '.join(reading.given())}: options of evaluation logs and wide matrices, which "
                         "this input is not")
    b = binary_benchmark(outcome=outcome, reference=reference, direction=direction) if name == "binary" \
        else BENCHMARKS[name]
    table = models if isinstance(models, ModelTable) else (
        ModelTable.read(models) if models else default_models(name, paths))
    if not b.judgments:  # DVB: harness dumps and cell tables, read by ingest
        raise ValueError(f"{paths[0]}: a {b.name} input, not judgments; read it with dvbstats.load")
    if name == "hvsb" and not synthetic:
        synthetic = is_hvsb_example(paths)
    options = {"model": model_column, "item": item_column, "outcome": outcome} if name == "binary" else {}
    trials: JudgmentTable = (
        sources.read(paths, reading, models=table, on_conflict=on_conflict, outcome=outcome) if log_format
        else b.read(paths, models=table, on_conflict=on_conflict, **options))
    if name == "binary":  # its default formula and design follow the table's columns (a condition or not)
        design = [c for c in trials.data.columns if c not in READER_COLUMNS and c != outcome]
        b = binary_benchmark(outcome=outcome, reference=reference, direction=direction, design=design)
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
    return any(Path(p).suffix.lower() == ".tsv" or (Path(p).exists() and in_judgment_tree(Path(p)))
               for p in map(str, paths)) or sources.detect(paths, reading) is not None


def judged_as(paths) -> str | None:
    """The benchmark other than DVB that ingest-refused ``paths`` are detected as (binary judgments, or a
    registered benchmark whose definition recognises them), or None."""
    try:
        found = detect(paths)
    except (IngestError, ValueError, OSError):
        return None
    return found if found != "dvb" else None
