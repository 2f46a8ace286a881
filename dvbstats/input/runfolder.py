"""The run folder: the one module that knows its files. Written by ``Fit.save`` (and so by the CLI),
read back as a :class:`Fit` by ``Fit.load`` and as tables by :class:`RunFolder` (the report, the
console, the reanalysis).

Contract in ``docs/design.md`` ("Run folder"). A folder is complete or absent: it is written in a
temporary sibling and swapped in when ``manifest.json`` (written last) is in place
(:mod:`dvbstats.input.folders`). Beside the posterior tables it holds what reproduces the fit without
refitting: the cells, the posterior (netCDF), the model table, the trial table and the manifest.
Tables are CSV (``<name>.csv``, polars; NaN written as ``NaN``, missing as empty), the cells and
trials Parquet; analyses run after the fit add tables and ``sections/*.md`` through
:meth:`RunFolder.add_table` and :meth:`RunFolder.add_section`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import polars as pl
import xarray as xr

from dvbstats import benchmarks
from dvbstats.benchmarks import results as extras
from dvbstats.constants import HDI_PROB
from dvbstats.data import Data
from dvbstats.input import folders, manifest
from dvbstats.input.cells import CellTable
from dvbstats.input.trials import TrialFile
from dvbstats.input.registry import ModelTable
from dvbstats.input.schema import CELL_COUNTS
from dvbstats.model.design import design
from dvbstats.model.formula import parse
from dvbstats.model.plan import Sampling
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import bounds, predictive, tables as summaries
from dvbstats.results.fitted import Fit, provide

#: The file that marks a finished run folder (written last).
MARKER = "manifest.json"
#: The binomial cells the model was fitted to, and the posterior (netCDF, ArviZ groups).
CELLS, POSTERIOR = "cells.parquet", "posterior.nc"
#: The manifest's note on an analysis that ``Fit.save`` was not given the results of.
NOT_RUN = "not run (Fit.save was given no analyses: dvbstats.Analysis runs them)"
EMPTY_NOTE = {
    False: "left out of the fit and of the overall DVGR",
    True: "fitted on request (option keep-empty-models): the DVGR is the prior's, and it is in the overall DVGR",
}


def write_table(folder: Path, name: str, table: pl.DataFrame) -> Path:
    """Table ``name`` of a run folder as ``<name>.csv`` (what :meth:`RunFolder.table` reads back)."""
    path = Path(folder) / f"{name}.csv"
    table.write_csv(path)
    return path


def _quiet(*_args) -> None:
    """The default log of library calls: say nothing (the CLI passes ``print``)."""


def write(
    fit: Fit,
    out: str | Path,
    *,
    name: str | None = None,
    hdi_prob: float = HDI_PROB,
    overwrite: bool = False,
    analyses: Any = None,
    command: Sequence[str] | None = None,
    timing: Mapping[str, float] | None = None,
    started: float | None = None,
    processed: Path | None = None,
    log: Callable[..., None] = _quiet,
) -> Path:
    """Write ``fit`` to ``out``: its posterior, cells, model table, trials, manifest and the tables derived
    from them; no inference runs here.

    ``analyses``: what the steps after the fit found (:class:`dvbstats.pipeline.Analyses`: ``results``,
    each written by :func:`write_analysis`, ``notes`` into the manifest, ``timing``). ``processed``:
    write the trial table there instead of into the run folder. ``timing`` (default: the fit's) goes
    into the manifest with the time this call took (``save_s``) and, given ``started`` (a
    ``time.perf_counter()`` reading), the whole run's ``total_s``.
    """
    if fit.data is None:
        raise ValueError("this Fit carries no input record (fitted with fitting.fit): fit it through "
                         "dvbstats.Model(formula, data).fit() to save it")
    out = Path(out)
    name = folders.folder_name(name, what="name") if name else folders.as_folder_name(out.resolve().name)
    data, table = fit.data, fit.model_table
    results, notes = (analyses.results, analyses.notes) if analyses is not None else ({}, {})
    t0 = time.perf_counter()
    bench = data.benchmark
    with folders.replacing(out, marker=MARKER, overwrite=overwrite) as work, ThreadPoolExecutor(1) as pool:
        # the posterior predictive check is Numba without the GIL (1.5 CPU s on HVSB): it runs beside the rest
        ppc = pool.submit(summaries.ppc_table, fit, hdi_prob, fit.settings.seed)
        if data.trials is not None:
            trials_path = processed / f"{name}_trials.parquet" if processed else work / "trials.parquet"
            trials_path.parent.mkdir(parents=True, exist_ok=True)
            data.trials.write(trials_path)
        quality, reconciliation = data.quality(), data.reconciliation()
        tables = {**summaries.tables(fit, hdi_prob, fit.settings.seed, bench, predictive=False),
                  "data_quality": quality, "reconciliation": reconciliation,
                  **extras.tables(bench, fit, data.trials, hdi_prob)}
        for key, df in tables.items():
            write_table(work, key, df)
        for key, alias in bench.aliases.items():  # the benchmark's old names for a neutral table (DVB: dvgr.csv)
            write_table(work, alias, summaries.legacy(tables[key]))
        bounded = bounds.notes(summaries.item_factors(fit), len(fit.models))
        for note in bounded:
            log(f"Note: {note}.")
        tables["rates"].write_parquet(work / "rates.parquet")
        for key, result in results.items():
            write_analysis(work, key, result)
        fit.cells.write(work / CELLS)
        table.data.write_csv(work / "models.csv")
        write_posterior(fit.idata, work / POSTERIOR)
        write_table(work, "ppc", ppc.result())
        keep = bool(fit.empty_models) and fit.cells.by_model()["model"].is_in(list(fit.empty_models)).any()
        meta = manifest.record(
            run_name=name, synthetic=data.synthetic, inputs=data.inputs, fit=fit, quality=quality,
            reconciliation=reconciliation, hdi_prob=hdi_prob, command=command,
            timing={**(timing or fit.timing), **(analyses.timing if analyses is not None else {}),
                    "save_s": time.perf_counter() - t0,
                    **({"total_s": time.perf_counter() - started} if started is not None else {})},
            extra={"benchmark": benchmarks.describe(data.benchmark),
                   "scaling": notes.get("scaling", NOT_RUN), "bounded": bounded,
                   "agreement": notes.get("agreement", NOT_RUN), "empty_models": {
                "models": list(fit.empty_models), "in_fit": keep,
                "note": EMPTY_NOTE[keep] if fit.empty_models else "every model has usable trials"}},
        )
        (work / MARKER).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out


def read_fit(path: str | Path) -> Fit:
    """The :class:`Fit` of a run folder, rebuilt from its files without refitting."""
    path = Path(path)
    meta_path = path / MARKER
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: no {MARKER}; not a complete run folder written by dvbstats")
    meta = manifest.check(_read_json(meta_path), meta_path)
    for needed in (CELLS, POSTERIOR, "models.csv"):
        if not (path / needed).is_file():
            raise FileNotFoundError(f"{path}: no {needed}; the run folder was written by an older dvbstats "
                                    "or is incomplete — refit to read it back")
    cells_df = pl.read_parquet(path / CELLS)
    cells = CellTable(cells_df, tuple(c for c in cells_df.columns if c not in CELL_COUNTS))
    formula = parse(meta["formula"])
    bench = benchmarks.from_record(meta.get("benchmark"))
    trials_path = path / "trials.parquet"
    # a judgment table carries its benchmark in its metadata; a trial file is read lazily, not into memory
    reader = benchmarks.JudgmentTable.read if benchmarks.is_judgment_table(trials_path) else TrialFile.open
    trials = reader(trials_path) if trials_path.is_file() else None
    models = ModelTable.read(path / "models.csv")
    data = Data(trials, None if trials is not None else cells_df, models, meta["inputs"], bool(meta["synthetic"]),
                bench)
    settings = SamplerSettings(**meta["sampler"])
    try:
        sampling = Sampling.from_manifest(meta)
    except (KeyError, TypeError) as err:
        raise manifest.ManifestError(f"{meta_path}: the sampling record lacks or misstates {err}") from None
    return Fit(
        design=design(formula, cells),
        priors=Priors.from_specs([f"{k}={v}" for k, v in meta["priors"].items()]),
        settings=settings,
        parametrization=meta["parametrization"].get("sampled", meta["parametrization"]["requested"]),
        idata=_read_posterior(path / POSTERIOR),
        timing=meta.get("timing", {}),
        sampling=sampling,
        data=data,
        empty_models=tuple(meta.get("empty_models", {}).get("models", [])),
        model_table=models,
        items_integrated=meta.get("items_integrated"),
    )


def write_posterior(idata: az.InferenceData, path: Path) -> None:
    """``posterior.nc``: every group of ``idata`` as ArviZ writes them, uncompressed (posterior draws are random
    floats: zlib saved 7% of HVSB's file for 1 CPU s), and the cells' design columns once, as coordinates of
    ``observed_data``: ``constant_data`` keeps its ``cell`` index, by which :func:`_read_posterior` gives them back."""
    groups = {group: getattr(idata, group) for group in idata.groups()}
    observed, constant = groups.get("observed_data"), groups.get("constant_data")
    if observed is not None and constant is not None:
        shared = [c for c in constant.coords if c not in constant.dims and c in observed.coords
                  and observed[c].dims == (predictive.CELL,) and constant[c].equals(observed[c])]
        groups["constant_data"] = constant.drop_vars(shared)
    az.InferenceData(**groups).to_netcdf(str(path), engine="h5netcdf", compress=False)


def _read_posterior(path: Path) -> az.InferenceData:
    """The InferenceData of ``posterior.nc`` (``constant_data`` with the cells' coordinates that
    :func:`write_posterior` stored once); a file HDF5 cannot read is a :class:`RunFolderError` naming it."""
    try:
        idata = az.from_netcdf(path, engine="h5netcdf")
    except (OSError, RuntimeError, ValueError, KeyError) as err:  # h5py reports damage as OSError or RuntimeError
        raise RunFolderError(f"{path}: cannot be read as netCDF ({err}); the run folder is damaged: refit") from None
    if {"observed_data", "constant_data"} <= set(idata.groups()):
        observed, constant = idata.observed_data, idata.constant_data
        cell = predictive.CELL
        if cell in observed.indexes and cell in constant.indexes and observed.indexes[cell].equals(constant.indexes[cell]):
            idata.constant_data = constant.assign_coords(
                {c: (cell, observed[c].values) for c in observed.coords
                 if c not in constant.coords and observed[c].dims == (cell,)})
    return idata


def write_analysis(out: Path, name: str, result) -> list[Path]:
    """Write an analysis run beside the fit (``scaling``, ``agreement``, ``contrasts``): each of
    ``result.tables()`` as ``<table>.csv`` and ``result.record()`` (methods, settings, notes, diagnostics),
    unless None, as ``<name>_methods.json``."""
    out = Path(out)
    written = [write_table(out, key, table) for key, table in result.tables().items()]
    if (record := result.record()) is not None:
        path = out / f"{name}_methods.json"
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
        written.append(path)
    return written


# --------------------------------------------------------------------------- reading the tables back


class RunFolderError(ValueError):
    """A run folder is missing a required file, or a file does not have the expected shape."""


#: Columns each table must have when it is present (extra columns are allowed).
COLUMNS: dict[str, tuple[str, ...]] = {
    "dvgr": (
        "model", "n_prompts", "n_used", "n_excluded", "raw_dvgr", "wilson_low", "wilson_high",
        "binom_p", "dvgr_mean", "dvgr_median", "dvgr_hdi_low", "dvgr_hdi_high", "p_below_half",
        "pop_dvgr_mean", "pop_dvgr_hdi_low", "pop_dvgr_hdi_high", "r_hat", "ess_bulk", "ess_tail",
    ),
    "rates": (
        "model", "n_prompts", "n_used", "n_excluded", "raw_rate", "wilson_low", "wilson_high",
        "binom_p", "rate_mean", "rate_median", "rate_hdi_low", "rate_hdi_high", "p_below_reference",
        "pop_rate_mean", "pop_rate_hdi_low", "pop_rate_hdi_high", "r_hat", "ess_bulk", "ess_tail",
    ),
    "random_effects": ("term", "level", "mean", "hdi_low", "hdi_high"),
    "sd": ("term", "mean", "median", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"),
    "fixed": ("term", "mean", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"),
    "interaction_dvgr": ("model", "dvgr_mean", "raw_dvgr", "n_trials"),
    "margins": ("factor", "level", "dvgr_mean", "dvgr_hdi_low", "dvgr_hdi_high", "raw_dvgr", "n_trials"),
    "diagnostics": ("parameter", "r_hat", "ess_bulk", "ess_tail"),
    "ppc": ("by", "level", "observed", "predicted_mean", "predicted_low", "predicted_high", "n_trials"),
    "data_quality": ("model", "n_rows", "n_prompts", "n_used", "n_unparsed"),
    "reconciliation": ("n_copies", "action"),  # plus the trial's key columns (DVB: model, prompt_id)
    "cells": ("model", "n_prompts", "n_trials", "n_deep"),
}
#: The per-model rate table under its two names: the other name's file, and the conversion from its columns.
RATE_VIEWS = {"rates": ("dvgr", summaries.neutral), "dvgr": ("rates", summaries.legacy)}
#: Summary columns of the grouped DVGR tables; any other column is a design factor.
SUMMARY_COLUMNS = frozenset({"dvgr_mean", "dvgr_median", "dvgr_hdi_low", "dvgr_hdi_high", "hdi_low", "hdi_high",
                             "raw_dvgr", "n_trials", "n_deep"})


def _check_columns(df: pl.DataFrame, path: Path, required: tuple[str, ...]) -> pl.DataFrame:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise RunFolderError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))})")
    return df


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path}: line {err.lineno}, column {err.colno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: expected a JSON object at the top level")
    return data


@dataclass
class RunFolder:
    """A finished run: its manifest and tables (polars), read lazily from ``path``; never refits.

    ``manifest.json`` and ``rates.csv`` (in older DVB folders ``dvgr.csv``) are required; ``table("rates")``
    and ``table("dvgr")`` read either, under the neutral and the DVB column names; every other table is optional (a run fitted to
    an aggregated cell table has no trial table, no data-quality counts, maybe no value column) and
    comes back as ``None`` so that its section can say what is missing.
    """

    path: Path
    manifest: dict = field(repr=False)
    _tables: dict[str, pl.DataFrame | None] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def read(cls, path: str | Path) -> RunFolder:
        """Open ``path``; raise :class:`RunFolderError` if it is not a run folder."""
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"{path}: not a directory (expected a run folder written by python -m dvbstats.fit)")
        manifest_path = path / MARKER
        if not manifest_path.is_file():
            raise RunFolderError(f"{manifest_path}: not found; is {path} a run folder written by python -m dvbstats.fit?")
        try:
            meta = manifest.check(_read_json(manifest_path), manifest_path)
        except manifest.ManifestError as err:
            raise RunFolderError(str(err)) from None
        run = cls(path=path, manifest=meta)
        if run.table("rates") is None:
            raise RunFolderError(f"{path / 'rates.csv'}: not found; the report needs the run's per-model rate table")
        return run

    @property
    def name(self) -> str:
        """The run's name (``manifest.run_name``, else the folder name)."""
        return str(self.manifest.get("run_name") or self.path.name)

    @property
    def hdi_prob(self) -> float:
        """Probability mass of the run's highest-density intervals."""
        return float(self.manifest["hdi_prob"])

    @property
    def formula(self) -> str:
        return str(self.manifest["formula"])

    @property
    def synthetic(self) -> bool:
        """Whether the run was fitted to simulated data."""
        return bool(self.manifest.get("synthetic", False))

    @property
    def diagnostics(self) -> dict:
        """The manifest's sampler diagnostics summary (``ok``, ``failures``, extremes)."""
        return self.manifest["diagnostics"]

    def table(self, name: str) -> pl.DataFrame | None:
        """The run's table ``name`` (``rates``, ``sd``, ``cells``, ...), or ``None`` if absent; ``rates`` and its
        DVB alias ``dvgr`` each fall back on the other's file under their own column names."""
        if name not in self._tables and name in RATE_VIEWS:
            other, convert = RATE_VIEWS[name]
            table = self._load(name)
            if table is None and self._load(other) is not None:
                table = self._tables[name] = convert(self._tables[other])
            return table
        return self._tables[name] if name in self._tables else self._load(name)

    def _load(self, name: str) -> pl.DataFrame | None:
        csv, parquet = self.path / f"{name}.csv", self.path / f"{name}.parquet"
        if csv.is_file():
            path = csv
            try:
                df = pl.read_csv(csv, infer_schema_length=None, glob=False)  # a run named "a[1]" is a path
            except pl.exceptions.NoDataError:
                df = pl.DataFrame()
            except (pl.exceptions.ComputeError, UnicodeDecodeError) as err:
                raise RunFolderError(f"{csv}: cannot be read as CSV ({err})") from None
        elif parquet.is_file():
            path = parquet
            try:
                df = pl.read_parquet(parquet, glob=False)
            except (OSError, pl.exceptions.ComputeError) as err:
                raise RunFolderError(f"{parquet}: cannot be read as Parquet ({err})") from None
        else:
            self._tables[name] = None
            return None
        if df.width == 0 or (df.is_empty() and name in COLUMNS and not set(COLUMNS[name]) <= set(df.columns)):
            df = None  # a table with no rows (say, no margins for a model-only formula) is absent
        elif name in COLUMNS:
            _check_columns(df, path, COLUMNS[name])
        self._tables[name] = df
        return df

    def scaling_tables(self) -> dict[str, pl.DataFrame]:
        """Every ``scaling_<name>.csv`` of the run, keyed by ``<name>`` (empty when none)."""
        return {
            p.stem.removeprefix("scaling_"): self.table(p.stem)
            for p in sorted(self.path.glob("scaling_*.csv"))
        }

    def record(self, analysis: str) -> dict:
        """What an analysis beside the fit recorded (``scaling``, ``agreement``: :func:`write_analysis`), or {}."""
        path = self.path / f"{analysis}_methods.json"
        return _read_json(path) if path.is_file() else {}

    def scaling_notes(self) -> list[str]:
        """Notes of the scaling tests (tests skipped and why)."""
        notes = self.record("scaling").get("notes", [])
        if not isinstance(notes, list):
            raise RunFolderError(f"{self.path / 'scaling_methods.json'}: expected a JSON object with a 'notes' list")
        return [str(n) for n in notes]

    def scaling_diagnostics(self) -> dict | None:
        """The sampler checks of the pooled size-slope model (``Diagnostics.summary()``), or None if not run."""
        return self.record("scaling").get("diagnostics")

    def extra_sections(self) -> list[Path]:
        """The run's ``sections/*.md`` files, sorted by name."""
        return sorted((self.path / "sections").glob("*.md"))

    def add_table(self, name: str, table: pl.DataFrame) -> Path:
        """Add (or replace) table ``name`` of a finished run (an analysis run after the fit)."""
        self._tables.pop(name, None)
        return write_table(self.path, name, table)

    def add_section(self, name: str, markdown: str) -> Path:
        """Add (or replace) the report section ``sections/<name>`` of a finished run."""
        path = self.path / "sections" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(markdown, encoding="utf-8")
        return path

    def posterior_draws(self) -> dict[str, np.ndarray] | None:
        """Draws ``(chain, draw)`` of the top-level parameters (``Intercept``, ``b_*``, ``sd``).

        ``sd`` is split by its ``term`` coordinate (``sd[model]``, ...). ``None`` when the run
        has no ``posterior.nc``.
        """
        path = self.path / POSTERIOR
        if not path.is_file():
            return None
        try:
            posterior = xr.open_dataset(path, group="posterior", engine="h5netcdf")
        except (OSError, ValueError) as err:
            raise RunFolderError(f"{path}: cannot read the posterior group ({err})") from None
        with posterior:
            draws: dict[str, np.ndarray] = {}
            names = [n for n in posterior.data_vars if n == "Intercept" or n.startswith("b_") or n == "sd"]
            for name in names:
                var = posterior[name].transpose("chain", "draw", ...)
                if var.ndim == 2:
                    draws[name] = var.to_numpy()
                    continue
                (dim,) = [d for d in var.dims if d not in ("chain", "draw")]
                for label in var[dim].to_numpy():
                    draws[f"{name}[{label}]"] = var.sel({dim: label}).to_numpy()
        return draws


provide(save=write, load=read_fit)  # Fit.save and Fit.load: spelled on Fit, implemented here
