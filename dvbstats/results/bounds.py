"""Bounds on what is listed level by level or pair by pair, so that outputs scale with the data.

A fit scales to 100 models and to an item effect with 12,000 levels; a table with a row per item,
a 100 x 100 heatmap or a report table of 4,950 pairs does not (it costs minutes and nobody can
read it). Each rule below says what is left out past which size. Nothing is dropped silently: the
files keep every number that is cheap to keep (``p_superior.csv``, ``agreement.csv``,
``paired_tests.csv`` hold every pair; the SD of an item effect stays in ``sd.csv``), and the
console, ``manifest.json`` (``bounded``) and the report say what was left out and where it is.
"""

from __future__ import annotations

from collections.abc import Mapping

from dvbstats.constants import ITEM_LEVELS
from dvbstats.results.contrasts import MAX_PAIRWISE_LEVELS, pairwise_allowed, pairwise_bytes

#: An item-level factor (more levels than :data:`dvbstats.constants.ITEM_LEVELS`): its levels are
#: left out of ``random_effects.csv`` and ``margins.csv`` (their HDIs cost ~1 s per 1,000 levels
#: and a table of 12,000 rows says little); its SD stays in ``sd.csv`` and the posterior mean and
#: SD of each level go to the compact ``item_effects.csv``.
MAX_LEVELS_LISTED = ITEM_LEVELS
#: Heatmaps over pairs of models (P(row > column), agreement and kappa) are drawn for at most this
#: many models (30 models: 900 squares of ~0.2 inch); beyond, the report gives a table instead.
MAX_HEATMAP_MODELS = 30
#: Report tables with a row per pair of models show at most this many rows (ordered by evidence);
#: every pair stays in the CSV file.
MAX_PAIR_ROWS = 40


def item_level(n_levels: int) -> bool:
    """Whether a factor with ``n_levels`` levels is item-level (:data:`MAX_LEVELS_LISTED`)."""
    return n_levels > MAX_LEVELS_LISTED


def heatmap_allowed(n_models: int) -> bool:
    """Whether a models x models heatmap is drawn (:data:`MAX_HEATMAP_MODELS`)."""
    return n_models <= MAX_HEATMAP_MODELS


def notes(item_factors: Mapping[str, int], n_models: int) -> list[str]:
    """What a run's outputs leave out by these rules, one sentence each (console and manifest)."""
    out = []
    if item_factors:
        listed = ", ".join(f"{f} ({n:,} levels)" for f, n in item_factors.items())
        out.append(f"item-level factor(s) {listed}: more than {MAX_LEVELS_LISTED:,} levels each, so their levels "
                   "are left out of random_effects.csv and margins.csv; their SD is in sd.csv and each level's "
                   "posterior mean and SD in item_effects.csv")
    if not heatmap_allowed(n_models):
        out.append(f"{n_models} models: the report draws no models x models heatmaps (P(row > column), agreement) "
                   f"past {MAX_HEATMAP_MODELS} models and lists at most {MAX_PAIR_ROWS} pairs per table; every "
                   f"pair is in {'p_superior.csv, ' if pairwise_allowed(n_models) else ''}agreement.csv and "
                   "paired_tests.csv")
    if not pairwise_allowed(n_models):
        out.append(f"{n_models:,} models: p_superior.csv and the p_rank_* columns of ranks.csv are left out (models x "
                   f"models tables are computed for at most {MAX_PAIRWISE_LEVELS:,} models; these would take "
                   f"{pairwise_bytes(n_models) / 2**30:,.1f} GiB); ranks.csv keeps each model's mean and median rank, "
                   "P(best), P(worst) and rank interval")
    return out
