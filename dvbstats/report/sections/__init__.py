"""The report's sections by name: a registry.

A section is a function returning the section's markdown (empty when the run has nothing for it), registered
under a name with :func:`register`; it takes, by parameter name, what it needs of the :class:`Context` (``run``,
``figures``, ``models``, ``overall``). A benchmark's definition lists the names its report shows, in order
(``Benchmark.report``), and :func:`draw` draws each. The modules of this package register the report's own
sections; a benchmark defined elsewhere registers its own the same way, so no list of names is kept by hand and
no section asks which benchmark it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TypeVar

import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report.markdown import Figures


Section = TypeVar("Section", bound=Callable[..., str])


@dataclass(frozen=True)
class Context:
    """What sections are drawn from: the run folder, the figure writer, the per-model rates (sorted by posterior
    mean) and the overall row (:func:`dvbstats.report.sections.rates.split_rates`)."""

    run: RunFolder
    figures: Figures
    models: pd.DataFrame
    overall: pd.Series


#: Every registered section: name -> a function of the :class:`Context`.
SECTIONS: dict[str, Callable[[Context], str]] = {}
_FUNCTIONS: dict[str, Callable[..., str]] = {}


def register(name: str) -> Callable[[Section], Section]:
    """Register the decorated function as the report section ``name`` (a function registered again under its
    name, say by a module reloaded, replaces itself; another function under a taken name is an error)."""
    def add(function: Section) -> Section:
        wanted = list(inspect.signature(function).parameters)
        unknown = sorted(set(wanted) - {f.name for f in fields(Context)})
        if unknown:
            raise TypeError(f"report section {name!r}: parameters {unknown} are not fields of Context")
        known = _FUNCTIONS.get(name)
        if known is not None and known.__qualname__ != function.__qualname__:
            raise ValueError(f"report section {name!r} is already registered ({known.__module__}.{known.__qualname__})")
        _FUNCTIONS[name] = function
        SECTIONS[name] = lambda context: function(**{p: getattr(context, p) for p in wanted})
        return function
    return add


def draw(name: str, context: Context) -> str:
    """The section ``name`` drawn from ``context`` (its figures written as it is drawn)."""
    if name not in SECTIONS:
        raise KeyError(f"no report section {name!r}; registered: {', '.join(sorted(SECTIONS))}")
    return SECTIONS[name](context)
