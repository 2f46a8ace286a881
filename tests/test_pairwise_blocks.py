"""Issue 18 §5: models x models tables computed in blocks and bounded, never draws x models x models at once."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from dvbstats.results import bounds, contrasts


def _draws(n_draws: int, k: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=k)[None, :] * 0.3 + rng.normal(size=(n_draws, k))


@pytest.mark.parametrize("block_bytes", [1, 500, 10**4, contrasts.BLOCK_BYTES])
def test_p_superior_in_blocks_equals_the_whole_comparison(block_bytes):
    draws = _draws(300, 13)
    labels = [f"m{i}" for i in range(13)]
    whole = (draws[:, :, None] > draws[:, None, :]).mean(axis=0)
    np.fill_diagonal(whole, np.nan)
    blocked = contrasts.p_superior(draws, labels, block_bytes=block_bytes).drop("level").to_numpy()
    np.testing.assert_array_equal(np.isnan(blocked), np.isnan(whole))
    np.testing.assert_allclose(np.nan_to_num(blocked), np.nan_to_num(whole), rtol=0, atol=0)


def test_p_superior_keeps_to_its_block_of_working_memory():
    draws = _draws(2000, 120)  # all at once: 2,000 x 120 x 120 booleans = 28.8 MB
    tracemalloc.start()
    contrasts.p_superior(draws, [str(i) for i in range(120)], block_bytes=2 * 2**20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20, peak


def test_the_rank_distribution_counted_in_one_pass_equals_the_level_by_level_count():
    draws = _draws(500, 9)
    ranks = contrasts.rank_draws(draws)
    by_level = np.stack([(ranks == r).mean(axis=0) for r in range(1, 10)], axis=1)
    np.testing.assert_array_equal(contrasts.rank_distribution(ranks), by_level)
    table = contrasts.rank_table(draws, list("abcdefghi"))
    np.testing.assert_array_equal(table.select(f"p_rank_{r}" for r in range(1, 10)).to_numpy(), by_level)
    np.testing.assert_array_equal(table["p_best"].to_numpy(), by_level[:, 0])
    np.testing.assert_array_equal(table["p_worst"].to_numpy(), by_level[:, -1])
    short = contrasts.rank_table(draws, list("abcdefghi"), distribution=False)
    assert not any(c.startswith("p_rank_") for c in short.columns)
    assert short.drop("interval").equals(table.select(short.columns).drop("interval"))


def test_models_x_models_tables_are_bounded_by_their_estimated_memory():
    # estimated, not allocated: 10,000 models would take two 800 MB matrices
    assert contrasts.pairwise_bytes(10_000) == 2 * 10_000**2 * 8 + contrasts.BLOCK_BYTES
    assert contrasts.pairwise_allowed(contrasts.MAX_PAIRWISE_LEVELS)
    assert not contrasts.pairwise_allowed(10_000)
    notes = " ".join(bounds.notes({}, 10_000))
    assert "10,000 models: p_superior.csv and the p_rank_* columns of ranks.csv are left out" in notes
    assert "1.6 GiB" in notes and "every pair is in agreement.csv" in notes
    assert "p_superior.csv and the p_rank" not in " ".join(bounds.notes({}, 100))
