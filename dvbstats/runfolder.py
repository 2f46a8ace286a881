"""The run folder: written by ``Fit.save`` (and so by the CLI), read back by ``Fit.load``.

Contract in ``docs/design.md`` ("Run folder"). A folder is complete or absent: it is written in a
temporary sibling and swapped in when ``manifest.json`` (written last) is in place
(:mod:`dvbstats.folders`). Beside the posterior tables it holds what reproduces the fit without
refitting: the cells, the posterior (netCDF), the model table, the trial table and the manifest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import arviz as az
import polars as pl

from . import contrasts as contrastmod
from . import benchmarks, bounds, folders, manifest, summaries
from .cells import CellTable
from .constants import HDI_PROB
from .fitting import Fit
from .formula import parse
from .ingest import TrialFile, TrialTable
from .model import design
from .priors import Priors
from .registry import ModelTable
from .sample import SamplerSettings
from .schema import CELL_COUNTS

#: The file that marks a finished run folder (written last).
MARKER = "manifest.json"
EMPTY_NOTE = {
    False: "left out of the fit and of the overall DVGR",
    True: "fitted on request (option keep-empty-models): the DVGR is the prior's, and it is in the overall DVGR",
}


def _quiet(*_args) -> None:
    """The default log of library calls: say nothing (the CLI passes ``print``)."""


def write(
    fit: Fit,
    out: str | Path,
    *,
    name: str | None = None,
    hdi_prob: float = HDI_PROB,
    overwrite: bool = False,
    scaling: bool | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    contrasts: Sequence[str] = (),
    rope: float | None = None,
    agreement: bool = True,
    command: Sequence[str] | None = None,
    timing: Mapping[str, float] | None = None,
    started: float | None = None,
    processed: Path | None = None,
    log: Callable[..., None] = _quiet,
) -> Path:
    """Write every table of ``fit`` (and the scaling, agreement and contrast analyses) to ``out``.

    ``scaling``: None runs the scaling tests when a fitted family has two sizes; ``pairs``: explicit
    (smaller, larger) pairs for them; ``contrasts``: ``A-B``, ``FACTOR:A-B`` or ``all``, with
    P(|difference| < ``rope``) when ``rope`` is given; ``processed``: write the trial table there
    instead of into the run folder. ``timing`` (default: the fit's) goes into the manifest with the
    time this call took (``save_s``) and, given ``started`` (a ``time.perf_counter()`` reading),
    the whole run's ``total_s``.
    """
    if fit.data is None:
        raise ValueError("this Fit carries no input record (fitted with fitting.fit): fit it through "
                         "dvbstats.Model(formula, data).fit() to save it")
    out = Path(out)
    name = name or out.resolve().name
    seed = fit.settings.seed
    data, table = fit.data, fit.model_table
    wanted = contrastmod.resolve(contrasts, contrastmod.factor_levels(fit.cells.data, fit.cells.by))
    t0 = time.perf_counter()
    with folders.replacing(out, marker=MARKER, overwrite=overwrite) as work:
        if data.trials is not None:
            trials_path = processed / f"{name}_trials.parquet" if processed else work / "trials.parquet"
            trials_path.parent.mkdir(parents=True, exist_ok=True)
            data.trials.write(trials_path)
        quality, reconciliation = data.quality(), data.reconciliation()
        tables = {**summaries.tables(fit, hdi_prob, seed), "data_quality": quality, "reconciliation": reconciliation,
                  **benchmarks.tables(data.benchmark, fit, data.trials, hdi_prob)}
        for key, df in tables.items():
            df.write_csv(work / f"{key}.csv")
        bounded = bounds.notes(summaries.item_factors(fit), len(fit.models))
        for note in bounded:
            log(f"Note: {note}.")
        tables["dvgr"].write_parquet(work / "dvgr.parquet")
        if wanted:
            contrast_tables(fit, wanted, hdi_prob, rope).write_csv(work / "contrasts.csv")
        fit.cells.write(work / "cells.parquet")
        table.data.write_csv(work / "models.csv")
        fit.idata.to_netcdf(str(work / "posterior.nc"), engine="h5netcdf")
        dvb = data.benchmark.name == "dvb"  # scaling (by default) and agreement are DVB's analyses so far
        scaling_note = _scaling(fit, table, pairs, hdi_prob, seed, work, scaling if dvb else bool(scaling), log)
        t_agreement = time.perf_counter()
        agreement_note = (_agreement(data.trials if dvb else None, table, fit.settings, hdi_prob, work, log)
                          if agreement
                          else "not run (switched off)")
        t_agreement = time.perf_counter() - t_agreement
        keep = bool(fit.empty_models) and fit.cells.by_model()["model"].is_in(list(fit.empty_models)).any()
        meta = manifest.build(
            run_name=name, synthetic=data.synthetic, inputs=data.inputs, fit=fit, quality=quality,
            reconciliation=reconciliation, hdi_prob=hdi_prob, command=command,
            timing={**(timing or fit.timing), "save_s": time.perf_counter() - t0, "agreement_s": t_agreement,
                    **({"total_s": time.perf_counter() - started} if started is not None else {})},
            extra={"benchmark": benchmarks.describe(data.benchmark), "scaling": scaling_note, "bounded": bounded,
                   "agreement": agreement_note, "empty_models": {
                "models": list(fit.empty_models), "in_fit": keep,
                "note": EMPTY_NOTE[keep] if fit.empty_models else "every model has usable trials"}},
        )
        (work / MARKER).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out


def read(path: str | Path) -> Fit:
    """The :class:`Fit` of a run folder, rebuilt from its files without refitting."""
    from .api import Data  # the API builds on this module

    path = Path(path)
    meta_path = path / MARKER
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: no {MARKER}; not a complete run folder written by dvbstats")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    for needed in ("cells.parquet", "posterior.nc", "models.csv"):
        if not (path / needed).is_file():
            raise FileNotFoundError(f"{path}: no {needed}; the run folder was written by an older dvbstats "
                                    "or is incomplete — refit to read it back")
    cells_df = pl.read_parquet(path / "cells.parquet")
    cells = CellTable(cells_df, tuple(c for c in cells_df.columns if c not in CELL_COUNTS))
    formula = parse(meta["formula"])
    bench = benchmarks.from_record(meta.get("benchmark"))
    reader = TrialFile.open if bench.name == "dvb" else benchmarks.JudgmentTable.read  # DVB: lazily, not in memory
    trials = reader(path / "trials.parquet") if (path / "trials.parquet").is_file() else None
    models = ModelTable.read(path / "models.csv")
    data = Data(trials, None if trials is not None else cells_df, models, meta["inputs"], bool(meta["synthetic"]),
                bench)
    settings = SamplerSettings(**meta["sampler"])
    return Fit(
        design=design(formula, cells),
        priors=Priors.from_specs([f"{k}={v}" for k, v in meta["priors"].items()]),
        settings=settings,
        parametrization=meta["parametrization"]["requested"],
        idata=az.from_netcdf(path / "posterior.nc", engine="h5netcdf"),
        timing=meta.get("timing", {}),
        data=data,
        empty_models=tuple(meta.get("empty_models", {}).get("models", [])),
        model_table=models,
    )


def contrast_tables(fit: Fit, wanted: Mapping[str, list[tuple[str, str]]], hdi_prob: float,
                    rope: float | None) -> pl.DataFrame:
    """The posterior of every wanted contrast (pairs per factor, :func:`contrasts.resolve`)."""
    return pl.concat([
        contrastmod.contrast_table(*fit.level_draws(factor), pairs, factor=factor, hdi_prob=hdi_prob, rope=rope)
        for factor, pairs in wanted.items()
    ])


def _scaling(fit: Fit, table: ModelTable, pairs, hdi_prob, seed, out: Path, wanted: bool | None, log) -> str:
    """Run the scaling-trend tests when asked, or by default when a family has two sizes."""
    from . import scaling

    if wanted is None:
        wanted = bool(table.families_with_sizes())
        if not wanted:
            return "not run: no model family with two sizes among the fitted models"
    if not wanted:
        return "not run (--no-scaling)"
    log("Scaling-trend tests (pairs within families, pooled size slope)...")
    try:
        res = scaling.run(fit.dvgr, fit.cells.data, table.data, pairs=pairs, hdi_prob=hdi_prob, seed=seed)
    except scaling.ScalingUnavailable as exc:
        log(f"Scaling tests not run: {exc}")
        return f"not run: {exc}"
    res.write(out)
    return "run"


def _agreement(trials: TrialTable | TrialFile | None, table: ModelTable, settings: SamplerSettings, hdi_prob,
               out: Path, log) -> str:
    """Agreement between models and paired tests (:mod:`dvbstats.agreement`) when trials of >= 2 models exist.

    Only the used rows' model, prompt and outcome are read (lazily: a streamed trial file stays on disk)."""
    used = (trials.scan().filter(pl.col("status") == "used").select("model", "prompt_id", "chose_deep", "status")
            .collect(engine="streaming") if trials is not None else None)
    if used is None or used["model"].n_unique() < 2:
        return "not run: needs a trial table with at least two models"
    from . import agreement

    log("Agreement between models and paired tests...")
    res = agreement.run(used, table, settings=settings, hdi_prob=hdi_prob)
    res.write(out)
    return res.notes.get("not_run", "run")
