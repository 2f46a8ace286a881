"""What ArviZ reads beside the posterior, per design cell: the observed data, the pointwise log-likelihood and
posterior predictive draws.

One observation is one design cell: all the parsed trials of one model in one combination of the design
variables (cells without a trial are left out), as in :mod:`dvbstats.results.compare`. Its outcome is the cell
table's ``n_deep`` successes of ``n_trials`` (the number of trials is ``constant_data``, as the number of
trials of a binomial family in bambi), and ``n_deep`` is the variable name ArviZ pairs across the groups
(``observed_data``, ``log_likelihood``, ``posterior_predictive``), so ``az.loo`` and ``az.plot_ppc`` read
them. Every group has the dimension ``cell`` (the cell's row in the fit's cell table) with the cell's design
columns as coordinates.
"""

from __future__ import annotations

from collections.abc import Iterator

import arviz as az
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import xarray as xr
from scipy.stats import binom

from dvbstats.constants import SEED
from dvbstats.model.design import Design, predictor_layout, stacked_parameters
from dvbstats.results import estimands

#: The observed variable: successes per cell (the cell table's count column).
OUTCOME = "n_deep"
#: The dimension of one observation.
CELL = "cell"


def observed_rows(d: Design) -> np.ndarray:
    """The rows of ``d``'s cell table that are observations (at least one trial: ``Design.observed``)."""
    return np.flatnonzero(d.observed)


def _observed_cells(d: Design, rows: np.ndarray) -> pl.DataFrame:
    """The rows ``rows`` of ``d``'s cell table (the table itself when they are all of it: no copy)."""
    return d.cells.data if len(rows) == d.cells.data.height else d.cells.data[rows]


def _text(values: pl.Series) -> np.ndarray:
    """A text column as a fixed-width NumPy string array (a missing level as empty text), built from its distinct
    levels: at 10 M cells a Python string per cell took 3.2 GB and 39 s for two columns (model and item)."""
    encoded = pc.dictionary_encode(values.cast(pl.String).fill_null("").to_arrow())
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    levels = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
    return levels[encoded.indices.to_numpy()]


def cell_coords(d: Design) -> dict[str, tuple[str, np.ndarray] | np.ndarray]:
    """The coordinates of the ``cell`` dimension: the cell's row, and each design column (text as text, so the
    groups can be written to netCDF)."""
    rows = observed_rows(d)
    data = _observed_cells(d, rows)
    coords: dict[str, tuple[str, np.ndarray] | np.ndarray] = {CELL: rows}
    for column in d.cells.by:
        values = data[column]
        coords[column] = (CELL, values.to_numpy() if values.dtype.is_numeric() else _text(values))
    return coords


def observed_data(d: Design) -> tuple[xr.Dataset, xr.Dataset]:
    """The ``observed_data`` (``n_deep`` per cell) and ``constant_data`` (``n_trials`` per cell) groups."""
    data, coords = _observed_cells(d, observed_rows(d)), cell_coords(d)
    counts = {c: (CELL, data[c].to_numpy()) for c in ("n_deep", "n_trials")}
    return (xr.Dataset({OUTCOME: counts["n_deep"]}, coords=coords),  # (a Dataset does not copy its coordinates)
            xr.Dataset({"n_trials": counts["n_trials"]}, coords=coords))


def _probabilities(d: Design, idata: az.InferenceData) -> Iterator[np.ndarray]:
    """P(outcome) of every observed cell, one posterior draw at a time (chains one after another)."""
    rows = observed_rows(d)
    theta = stacked_parameters(d, estimands.stacked_draws(idata, estimands.parameter_names(d)))
    cols, vals = (a[rows] for a in predictor_layout(d))
    for t in theta:
        yield estimands.cell_sigmoid(t, cols, vals)


def _per_draw(d: Design, idata: az.InferenceData, values: np.ndarray) -> xr.DataArray:
    """(draws, cells) values as a (chain, draw, cell) array named :data:`OUTCOME`."""
    post = idata.posterior
    return xr.DataArray(values.reshape(post.sizes["chain"], post.sizes["draw"], -1), dims=("chain", "draw", CELL),
                        coords={"chain": post.chain, "draw": post.draw, **cell_coords(d)}, name=OUTCOME)


def log_likelihood(d: Design, idata: az.InferenceData) -> xr.DataArray:
    """Pointwise binomial log-likelihood (chain, draw, cell) of the posterior ``idata`` on ``d``'s cells
    (the binomial coefficients included)."""
    rows = observed_rows(d)
    n, k = d.cells.data["n_trials"].to_numpy()[rows], d.cells.data["n_deep"].to_numpy()[rows]
    return _per_draw(d, idata, np.stack([binom.logpmf(k, n, p) for p in _probabilities(d, idata)]))


def posterior_predictive(d: Design, idata: az.InferenceData, seed: int = SEED) -> xr.DataArray:
    """Replicated successes (chain, draw, cell): ``Binomial(n_trials, p)`` of every cell for every posterior
    draw, seeded (the same ``seed`` gives the same replications)."""
    rng = np.random.default_rng(seed)
    n = d.cells.data["n_trials"].to_numpy()[observed_rows(d)]
    return _per_draw(d, idata, np.stack([rng.binomial(n, p) for p in _probabilities(d, idata)]))
