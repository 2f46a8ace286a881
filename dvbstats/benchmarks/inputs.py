"""Everything a fit needs from its input files, for any benchmark, in one call: :func:`inputs`.

DVB inputs go through :func:`dvbstats.fit.read_inputs` unchanged; HVSB and binary judgments are
read into a :class:`~dvbstats.benchmarks.common.JudgmentTable` and aggregated over the formula's
variables by :func:`~dvbstats.benchmarks.common.to_cells`. The per-model quality counts have the
columns of DVB's (``n_rows, n_prompts, n_used, n_unparsed, n_superseded, n_conflict``), a "prompt"
being one trial key (HVSB: a model's judgment of one item under one condition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from dvbstats import cells as cellmod
from dvbstats import formula as formulamod
from dvbstats import schema
from dvbstats.benchmarks import BENCHMARKS, detect
from dvbstats.benchmarks.binary import binary_benchmark
from dvbstats.benchmarks.common import JudgmentTable, to_cells
from dvbstats.benchmarks.definition import Benchmark
from dvbstats.registry import ModelTable


@dataclass(frozen=True)
class BenchmarkInputs:
    """:class:`dvbstats.fit.Inputs` plus the benchmark and the formula it was read for."""

    benchmark: Benchmark
    formula: formulamod.Formula
    cells: cellmod.CellTable
    quality: pl.DataFrame  # per model status counts
    reconciliation: pl.DataFrame
    models: ModelTable  # the model table rows of the models present
    inputs: list[dict]  # path, sha256, format, n_rows, kind
    trials: Any  # ingest.TrialTable, JudgmentTable or None (a DVB cell table)


def default_models(benchmark: str, paths: Sequence[str | Path]) -> ModelTable:
    """The model table a benchmark uses when none is given (HVSB: its published models, plus the
    synthetic example's stand-ins when the input is the example)."""
    if benchmark != "hvsb":
        return ModelTable.default()
    from dvbstats.simulate_hvsb import example_models, is_hvsb_example
    from dvbstats.benchmarks.hvsb import model_table

    return example_models() if is_hvsb_example(paths) else model_table()


def quality_counts(table: JudgmentTable, key: Sequence[str]) -> pl.DataFrame:
    """Per model: rows, trials (distinct ``key``), rows per status; the columns of DVB's table."""
    counts = table.status_counts(("model",))
    trials = table.data.group_by("model").agg(pl.struct(list(key)).n_unique().cast(pl.Int64).alias("n_prompts"))
    return counts.join(trials, on="model").select(
        "model", "n_rows", "n_prompts", *[f"n_{s}" for s in schema.STATUSES]).sort("model")


def inputs(
    paths: Sequence[str | Path] | str | Path,
    *,
    benchmark: str | None = None,
    formula: str | formulamod.Formula | None = None,
    models: ModelTable | str | Path | None = None,
    values: Sequence[str] = (),
    on_conflict: str = "error",
    model_column: str = "model",
    item_column: str = "item",
    outcome: str = "outcome",
) -> BenchmarkInputs:
    """Read ``paths`` as ``benchmark`` (detected when None) and aggregate them for ``formula``.

    ``formula``: default the benchmark's. ``models``: a model table or its CSV path; default
    :func:`default_models`. ``values``: extra DVB value names. ``model_column``, ``item_column``,
    ``outcome``: a binary-judgment table's columns (other benchmarks ignore them).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [str(p) for p in paths]
    name = detect(paths, benchmark)
    b = binary_benchmark(outcome=outcome) if name == "binary" else BENCHMARKS[name]
    f = formula if isinstance(formula, formulamod.Formula) else formulamod.parse(formula or b.default_formula)
    if f.response != b.outcome:
        raise formulamod.FormulaError(
            f"the formula models {f.response!r}, but the {b.name} outcome is {b.outcome!r}: write {b.outcome} ~ ...")
    table = models if isinstance(models, ModelTable) else (
        ModelTable.read(models) if models else default_models(name, paths))
    if name == "dvb":
        from dvbstats import fit

        vocab = tuple(schema.DVB_VALUES) + tuple(v for v in values if v not in schema.DVB_VALUES)
        data = fit.read_inputs(paths, f, table, vocab, on_conflict)
        return BenchmarkInputs(b, f, **asdict_shallow(data))
    options = {"model": model_column, "item": item_column, "outcome": outcome} if name == "binary" else {}
    trials: JudgmentTable = b.read(paths, models=table, on_conflict=on_conflict, **options)
    unknown = [v for v in f.variables if v not in trials.data.columns]
    if unknown:
        raise formulamod.FormulaError(
            f"the formula uses {', '.join(map(repr, unknown))}, not a column of the {b.name} input "
            f"(it has {', '.join(c for c in trials.data.columns if c in b.design or c == 'model')})")
    key = ("condition", b.item) if name == "hvsb" else (b.item,)
    return BenchmarkInputs(
        benchmark=b,
        formula=f,
        cells=to_cells(trials, b.outcome, b.item, f.variables),
        quality=quality_counts(trials, key),
        reconciliation=trials.reconciliation,
        models=table.resolve(trials.data["model_id"].unique(maintain_order=True).to_list()),
        inputs=[asdict(s) | {"kind": "trials"} for s in trials.sources],
        trials=trials,
    )


def asdict_shallow(data: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict without deep-copying them (``asdict`` would copy every table)."""
    return {k: getattr(data, k) for k in data.__dataclass_fields__}
