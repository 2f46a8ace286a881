"""The run manifest: inputs with hashes, counts, formula, priors, sampler, seed, versions."""

from __future__ import annotations

import hashlib
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import polars as pl

PACKAGES = ("dvbstats", "numpy", "scipy", "pandas", "polars", "pyarrow", "pymc", "pytensor", "nutpie",
            "arviz", "xarray", "statsmodels", "matplotlib", "seaborn", "pypandoc-binary")


def sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): the input hashes of every manifest."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def portable_command(program: str, args: list[str]) -> list[str]:
    """``program`` and its ``args`` with every absolute path made relative to the working directory.

    The command is shown in reports that are shared; an absolute path names a local machine
    (and often a user) and does not reproduce elsewhere, a path relative to where the command
    was run does. ``--opt=/abs/path`` is rewritten as well.
    """

    def portable(arg: str) -> str:
        option, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        if os.path.isabs(value):
            value = os.path.relpath(value)
        return f"{option}{eq}{value}"

    return ["python", "-m", program, *(portable(a) for a in args)]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record(*, run_name, synthetic, inputs, fit, quality: pl.DataFrame, reconciliation: pl.DataFrame,
          hdi_prob, command, timing, extra) -> dict:
    """Everything needed to reproduce and to judge a run."""
    totals = quality.select(pl.exclude("model").sum()).row(0, named=True)
    actions = reconciliation.group_by("action").len().sort("action").rows() if reconciliation.height else []
    return {
        "run_name": run_name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "synthetic": synthetic,
        "inputs": inputs,
        "counts": {"per_model": quality.to_dicts(), "totals": totals,
                   "cells": fit.cells.data.height, "trials_used": fit.cells.n_trials},
        "reconciliation": {"duplicated_prompts": reconciliation.height, "actions": dict(actions)},
        "formula": str(fit.formula),
        "design": list(fit.cells.by),
        "priors": fit.priors_used(),
        "parametrization": {"requested": "auto" if fit.retry or fit.auto_form else fit.parametrization,
                            "sampled": fit.parametrization,
                            "terms": fit.parametrizations(), "retry": fit.retry, "auto_form": fit.auto_form},
        "sampler": fit.settings.as_dict(),
        "backend": fit.backend,
        "items_integrated": fit.items_integrated,
        "seed": fit.settings.seed,
        "hdi_prob": hdi_prob,
        "versions": versions(),
        "diagnostics": fit.diagnostics.summary(),
        "timing": timing,
        **extra,
    }
