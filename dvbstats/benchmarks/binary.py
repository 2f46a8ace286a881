"""Generic binary judgments: any table of model, item, a 0/1 outcome and design columns.

For evaluations other than DVB and HVSB: a CSV, JSON-lines or Parquet table (or several with the
same columns) with a model column, an item column (the benchmark item, shared across models), an
outcome column (``1``/``0``/``true``/``false``; empty when the answer could not be scored) and any
design columns (condition, prompt template, run, ...). Column names are configurable. One row is
one trial; copies of a trial (same model, item and design) are reconciled as DVB dumps are. Add a
column such as ``sample`` to the design when an item is deliberately answered several times.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import polars as pl

from dvbstats.benchmarks.common import JudgmentTable, binary_judgments
from dvbstats.benchmarks.definition import Benchmark, Direction
from dvbstats.input.files import IngestError, InputFile, Source, check, columns, expand, read_text, require
from dvbstats.input.reconcile import ConflictPolicy
from dvbstats.input.tidy import infer, tidy_whitespace
from dvbstats.input.manifest import sha256
from dvbstats.input.registry import ModelTable

_ONE = ("1", "true", "True", "TRUE", "1.0")
_ZERO = ("0", "false", "False", "FALSE", "0.0")
#: Column names of a table that is "clearly" binary judgments without being told.
DEFAULT_COLUMNS: tuple[str, str, str] = ("model", "item", "outcome")


def read_binary(
    paths: Sequence[str | Path] | str | Path,
    *,
    model: str = "model",
    item: str = "item",
    outcome: str = "outcome",
    design: Sequence[str] | None = None,
    models: ModelTable | None = None,
    on_conflict: ConflictPolicy = "error",
) -> JudgmentTable:
    """Read binary-judgment tables into a :class:`JudgmentTable`.

    The result has ``source_file, source_row, model_id, model, item, <design columns>, <outcome>,
    status, reason``: the model column's ids (short names from ``models``; unknown ids get derived
    names and a warning), the item as text, design columns as integers or numbers when every entry
    is one (else text), the outcome as Int8 (null and status ``unparsed`` when empty). ``design``:
    the design columns (default every other column of the first file).
    """
    if on_conflict not in get_args(ConflictPolicy):
        raise ValueError(f"on_conflict must be one of {get_args(ConflictPolicy)}, got {on_conflict!r}")
    named = (model, item, outcome)
    if len(set(named)) < 3:
        raise ValueError(f"model, item and outcome must be three different columns, got {named}")
    files = expand(paths)
    frames: list[pl.DataFrame] = []
    for file in files:
        path = file.path

        def wanted(present: list[str], path: str = path) -> list[str]:
            keep = require(path, present, named, "binary-judgment")
            extra = [c for c in present if c not in named] if design is None else list(design)
            return keep + require(path, present, extra, "design")

        frame = read_text(file, wanted)
        if frames and frame.columns != frames[0].columns:
            raise IngestError(
                f"{path}: columns {frame.columns[2:]} differ from those of {files[0].path} {frames[0].columns[2:]}"
            )
        frames.append(frame)
    # ids padded with whitespace are the same ids (as in DVB dumps; warned, naming the rows); blank ones are empty
    text = tidy_whitespace(pl.concat(frames).with_row_index("_i").lazy(), (model, item), ()).collect().drop("_i")
    factors = [c for c in text.columns[2:] if c not in named]
    clash = sorted({"model_id", "status", "reason", "source_file", "source_row"} & {outcome, *factors})
    if clash:
        raise IngestError(f"{files[0].path}: column name(s) {clash} are reserved; rename them or leave them out")
    check(text, {
        f"empty {model}": pl.col(model).is_null() | (pl.col(model) == ""),
        f"empty {item}": pl.col(item).is_null() | (pl.col(item) == ""),
        **{f"empty {c}": pl.col(c).is_null() for c in factors},
        f"{outcome} must be 0/1/true/false or empty, got {{{outcome}!r}}": (
            ~pl.col(outcome).str.strip_chars().is_in(_ONE + _ZERO)
        ),
    })
    answer = pl.col(outcome).str.strip_chars()
    trials = text.with_columns(
        pl.col(model).alias("model_id"),
        pl.col(item).alias("item"),
        pl.when(answer.is_in(_ONE)).then(1).when(answer.is_in(_ZERO)).then(0).cast(pl.Int8).alias(outcome),
    ).with_columns(
        pl.when(pl.col(outcome).is_not_null()).then(pl.lit("used")).otherwise(pl.lit("unparsed")).alias("status"),
        pl.when(pl.col(outcome).is_null()).then(pl.lit(f"empty {outcome}")).alias("reason"),
    )
    trials = trials.with_columns(*[infer(trials[c]) for c in factors])
    sources = [Source(f.path, sha256(f.path), f.format, frame.height) for f, frame in zip(files, frames)]
    return binary_judgments(trials, factors, outcome, sources, models, on_conflict)


#: The design column a binary table may carry that is a condition (prompt template, attack, shot count):
#: the default formula then fits it as a fixed effect with per-model slopes.
CONDITION = "condition"


def default_formula(outcome: str, design: Sequence[str]) -> str:
    """The default formula of binary judgments: with a ``condition`` column, condition as a fixed effect with
    per-model slopes and item effects (HVSB's form); without one, a Rasch model ``(1|model) + (1|item)``."""
    if CONDITION in design:
        return f"{outcome} ~ 1 + {CONDITION} + (1 + {CONDITION}|model) + (1|item)"
    return f"{outcome} ~ 1 + (1|model) + (1|item)"


#: The report's sections of binary judgments (names of ``dvbstats.report.sections.SECTIONS``): with a
#: ``condition``, the headline per model x condition and the condition contrasts.
REPORT: tuple[str, ...] = (
    "condition_headline", "models", "forest", "conditions", "contrasts", "agreement", "scaling", "variance",
    "prior_predictive", "ppc", "diagnostics", "quality", "condition_quality",
)


def is_binary_file(file: InputFile) -> bool:
    """Whether a data file is "clearly" binary judgments without being told: it has the columns
    :data:`DEFAULT_COLUMNS` (``model``, ``item``, ``outcome``)."""
    return set(DEFAULT_COLUMNS) <= set(columns(file))


def binary_benchmark(
    *,
    outcome: str = "outcome",
    rate_name: str = "rate",
    reference: float | None = None,
    reference_label: str = "",
    direction: Direction | None = None,
    design: Sequence[str] = (),
) -> Benchmark:
    """A generic binary benchmark: the user names the outcome and its rate, any reference line and direction.

    No reference and no direction unless given: a share of correct answers has no chance level the
    package could know, and ranks then say "highest rate". The primary estimands are the rate per
    model and, with a ``condition`` column, per model x condition with the paired condition contrasts.
    """
    if reference is not None and not 0 < reference < 1:
        raise ValueError(f"reference must be a rate between 0 and 1, got {reference!r}")
    design = tuple(c for c in design if c not in ("model", "item"))
    return Benchmark(
        name="binary",
        title="binary judgments",
        read=read_binary,
        outcome=outcome,
        rate_name=rate_name,
        rate_long=f"{rate_name}: P({outcome} = 1)",
        reference=reference,
        reference_label=reference_label or (f"the reference rate {reference:g} given by the user"
                                             if reference is not None else ""),
        default_formula=default_formula(outcome, design),
        design=("model", "item", *design),
        item="item",
        direction=direction,
        primary=f"the {rate_name} per model, averaged over the design cells of the data"
                + (f", and per model x {CONDITION} with the paired {CONDITION} contrasts per model"
                   if CONDITION in design else ""),
        wording={
            "outcome_phrase": f"{outcome} = 1",
            "headline": f"posterior {rate_name} per model",
            "below_reference": f"P({rate_name} < {reference:g})" if reference is not None else "",
            "reference_short": "reference",
        },
        report=REPORT,
        recognises=is_binary_file,
        logs=True,
        columns=True,
        configure=binary_benchmark,
    )


BINARY = binary_benchmark()
