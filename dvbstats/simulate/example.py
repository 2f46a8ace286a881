"""The embedded synthetic example: published-scale dumps calibrated to the published DVB aggregates.

The trial-level dumps of the paper are not public. This example simulates, with
:mod:`dvbstats.simulate`, harness dumps for the 9 published models (12,000 prompts each) whose
true effects are calibrated on the logit scale to the published figures copied in
``dvbstats/paper2025/data/`` (provenance in the README.md there):

* model x preferred-value cells to the published model x value DVGR heatmap, context effects to
  the context margins, and finally model effects to the exact per-model raw DVGRs (raking: each
  sweep adjusts one margin's logits by logit(target) - logit(expected), on the realised prompts);
* the log(n_train) slope: least squares through the logits of the three n_train margins;
* the preferred-value frequencies: the value margins' parsed-trial counts;
* per-model unparsed rates: 1 - n_trials_parsed / 12000;
* feature dimensions: invented (the paper's are not published), pole effects Normal(0, 0.3).

One model's failed prompts are partly re-run in a second dump, so the example exercises duplicate
reconciliation. ``write_example`` records the files and their sha256 in ``SYNTHETIC.json``, which
also marks the data as synthetic for :func:`is_example`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import expit, logit

from dvbstats.input.cells import CellTable, from_trials
from dvbstats.input.manifest import sha256
from dvbstats.simulate.dvb import (
    StudyDesign,
    Effects,
    Simulation,
    draw_effects,
    draw_prompts,
    simulate,
)

#: Environment variable naming the folder the embedded examples are written to (see :func:`cache_dir`).
CACHE_ENV = "DVBSTATS_CACHE"
EXAMPLE_SEED: int = 20250512
#: Prompts per model in the published run.
N_PROMPTS: int = 12000
#: Invented shallow-feature dimensions (names with spaces, hyphens and underscores on purpose).
FEATURE_DIMS: tuple[tuple[str, str], ...] = (
    ("Formal", "Colloquial"),
    ("Proactive", "Reactive"),
    ("Concise", "Verbose"),
    ("Tech-savvy", "Traditional"),
    ("plain language", "technical jargon"),
    ("data_driven", "intuitive"),
    ("Optimistic", "Cautious"),
    ("step-by-step", "big picture"),
)
FEATURE_SD: float = 0.3
#: The model whose failed prompts are partly re-run, and the fraction re-run.
RERUN: dict[str, float] = {"replicate/meta/meta-llama-3-70b-instruct": 0.5}
#: Raking stops when a sweep changes no logit by more than this (it takes about a dozen sweeps).
RAKING_TOLERANCE: float = 1e-10
_MAX_SWEEPS: int = 200
MANIFEST: str = "SYNTHETIC.json"
_NOTICE = (
    "SYNTHETIC data simulated by dvbstats.simulate.example from effects calibrated to the published aggregate "
    "figures of the Deep Value Benchmark (Ashkinaze et al., NeurIPS 2025). These are NOT the paper's "
    "trial-level result dumps, which are not public; use them to exercise and check the pipeline, "
    "not to draw conclusions about the models."
)
_CALIBRATION_FILES: tuple[str, ...] = (
    "dvb2025_models.csv",
    "dvb2025_model_value_dvgr.csv",
    "dvb2025_value_margins.csv",
    "dvb2025_context_margins.csv",
    "dvb2025_ntrain_margins.csv",
)


def example_effects() -> tuple[Effects, StudyDesign]:
    """The calibrated true effects and the design of the example."""
    models = _calibration("dvb2025_models.csv")
    model_ids = models["model_id"].to_list()
    value_margins = _calibration("dvb2025_value_margins.csv")
    design = StudyDesign(
        feature_dims=FEATURE_DIMS,
        n_prompts=N_PROMPTS,
        value_weights=dict(zip(value_margins["value"], value_margins["n_trials_parsed"].cast(pl.Float64))),
    )
    slope = _ntrain_slope(_calibration("dvb2025_ntrain_margins.csv"))
    pole_sd = {"model": 0.0, "value": 0.0, "feature": FEATURE_SD, "context": 0.0}
    features = draw_effects(design, model_ids, intercept=0.0, log_n_train=slope, sd=pole_sd, seed=EXAMPLE_SEED).feature

    heatmap = _aligned("dvb2025_model_value_dvgr.csv", "short_name", models["short_name"].to_list())
    contexts = _aligned("dvb2025_context_margins.csv", "context", list(design.contexts))
    prompts = draw_prompts(design, EXAMPLE_SEED)
    cell, context = _calibrate_logits(
        offset=slope * np.log(prompts["n_train"].to_numpy()) + prompts["feature"].replace_strict(features).to_numpy(),
        value_index=_codes(prompts["value"], design.values),
        context_index=_codes(prompts["context"], design.contexts),
        parsed_share=(models["n_trials_parsed"] / N_PROMPTS).to_numpy(),
        cell_target=heatmap.select(design.values).to_numpy(),
        context_target=contexts.select(
            pl.coalesce(pl.col("n_chose_deep_if_exact") / pl.col("n_trials_parsed"), "dvgr")
        ).to_series().to_numpy(),
        model_target=(models["n_chose_deep"] / models["n_trials_parsed"]).to_numpy(),
    )
    # Decompose the cell logits into grand mean + model + value + interaction (rows and columns sum to 0).
    grand = cell.mean()  # contexts come back centred
    model_effect = cell.mean(axis=1) - grand
    value_effect = cell.mean(axis=0) - grand
    interaction = cell - grand - model_effect[:, None] - value_effect[None, :]
    effects = Effects(
        intercept=float(grand),
        log_n_train=slope,
        model=dict(zip(model_ids, model_effect.tolist())),
        value=dict(zip(design.values, value_effect.tolist())),
        feature=features,
        context=dict(zip(design.contexts, context.tolist())),
        model_value={
            (m, v): float(interaction[i, j]) for i, m in enumerate(model_ids) for j, v in enumerate(design.values)
        },
    )
    return effects, design


def unparsed_rates() -> dict[str, float]:
    """First-attempt unparsed rate per model, so that the final (re-run) state matches the published parsed counts.

    With first-attempt rate u, re-run fraction f and re-runs failing again at rate u, the expected
    final unparsed share is u (1 - f + f u); solved for u where a model is re-run.
    """
    models = _calibration("dvb2025_models.csv")
    rates = {}
    for model_id, n_parsed in models.select("model_id", "n_trials_parsed").iter_rows():
        final = 1.0 - n_parsed / N_PROMPTS
        f = RERUN.get(model_id, 0.0)
        rates[model_id] = final if f == 0 else (-(1 - f) + math.sqrt((1 - f) ** 2 + 4 * f * final)) / (2 * f)
    return rates


def simulate_example(out_dir: Path | None = None) -> Simulation:
    """The example simulation (with its truth); dumps are written to ``out_dir`` when given."""
    effects, design = example_effects()
    return simulate(effects, design, seed=EXAMPLE_SEED, unparsed_rate=unparsed_rates(), out_dir=out_dir, rerun=RERUN)


def cache_dir() -> Path:
    """Where the embedded examples are written unless a folder is given: ``$DVBSTATS_CACHE``, else
    ``$XDG_CACHE_HOME/dvbstats``, else ``~/.cache/dvbstats`` (never the working directory)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dvbstats"


