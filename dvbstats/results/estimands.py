"""Estimands computed from a fitted posterior: DVGR, its intervals, effects, PPC.

**Design-averaged DVGR** of a model (the headline): for each posterior draw, the probability of
a deep-value choice in every design cell of that model, averaged with the cells' prompt counts
as weights. It answers "how often would this model choose the deep value on this benchmark",
on the same scale as the raw rate, but with partial pooling and honest uncertainty.

**Population DVGR**: the probability for a *new* value, feature and context drawn from the
fitted population (brms' ``sample_new_levels = "gaussian"``): per draw, each random term not
identified by the model gets one fresh deviation ``Normal(0, sd * sqrt(1 + 1/L))``; the
``1/L`` accounts for the zero-sum parametrisation, whose intercept is the mean of the ``L``
observed levels rather than the population mean. Numeric predictors (and factor codings) sit at
their design mean, where centred columns are zero: random slopes then contribute only their
intercept.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import arviz as az
import numba
import numpy as np
import polars as pl
import xarray as xr
from scipy import sparse
from scipy.special import expit

from dvbstats.constants import CHANCE
from dvbstats.model import crossed
from dvbstats.model.design import Design, predictor_layout, stacked_parameters
from dvbstats.model.fastlogp import _exp_minus_abs, two_level_layout
from dvbstats.results import frequentist



def stacked_draws(idata: az.InferenceData, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Posterior arrays of ``names`` with chain and draw flattened into one leading axis."""
    post = idata.posterior
    return {n: post[n].values.reshape(-1, *post[n].shape[2:]) for n in names if n in post}


def parameter_names(d: Design) -> list[str]:
    return ["Intercept"] + [f"b_{x}" for x in d.fixed] + [f"r_{t.name}" for t in d.random]


#: Posterior draws whose parameters :func:`design_averages` holds in float64 at once: 256 draws x 11,001
#: parameters (1,000 models and 10,000 items) is 23 MB, where all 4,000 draws were 352 MB.
DRAW_BLOCK = 256


def design_averages(
    d: Design, idata: az.InferenceData, groupings: Sequence[Sequence[str]]
) -> list[tuple[xr.DataArray, pl.DataFrame]]:
    """Prompt-weighted mean probability per group of cells, for several groupings in one pass.

    For each grouping: a (chain, draw, group) array and the group keys (one row per group).
    """
    df = d.cells.data.with_row_index("_cell")
    w = df["n_prompts"].to_numpy().astype(float)
    keys_by, totals, runs = [], [], []
    offset = 0  # each grouping's groups are its own columns of one (draws, groups) array: no padding to the widest
    for by in groupings:
        if by:
            keys = df.select(by).unique().sort(by).with_row_index("_group")
            group = df.join(keys, on=list(by), how="left").sort("_cell")["_group"].to_numpy().astype(np.int64)
        else:
            keys, group = pl.DataFrame({"_group": [0]}), np.zeros(df.height, dtype=np.int64)
        totals.append(np.bincount(group, weights=w, minlength=keys.height))
        keys_by.append(keys.drop("_group"))
        starts = np.flatnonzero(np.diff(group, prepend=-1))  # runs of cells in one group (cells are sorted)
        runs.append(np.column_stack([starts, np.append(starts[1:], len(group)), offset + group[starts]]))
        offset += keys.height
    offsets = np.cumsum([0] + [k.height for k in keys_by])
    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    stacked = stacked_draws(idata, parameter_names(d))  # views of the posterior (item effects: float32)
    margins = crossed_margins(d, groupings, keys_by, w)
    sums = _crossed_sums(margins, stacked, offsets) if margins is not None else _cell_sums(d, stacked, runs)
    # the kernel releases the GIL and each draw's sums are its own: one slice of draws per core, in threads,
    # each writing its own rows of the one output array
    out = np.zeros((n_chain * n_draw, offsets[-1]))
    chunks = draw_slices(n_chain * n_draw)
    with ThreadPoolExecutor(len(chunks)) as pool:
        list(pool.map(lambda draws: sums(draws, out[draws]), chunks))
    coords = {"chain": post.chain, "draw": post.draw}
    return [
        (xr.DataArray((out[:, offsets[i]:offsets[i + 1]] / totals[i]).reshape(n_chain, n_draw, -1),
                      dims=("chain", "draw", "group"), coords=coords), keys)
        for i, keys in enumerate(keys_by)
    ]


