"""Copies of one trial reconciled: identical copies collapse, a parsed answer supersedes a failure, and
conflicting parsed answers stop the run unless the conflict policy says otherwise.

Every benchmark reconciles through :func:`reconcile` (DVB dumps directly; HVSB and binary judgments through
:func:`dvbstats.benchmarks.common.reconcile`), so "identical", "supersedes" and "conflict" mean one thing.
"""

from __future__ import annotations

from typing import Literal, get_args

import polars as pl

from dvbstats.input.files import Frame, IngestError, check, clip
from dvbstats.input.tidy import first_copy

#: What to do when copies of a trial carry different parsed answers: raise, keep the earliest or the latest copy,
#: or use none.
ConflictPolicy = Literal["error", "first", "last", "exclude"]
#: What reconciliation did with a prompt seen more than once.
ACTIONS: tuple[str, ...] = (
    "identical",  # every copy parsed, all with the same answer: the first kept
    "parsed_supersedes_failure",  # parsed copies replace failed ones
    "conflict_first",  # parsed copies disagree: the earliest kept (on_conflict="first")
    "conflict_last",  # ... the latest kept (on_conflict="last")
    "conflict_excluded",  # ... none used (on_conflict="exclude")
    "failures_only",  # no copy parsed: the first kept as unparsed
)
#: The reconciliation log: one row per trial seen more than once.
RECONCILIATION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "prompt_id": pl.String(),
    "n_copies": pl.Int64(),
    "action": pl.Enum(list(ACTIONS)),
}


def check_conflict_policy(on_conflict: str) -> None:
    """Refuse an ``on_conflict`` that is not a :data:`ConflictPolicy` (before any file is read)."""
    if on_conflict not in get_args(ConflictPolicy):
        raise ValueError(f"on_conflict must be one of {get_args(ConflictPolicy)}, got {on_conflict!r}")


