"""The run manifest: inputs with hashes, counts, formula, priors, sampler, seed, versions."""

from __future__ import annotations

import hashlib
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import polars as pl

#: A JSON number (``bool`` is an ``int`` in Python and is not one).
_NUMBER = (int, float)


class ManifestError(ValueError):
    """A run manifest that lacks a field, or holds one of the wrong kind."""


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
        "parametrization": {"requested": fit.sampling.plan.requested, "sampled": fit.parametrization,
                            "terms": fit.parametrizations()},
        "sampling": fit.sampling.as_dict(),
        "sampler": fit.settings.as_dict(),
        "backend": fit.sampling.backend,
        "items_integrated": fit.items_integrated,
        "seed": fit.settings.seed,
        "hdi_prob": hdi_prob,
        "versions": versions(),
        "diagnostics": fit.diagnostics.summary(),
        "timing": timing,
        **extra,
    }


# --- checking a manifest read back -----------------------------------------------------------
# A field's kind: a type or tuple of types, or ("list", kind), ("map", kind), ("record", {key: kind}),
# ("optional", kind) (None allowed), ("probability",) (a number strictly between 0 and 1).

_TEXT_MAP = ("map", str)
_OPTIONAL_NUMBER = ("optional", _NUMBER)
#: One attempt of a sampling plan (``dvbstats.model.plan.Attempt``) and of the record of one made.
_ATTEMPT = {"parametrization": str, "target_accept": _OPTIONAL_NUMBER, "low_rank": bool}
#: The fields read back (report, console, Fit.load) and what each must be (``optional``: may be null, as
#: the Python API writes some); other keys are not read.
FIELDS: dict[str, object] = {
    "run_name": ("optional", str), "created": ("optional", str),
    "command": ("optional", ("either", ("list", str), str)), "synthetic": bool,
    "inputs": ("list", ("record", {"path": str, "sha256": str, "format": str, "n_rows": _OPTIONAL_NUMBER})),
    "formula": str, "design": ("list", str), "priors": _TEXT_MAP,
    "parametrization": ("record", {"requested": str, "sampled": str, "terms": _TEXT_MAP}),
    "sampling": ("record", {"plan": ("record", {"requested": str, "source": str, "terms": _TEXT_MAP,
                                                "attempts": ("list", ("record", _ATTEMPT))}),
                            "attempts": ("list", ("record", {**_ATTEMPT, "backend": ("optional", str),
                                                             "terms": _TEXT_MAP}))}),
    "sampler": ("map", ("optional", (str, int, float, bool))), "backend": ("optional", str), "seed": int,
    "items_integrated": ("optional", ("map", (str, int, float, bool))),
    "hdi_prob": ("probability",), "versions": _TEXT_MAP,
    "diagnostics": ("record", {"ok": bool, "failures": ("list", str), "max_r_hat": _OPTIONAL_NUMBER,
                               "min_ess_bulk": _OPTIONAL_NUMBER, "min_ess_tail": _OPTIONAL_NUMBER,
                               "divergences": _OPTIONAL_NUMBER}),
    "timing": ("optional", ("map", (int, float, str))),
    "benchmark": ("optional", ("record", {
        "name": str, "title": str, "outcome": str, "item": ("optional", str), "rate_name": str, "rate_long": str,
        "rate_by_condition": _TEXT_MAP, "reference": _OPTIONAL_NUMBER, "reference_label": str,
        "default_formula": str, "wording": _TEXT_MAP})),
    "empty_models": ("record", {"models": ("list", str), "in_fit": bool, "note": str}),
    "bounded": ("list", str), "scaling": str, "agreement": str,
}
#: Fields every manifest has (the rest may be absent in runs written by older versions).
REQUIRED = ("formula", "sampler", "hdi_prob", "diagnostics")
_REQUIRED_IN = {"diagnostics": ("ok",), "benchmark": ("name",), "sampling": ("plan", "attempts")}


def check(meta: object, path: str | Path) -> dict:
    """``meta`` (a manifest read from ``path``) when each field it holds is of its kind (:data:`FIELDS`);
    else :class:`ManifestError` naming the file, the field and what it must be."""
    if not isinstance(meta, dict):
        raise ManifestError(f"{path}: expected a JSON object at the top level")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ManifestError(f"{path}: missing key(s) {', '.join(missing)}")
    for key, kind in FIELDS.items():
        if key in meta:
            _check(meta[key], kind, key, path)
            for inner in _REQUIRED_IN.get(key, ()) if isinstance(meta[key], dict) else ():
                if inner not in meta[key]:
                    raise ManifestError(f"{path}: {key} has no {inner!r}")
    return meta


def _check(value: object, kind: object, where: str, path: str | Path) -> None:
    ok, what = _fits(value, kind, where, path)
    if not ok:
        shown = repr(value)
        raise ManifestError(f"{path}: {where} must be {what}, not {shown if len(shown) <= 60 else shown[:57] + '...'}")


def _fits(value: object, kind: object, where: str, path: str | Path) -> tuple[bool, str]:
    """Whether ``value`` is of ``kind`` (checking inside lists, maps and records), and the kind in words."""
    if isinstance(kind, type) or all(isinstance(k, type) for k in kind):
        types = kind if isinstance(kind, tuple) else (kind,)
        words = {str: "text", bool: "true or false", int: "a whole number", float: "a number", dict: "an object"}
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        return ok, " or ".join(dict.fromkeys(words.get(t, t.__name__) for t in types))
    tag, *args = kind
    if tag == "optional":
        return (True, "") if value is None else _fits(value, args[0], where, path)
    if tag == "either":
        results = [_fits(value, k, where, path) for k in args]
        return any(ok for ok, _ in results), " or ".join(w for _, w in results)
    if tag == "probability":
        ok = isinstance(value, _NUMBER) and not isinstance(value, bool) and 0 < value < 1
        return ok, "a number between 0 and 1"
    if tag == "list":
        if not isinstance(value, list):
            return False, "a list"
        for i, item in enumerate(value):
            _check(item, args[0], f"{where}[{i}]", path)
        return True, "a list"
    if tag == "map":
        if not isinstance(value, dict):
            return False, "an object"
        for key, item in value.items():
            _check(item, args[0], f"{where}.{key}", path)
        return True, "an object"
    if not isinstance(value, dict):  # a record
        return False, "an object"
    for key, inner in args[0].items():
        if key in value:
            _check(value[key], inner, f"{where}.{key}", path)
    return True, "an object"