#: The most (draws x groups) of the finest grouping :class:`~dvbstats.results.fitted.Fit` holds, to derive coarser
#: groupings asked for after the fit from it (:func:`regroup`) instead of passing over the cells again: 2^23 float64,
#: 64 MB (HVSB's 12 models x 3 conditions x 48 scenario types at 4,000 draws is 55 MB).
MAX_FINE_VALUES = 2**23


def group_weights(d: Design, keys: pl.DataFrame) -> np.ndarray:
    """The total weight (prompts) of each group of ``keys`` (one row per group, as :func:`design_averages` returns
    them) over the cells of ``d``: what a group's design average divides by."""
    by = list(keys.columns)
    totals = d.cells.data.group_by(by).agg(pl.col("n_prompts").sum().cast(pl.Float64).alias("_weight"))
    return keys.join(totals, on=by, how="left", maintain_order="left")["_weight"].fill_null(0.0).to_numpy()


def regroup(
    fine: tuple[xr.DataArray, pl.DataFrame], weights: np.ndarray, groupings: Sequence[Sequence[str]]
) -> list[tuple[xr.DataArray, pl.DataFrame]]:
    """:func:`design_averages` of ``groupings`` from those of a finer grouping: ``fine`` is its (chain, draw, group)
    averages and keys (to which columns that its groups determine may be joined), ``weights`` its groups' total
    weights (:func:`group_weights`). Each coarse group's sum is the sum of its fine groups' sums (average times
    weight), so the averages are those of a pass over the cells, up to rounding, for draws x fine groups adds."""
    da, keys = fine
    n_chain, n_draw, n_fine = da.shape
    by_group = np.ascontiguousarray(da.values.reshape(-1, n_fine).T)  # (fine, draws): one copy for every grouping
    weighed = np.flatnonzero(weights > 0)  # a group without weight adds nothing (its average is NaN)
    coords = {"chain": da.chain, "draw": da.draw}
    out = []
    for by in groupings:
        if by:
            coarse = keys.select(by).unique().sort(by).with_row_index("_group")
            group = keys.join(coarse, on=list(by), how="left", maintain_order="left")["_group"].to_numpy()
        else:
            coarse, group = pl.DataFrame({"_group": [0]}), np.zeros(n_fine, dtype=np.int64)
        # (coarse, fine) @ (fine, draws), each fine group's weight in its coarse group's row
        to_coarse = sparse.csr_matrix((weights[weighed], (group[weighed], weighed)), shape=(coarse.height, n_fine))
        totals = np.bincount(group, weights=weights, minlength=coarse.height)
        averaged = (to_coarse @ by_group).T / totals
        out.append((xr.DataArray(averaged.reshape(n_chain, n_draw, -1), dims=("chain", "draw", "group"), coords=coords),
                    coarse.drop("_group")))
    return out


def _cell_sums(d: Design, stacked: dict[str, np.ndarray], runs: list[np.ndarray]):
    """The sums of :func:`design_averages` over a slice of draws into its rows of the output, cell by cell
    (:func:`_group_sums`), the float64 parameters built one block of DRAW_BLOCK draws at a time."""
    layout = item_layout(*predictor_layout(d))
    w = d.cells.data["n_prompts"].to_numpy().astype(float)
    run_rows = np.concatenate(runs or [np.zeros((0, 3))]).astype(np.int64)

    def sums(draws: slice, part: np.ndarray) -> None:
        for a in range(draws.start, draws.stop, DRAW_BLOCK):
            b = min(a + DRAW_BLOCK, draws.stop)
            theta = stacked_parameters(d, {n: v[a:b] for n, v in stacked.items()})
            _group_sums(theta, *layout, w, run_rows, part[a - draws.start:b - draws.start])

    return sums


