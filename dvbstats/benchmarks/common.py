"""What the benchmark readers share: the judgment table, its Parquet form, and duplicate reconciliation.

HVSB judgments and generic binary judgments are read into a :class:`JudgmentTable`: one row per
input row (nothing dropped), a ``status`` of :data:`dvbstats.input.schema.STATUSES` and a ``reason`` for
rows out of the likelihood, the input files, and a reconciliation log. Copies of one trial are
reconciled exactly as DVB dumps are, by :func:`dvbstats.input.reconcile.reconcile` itself (through
:func:`reconcile`, which maps a benchmark's key and answer onto the dump columns it reads), so the
three benchmarks cannot drift apart on what "identical", "supersedes" and "conflict" mean.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from dvbstats.input import cells, schema
from dvbstats.input.files import IngestError, Source
from dvbstats.input.reconcile import ConflictPolicy
from dvbstats.input.reconcile import reconcile as reconcile_dumps
from dvbstats.input.registry import ModelTable
from dvbstats.input.trials import META_RECONCILIATION, META_SOURCES

_META_BENCHMARK = "dvbstats.benchmark"
#: Separates a trial's key parts in the labels handed to the DVB reconciliation.
_LABEL = " | "


@dataclass(frozen=True)
class JudgmentTable:
    """Trial-level judgments of one benchmark, its input files and the duplicate log.

    ``data``: one row per input row with at least ``source_file, source_row, model, status, reason``
    and the benchmark's outcome; ``reconciliation``: one row per trial seen more than once, with the
    trial's key columns, ``n_copies`` and ``action`` (:data:`dvbstats.input.ingest.ACTIONS`).
    """

    benchmark: str
    data: pl.DataFrame
    sources: tuple[Source, ...]
    reconciliation: pl.DataFrame

    def status_counts(self, by: Sequence[str] = ("model",)) -> pl.DataFrame:
        """Per group: rows read, and rows per status (used, unparsed, superseded, conflict)."""
        status = pl.col("status")
        return (
            self.data.group_by(list(by))
            .agg(pl.len().alias("n_rows"), *[(status == s).sum().alias(f"n_{s}") for s in schema.STATUSES])
            .with_columns(pl.exclude(*by).cast(pl.Int64))
            .sort(list(by))
        )

    def write(self, path: str | Path) -> None:
        """Write ``data`` to Parquet (zstd), with the benchmark, sources and reconciliation as metadata."""
        self.data.write_parquet(
            path,
            compression="zstd",
            metadata={
                _META_BENCHMARK: self.benchmark,
                META_SOURCES: json.dumps([asdict(s) for s in self.sources]),
                META_RECONCILIATION: self.reconciliation.write_json(),
            },
        )

    @classmethod
    def read(cls, path: str | Path) -> JudgmentTable:
        """Read a table written by :meth:`write`."""
        try:
            metadata = pl.read_parquet_metadata(path)
            data = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise IngestError(f"{path}: cannot read as Parquet: {exc}") from None
        if _META_BENCHMARK not in metadata:
            raise IngestError(f"{path}: not a judgment table written by dvbstats (no benchmark metadata)")
        return cls(
            metadata[_META_BENCHMARK],
            data,
            tuple(Source(**s) for s in json.loads(metadata[META_SOURCES])),
            pl.read_json(io.StringIO(metadata[META_RECONCILIATION])),
        )


def is_judgment_table(path: str | Path) -> bool:
    """Whether ``path`` is a judgment table written by :meth:`JudgmentTable.write` (it records its benchmark)."""
    try:
        return _META_BENCHMARK in pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.PolarsError):
        return False


def reconcile(
    trials: pl.DataFrame,
    key: Sequence[str],
    answer: str,
    outcome: str,
    on_conflict: ConflictPolicy,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Reconcile copies of a trial (same ``key``) as DVB dumps are; return the trials and the log.

    ``trials`` has ``source_file, source_row, status`` (``used``/``unparsed``), ``reason``, the
    ``key`` columns (the first is the model id), the parsed ``answer`` (text, null when unparsed)
    and the coded ``outcome`` (null when unparsed). Copies must agree on everything but the answer;
    callers check that first. The log has the key columns, ``n_copies`` and ``action``.
    """
    model, *rest = key
    labels = trials.select(
        pl.col(model).alias("_model"),
        (pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in rest], separator=_LABEL)
         if rest else pl.lit("")).alias("_prompt"),
    )
    alike = pl.concat([trials, labels], how="horizontal").filter(
        pl.struct(key).n_unique().over("_model", "_prompt") > 1)
    if alike.height:
        first = alike.row(0, named=True)
        raise IngestError(
            f"{first['source_file']}: row {first['source_row']}: the values of {', '.join(rest)} "
            f"({', '.join(repr(first[c]) for c in rest)}) contain {_LABEL!r} and read like another trial's; "
            "rename them"
        )
    as_dumps = pl.DataFrame(
        {
            "source_file": trials["source_file"],
            "source_row": trials["source_row"],
            "model_id": labels["_model"],
            "model": labels["_model"],
            "prompt_id": labels["_prompt"],
            "status": trials["status"].cast(pl.String),
            "reason": trials["reason"],
            "model_choice": trials[answer].cast(pl.String),
            "chose_deep": trials[outcome].cast(pl.Int8),
        }
    ).with_columns(
        # Key parts the copies share by construction stand in for the dump's design columns.
        *[pl.lit(None, dtype).alias(c) for c, dtype in
          (("test_id", pl.String), ("context_correlation_pair", pl.String), ("n_train", pl.Int32),
           ("expected_deep_value_choice", pl.String))]
    )
    reconciled, log = reconcile_dumps(as_dumps, on_conflict)
    data = trials.with_columns(
        reconciled["status"].alias("status"),
        reconciled["reason"].alias("reason"),
        reconciled["chose_deep"].cast(trials.schema[outcome]).alias(outcome),
    )
    keys = pl.concat([labels, trials.select(key)], how="horizontal").unique(["_model", "_prompt"])
    log = (
        log.rename({"model": "_model", "prompt_id": "_prompt"})
        .join(keys, on=["_model", "_prompt"], how="left", maintain_order="left")
        .select(*key, "n_copies", "action")
    )
    return data, log