def write_example(out_dir: Path | None = None, *, force: bool = False) -> tuple[Path, ...]:
    """Write the example dumps and ``SYNTHETIC.json`` to ``out_dir`` (default: ``cache_dir() / "example"``);
    return the dump paths.

    The dumps are regenerated (deterministically, in a temporary folder) and existing files are
    kept when byte-identical. A file of the same name with other content is an error unless
    ``force``; dumps listed by an earlier ``SYNTHETIC.json`` that the generator no longer makes are
    removed.
    """
    out_dir = Path(out_dir) if out_dir is not None else cache_dir() / "example"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    previous = {f["name"] for f in read_manifest(manifest_path)["files"]} if manifest_path.exists() else set()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".example-") as tmp:
        simulation = simulate_example(Path(tmp))
        files = []
        for fresh in simulation.paths:
            target, digest = out_dir / fresh.name, sha256(fresh)
            if not target.exists() or sha256(target) != digest:
                if target.exists() and not force:
                    raise FileExistsError(
                        f"{target}: differs from the synthetic example dvbstats.simulate.example generates "
                        "(edited, or written by another version); pass force=True to overwrite it"
                    )
                os.replace(fresh, target)
            files.append({"name": fresh.name, "sha256": digest})
    for stale in previous - {f["name"] for f in files}:
        (out_dir / stale).unlink(missing_ok=True)
    manifest = {
        "synthetic": True,
        "notice": _NOTICE,
        "generator": "dvbstats.simulate.example.write_example",
        "seed": EXAMPLE_SEED,
        "calibration": [
            {"name": name, "sha256": hashlib.sha256(_calibration_bytes(name)).hexdigest()}
            for name in _CALIBRATION_FILES
        ],
        "files": files,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    if not manifest_path.exists() or manifest_path.read_text() != text:
        manifest_path.write_text(text)
    return tuple(out_dir / f["name"] for f in files)


def at_depth(n_prompts: int, seed: int, by: Sequence[str], item_sd: float = 0.0) -> CellTable:
    """Cells over ``by`` of the example's effects with ``n_prompts`` prompts per model (not 12,000),
    and with ``item_sd`` a per-prompt effect shared by all models (the example has none).

    The same 9 models, values, features and contexts at another data depth (trials per level), for
    measuring how the sampler behaves as the data grow (benchmarks/bench_depth.py) or with item
    effects (benchmarks/bench_items.py).
    """
    effects, design = example_effects()
    sim = simulate(effects, replace(design, n_prompts=n_prompts), seed=seed, unparsed_rate=unparsed_rates(),
                   item_sd=item_sd)
    trials = sim.trials.with_columns(
        model=pl.col("model_id"), status=pl.when("parsed").then(pl.lit("used")).otherwise(pl.lit("unparsed"))
    )
    return from_trials(trials, by)


def is_example(paths: Iterable[Path]) -> bool:
    """True when any path is a synthetic-example dump (listed in the ``SYNTHETIC.json`` beside it) or its folder.

    Any, not all: a run that mixes synthetic with real dumps must still be labelled synthetic.
    """
    for path in map(Path, paths):
        manifest = (path if path.is_dir() else path.parent) / MANIFEST
        if not manifest.is_file():
            continue
        if path.is_dir() or path.name in {f["name"] for f in read_manifest(manifest)["files"]}:
            return True
    return False


def _calibrate_logits(
    *,
    offset: np.ndarray,
    value_index: np.ndarray,
    context_index: np.ndarray,
    parsed_share: np.ndarray,
    cell_target: np.ndarray,
    context_target: np.ndarray,
    model_target: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Model x value cell logits and context logits whose expected parsed-trial DVGRs match the targets.

    The logit of prompt i for model m is ``offset[i] + cell[m, value[i]] + context[context[i]]``.
    Each sweep adds logit(target) - logit(expected) to the cells (heatmap), the contexts (pooled
    over models, weighted by each model's parsed share) and the model rows (exact model margins,
    matched last, so they hold exactly on exit; the heatmap's rounding leaves its cells close).
    """
    values = np.eye(cell_target.shape[1])[value_index]  # prompts x values indicator
    contexts = np.eye(context_target.size)[context_index]
    cell, context = logit(cell_target), np.zeros(context_target.size)
    p = lambda: expit(offset + cell[:, value_index] + context[context_index])  # noqa: E731
    for _ in range(_MAX_SWEEPS):
        before = np.concatenate([cell.ravel(), context])
        cell += logit(cell_target) - logit(p() @ values / values.sum(axis=0))
        pooled = parsed_share @ p() @ contexts / (parsed_share.sum() * contexts.sum(axis=0))
        context += logit(context_target) - logit(pooled)
        # Keep the contexts centred (a common shift of cells and contexts changes no logit).
        cell += context.mean()
        context -= context.mean()
        cell += (logit(model_target) - logit(p().mean(axis=1)))[:, None]
        if np.abs(np.concatenate([cell.ravel(), context]) - before).max() < RAKING_TOLERANCE:
            return cell, context
    raise RuntimeError(f"example calibration: raking did not converge in {_MAX_SWEEPS} sweeps")


def _ntrain_slope(margins: pl.DataFrame) -> float:
    """Least-squares slope of logit(DVGR) on log(n_train) through the published n_train margins."""
    x = np.log(margins["n_training_examples"].to_numpy().astype(float))
    y = logit(margins["dvgr"].to_numpy())
    return float(np.polyfit(x, y, 1)[0])


def _codes(column: pl.Series, levels: tuple[str, ...]) -> np.ndarray:
    return column.replace_strict({level: i for i, level in enumerate(levels)}, return_dtype=pl.Int64).to_numpy()


def _calibration_bytes(name: str) -> bytes:
    return (resources.files("dvbstats.paper2025") / "data" / name).read_bytes()


def _calibration(name: str) -> pl.DataFrame:
    return pl.read_csv(io.BytesIO(_calibration_bytes(name)))


def _aligned(name: str, key: str, levels: list[str]) -> pl.DataFrame:
    """Rows of a calibration file in the order of ``levels``; every level must have exactly one row."""
    frame = _calibration(name)
    missing = sorted(set(levels) - set(frame[key]))
    if missing or frame[key].is_duplicated().any():
        raise ValueError(f"dvbstats/paper2025/data/{name}: needs one row per {key} in {levels}; missing {missing}")
    return pl.DataFrame({key: levels}).join(frame, on=key, how="left")


def read_manifest(path: Path) -> dict:
    """An embedded example's manifest (its generator and files); a malformed one is a ValueError naming it."""
    try:
        manifest = json.loads(path.read_text())
        [f["name"] for f in manifest["files"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a valid synthetic-example manifest ({err!r})") from err
    return manifest
