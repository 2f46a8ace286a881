"""The canonical trial and cell schemas and the DVB value vocabulary.

This is the one place where column names and dtypes are defined; every stage that
reads or writes a trial table or a cell table checks itself against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

#: Columns a harness dump must have; others are kept as extra trial columns (except IGNORED_COLUMNS).
HARNESS_COLUMNS: tuple[str, ...] = (
    "prompt_id",
    "model",
    "test_id",
    "context_correlation_pair",
    "n_training_examples",
    "raw_response",
    "model_choice",
    "expected_deep_value_choice",
    "shallow_preference_choice",
    "generalized_deep_value",
    "success",
    "error",
)

#: Optional harness columns not kept in the trial table.
IGNORED_COLUMNS: tuple[str, ...] = ("traceback",)

#: The two answer options a parsed response may carry.
OPTIONS: tuple[str, ...] = ("Option A", "Option B")

#: The 11 values of the published benchmark, by value set (Ross's prima facie duties; Schwartz's basic values).
DVB_VALUE_SETS: dict[str, tuple[str, ...]] = {
    "prima_facie": (
        "fidelity",
        "reparation",
        "justice",
        "beneficence",
        "self_improvement",
        "non_maleficence",
    ),
    "basic_values": ("security", "conformity", "tradition", "benevolence", "universalism"),
}
DVB_VALUES: tuple[str, ...] = tuple(v for vs in DVB_VALUE_SETS.values() for v in vs)

#: The 8 contexts of the published benchmark.
DVB_CONTEXTS: tuple[str, ...] = (
    "commerce",
    "communication",
    "customer service",
    "education",
    "finance",
    "healthcare",
    "legal",
    "productivity",
)

#: Why a trial is (or is not) in the likelihood.
#: ``used``: a parsed Option A/B answer; ``unparsed``: the harness could not parse the
#: response or the API call failed; ``superseded``: a duplicate copy of a prompt replaced by
#: another copy (identical, or a failure replaced by a parsed answer); ``conflict``: a parsed
#: copy that disagrees with another parsed copy and was set aside by the ``exclude`` policy.
STATUSES: tuple[str, ...] = ("used", "unparsed", "superseded", "conflict")
Status = pl.Enum(list(STATUSES))

#: The canonical trial table: one row per harness row, nothing dropped.
TRIAL_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_row": pl.Int64(),  # 1-based data row within its file (header not counted)
    "model_id": pl.String(),  # as the harness wrote it
    "model": pl.String(),  # short name from the model table
    "prompt_id": pl.String(),
    "test_id": pl.String(),
    "value": pl.String(),  # preferred value v_pref (the deep value the person holds)
    "feature": pl.String(),  # preferred shallow-feature pole f_pref
    "value_less": pl.String(),  # the less-preferred value v_less
    "feature_less": pl.String(),  # the other pole f_less
    "feature_dim": pl.String(),  # the feature dimension: both poles, sorted, joined by "/"
    "context": pl.String(),
    "n_train": pl.Int32(),  # in-context training examples
    "model_choice": pl.String(),
    "expected_deep_value_choice": pl.String(),
    "chose_deep": pl.Int8(),  # 1 deep value, 0 shallow feature, null when not used
    "status": Status,
    "reason": pl.String(),  # why a trial is not used (harness error, duplicate policy, ...)
    "raw_response": pl.String(),
}

#: Count columns of a binomial cell table; the other columns are the design variables.
CELL_COUNTS: tuple[str, ...] = ("n_prompts", "n_trials", "n_deep")

#: Design variables derived from trial columns when a formula asks for them.
#: ``prompt`` is the benchmark item (shared across models), for item effects ``(1|prompt)``.
DERIVED = {"log_n_train": pl.col("n_train").cast(pl.Float64).log(), "prompt": pl.col("prompt_id")}


#: Dtypes of the extra columns a trial table carries after TRIAL_SCHEMA (dump columns beyond the harness's).
EXTRA_DTYPES: tuple[pl.DataType, ...] = (pl.Int64(), pl.Float64(), pl.String())


def conform(df: pl.DataFrame, extra: Sequence[str] = ()) -> pl.DataFrame:
    """Return ``df`` with the trial schema's columns, in order and with its dtypes, then ``extra``."""
    return df.select([pl.col(c).cast(t) for c, t in TRIAL_SCHEMA.items()] + list(extra))


def is_conformant(df: pl.DataFrame) -> bool:
    """Whether ``df`` starts with exactly TRIAL_SCHEMA and its other columns are numbers or text
    named unlike any derived design variable."""
    columns = list(df.schema.items())
    extra = columns[len(TRIAL_SCHEMA):]
    return dict(columns[: len(TRIAL_SCHEMA)]) == TRIAL_SCHEMA and all(
        dtype in EXTRA_DTYPES and name not in TRIAL_SCHEMA and name not in DERIVED for name, dtype in extra
    )
