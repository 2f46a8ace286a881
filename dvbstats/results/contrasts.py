"""Contrasts and rankings: posterior differences of design-averaged rates between levels of a factor.

A contrast A - B is computed per posterior draw from the design-averaged rates of the two levels
(``Fit.average((factor,))``), so it carries every correlation of the posterior: when the fit has
item effects the difference is paired through them, without anything special here. Reported: the
mean, the HDI, P(difference > 0) and, given a ROPE half-width W, P(|difference| < W).

Rankings use the same draws: per draw the levels are ranked (1 = highest rate), giving each
level's rank distribution, P(best) = P(rank 1), P(worst) = P(rank K) and a central rank interval;
and the matrix P(row > column) over all pairs.

Pure functions on (draws, levels) arrays; :func:`parse_contrast` and :func:`contrast_table` take
the level names to check specifications against.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import arviz as az
import numpy as np
import polars as pl

from dvbstats.constants import HDI_PROB

#: ``--contrasts all``
ALL = "all"


class ContrastError(ValueError):
    """A contrast specification that does not name two levels of a factor of the fit."""


def parse_contrast(text: str, levels: dict[str, Sequence[str]], default: str = "model") -> tuple[str, str, str]:
    """``"A-B"`` (levels of ``default``) or ``"FACTOR:A-B"`` -> (factor, A, B).

    Level names may themselves contain hyphens (``gpt-4.1-mini``): the split is the one hyphen
    whose two sides are both levels; none or several is an error naming the known levels.
    """
    factor, sep, body = text.partition(":")
    if not sep:
        factor, body = default, text
    if factor not in levels:
        raise ContrastError(f"contrast {text!r}: the fit has no factor {factor!r} (factors: {', '.join(levels)})")
    known = set(levels[factor])
    splits = [(body[:i], body[i + 1:]) for i, c in enumerate(body) if c == "-"]
    found = [(a, b) for a, b in splits if a in known and b in known]
    if len(found) != 1:
        problem = "is ambiguous" if found else "does not name two levels"
        raise ContrastError(f"contrast {text!r} {problem} of {factor!r} as A-B (levels: {', '.join(levels[factor])})")
    a, b = found[0]
    if a == b:
        raise ContrastError(f"contrast {text!r} compares {a!r} with itself")
    return factor, a, b


def summarize_difference(diff: np.ndarray, hdi_prob: float, rope: float | None = None) -> dict[str, float]:
    """Mean, HDI, P(> 0) and P(< 0) of the draws ``diff`` (any shape); with ``rope``, P(|diff| < rope)."""
    flat = np.asarray(diff, dtype=float).ravel()
    low, high = az.hdi(flat, hdi_prob=hdi_prob)
    out = {"diff_mean": float(flat.mean()), "diff_hdi_low": float(low), "diff_hdi_high": float(high),
           "p_diff_above_0": float((flat > 0).mean()), "p_diff_below_0": float((flat < 0).mean())}
    if rope is not None:
        out["rope"] = float(rope)
        out["p_in_rope"] = float((np.abs(flat) < rope).mean())
    return out


def contrast_table(
    draws: np.ndarray, labels: Sequence[str], pairs: Sequence[tuple[str, str]], *, factor: str,
    hdi_prob: float, rope: float | None = None,
) -> pl.DataFrame:
    """One row per pair (A, B): the posterior of rate(A) - rate(B) from ``draws`` (samples, levels)."""
    index = {x: i for i, x in enumerate(labels)}
    rows = []
    for a, b in pairs:
        if a not in index or b not in index:
            raise ContrastError(f"{factor} has no level {a if a not in index else b!r} (levels: {', '.join(labels)})")
        diff = draws[:, index[a]] - draws[:, index[b]]
        rows.append({"factor": factor, "a": a, "b": b, "rate_a": float(draws[:, index[a]].mean()),
                     "rate_b": float(draws[:, index[b]].mean()), **summarize_difference(diff, hdi_prob, rope)})
    return pl.DataFrame(rows)


def all_pairs(labels: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of levels once, in level order."""
    return list(itertools.combinations(labels, 2))


#: Working memory of one block of the pairwise comparisons (draws x rows x levels booleans): the
#: P(row > column) matrix is computed a block of rows at a time, never all draws x levels x levels
#: at once (10,000 models x 4,000 draws would be 37 GiB; issue 18 §5).
BLOCK_BYTES = 64 * 2**20
#: Models x models tables (P(row > column), each level's whole rank distribution) are computed for
#: at most this many levels: 2,000 give two 4-million-cell tables (64 MB in memory, ~80 MB of CSV each);
#: 10,000 would give 800 MB each and CSV files of 10,000 columns nobody can open. Beyond it the
#: rank summaries stay (mean, median, P(best), P(worst), rank interval) and bounds.notes says so.
MAX_PAIRWISE_LEVELS = 2000


