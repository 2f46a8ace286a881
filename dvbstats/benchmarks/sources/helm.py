"""HELM run folders as binary judgments: ``per_instance_stats.json`` beside ``run_spec.json``.

``per_instance_stats.json`` is a list of ``{instance_id, train_trial_index, stats: [{name: {name,
split}, mean, ...}]}``; the model is ``adapter_spec.model`` of ``run_spec.json``, the run's name
(``mmlu:subject=philosophy,method=multiple_choice_joint,model=openai_gpt2``) without its model
arguments is the task. The stat is ``exact_match`` unless ``--metric`` names another; stats of
perturbed instances (a ``perturbation`` in the stat's name) are not the instance's.

One row per instance entry and split: the item ``<task>:<instance_id>``, the design columns
``task``, ``split`` and ``train_trial_index`` (HELM's repetitions of an instance with other
in-context examples); an instance-level ``perturbation`` adds a ``perturbation`` column.
"""

from __future__ import annotations

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
    load_json,
    need,
    source,
)
from dvbstats.input.files import IngestError

STATS = "per_instance_stats.json"
DEFAULT_METRIC = "exact_match"
_MODEL_ARGS = ("model", "model_deployment")


def claims(path: Path) -> bool:
    """A ``per_instance_stats.json`` file."""
    return path.name == STATS


def companion(path: Path) -> bool:
    """Any other file of a run folder (``run_spec.json``, ``stats.json``, ``scenario_state.json``, ...)."""
    return (path.parent / STATS).is_file()


def task_name(run: str) -> str:
    """The run's name without the model: ``mmlu:subject=philosophy,method=multiple_choice_joint``."""
    scenario, _, args = run.partition(":")
    kept = [a for a in args.split(",") if a and a.split("=", 1)[0] not in _MODEL_ARGS]
    return f"{scenario}:{','.join(kept)}" if kept else scenario


def _spec(path: Path) -> tuple[str, str]:
    """Model and task from the run folder's ``run_spec.json``."""
    spec_path = path.with_name("run_spec.json")
    if not spec_path.is_file():
        raise IngestError(f"{path}: no run_spec.json beside it: HELM names the model there")
    spec = load_json(spec_path)
    if not isinstance(spec, dict):
        raise IngestError(f"{spec_path}: a JSON {type(spec).__name__}, not a run spec")
    model = need(need(spec, "adapter_spec", str(spec_path), dict), "model", f"{spec_path}: adapter_spec", str)
    return model, task_name(need(spec, "name", str(spec_path), str))


def read(files: Sequence[Path], options: Options) -> Records:
    """One row per instance entry and split; the stat's mean coded as the outcome."""
    metric = options.metric or DEFAULT_METRIC
    rows: list[dict] = []
    sources = []
    for path in files:
        model, task = _spec(path)
        entries = load_json(path)
        if not isinstance(entries, list):
            raise IngestError(f"{path}: a JSON {type(entries).__name__}, not a list of instances")
        first, available = len(rows), set()
        for number, entry in enumerate(entries, start=1):
            where = f"{path}: entry {number}"
            if not isinstance(entry, dict):
                raise IngestError(f"{where}: a JSON {type(entry).__name__}, not an instance object")
            instance = identifier(need(entry, "instance_id", where), where, "instance_id")
            where = f"{where} ({instance})"
            names = [s.get("name") if isinstance(s, dict) else None for s in need(entry, "stats", where, list)]
            if not all(isinstance(n, dict) for n in names):
                raise IngestError(f"{where}: a stat without a name object")
            available.update(str(n.get("name")) for n in names)
            perturbation = entry.get("perturbation")
            base = {"source_file": str(path), "source_row": number, "model_id": model,
                    "item": f"{task}:{instance}", "task": task,
                    "train_trial_index": need(entry, "train_trial_index", where, int),
                    "perturbation": perturbation.get("name") if isinstance(perturbation, dict) else perturbation}
            chosen = [(n, s) for n, s in zip(names, entry["stats"]) if n.get("name") == metric and not n.get("perturbation")]
            if not chosen:
                split = next((str(n["split"]) for n in names if n.get("split")), "unknown")
                rows.append(base | {"split": split, "outcome": None, "reason": f"no {metric} stat"})
            for name, stat in chosen:
                outcome, reason = code_score(stat.get("mean"), options.partial)
                rows.append(base | {"split": str(name.get("split") or "unknown"), "outcome": outcome, "reason": reason})
        if entries and metric not in available:
            raise IngestError(f"{path}: no instance has a {metric!r} stat; its stats: {', '.join(sorted(available))}")
        sources.append(source(path, "helm-per-instance-stats", len(rows) - first))
    design = {"task": pl.String, "split": pl.String, "train_trial_index": pl.Int64}
    if any(r["perturbation"] for r in rows):  # perturbed instances are trials of their own
        design["perturbation"] = pl.String
        rows = [r | {"perturbation": r["perturbation"] or "none"} for r in rows]
    else:
        rows = [{k: v for k, v in r.items() if k != "perturbation"} for r in rows]
    return Records(frame(rows, design), tuple(sources), tuple(design))


HELM = LogFormat(
    name="helm",
    title="HELM run folder",
    claims=claims,
    companion=companion,
    read=read,
    options=frozenset({"metric", "partial"}),
)