def reconcile(trials: Frame, on_conflict: ConflictPolicy) -> tuple[Frame, pl.DataFrame]:
    """Give every duplicate (model_id, prompt_id) copy but one the status superseded (or conflict).

    One copy stays in the likelihood: a parsed copy over failures; among parsed copies that agree
    the earliest; among parsed copies that disagree, whichever ``on_conflict`` says (none for
    ``exclude``, whose parsed copies become ``conflict``). Copies of a prompt must share its design.

    Only the copies are held in memory: a streaming pass finds the keys seen twice by a 64-bit hash
    (a collision merely brings a non-duplicate along, which the exact grouping then leaves out), and
    the new status and reason of the rows changed are joined back in while the trials stream.
    Rows are told apart by the row index ``_i`` (added, and dropped again, if absent); a DataFrame
    comes back as a DataFrame.
    """
    if isinstance(trials, pl.DataFrame):
        reconciled, reconciliation = reconcile(trials.with_row_index("_i").lazy(), on_conflict)
        return reconciled.drop("_i").collect(), reconciliation
    key = ["model_id", "prompt_id"]
    hashed = pl.struct(key).hash().alias("_h")
    repeated = (
        trials.group_by(hashed).agg(pl.len()).filter(pl.col("len") > 1).select("_h")
        .collect(engine="streaming").to_series()
    )
    if repeated.is_empty():  # no prompt seen twice: no second pass
        return trials, pl.DataFrame(schema=RECONCILIATION_SCHEMA)
    design = ["test_id", "context_correlation_pair", "n_train", "expected_deep_value_choice"]
    copies = (
        trials.filter(hashed.is_in(repeated.implode()))
        .select("_i", "source_file", "source_row", "model", *key, "status", "model_choice", *design)
        .collect(engine="streaming")
        .sort("_i")
        .filter(pl.len().over(key) > 1)
    )
    if copies.is_empty():
        return trials, pl.DataFrame(schema=RECONCILIATION_SCHEMA)

    differs = [pl.when(pl.col(c).ne_missing(pl.col(c).first().over(key))).then(pl.lit(c)) for c in design]
    check(
        copies.with_columns(
            first_copy(key), pl.concat_list(differs).list.drop_nulls().list.join(", ").alias("_differs")
        ),
        {
            "prompt {prompt_id!r} of model {model_id!r} differs from its copy at {_first} in {_differs}; "
            "copies of a prompt must share its design": pl.col("_differs") != "",
        },
    )

    used = pl.col("status") == "used"
    first_choice = pl.col("model_choice").filter(used).first()
    groups = copies.group_by(key, maintain_order=True).agg(
        pl.col("model").first(),
        pl.len().alias("n_copies"),
        used.sum().alias("n_used"),
        pl.col("model_choice").filter(used).n_unique().alias("n_choices"),
        pl.col("_i").first().alias("first"),
        pl.col("_i").filter(used).first().alias("first_used"),
        pl.col("_i").filter(used).last().alias("last_used"),
        pl.col("_i").filter(used & (pl.col("model_choice") != first_choice)).first().alias("other"),
    )
    conflict = pl.col("n_choices") > 1
    n_conflicts = groups.select(conflict.sum()).item()
    if n_conflicts and on_conflict == "error":
        first = groups.filter(conflict).row(0, named=True)
        a, b = (copies.row(by_predicate=pl.col("_i") == first[k], named=True) for k in ("first_used", "other"))
        raise IngestError(
            f"{a['source_file']}: row {a['source_row']}: {n_conflicts} prompt(s) have conflicting "
            f"parsed answers; the first: prompt {clip(a['prompt_id'])!r} of model {clip(a['model_id'])!r} answered "
            f"{a['model_choice']!r} here and {b['model_choice']!r} at {b['source_file']}:{b['source_row']}. "
            "Pass on_conflict='first', 'last' or 'exclude' to resolve"
        )

    conflict_action = {"first": "conflict_first", "last": "conflict_last", "exclude": "conflict_excluded"}
    keep_in_conflict = {"last": pl.col("last_used"), "exclude": pl.lit(None, pl.UInt32)}
    groups = groups.with_columns(
        pl.when(pl.col("n_used") == 0).then(pl.lit("failures_only"))
        .when(conflict).then(pl.lit(conflict_action.get(on_conflict, "")))
        .when(pl.col("n_used") < pl.col("n_copies")).then(pl.lit("parsed_supersedes_failure"))
        .otherwise(pl.lit("identical"))
        .alias("action"),
        pl.when(pl.col("n_used") == 0).then(pl.col("first"))
        .when(conflict).then(keep_in_conflict.get(on_conflict, pl.col("first_used")))
        .otherwise(pl.col("first_used"))
        .alias("keep"),
    ).with_columns(pl.coalesce("keep", "first_used").alias("ref"))
    labels = copies.select(
        pl.col("_i").alias("ref"), pl.format("{}:{}", "source_file", "source_row").alias("_ref")
    )
    changed = (
        copies.select("_i", *key, "status")
        .join(groups.select(*key, "keep", "ref", "action"), on=key)
        .join(labels, on="ref")
        .filter(pl.col("keep").is_null() | (pl.col("_i") != pl.col("keep")))
        .select(
            "_i",
            pl.when(used & (pl.col("action") == "conflict_excluded"))
            .then(pl.lit("conflict")).otherwise(pl.lit("superseded")).alias("status"),
            pl.when(used & (pl.col("action") == "conflict_excluded"))
            .then(pl.lit("conflicting parsed copies; on_conflict='exclude'"))
            .when(used & pl.col("action").str.starts_with("conflict"))
            .then(pl.format(f"conflicts with {{}}; on_conflict={on_conflict!r}", "_ref"))
            .otherwise(pl.format("duplicate of {}", "_ref"))
            .alias("reason"),
        )
    )
    changes = changed.lazy().select(
        "_i", pl.lit(True).alias("_changed"), pl.col("status").alias("_status"), pl.col("reason").alias("_reason")
    )
    changed_row = pl.col("_changed").fill_null(False)
    reconciled = (
        trials.join(changes, on="_i", how="left", maintain_order="left")
        .with_columns(
            pl.when(changed_row).then(pl.col("_status")).otherwise(pl.col("status")).alias("status"),
            pl.when(changed_row).then(pl.col("_reason")).otherwise(pl.col("reason")).alias("reason"),
            pl.when(~changed_row).then(pl.col("chose_deep")).alias("chose_deep"),
        )
        .drop("_changed", "_status", "_reason")
    )
    reconciliation = groups.select(list(RECONCILIATION_SCHEMA)).cast(RECONCILIATION_SCHEMA)
    return reconciled, reconciliation
