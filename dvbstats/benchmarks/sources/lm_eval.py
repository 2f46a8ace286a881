"""lm-evaluation-harness ``--log_samples`` output as binary judgments.

``samples_<task>_<timestamp>.jsonl`` holds one line per document and filter: ``doc_id``,
``filter``, ``metrics`` (the names of the metric fields), each metric's value as a field, and
``doc_hash``; the model is named only in ``results_<timestamp>.json`` beside it (``model_name``).
The filter is the file's only one or ``--filter``; the metric ``--metric``, else the first of
``metrics`` whose every value is 0/1.

One row per line of the chosen filter: the item ``<task>:<doc_id>``, the design column ``task``.
A ``doc_id`` must carry one ``doc_hash`` across every file of its task: the same id over different
documents is an error, never a merge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from dvbstats.benchmarks.sources.records import (
    LogFormat,
    Options,
    Records,
    code_score,
    frame,
    identifier,
    is_binary_value,
    json_lines,
    load_json,
    need,
    same_content,
    source,
)
from dvbstats.input.files import IngestError

_TIMESTAMP = r"\d{4}-\d{2}-\d{2}T[0-9.\-:]+"
_SAMPLES = re.compile(rf"^samples_(?P<task>.+)_(?P<time>{_TIMESTAMP})\.jsonl$")
_RESULTS = re.compile(rf"^results_{_TIMESTAMP}\.json$")


def claims(path: Path) -> bool:
    """A ``samples_<task>_<timestamp>.jsonl`` file."""
    return bool(_SAMPLES.match(path.name))


def companion(path: Path) -> bool:
    """A ``results_<timestamp>.json`` file."""
    return bool(_RESULTS.match(path.name))


def _model(path: Path, stamp: str) -> str:
    """The model name in the results file of the same run."""
    results = path.with_name(f"results_{stamp}.json")
    if not results.is_file():
        raise IngestError(f"{path}: no {results.name} beside it: lm-evaluation-harness names the model only there")
    record = load_json(results)
    if not isinstance(record, dict):
        raise IngestError(f"{results}: a JSON {type(record).__name__}, not a results object")
    name = record.get("model_name")
    if not name:  # older harness versions: pretrained=... in the model arguments
        args = str((record.get("config") or {}).get("model_args") or "")
        name = dict(a.split("=", 1) for a in args.split(",") if "=" in a).get("pretrained")
    if not name:
        raise IngestError(f"{results}: no 'model_name' (nor pretrained= in config.model_args)")
    return str(name)


def _choose(path: Path, what: str, given: str | None, found: list[str], flag: str) -> str:
    if given is not None:
        if given not in found:
            raise IngestError(f"{path}: no {what} {given!r}; its {what}s: {', '.join(found)}")
        return given
    if len(found) > 1:
        raise IngestError(f"{path}: {len(found)} {what}s ({', '.join(found)}); choose one with {flag}")
    return found[0]


def _metric(path: Path, lines: list[tuple[int, dict]], given: str | None) -> str:
    """The metric read: the one given, else the first of ``metrics`` whose every value is 0/1."""
    names = list(dict.fromkeys(m for _, line in lines for m in (line.get("metrics") or [])))
    if given is not None:
        return _choose(path, "metric", given, names or [given], "--metric")
    for name in names:
        if all(is_binary_value(line.get(name)) for _, line in lines):
            return name
    raise IngestError(f"{path}: no metric is 0/1 on every document (metrics: {', '.join(names) or 'none'}); "
                      "choose one with --metric (partial credit: --partial)")


def read(files: Sequence[Path], options: Options) -> Records:
    """One row per document of the chosen filter; the metric's value coded as the outcome."""
    rows: list[dict] = []
    sources = []
    hashes: dict[tuple[str, str], tuple[str, str]] = {}  # (task, doc_id) -> (doc_hash, where first seen)
    for path in files:
        match = _SAMPLES.match(path.name)
        task, model = match["task"], _model(path, match["time"])
        lines = list(json_lines(path))
        if not lines:
            raise IngestError(f"{path}: no documents")
        filters = list(dict.fromkeys(str(need(line, "filter", f"{path}: line {n}")) for n, line in lines))
        chosen = _choose(path, "filter", options.filter, filters, "--filter")
        lines = [(n, line) for n, line in lines if str(line["filter"]) == chosen]
        metric = _metric(path, lines, options.metric)
        for number, line in lines:
            where = f"{path}: line {number}"
            doc = identifier(need(line, "doc_id", where), where, "doc_id")
            same_content(hashes, task, doc, line.get("doc_hash"), where, "doc_id")
            outcome, reason = code_score(line.get(metric), options.partial)
            if metric not in line:
                reason = f"no {metric!r} value"
            rows.append({"source_file": str(path), "source_row": number, "model_id": model,
                         "item": f"{task}:{doc}", "task": task, "outcome": outcome, "reason": reason})
        sources.append(source(path, "lm-eval-samples", len(lines)))
    return Records(frame(rows, {"task": pl.String}), tuple(sources), ("task",))


LM_EVAL = LogFormat(
    name="lm_eval",
    title="lm-evaluation-harness samples",
    claims=claims,
    companion=companion,
    read=read,
    options=frozenset({"metric", "filter", "partial"}),
)
