"""Every Eval Ever instance-level JSONL (schema 0.3.x) as binary judgments, read natively.

One JSON object per line: ``schema_version``, ``model_id``, ``evaluation_name``, ``sample_id``,
``sample_hash`` (optional), ``evaluation: {score, is_correct}``, ``error``, and the input and
output text. The outcome is ``evaluation.is_correct``, else ``evaluation.score`` when it is 0 or
1 (partial scores as ``--partial`` says).

One row per line: the item ``<evaluation_name>:<sample_id>``, the design column ``task`` (the
evaluation name). A ``sample_id`` must carry one ``sample_hash`` across every file of its
evaluation: the same id over different samples is an error, never a merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from dvbstats.benchmarks.sources.records import (
    LogFormat,
    Options,
    Records,
    clip,
    code_score,
    first_line,
    frame,
    identifier,
    json_lines,
    need,
    same_content,
    source,
)
from dvbstats.input.files import IngestError

#: Fields that make a JSON line an Every Eval Ever instance.
_FIELDS = ("schema_version", "model_id", "evaluation_name", "sample_id", "evaluation")


def claims(path: Path) -> bool:
    """A ``.jsonl`` file whose first line is an instance record."""
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        return False
    record = first_line(path)
    return record is not None and all(field in record for field in _FIELDS)


def companion(path: Path) -> bool:
    """A ``.json`` file beside instance files (the aggregate record)."""
    return path.suffix.lower() == ".json" and any(p.suffix.lower() == ".jsonl" for p in path.parent.iterdir())


def read(files: Sequence[Path], options: Options) -> Records:
    """One row per instance; ``is_correct`` (else a 0/1 ``score``) as the outcome."""
    rows: list[dict] = []
    sources = []
    hashes: dict[tuple[str, str], tuple[str, str]] = {}  # (evaluation, sample_id) -> (sample_hash, where)
    for path in files:
        first = len(rows)
        for number, record in json_lines(path):
            where = f"{path}: line {number}"
            version = str(need(record, "schema_version", where))
            if not version.startswith("0.3") and not version.startswith("instance_level_eval_0.3"):
                raise IngestError(f"{where}: schema_version {clip(version)!r}; dvbstats reads version 0.3.x")
            task = need(record, "evaluation_name", where, str)
            sample = identifier(need(record, "sample_id", where), where, "sample_id")
            same_content(hashes, task, sample, record.get("sample_hash"), where, "sample_id")
            evaluation = need(record, "evaluation", where, dict)
            correct = evaluation.get("is_correct")
            outcome, reason = code_score(correct if isinstance(correct, bool) else evaluation.get("score"),
                                         options.partial)
            if correct is None and evaluation.get("score") is None:
                reason = "no is_correct or score" + (f" (error: {clip(record['error'])})" if record.get("error") else "")
            rows.append({"source_file": str(path), "source_row": number,
                         "model_id": need(record, "model_id", where, str), "item": f"{task}:{sample}",
                         "task": task, "outcome": outcome, "reason": reason})
        sources.append(source(path, "every-eval-ever-instances", len(rows) - first))
    return Records(frame(rows, {"task": pl.String}), tuple(sources), ("task",))


EVERY_EVAL_EVER = LogFormat(
    name="every_eval_ever",
    title="Every Eval Ever instances",
    claims=claims,
    companion=companion,
    read=read,
    options=frozenset({"partial"}),
)