def pairwise_bytes(n_levels: int) -> int:
    """Memory the models x models tables take (two float64 matrices), beside one block of working memory."""
    return 2 * n_levels**2 * 8 + BLOCK_BYTES


def pairwise_allowed(n_levels: int) -> bool:
    """Whether the models x models tables are computed for ``n_levels`` levels (:data:`MAX_PAIRWISE_LEVELS`)."""
    return n_levels <= MAX_PAIRWISE_LEVELS


def _row_blocks(n_draws: int, n_levels: int, block_bytes: int) -> range:
    """Starts of row blocks whose draws x rows x levels comparison fits in ``block_bytes``."""
    rows = max(1, block_bytes // max(1, n_draws * n_levels))
    return range(0, n_levels, rows)


def p_superior(draws: np.ndarray, labels: Sequence[str], *, block_bytes: int = BLOCK_BYTES) -> pl.DataFrame:
    """The matrix P(rate of row > rate of column): column ``level`` then one column per level
    (the diagonal is empty); computed a block of rows at a time (:data:`BLOCK_BYTES`)."""
    n_draws, k = draws.shape
    p = np.empty((k, k))
    starts = _row_blocks(n_draws, k, block_bytes)
    for start in starts:
        stop = min(start + starts.step, k)
        p[start:stop] = (draws[:, start:stop, None] > draws[:, None, :]).mean(axis=0)
    np.fill_diagonal(p, np.nan)
    return pl.DataFrame({"level": list(labels), **{lab: p[:, j] for j, lab in enumerate(labels)}}).with_columns(
        pl.exclude("level").fill_nan(None)
    )


def rank_draws(draws: np.ndarray) -> np.ndarray:
    """Per draw, each level's rank by rate: 1 = highest, K = lowest (ties by level order)."""
    order = np.argsort(-draws, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, draws.shape[1] + 1)[None, :], axis=1)
    return ranks


def rank_table(draws: np.ndarray, labels: Sequence[str], *, interval: float = HDI_PROB,
               distribution: bool = True) -> pl.DataFrame:
    """Per level: mean and median rank, P(best), P(worst), the central ``interval`` rank interval and,
    with ``distribution``, the whole rank distribution (``p_rank_1`` ... ``p_rank_K``, each row summing to 1)."""
    ranks = rank_draws(draws)
    n_draws, k = draws.shape
    best, worst = (ranks == 1).mean(axis=0), (ranks == k).mean(axis=0)
    tail = (1 - interval) / 2
    low = np.quantile(ranks, tail, axis=0, method="inverted_cdf")
    high = np.quantile(ranks, 1 - tail, axis=0, method="inverted_cdf")
    return pl.DataFrame({
        "level": list(labels), "mean_rank": ranks.mean(axis=0), "median_rank": np.median(ranks, axis=0),
        "p_best": best, "p_worst": worst,
        "rank_low": low.astype(int), "rank_high": high.astype(int), "interval": interval,
        **({f"p_rank_{r}": column for r, column in enumerate(rank_distribution(ranks).T, start=1)}
           if distribution else {}),
    })


def rank_distribution(ranks: np.ndarray) -> np.ndarray:
    """(levels, ranks): the share of draws in which each level has each rank, counted in one pass
    (K x K counts, not K passes over the draws)."""
    n_draws, k = ranks.shape
    cells = (np.arange(k)[None, :] * k + ranks - 1).ravel()
    return np.bincount(cells, minlength=k * k).reshape(k, k) / n_draws


def factor_levels(data: pl.DataFrame, factors: Sequence[str]) -> dict[str, list[str]]:
    """The levels (as text, sorted) of each design factor of a cell table."""
    return {f: sorted(data[f].cast(pl.String).unique().to_list()) for f in factors}


def resolve(specs: Sequence[str], levels: dict[str, Sequence[str]], default: str = "model") -> dict[str, list[tuple[str, str]]]:
    """Contrast specifications (``A-B``, ``FACTOR:A-B`` or :data:`ALL`) -> pairs per factor, in order,
    each pair once. :data:`ALL` means every pair of levels of ``default``."""
    out: dict[str, list[tuple[str, str]]] = {}
    for spec in specs:
        if spec.strip() == ALL:
            found = [(default, a, b) for a, b in all_pairs(levels[default])]
        else:
            found = [parse_contrast(spec.strip(), levels, default)]
        for factor, a, b in found:
            if (a, b) not in out.setdefault(factor, []):
                out[factor].append((a, b))
    return out
