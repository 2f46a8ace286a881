"""Tests of the model x value reconstruction from the published DVB aggregates.

The published-data tests check the reconstruction against every published figure, recomputing each
from the cells directly (statsmodels for Wilson intervals), not through the module's residual table.
The statistical pieces are checked against truth we control: brute-force enumeration for the
integer program, independence tables and cross-product ratios for raking, and a simulated benchmark
whose true counts are known.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.proportion import proportion_confint

from dvbstats.paper2025 import reconstruct as rc

ROOT = rc.DEFAULT_ROOT

#: Heatmap cells whose rate cannot round to the published entry. None: the MILP meets all 99.
INFEASIBLE_HEATMAP_CELLS: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def published() -> rc.PublishedAggregates:
    return rc.published_aggregates(ROOT)


@pytest.fixture(scope="module")
def recon(published: rc.PublishedAggregates) -> rc.Reconstruction:
    return rc.reconstruct(published)


def _rounds_to(x: np.ndarray, published: np.ndarray, half_width: float = 0.005) -> np.ndarray:
    return np.abs(np.asarray(x, float) - np.asarray(published, float)) <= half_width + 1e-9


# ------------------------------------------------------------------------------ published tables


def test_published_tables_shapes(published: rc.PublishedAggregates) -> None:
    assert published.models.height == 9
    assert published.values.height == 11
    assert published.heatmap.height == 99
    assert published.heatmap.select("model", "value").n_unique() == 99
    assert published.overall.n_trials == published.models["n_trials_parsed"].sum()


def test_model_sums_exact(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    sums = recon.cells.group_by("model_id").agg(pl.sum("n_trials", "n_deep"))
    joined = published.models.join(sums, on="model_id", how="full", coalesce=True)
    assert joined.height == 9
    assert (joined["n_trials"] == joined["n_trials_parsed"]).all()
    assert (joined["n_deep"] == joined["n_chose_deep"]).all()


def test_value_trial_sums_exact(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    sums = recon.cells.group_by("value", "value_set").agg(pl.sum("n_trials"))
    joined = published.values.join(sums, on=["value", "value_set"], how="full", coalesce=True)
    assert joined.height == 11
    assert (joined["n_trials"] == joined["n_trials_parsed"]).all()


def test_overall_counts_and_dvgr(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    n, k = recon.cells["n_trials"].sum(), recon.cells["n_deep"].sum()
    assert (n, k) == (104_725, 31_668) == (published.overall.n_trials, published.overall.n_deep)
    assert round(k / n, 4) == 0.3024 == published.overall.dvgr
    assert round(n / recon.cells["n_prompts"].sum(), 2) == published.overall.parse_success_rate


def test_per_model_raw_dvgr_to_4_decimals(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    rates = recon.cells.group_by("model_id").agg(rate=pl.sum("n_deep") / pl.sum("n_trials"))
    joined = published.models.join(rates, on="model_id")
    expected = (joined["n_chose_deep"] / joined["n_trials_parsed"]).round(4)
    assert joined.height == 9
    assert (joined["rate"].round(4) == expected).all()


def test_heatmap_cells_within_rounding(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    cells = published.heatmap.join(recon.cells, on=["model", "value"], how="left")
    assert cells["n_trials"].null_count() == 0
    ok = _rounds_to(cells["n_deep"] / cells["n_trials"], cells["dvgr"])
    outside = tuple(f"{m} / {v}" for m, v, good in zip(cells["model"], cells["value"], ok, strict=True) if not good)
    assert outside == INFEASIBLE_HEATMAP_CELLS


def test_value_dvgr_and_wilson_within_rounding(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    sums = recon.cells.group_by("value").agg(pl.sum("n_trials", "n_deep"))
    joined = published.values.join(sums, on="value")
    k, n = joined["n_deep"].to_numpy(), joined["n_trials"].to_numpy()
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert _rounds_to(k / n, joined["dvgr"]).all()
    assert _rounds_to(low, joined["ci95_low"]).all()
    assert _rounds_to(high, joined["ci95_high"]).all()


def test_size_pairs_within_rounding(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    rate = dict(recon.cells.group_by("model").agg(r=pl.sum("n_deep") / pl.sum("n_trials")).iter_rows())
    pairs = published.size_pairs
    assert _rounds_to([rate[m] for m in pairs["smaller"]], pairs["dvgr_smaller"]).all()
    assert _rounds_to([rate[m] for m in pairs["larger"]], pairs["dvgr_larger"]).all()


def test_counts_integer_and_bounded(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    cells = recon.cells
    assert cells.height == 99
    assert all(cells.schema[c].is_integer() for c in ("n_prompts", "n_trials", "n_deep"))
    assert ((cells["n_deep"] >= 0) & (cells["n_deep"] <= cells["n_trials"])).all()
    assert (cells["n_trials"] <= cells["n_prompts"]).all()
    # One shared design: every model has the same prompts per value, summing to the published 12,000.
    assert cells.group_by("value").agg(pl.col("n_prompts").n_unique())["n_prompts"].max() == 1
    assert cells.group_by("model").agg(pl.sum("n_prompts"))["n_prompts"].unique().to_list() == [
        published.overall.prompts_per_model
    ]
    # Models that parsed every prompt have the design row itself.
    complete = published.models.filter(pl.col("n_trials_parsed") == published.overall.prompts_per_model)
    rows = cells.filter(pl.col("model_id").is_in(complete["model_id"].implode()))
    assert complete.height == 2 and (rows["n_trials"] == rows["n_prompts"]).all()


def test_deterministic(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    again = rc.reconstruct(published)
    assert again.cells.equals(recon.cells)
    assert again.residuals.equals(recon.residuals)
    assert again.method == recon.method


def test_residuals_cover_every_published_figure(published: rc.PublishedAggregates, recon: rc.Reconstruction) -> None:
    res = recon.residuals
    counts = dict(res.group_by("table").len().iter_rows())
    contexts = published.contexts
    assert counts == {
        "model": 2 * published.models.height,
        "value": 4 * published.values.height,
        "heatmap": published.heatmap.height,
        "overall": 4,
        "size_pairs": 2 * published.size_pairs.height,
        "context": 4 * contexts.height + contexts["n_chose_deep_if_exact"].is_not_null().sum(),
        "n_train": 3 * published.n_train.height,
    }
    unused = res.filter(pl.col("table").is_in(["context", "n_train"]))
    assert unused["within_precision"].null_count() == unused.height
    assert (unused["note"] == rc.NOT_CROSS_CLASSIFIED).all()
    used = res.filter(~pl.col("table").is_in(["context", "n_train"]))
    assert used["within_precision"].all()
    exact = used.filter(pl.col("precision") == "exact")
    assert (exact["difference"] == 0).all()
    summary = rc.summarise_residuals(res)
    assert summary.filter(pl.col("table") == "heatmap")["max_abs_difference"][0] <= 0.005


def test_write_is_readable_by_ingest(recon: rc.Reconstruction, tmp_path: Path) -> None:
    ingest = pytest.importorskip("dvbstats.input.ingest")
    recon.write(tmp_path / "out")
    written = pl.read_csv(tmp_path / "out" / "cells.csv")
    assert written.columns == ["model_id", "value", "n_prompts", "n_trials", "n_deep"]
    cells = ingest.read_cells(tmp_path / "out" / "cells.csv")
    assert cells.height == 99
    assert (cells["n_trials"].sum(), cells["n_deep"].sum()) == (104_725, 31_668)
    assert set(cells["model"]) == set(recon.cells["model"])
    assert pl.read_csv(tmp_path / "out" / "residuals.csv").height == recon.residuals.height
    assert (tmp_path / "out" / "method.md").read_text().startswith("**Reconstructed")


# --------------------------------------------------------------------------- statistical pieces


def test_rake_independence_and_cross_product_ratios() -> None:
    rng = np.random.default_rng(1)
    rows, cols = np.array([30.0, 50.0, 20.0]), np.array([10.0, 40.0, 25.0, 25.0])
    assert np.allclose(rc.rake(np.ones((3, 4)), rows, cols), np.outer(rows, cols) / 100)
    seed = rng.uniform(0.5, 2.0, (3, 4))
    fitted = rc.rake(seed, rows, cols)
    assert np.allclose(fitted.sum(1), rows) and np.allclose(fitted.sum(0), cols)
    # IPF keeps every 2x2 cross-product ratio of the seed.
    ratio = lambda x: x[:-1, :-1] * x[1:, 1:] / (x[:-1, 1:] * x[1:, :-1])  # noqa: E731
    assert np.allclose(ratio(fitted), ratio(seed))
    with pytest.raises(ValueError, match="sum to"):
        rc.rake(seed, rows, cols + 1)


def _brute_force(t, w, lo, hi, rows, col_lo, col_hi, s_lo, s_hi):
    """Lexicographic optimum by enumerating every integer table in the box."""
    best = None
    ranges = [range(a, b + 1) for a, b in zip(lo.ravel(), hi.ravel(), strict=True)]
    for flat in itertools.product(*ranges):
        x = np.array(flat).reshape(t.shape)
        if (x.sum(1) != rows).any() or (x.sum(0) < col_lo).any() or (x.sum(0) > col_hi).any():
            continue
        key = (np.maximum(s_lo - x, 0).sum() + np.maximum(x - s_hi, 0).sum(), (w * (x - t) ** 2).sum())
        if best is None or key[0] < best[0] or (key[0] == best[0] and key[1] < best[1] - 1e-12):
            best = key
    return best


@pytest.mark.parametrize("seed", range(6))
def test_closest_integer_table_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 4, (2, 3))
    w = rng.uniform(0.2, 2.0, (2, 3))
    lo = np.maximum(np.floor(t).astype(int) - 1, 0)
    hi = np.ceil(t).astype(int) + 1
    truth = rng.integers(lo, hi + 1)  # a feasible table, so the problem has a solution
    s_lo, s_hi = np.floor(t).astype(int), np.floor(t).astype(int)
    col_lo, col_hi = truth.sum(0) - 1, truth.sum(0) + 1
    x = rc.closest_integer_table(t, w, lo, hi, truth.sum(1), col_lo, col_hi, s_lo, s_hi)
    assert (x.sum(1) == truth.sum(1)).all() and (col_lo <= x.sum(0)).all() and (x.sum(0) <= col_hi).all()
    assert ((lo <= x) & (x <= hi)).all()
    got = (np.maximum(s_lo - x, 0).sum() + np.maximum(x - s_hi, 0).sum(), (w * (x - t) ** 2).sum())
    best = _brute_force(t, w, lo, hi, truth.sum(1), col_lo, col_hi, s_lo, s_hi)
    assert got[0] == best[0] and got[1] == pytest.approx(best[1])


def test_closest_integer_table_infeasible() -> None:
    with pytest.raises(rc.ReconstructionError, match="no integer table"):
        rc.closest_integer_table(np.ones((1, 2)), 1.0, np.zeros((1, 2)), np.ones((1, 2)), [3], [0, 0], [2, 2])


def test_rounding_count_bounds_brute_force() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 400))
        rate = round(float(rng.uniform(0, 1)), 2)
        k = np.arange(n + 1)
        ok = k[_rounds_to(k / n, rate)]
        lo, hi = rc.rounding_count_bounds(rate, n, decimals=2)
        if ok.size:
            assert (lo, hi) == (ok.min(), ok.max())
        else:
            assert lo > hi


def test_admissible_value_counts_contains_truth_and_only_consistent_counts() -> None:
    n, k_true = 9_000, 2_790
    low, high = proportion_confint(k_true, n, method="wilson")
    dvgr, low, high = round(k_true / n, 2), round(low, 2), round(high, 2)
    lo, hi = rc.admissible_value_counts(n, dvgr, low, high)
    assert lo <= k_true <= hi
    k = np.arange(n + 1)
    w_low, w_high = proportion_confint(k, n, method="wilson")
    ok = k[_rounds_to(k / n, dvgr) & _rounds_to(w_low, low) & _rounds_to(w_high, high)]
    assert (lo, hi) == (ok.min(), ok.max())
    with pytest.raises(rc.ReconstructionError, match="no count"):
        rc.admissible_value_counts(n, 0.30, 0.10, 0.90)


# ---------------------------------------------------------------------------------- simulation


def _synthetic(
    published: rc.PublishedAggregates, rng: np.random.Generator, shift: float = 0.0
) -> tuple[rc.PublishedAggregates, np.ndarray, np.ndarray]:
    """Aggregates, rounded as the paper rounds them, of a simulated run with known cell counts.

    4 models x 5 values, one shared design of 3,000 prompts, value-independent parse failures
    (model 0 parses everything). ``shift`` moves every heatmap entry, making it inconsistent.
    """
    prompts, values = 3_000, [f"v{j}" for j in range(5)]
    design = rng.multinomial(prompts, [0.15, 0.3, 0.2, 0.25, 0.1])
    parse = np.array([1.0, 0.97, 0.9, 0.95])
    n = rng.binomial(design, parse[:, None])
    p = rng.uniform(0.15, 0.6, (4, 5))
    k = rng.binomial(n, p)
    names = [f"m{i}" for i in range(4)]
    models = pl.DataFrame(
        {
            "model_id": [f"org/{m}" for m in names],
            "short_name": names,
            "n_trials_parsed": n.sum(1),
            "n_chose_deep": k.sum(1),
        }
    )
    kv, nv = k.sum(0), n.sum(0)
    low, high = proportion_confint(kv, nv, method="wilson")
    value_table = pl.DataFrame(
        {
            "value": values,
            "value_set": ["a"] * 3 + ["b"] * 2,
            "n_trials_parsed": nv,
            "dvgr": np.round(kv / nv, 2),
            "ci95_low": np.round(low, 2),
            "ci95_high": np.round(high, 2),
        }
    )
    heatmap = pl.DataFrame(
        {
            "model": np.repeat(names, 5),
            "value": np.tile(values, 4),
            "dvgr": np.round(k / n + shift, 2).ravel(),
        }
    )
    rate = k.sum(1) / n.sum(1)
    agg = rc.PublishedAggregates(
        models=models,
        heatmap=heatmap,
        values=value_table,
        contexts=published.contexts,
        n_train=published.n_train,
        size_pairs=pl.DataFrame(
            {"smaller": ["m1"], "larger": ["m2"], "dvgr_smaller": [rate[1].round(2)], "dvgr_larger": [rate[2].round(2)]}
        ),
        overall=rc.OverallFigures(
            prompts_per_model=prompts,
            n_trials=int(n.sum()),
            n_deep=int(k.sum()),
            dvgr=round(k.sum() / n.sum(), 4),
            parse_success_rate=round(n.sum() / (n.shape[0] * prompts), 2),
        ),
    )
    return agg, n, k


@pytest.mark.parametrize("seed", range(3))
def test_simulated_run_is_reconstructed_within_rounding(published: rc.PublishedAggregates, seed: int) -> None:
    agg, n, k = _synthetic(published, np.random.default_rng(seed))
    result = rc.reconstruct(agg)
    used = result.residuals.filter(pl.col("within_precision").is_not_null())
    assert used["within_precision"].all()
    cells = result.cells
    n_rec = cells["n_trials"].to_numpy().reshape(n.shape)
    k_rec = cells["n_deep"].to_numpy().reshape(n.shape)
    assert (n_rec.sum(1) == n.sum(1)).all() and (n_rec.sum(0) == n.sum(0)).all() and (k_rec.sum(1) == k.sum(1)).all()
    # Trials: value-independent failures make the truth close to the design-based table.
    assert np.abs(n_rec - n).max() <= 0.05 * n.max()
    # Rates: truth and reconstruction both round to the heatmap, so they are within 0.01.
    assert np.abs(k_rec / n_rec - k / n).max() <= 0.01 + 1e-9


def test_inconsistent_heatmap_cells_are_reported(published: rc.PublishedAggregates) -> None:
    agg, n, k = _synthetic(published, np.random.default_rng(0), shift=-0.03)
    result = rc.reconstruct(agg)
    heat = result.residuals.filter(pl.col("table") == "heatmap")
    outside = heat.filter(~pl.col("within_precision"))["key"].to_list()
    assert outside  # every entry is 0.03 too low: the exact model sums cannot all be met inside rounding
    assert "outside: " + ", ".join(outside) in result.method
    exact = result.residuals.filter(pl.col("precision") == "exact", pl.col("within_precision").is_not_null())
    assert exact["within_precision"].all()


# ------------------------------------------------------------------------------------ bad input


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "dvb2025"
    shutil.copytree(ROOT, root)
    for path in root.iterdir():
        path.chmod(0o644)
    return root


def test_missing_column_names_file(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    pl.read_csv(root / "dvb2025_models.csv").drop("n_chose_deep").write_csv(root / "dvb2025_models.csv")
    with pytest.raises(rc.PublishedDataError, match=r"dvb2025_models\.csv: missing column\(s\) \['n_chose_deep'\]"):
        rc.published_aggregates(root)


def test_unreadable_cell_names_row(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "dvb2025_value_margins.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("9372", "9372x")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(rc.PublishedDataError, match=r"value_margins\.csv, row 3: column 'n_trials_parsed'"):
        rc.published_aggregates(root)


def test_inconsistent_margins_are_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    models = pl.read_csv(root / "dvb2025_models.csv")
    models.with_columns(pl.col("n_chose_deep") + (pl.int_range(pl.len()) == 0)).write_csv(root / "dvb2025_models.csv")
    with pytest.raises(rc.PublishedDataError, match="n_chose_deep sums to 31669"):
        rc.published_aggregates(root)


def test_heatmap_with_unknown_model_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "dvb2025_model_value_dvgr.csv"
    path.write_text(path.read_text().replace("llama-3-8b,", "llama-3-8B,"))
    with pytest.raises(rc.PublishedDataError, match="do not match the models' short names"):
        rc.published_aggregates(root)


def test_deep_count_above_trials_names_row(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "dvb2025_models.csv"
    path.write_text(path.read_text().replace("12000,4106", "12000,12001"))
    with pytest.raises(rc.PublishedDataError, match=r"models\.csv, row 2: n_chose_deep outside"):
        rc.published_aggregates(root)