def binary_judgments(
    trials: pl.DataFrame,
    factors: Sequence[str],
    outcome: str,
    sources: Sequence[Source],
    models: ModelTable | None,
    on_conflict: ConflictPolicy,
) -> JudgmentTable:
    """The binary-judgment table of coded ``trials``: copies reconciled, models named, columns ordered.

    ``trials`` has ``source_file, source_row, model_id, item``, the design ``factors``, the Int8
    ``outcome`` (null when the row could not be scored), ``status`` (``used``/``unparsed``) and
    ``reason``. The key of a trial is the model, the item and the factors. Short names come from
    ``models`` (unknown ids get derived names and a warning).
    """
    trials, log = reconcile(trials, ("model_id", "item", *factors), outcome, outcome, on_conflict)
    names = (models or ModelTable.default()).resolve(trials["model_id"].unique(maintain_order=True)).data
    data = trials.select(
        "source_file",
        "source_row",
        "model_id",
        pl.col("model_id").replace_strict(names["model_id"], names["short_name"]).alias("model"),
        "item",
        *factors,
        outcome,
        pl.col("status").cast(schema.Status),
        "reason",
    )
    return JudgmentTable("binary", data, tuple(sources), log)


def to_cells(table: JudgmentTable, outcome: str, item: str, by: Sequence[str],
             models: pl.DataFrame | None = None) -> cells.CellTable:
    """Binomial cells of a judgment table over ``by`` (``n_prompts`` distinct items, ``n_trials``,
    ``n_deep`` = trials with ``outcome`` = 1), for the model code as it stands; ``models``
    (``ModelTable.data``) supplies model-table columns ``by`` asks for.

    A hook until :func:`dvbstats.input.cells.from_trials` takes the outcome and item columns by name:
    it reads them as ``chose_deep`` and ``prompt_id``. Categorical design columns become text.
    """
    data = table.data.with_columns(
        pl.col(outcome).alias("chose_deep"),
        pl.col(item).alias("prompt_id"),
        *[pl.col(c).cast(pl.String) for c, t in table.data.schema.items()
          if isinstance(t, pl.Enum) and c != "status"],
    )
    return cells.from_trials(data, by, models)
