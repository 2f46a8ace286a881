"""Model comparison by PSIS-LOO (ArviZ) for fits of the same trials.

**What one observation is.** The likelihood is written on binomial cells, so the pointwise
log-likelihood — and so leave-one-out — is per *design cell*: all the parsed trials of one model
in one combination of the design variables. LOO here asks "how well does the model predict a whole
held-out cell", which is the question that matters for a design-averaged rate. Fits whose
formulas use different variables have different cells; to make their ELPDs comparable, every fit
is evaluated on the finest cell table that any of them was fitted to (the cells of one fit refine
those of the other when its variables include theirs). The binomial coefficients are included;
they are the same for every fit of the same cells and cancel in ELPD differences.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import arviz as az
import pandas as pd
import xarray as xr

from dvbstats.input.cells import CellTable, collapse
from dvbstats.model.design import design
from dvbstats.results import predictive
from dvbstats.results.fitted import Fit

#: Pareto k above which a PSIS-LOO term is unreliable whatever the number of draws (Vehtari et al. 2024).
PARETO_K_BAD = 0.7
#: An ELPD difference within this many of its standard errors prefers neither model.
SE_RULE = 2.0
#: An ELPD difference below this is small whatever its standard error, whose normal approximation is
#: then poor (Sivula, Magnusson, Matamoros & Vehtari 2022, "Uncertainty in Bayesian LOO model comparison").
SMALL_ELPD = 4.0


class ComparisonError(ValueError):
    """Fits that cannot be compared (different trials, or no common cell table)."""


def common_cells(fits: Sequence[Fit]) -> CellTable:
    """The finest cell table every fit can be evaluated on: one whose design includes all others'."""
    wanted = tuple(dict.fromkeys(c for f in fits for c in f.cells.by))
    totals = {(f.cells.n_trials, f.cells.n_deep) for f in fits}
    if len(totals) > 1:
        raise ComparisonError(
            "the fits were fitted to different trials (used trials / deep choices: "
            + ", ".join(f"{n:,}/{k:,}" for n, k in sorted(totals)) + "); LOO compares models of the same data")
    for f in fits:
        if set(wanted) <= set(f.cells.by):
            return collapse(f.cells, wanted)
    raise ComparisonError(
        f"no fit's cells are split by every design variable used ({', '.join(wanted)}); "
        "add the variables a formula lacks as fixed or random terms of the richest model, or compare fits "
        "whose variables nest")


def log_likelihood(fit: Fit, cells: CellTable | None = None) -> xr.DataArray:
    """Pointwise binomial log-likelihood, (chain, draw, cell), of ``fit`` on ``cells`` (default: its own)."""
    d = fit.design if cells is None else design(fit.formula, cells)
    if cells is not None:
        _check_levels(fit, d)
    return predictive.log_likelihood(d, fit.idata)


def _check_levels(fit: Fit, d) -> None:
    """The posterior's level coordinates must be the ones the new cells index into."""
    post = fit.idata.posterior
    for t in d.terms:
        for dim, levels in zip(t.dims, t.levels):
            if dim in post.coords and [str(x) for x in post.coords[dim].values] != list(levels):
                raise ComparisonError(f"the cells have other levels of {dim!r} than the fit of {fit.formula}")


def with_log_likelihood(fit: Fit, cells: CellTable | None = None) -> az.InferenceData:
    """A copy of the fit's InferenceData with a ``log_likelihood`` group (what ``az.loo`` reads)."""
    idata = fit.idata.copy()
    ll = log_likelihood(fit, cells)
    if "log_likelihood" in idata.groups():
        del idata.log_likelihood
    idata.add_groups(log_likelihood=xr.Dataset({"n_deep": ll}))
    return idata


def compare(fits: Mapping[str, Fit] | Sequence[Fit]) -> pd.DataFrame:
    """PSIS-LOO ELPD of each fit, best first, with ELPD differences and their standard errors.

    Columns as :func:`arviz.compare` (``elpd_loo, p_loo, elpd_diff, weight, se, dse, warning``) plus
    ``formula``, ``n_cells`` and ``n_bad_k`` (cells whose Pareto k exceeds ArviZ's threshold for the
    number of draws, at most 0.7: their LOO terms are unreliable, and ``warning`` is True).
    """
    named = dict(fits) if isinstance(fits, Mapping) else {str(f.formula): f for f in fits}
    if len(named) < 2:
        raise ComparisonError("compare needs at least two fits")
    cells = common_cells(list(named.values()))
    with warnings.catch_warnings():  # ArviZ's Pareto-k warning names no model: n_bad_k does
        warnings.simplefilter("ignore", UserWarning)
        loos = {name: az.loo(with_log_likelihood(f, cells), pointwise=True) for name, f in named.items()}
        table = az.compare(loos, ic="loo")
    bad = {name: int((loo.pareto_k.values > min(loo.good_k, PARETO_K_BAD)).sum()) for name, loo in loos.items()}
    table["formula"] = [str(named[name].formula) for name in table.index]
    table["n_cells"] = int((cells.data["n_trials"] > 0).sum())
    table["n_bad_k"] = [bad[name] for name in table.index]
    return table


def reading(table: pd.DataFrame) -> str:
    """What :func:`compare`'s table says in plain words: which fits predict held-out cells clearly worse
    than the best (ELPD difference above :data:`SE_RULE` standard errors and at least :data:`SMALL_ELPD`),
    and which cannot be told apart from it."""
    best, others = str(table.index[0]), table.iloc[1:]
    worse = (others["elpd_diff"] > SE_RULE * others["dse"]) & (others["elpd_diff"] >= SMALL_ELPD)

    def listed(rows: pd.DataFrame) -> str:
        return "; ".join(f"{name} by {row.elpd_diff:.2f} ± {row.dse:.2f}" for name, row in rows.iterrows())

    rule = f"within {SE_RULE:g} SE or below {SMALL_ELPD:g} ELPD points"
    if not worse.any():
        return (f"No model is preferred: the ELPD difference of {'the other fit' if len(others) == 1 else 'every other fit'} "
                f"to the best ({best}) is {rule} ({listed(others)}); they predict held-out cells equally well as far "
                "as LOO can tell.")
    text = (f"{best} predicts held-out cells best; clearly worse (difference above {SE_RULE:g} SE and at least "
            f"{SMALL_ELPD:g} ELPD points): {listed(others[worse])}.")
    if (~worse).any():
        text += f" Not distinguishable from {best} ({rule}): {listed(others[~worse])}."
    return text
