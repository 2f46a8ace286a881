"""The trial table: :class:`TrialTable` in memory, :class:`TrialFile` on disk (Parquet, read lazily), with their
input files and duplicate log in the Parquet metadata.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from dvbstats.input import schema
from dvbstats.input.files import Frame, IngestError, Source
from dvbstats.input.reconcile import RECONCILIATION_SCHEMA
from dvbstats.input.tidy import distinct

#: Parquet metadata keys of a trial table (and a judgment table): its input files and its duplicate log.
META_SOURCES = "dvbstats.sources"
META_RECONCILIATION = "dvbstats.reconciliation"


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
        return distinct(self.data, "model_id").sort().to_list()

    def write(self, path: str | Path) -> None:
        """Write ``data`` to Parquet (zstd); sources and reconciliation go in its key-value metadata.

        The metadata keys are ``dvbstats.sources`` (JSON list of :class:`Source` fields) and
        ``dvbstats.reconciliation`` (JSON rows), so the file is self-contained and plain Parquet
        readers still see the trial table.
        """
        self.data.write_parquet(path, compression="zstd", metadata=parquet_metadata(self.sources, self.reconciliation))

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


def parquet_metadata(sources: Sequence[Source], reconciliation: pl.DataFrame) -> dict[str, str]:
    """The Parquet key-value metadata of a trial table: its sources and reconciliation log as JSON."""
    return {
        META_SOURCES: json.dumps([asdict(s) for s in sources]),
        META_RECONCILIATION: reconciliation.write_json(),
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
        if META_SOURCES not in metadata or META_RECONCILIATION not in metadata:
            raise IngestError(f"{name}: not a trial table written by dvbstats (no dvbstats metadata)")
        missing = [c for c in schema.TRIAL_SCHEMA if c not in columns]
        if missing:
            raise IngestError(f"{name}: missing trial column(s) {', '.join(missing)}")
        sources = tuple(Source(**s) for s in json.loads(metadata[META_SOURCES]))
        reconciliation = pl.read_json(io.StringIO(metadata[META_RECONCILIATION]), schema=RECONCILIATION_SCHEMA)
        return cls(Path(path), sources, reconciliation)

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path)

    def status_counts(self) -> pl.DataFrame:
        return status_counts(self.scan())

    def model_ids(self) -> list[str]:
        return distinct(self.scan(), "model_id").sort().to_list()

    def write(self, path: str | Path) -> None:
        """Copy the file to ``path``."""
        shutil.copyfile(self.path, path)