def crossed_margins(d: Design, groupings: Sequence[Sequence[str]], keys_by: list[pl.DataFrame], w: np.ndarray):
    """For a complete crossed design (:func:`dvbstats.model.crossed.crossed_terms`) every cell of which is in the
    table with the same weight, and groupings each by nothing, the rows' factor or the columns' factor: the
    row and column terms, the weight, and per grouping its margin (None: every cell, 0: rows, 1: columns) and
    each group's level position in that term. Otherwise None (the sums go cell by cell)."""
    positions = crossed.crossed_terms(d)
    if positions is None or len(w) != int(d.observed.sum()) or np.any(w != w[0]):
        return None
    terms = [d.terms[i] for i in positions]
    picks = []
    for by, keys in zip(groupings, keys_by):
        if not by:
            picks.append((None, None))
            continue
        margin = next((j for j, t in enumerate(terms) if tuple(by) == t.dims), None)
        if margin is None:
            return None
        at = {level: i for i, level in enumerate(terms[margin].levels[0])}
        found = [at.get(str(v), -1) for v in keys[by[0]].to_list()]
        if -1 in found:
            return None
        picks.append((margin, np.array(found, dtype=np.int64)))
    return terms[0], terms[1], float(w[0]), picks


def _crossed_sums(margins, stacked: dict[str, np.ndarray], offsets: np.ndarray):
    """The sums of :func:`design_averages` over a slice of draws into its rows of the output, from the rows' and
    columns' sums of the sigmoid (:func:`dvbstats.model.crossed.sigmoid_sums`): no cell layout, one product and
    one division per cell."""
    rows, cols, w0, picks = margins
    sizes = len(rows.levels[0]), len(cols.levels[0])

    def sums(draws: slice, part: np.ndarray) -> None:
        for a in range(draws.start, draws.stop, DRAW_BLOCK):
            b = min(a + DRAW_BLOCK, draws.stop)
            row_sums, col_sums = np.empty((b - a, sizes[0])), np.empty((b - a, sizes[1]))
            crossed.sigmoid_sums(np.ascontiguousarray(stacked["Intercept"][a:b], dtype=np.float64),
                                 np.ascontiguousarray(stacked[f"r_{rows.name}"][a:b]),
                                 np.ascontiguousarray(stacked[f"r_{cols.name}"][a:b]), row_sums, col_sums)
            for g, (margin, at) in enumerate(picks):
                block = row_sums.sum(axis=1, keepdims=True) if margin is None else (row_sums, col_sums)[margin][:, at]
                part[a - draws.start:b - draws.start, offsets[g]:offsets[g] + block.shape[1]] = w0 * block

    return sums


def crossed_replicated(margins, draws: dict[str, np.ndarray], seed: int, out: np.ndarray) -> None:
    """Replicated counts of a complete crossed design (``margins`` of :func:`crossed_margins`, whose weight is the
    trials per cell) summed per group of each grouping into ``out[g, draw, group]``, for the stacked ``draws``
    (:func:`dvbstats.model.crossed.replicated_sums`)."""
    rows, cols, trials, picks = margins
    n_draws = len(draws["Intercept"])
    row_sums, col_sums = np.empty((n_draws, len(rows.levels[0]))), np.empty((n_draws, len(cols.levels[0])))
    crossed.replicated_sums(np.ascontiguousarray(draws["Intercept"], dtype=np.float64),
                            np.ascontiguousarray(draws[f"r_{rows.name}"]), np.ascontiguousarray(draws[f"r_{cols.name}"]),
                            int(trials), seed, row_sums, col_sums)
    for g, (margin, at) in enumerate(picks):
        block = row_sums.sum(axis=1, keepdims=True) if margin is None else (row_sums, col_sums)[margin][:, at]
        out[g, :, :block.shape[1]] = block


