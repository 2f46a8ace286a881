"""Modules imported on first use.

PyMC and PyTensor take 2.5 s to import (``python -X importtime``), and the default fit samples a
hand-written density (:mod:`dvbstats.model.fastlogp`) that needs neither. The code that builds PyMC models
lives in modules that import PyMC at their top (:mod:`dvbstats.model.pymcmodel`,
:mod:`dvbstats.results.agreement_pymc`); the callers on the fit path name those modules through
:func:`module`, so that only a run that builds a PyMC model pays for the import. ``tests/test_layers.py``
lists every use.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType


class _Lazy:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        with warnings.catch_warnings():  # a notice that says nothing about a user's fit, in a scope
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation",
                                    category=UserWarning)  # (models are sampled through nutpie's Numba backend)
            module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def module(name: str) -> ModuleType:
    """A stand-in for ``import name`` that imports it at the first attribute access."""
    return _Lazy(name)  # type: ignore[return-value]
