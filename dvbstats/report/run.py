"""Reading a finished run folder (the contract in ``docs/design.md``, "Run folder").

The report reads only these files and never refits. ``manifest.json`` and ``dvgr.csv`` are
required; every other table is optional (a run fitted to an aggregated cell table has no
trial table, no data-quality counts, maybe no value, feature or context columns) and comes
back as ``None`` so that its section can say what is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


class RunFolderError(ValueError):
    """A run folder is missing a required file, or a file does not have the expected shape."""


#: Columns each table must have when it is present (extra columns are allowed).
COLUMNS: dict[str, tuple[str, ...]] = {
    "dvgr": (
        "model", "n_prompts", "n_used", "n_excluded", "raw_dvgr", "wilson_low", "wilson_high",
        "binom_p", "dvgr_mean", "dvgr_median", "dvgr_hdi_low", "dvgr_hdi_high", "p_below_half",
        "pop_dvgr_mean", "pop_dvgr_hdi_low", "pop_dvgr_hdi_high", "r_hat", "ess_bulk", "ess_tail",
    ),
    "random_effects": ("term", "level", "mean", "hdi_low", "hdi_high"),
    "sd": ("term", "mean", "median", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"),
    "fixed": ("term", "mean", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"),
    "interaction_dvgr": ("model", "dvgr_mean", "raw_dvgr", "n_trials"),
    "margins": ("factor", "level", "dvgr_mean", "dvgr_hdi_low", "dvgr_hdi_high", "raw_dvgr", "n_trials"),
    "diagnostics": ("parameter", "r_hat", "ess_bulk", "ess_tail"),
    "ppc": ("by", "level", "observed", "predicted_mean", "predicted_low", "predicted_high", "n_trials"),
    "data_quality": ("model", "n_rows", "n_prompts", "n_used", "n_unparsed"),
    "reconciliation": ("model", "prompt_id", "n_copies", "action"),
    "cells": ("model", "n_prompts", "n_trials", "n_deep"),
}
#: Summary columns of the grouped DVGR tables; any other column is a design factor.
SUMMARY_COLUMNS = frozenset({"dvgr_mean", "dvgr_median", "dvgr_hdi_low", "dvgr_hdi_high", "hdi_low", "hdi_high",
                             "raw_dvgr", "n_trials", "n_deep"})
MANIFEST_KEYS: tuple[str, ...] = ("formula", "sampler", "hdi_prob", "diagnostics")


def _check_columns(df: pd.DataFrame, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise RunFolderError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))})")
    return df


@dataclass
class RunFolder:
    """A finished run: its manifest and tables, read lazily from ``path``."""

    path: Path
    manifest: dict = field(repr=False)
    _tables: dict[str, pd.DataFrame | None] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def read(cls, path: str | Path) -> RunFolder:
        """Open ``path``; raise :class:`RunFolderError` if it is not a run folder."""
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"{path}: not a directory (expected a run folder written by python -m dvbstats.fit)")
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise RunFolderError(f"{manifest_path}: not found; is {path} a run folder written by python -m dvbstats.fit?")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{manifest_path}: line {err.lineno}, column {err.colno}: invalid JSON ({err.msg})") from None
        if not isinstance(manifest, dict):
            raise RunFolderError(f"{manifest_path}: expected a JSON object at the top level")
        missing = [k for k in MANIFEST_KEYS if k not in manifest]
        if missing:
            raise RunFolderError(f"{manifest_path}: missing key(s) {', '.join(missing)}")
        diagnostics = manifest["diagnostics"]
        if not isinstance(diagnostics, dict) or "ok" not in diagnostics:
            raise RunFolderError(f"{manifest_path}: 'diagnostics' must be an object with an 'ok' flag")
        run = cls(path=path, manifest=manifest)
        if run.table("dvgr") is None:
            raise RunFolderError(f"{path / 'dvgr.csv'}: not found; the report needs the run's DVGR table")
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
    def synthetic(self) -> bool:
        """Whether the run was fitted to simulated data."""
        return bool(self.manifest.get("synthetic", False))

    @property
    def diagnostics(self) -> dict:
        """The manifest's sampler diagnostics summary (``ok``, ``failures``, extremes)."""
        return self.manifest["diagnostics"]

    def table(self, name: str) -> pd.DataFrame | None:
        """The run's table ``name`` (``dvgr``, ``sd``, ``cells``, ...), or ``None`` if absent."""
        return self._tables.get(name) if name in self._tables else self._load(name)

    def _load(self, name: str) -> pd.DataFrame | None:
        csv, parquet = self.path / f"{name}.csv", self.path / f"{name}.parquet"
        if csv.is_file():
            path = csv
            try:
                df = pd.read_csv(csv, keep_default_na=False, na_values=["", "NaN"])  # polars writes NaN as "NaN"
            except (pd.errors.ParserError, UnicodeDecodeError) as err:
                raise RunFolderError(f"{csv}: cannot be read as CSV ({err})") from None
        elif parquet.is_file():
            path = parquet
            try:
                df = pd.read_parquet(parquet)
            except (OSError, ValueError) as err:
                raise RunFolderError(f"{parquet}: cannot be read as Parquet ({err})") from None
        else:
            self._tables[name] = None
            return None
        if df.empty and name in COLUMNS and not set(COLUMNS[name]) <= set(df.columns):
            df = None  # a table with no rows (say, no margins for a model-only formula) is absent
        elif name in COLUMNS:
            _check_columns(df, path, COLUMNS[name])
        self._tables[name] = df
        return df

    def scaling_tables(self) -> dict[str, pd.DataFrame]:
        """Every ``scaling_<name>.csv`` of the run, keyed by ``<name>`` (empty when none)."""
        return {
            p.stem.removeprefix("scaling_"): self.table(p.stem)
            for p in sorted(self.path.glob("scaling_*.csv"))
        }

    def scaling_notes(self) -> list[str]:
        """Notes of the scaling tests (``scaling_methods.json``: tests skipped and why)."""
        path = self.path / "scaling_methods.json"
        if not path.is_file():
            return []
        try:
            notes = json.loads(path.read_text(encoding="utf-8")).get("notes", [])
        except (json.JSONDecodeError, AttributeError) as err:
            raise RunFolderError(f"{path}: expected a JSON object with a 'notes' list ({err})") from None
        return [str(n) for n in notes]

    def extra_sections(self) -> list[Path]:
        """The run's ``sections/*.md`` files, sorted by name."""
        return sorted((self.path / "sections").glob("*.md"))

    def posterior_draws(self) -> dict[str, np.ndarray] | None:
        """Draws ``(chain, draw)`` of the top-level parameters (``Intercept``, ``b_*``, ``sd``).

        ``sd`` is split by its ``term`` coordinate (``sd[model]``, ...). ``None`` when the run
        has no ``posterior.nc``.
        """
        path = self.path / "posterior.nc"
        if not path.is_file():
            return None
        import xarray as xr  # imported here: only the diagnostics section needs it

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