def draw_slices(n: int) -> list[slice]:
    """``range(n)`` of posterior draws cut into one contiguous slice per core (at least one draw each)."""
    edges = np.linspace(0, n, max(1, min(os.cpu_count() or 1, n)) + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


_NO_ITEMS = np.zeros(0, dtype=np.int64)  # item and design_of of a layout in one level


def item_layout(cols: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~dvbstats.model.design.predictor_layout` in two levels when it has an item-like random intercept
    (the entry of weight 1 with the most distinct parameters) and at most half as many design cells as cells
    (:func:`dvbstats.model.fastlogp.two_level_layout`): the design cells' ``cols`` and ``vals`` without it, each
    cell's item parameter and design cell. Otherwise ``cols, vals`` and two empty arrays. A cell's linear
    predictor is then its design cell's plus one parameter: two gathers per cell instead of one per entry."""
    ones = [j for j in range(cols.shape[1]) if np.all(vals[:, j] == 1.0)]
    if not ones:
        return cols, vals, _NO_ITEMS, _NO_ITEMS
    j = max(ones, key=lambda t: len(np.unique(cols[:, t])))
    split = two_level_layout(np.delete(vals, j, axis=1), cols, column=j)
    if split is None:
        return cols, vals, _NO_ITEMS, _NO_ITEMS
    design_vals, design_cols, item, design_of = split
    return (np.ascontiguousarray(design_cols, dtype=np.int64), np.ascontiguousarray(design_vals, dtype=np.float64),
            item.astype(np.int64), design_of.astype(np.int64))


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _linear(theta, cols, vals):
    """The linear predictor of every row of the layout for one draw ``theta``."""
    n_rows, width = cols.shape
    eta = np.empty(n_rows)
    for c in range(n_rows):
        e = 0.0
        for j in range(width):
            e += theta[cols[c, j]] * vals[c, j]
        eta[c] = e
    return eta


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _sigmoid(eta):
    """logit^-1 of ``eta``, in place."""
    a = _exp_minus_abs(eta)  # in (0, 1]: the sigmoid without overflow
    for c in range(len(eta)):
        eta[c] = (1.0 if eta[c] > 0 else a[c]) / (1.0 + a[c])
    return eta


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def cell_sigmoid(theta, cols, vals):
    """logit^-1 of the linear predictor of every cell for one draw ``theta`` (:func:`~dvbstats.model.design.predictor_layout`)."""
    return _sigmoid(_linear(theta, cols, vals))


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def item_sigmoid(theta, cols, vals, item, design_of):
    """:func:`cell_sigmoid` on a layout of :func:`item_layout` (one level when ``item`` is empty)."""
    rows = _linear(theta, cols, vals)
    if len(item) == 0:
        return _sigmoid(rows)
    eta = np.empty(len(item))
    for c in range(len(item)):
        eta[c] = rows[design_of[c]] + theta[item[c]]
    return _sigmoid(eta)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp", "nsz"})
def _group_sums(theta, cols, vals, item, design_of, w, runs, out):
    """``out[i, k]`` = the sum of ``w[c] logit^-1(eta[i, c])`` over the cells of group ``k`` (the groups of every
    grouping side by side), ``eta`` computed cell by cell from the draws ``theta`` (layout of :func:`item_layout`)
    and the groups given as runs of consecutive cells (``runs[r]`` = start, end, group). No (draws, cells) array
    and one add per run instead of a scatter per cell: at 182,600 cells x 4,000 draws the NumPy linear predictor
    and per-cell scatter took 27 s CPU, this 6 s (benchmarks/bench_stages.py)."""
    for i in range(theta.shape[0]):
        p = item_sigmoid(theta[i], cols, vals, item, design_of) * w
        row = out[i]
        for r in range(runs.shape[0]):
            s = 0.0
            for c in range(runs[r, 0], runs[r, 1]):
                s += p[c]
            row[runs[r, 2]] += s


def dvgr_draws(averaged: tuple[xr.DataArray, pl.DataFrame]) -> xr.DataArray:
    """Design-averaged DVGR per model, (chain, draw, model), from the ``("model",)`` grouping."""
    da, keys = averaged
    return da.rename(group="model").assign_coords(model=keys["model"].to_list()).rename("dvgr")


def overall_dvgr(averaged: tuple[xr.DataArray, pl.DataFrame]) -> xr.DataArray:
    """Design-averaged DVGR over every model's cells, (chain, draw), from the ``()`` grouping."""
    return averaged[0].isel(group=0, drop=True).rename("dvgr_overall")


def population_dvgr(d: Design, idata: az.InferenceData, models: Sequence[str], seed: int) -> xr.DataArray:
    """DVGR per model for a new draw of every non-model factor from the fitted population."""
    post = idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    rng = np.random.default_rng(seed)
    eta = np.zeros((*shape, len(models)))
    if d.formula.intercept:
        eta += post["Intercept"].values[..., None]
    for t in d.terms:
        if t.term.factors == ("model",):
            levels = list(t.levels[0])
            eta += post[f"r_{t.name}"].values[..., [levels.index(m) for m in models]]
            continue
        n_levels = int(np.prod([len(lv) for dim, lv in zip(t.dims, t.levels) if dim != "model"]))
        sd = post[f"sd_{t.name}"].values[..., None] * np.sqrt(1 + 1 / n_levels)
        eta += sd * rng.standard_normal((*shape, len(models)))
    for s in d.slopes:
        if "Intercept" not in s.coefficients:
            continue
        if s.term.factors == ("model",):
            eta += post[f"r_{s.name}"].values[..., [s.levels.index(m) for m in models], 0]
            continue
        sd = post[f"sd_{s.sd_names[0]}"].values[..., None] * np.sqrt(1 + 1 / len(s.levels))
        eta += sd * rng.standard_normal((*shape, len(models)))
    return xr.DataArray(expit(eta), dims=("chain", "draw", "model"),
                        coords={"chain": post.chain, "draw": post.draw, "model": list(models)}, name="dvgr_population")


def summarize(da: xr.DataArray, hdi_prob: float, *, dim: str | None = None,
              reference: float | None = CHANCE) -> pl.DataFrame:
    """Mean, median, HDI and P(< ``reference``) (column ``p_below_half``; NaN without a reference) of a
    (chain, draw[, dim]) array, one row per ``dim`` level."""
    mean = da.mean(("chain", "draw"))
    sorted_draws = _sorted_columns(da, dim)
    if sorted_draws is None:
        hdi = az.hdi(da.to_dataset(name="x"), hdi_prob=hdi_prob)["x"]
        median, low, high = da.median(("chain", "draw")), hdi.sel(hdi="lower"), hdi.sel(hdi="higher")
    else:
        median, (low, high) = _median_sorted(sorted_draws), _hdi_sorted(sorted_draws, hdi_prob)
    stats = {
        "mean": mean,
        "median": median,
        "hdi_low": low,
        "hdi_high": high,
        "p_below_half": ((da < reference).mean(("chain", "draw"))
                        if reference is not None else np.full(np.shape(mean), np.nan)),
    }
    cols = {k: np.atleast_1d(np.asarray(v)).astype(float) for k, v in stats.items()}
    if dim is not None:
        cols = {dim: [str(x) for x in da[dim].values], **cols}
    return pl.DataFrame(cols)


def _sorted_columns(da: xr.DataArray, dim: str | None) -> np.ndarray | None:
    """The draws of a (chain, draw[, dim]) array as (draws, levels), each column sorted: one sort gives
    :func:`summarize` both the median and the HDI. None when a draw is NaN (the median then skips it, ArviZ's
    HDI does not: the general path keeps both) or the array has other dimensions."""
    if da.dims != ("chain", "draw", *((dim,) if dim is not None else ())):
        return None
    x = da.values.reshape(da.sizes["chain"] * da.sizes["draw"], -1)
    return None if np.isnan(x).any() else np.sort(x, axis=0)


def _median_sorted(s: np.ndarray) -> np.ndarray:
    """The median of each sorted column (NumPy's: the middle draw, or the mean of the two middle ones)."""
    n = s.shape[0]
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def _hdi_sorted(s: np.ndarray, hdi_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's HDI of each sorted column (``arviz.hdi``: the narrowest of the intervals spanning
    ``floor(hdi_prob n)`` draws, the first of equally narrow ones), all columns at once."""
    n = s.shape[0]
    span = int(np.floor(hdi_prob * n))
    if span >= n:
        raise ValueError("Too few elements for interval calculation. ")
    first = np.argmin(s[span:] - s[:n - span], axis=0)
    columns = np.arange(s.shape[1])
    return s[first, columns], s[first + span, columns]


def raw_rates(counts: pl.DataFrame, reference: float | None = CHANCE) -> pl.DataFrame:
    """Raw rate (``raw_dvgr``) with Wilson 95% interval and the exact two-sided binomial test against
    ``reference`` (``binom_p``; null when there is no reference: a test against a line nobody drew means nothing)."""
    k, n = counts["n_deep"].to_numpy(), counts["n_trials"].to_numpy()
    low, high = frequentist.wilson(k, n)
    return counts.with_columns(
        raw_dvgr=pl.Series(np.divide(k, n, out=np.full(len(n), np.nan), where=n > 0)),
        wilson_low=pl.Series(low),
        wilson_high=pl.Series(high),
        binom_p=pl.Series(frequentist.binom_test(k, n, reference) if reference is not None
                          else np.full(len(n), None), dtype=pl.Float64),
    )
