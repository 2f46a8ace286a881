"""Inspect AI evaluation logs as binary judgments: ``.eval`` archives and ``.json`` logs.

An ``.eval`` log is a zip archive (deflate, or zstd, Inspect's default since 0.3.206; Python's
``zipfile`` reads zstd from 3.14, ``backports.zstd`` before) holding ``header.json`` (the eval
spec: ``eval.model``, ``eval.task``, ...) and ``summaries.json`` (per sample and epoch: ``id``,
``epoch``, ``scores`` -> ``{scorer: {value, ...}}``); an unfinished log has ``_journal/start.json``
and ``_journal/summaries/*.json`` instead. A ``.json`` log is one object with the same spec and a
``samples`` list. Neither needs the ``inspect-ai`` package.

One row per sample and epoch: the model id as written (``openai/azure/gpt-4o-mini``), the item
``<task>:<sample id>`` (sample ids are unique within a task only), the design columns ``task``
and ``epoch`` (epochs are repeated trials of an item), the outcome coded from the chosen
scorer's value by :func:`~dvbstats.benchmarks.sources.records.code_score`.
"""

from __future__ import annotations

import re
import sys
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from dvbstats.benchmarks.sources.records import (
    LogFormat,
    Options,
    Records,
    clip,
    code_score,
    frame,
    identifier,
    load_json,
    need,
    source,
)
from dvbstats.input.files import IngestError, IngestWarning

if sys.version_info >= (3, 14):
    import zipfile
else:
    from backports.zstd import zipfile

#: How an Inspect ``.json`` log begins (its fields are written in this order).
_JSON_LOG = re.compile(rb'^\s*\{\s*"version"\s*:\s*\d+\s*,\s*"status"\s*:')
_JOURNAL = re.compile(r"^_journal/summaries/(\d+)\.json$")
_SAMPLE = re.compile(r"^samples/.+\.json$")


def claims(path: Path) -> bool:
    """An ``.eval`` file, or a ``.json`` file that begins as Inspect writes its logs."""
    suffix = path.suffix.lower()
    if suffix == ".eval":
        return True
    if suffix != ".json":
        return False
    try:
        with path.open("rb") as f:
            return bool(_JSON_LOG.match(f.read(256)))
    except OSError:
        return False


def companion(path: Path) -> bool:
    """Inspect's listing of a log folder."""
    return path.name in ("logs.json", "listing.json")


def _archive(path: Path) -> tuple[dict, list]:
    """The header and the sample summaries of an ``.eval`` archive."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{path}: not a zip archive, as an Inspect .eval log is ({exc})") from None
    with archive:
        names = archive.namelist()

        def member(name: str):
            try:
                return load_json(path, archive.read(name), name)
            except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError, ValueError) as exc:
                if isinstance(exc, IngestError):
                    raise
                raise IngestError(f"{path}: {name}: cannot be decompressed ({exc})") from None

        if "header.json" in names:
            header = member("header.json")
        elif "_journal/start.json" in names:
            header = member("_journal/start.json")
        else:
            raise IngestError(f"{path}: no header.json or _journal/start.json: not an Inspect .eval log")
        journal = sorted((int(m[1]), m[0]) for m in map(_JOURNAL.match, names) if m)
        if "summaries.json" in names:
            summaries = member("summaries.json")
        elif journal:
            summaries = [s for _, name in journal for s in _listed(path, member(name), name)]
        else:
            summaries = [member(name) for name in names if _SAMPLE.match(name)]
    return header, _listed(path, summaries, "summaries.json")


def _listed(path: Path, value, name: str) -> list:
    if not isinstance(value, list):
        raise IngestError(f"{path}: {name}: a JSON {type(value).__name__}, not a list of samples")
    return value


def _json_log(path: Path) -> tuple[dict, list]:
    """The header and the samples of a ``.json`` log."""
    log = load_json(path)
    if not isinstance(log, dict):
        raise IngestError(f"{path}: a JSON {type(log).__name__}, not an Inspect log object")
    samples = log.get("samples")
    if samples is None:
        raise IngestError(f"{path}: no samples: the log was written without them (log_samples=False), and "
                          "dvbstats needs each sample's score")
    return log, _listed(path, samples, "samples")


def _scorer(path: Path, samples: list, options: Options) -> str:
    """The scorer whose values are read: the one given, or the log's only one."""
    found = list(dict.fromkeys(name for s in samples if isinstance(s, dict) for name in (s.get("scores") or {})))
    if not found:
        raise IngestError(f"{path}: an unscored log: none of its {len(samples)} sample(s) has a score "
                          "(score it first, e.g. with `inspect score`)")
    if options.scorer is not None:
        if options.scorer not in found:
            raise IngestError(f"{path}: no scorer {options.scorer!r}; its scorers: {', '.join(found)}")
        return options.scorer
    if len(found) > 1:
        raise IngestError(f"{path}: scores from {len(found)} scorers ({', '.join(found)}); choose one with --scorer")
    return found[0]


def _error(sample: dict) -> str:
    error = sample.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return f" (sample error: {clip(message)})" if message else ""


def read(files: Sequence[Path], options: Options) -> Records:
    """One row per sample and epoch of every log; the scorer's value coded as the outcome."""
    rows: list[dict] = []
    sources = []
    for path in files:
        header, samples = _archive(path) if path.suffix.lower() == ".eval" else _json_log(path)
        spec = need(header, "eval", f"{path}: header", dict)
        model = need(spec, "model", f"{path}: eval", str)
        task = need(spec, "task", f"{path}: eval", str)
        scorer = _scorer(path, samples, options)
        status = header.get("status")
        if status not in (None, "success"):
            warnings.warn(IngestWarning(f"{path}: the log's status is {status!r}; its {len(samples)} recorded "
                                        "sample(s) are read, samples it never finished are absent"), stacklevel=2)
        for number, sample in enumerate(samples, start=1):
            where = f"{path}: sample {number}"
            if not isinstance(sample, dict):
                raise IngestError(f"{where}: a JSON {type(sample).__name__}, not a sample object")
            sample_id = identifier(need(sample, "id", where), where, "id")
            epoch = need(sample, "epoch", f"{where} (id {sample_id})", int)
            score = (sample.get("scores") or {}).get(scorer)
            if score is not None and not isinstance(score, dict):
                raise IngestError(f"{where} (id {sample_id}): score {scorer!r} is a {type(score).__name__}, "
                                  "not a score object")
            value = score.get("value") if score else None
            outcome, reason = code_score(value, options.partial)
            if value is None:
                reason = f"no {scorer} score{_error(sample)}"
            rows.append({"source_file": str(path), "source_row": number, "model_id": model,
                         "item": f"{task}:{sample_id}", "task": task, "epoch": epoch, "outcome": outcome,
                         "reason": reason})
        sources.append(source(path, f"inspect-{path.suffix.lower().lstrip('.')}", len(samples)))
    return Records(frame(rows, {"task": pl.String, "epoch": pl.Int64}), tuple(sources), ("task", "epoch"))


INSPECT = LogFormat(
    name="inspect",
    title="Inspect AI log",
    claims=claims,
    companion=companion,
    read=read,
    options=frozenset({"scorer", "partial"}),
)
