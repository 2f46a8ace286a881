"""Data: ingested input of any benchmark, not yet tied to a formula (what :func:`dvbstats.load` returns,
what a :class:`~dvbstats.results.fitted.Fit` records as its input, what a run folder's reader rebuilds)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dvbstats.benchmarks import Benchmark, JudgmentTable
from dvbstats.benchmarks.common import to_cells
from dvbstats.benchmarks.dvb import DVB
from dvbstats.benchmarks.inputs import quality_counts, trial_key
from dvbstats.input import cells as cellmod
from dvbstats.input.reconcile import RECONCILIATION_SCHEMA
from dvbstats.input.trials import TrialFile, TrialTable
from dvbstats.input.registry import ModelTable
from dvbstats.model.formula import Formula


@dataclass(frozen=True)
class Data:
    """Ingested input, not yet tied to a formula.

    ``trials``: the typed trial table (every row, with its status), in memory (:class:`TrialTable`)
    or in a Parquet file read lazily (:class:`TrialFile`, ``load(..., stream=True)``) — or
    ``counts``: an aggregated cell table; ``models``: the model-table rows of the models present;
    ``inputs``: provenance of every file read (path, SHA-256, format, rows); ``synthetic``: the
    embedded example.
    """

    trials: TrialTable | TrialFile | JudgmentTable | None
    counts: pl.DataFrame | None
    models: ModelTable
    inputs: list[dict]
    synthetic: bool = False
    benchmark: Benchmark = DVB  # what the outcome, rate and wording are (HVSB, binary: a JudgmentTable)

    def cells(self, formula: Formula) -> cellmod.CellTable:
        """Binomial cells over the formula's variables (model-table columns joined by model)."""
        if isinstance(self.trials, JudgmentTable):
            return to_cells(self.trials, self.benchmark.outcome, self.benchmark.item, formula.variables,
                            self.models.data)
        if self.trials is not None:
            return cellmod.from_trials(self.trials.scan(), formula.variables, self.models.data)
        return cellmod.from_counts(self.counts, formula.variables, self.models.data)

    def quality(self) -> pl.DataFrame:
        """Per model: rows, prompts, used, unparsed, superseded, conflicting (``data_quality.csv``)."""
        if isinstance(self.trials, JudgmentTable):
            return quality_counts(self.trials, trial_key(self.benchmark))
        if self.trials is not None:
            return self.trials.status_counts()
        by_model = cellmod.from_counts(self.counts, ("model",)).by_model()
        return by_model.select("model", n_rows="n_prompts", n_prompts="n_prompts", n_used="n_trials",
                               n_unparsed=pl.col("n_prompts") - pl.col("n_trials"))

    def reconciliation(self) -> pl.DataFrame:
        """Every prompt seen more than once and what was done with its copies."""
        return self.trials.reconciliation if self.trials is not None else pl.DataFrame(schema=RECONCILIATION_SCHEMA)

    def __repr__(self) -> str:
        rows = sum(i["n_rows"] for i in self.inputs)
        kind = f"{rows:,} trial rows" if self.trials is not None else f"{self.counts.height:,} cells"
        return (f"Data({kind} of {self.models.data.height} models from {len(self.inputs)} input(s)"
                f"{', SYNTHETIC' if self.synthetic else ''})")
