"""Paired 2x2 tables, McNemar vs chi-square, Holm/BH: against hand counts, statsmodels and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from dvbstats.input import schema
from dvbstats.results import paired
from dvbstats.simulate import dvb as simulate


def _trials(rows: list[tuple[str, str, int | None, str]]) -> pl.DataFrame:
    """A trial table from (model, prompt_id, chose_deep, status) rows."""
    df = pl.DataFrame(rows, schema=["model", "prompt_id", "chose_deep", "status"], orient="row")
    df = df.with_columns(model_id="model", source_file=pl.lit("t"), source_row=pl.int_range(1, df.height + 1))
    return schema.conform(df.with_columns(pl.lit(None).alias(c) for c in schema.TRIAL_SCHEMA if c not in df.columns))


SMALL = _trials([
    ("a", "p1", 1, "used"), ("b", "p1", 1, "used"), ("c", "p1", 0, "used"),
    ("a", "p2", 1, "used"), ("b", "p2", 0, "used"), ("c", "p2", None, "unparsed"),
    ("a", "p3", 0, "used"), ("b", "p3", 1, "used"), ("c", "p3", 1, "used"),
    ("a", "p4", 0, "used"), ("b", "p4", None, "unparsed"), ("c", "p4", 0, "used"),
    ("a", "p5", 1, "superseded"), ("a", "p5", 0, "used"), ("b", "p5", 0, "used"), ("b", "p5", 1, "conflict"),
])


def test_pair_counts_by_hand_used_rows_only():
    counts = paired.pair_counts(SMALL).to_dicts()
    # a-b share p1 (1,1) p2 (1,0) p3 (0,1) p5 (0,0): the superseded / conflicting copies do not count
    assert counts[0] == {"model1": "a", "model2": "b", "n_shared": 4, "n_11": 1, "n_10": 1, "n_01": 1, "n_00": 1}
    # a-c share p1 (1,0) p3 (0,1) p4 (0,0); b-c share p1 (1,0) p3 (1,1)
    assert counts[1] == {"model1": "a", "model2": "c", "n_shared": 3, "n_11": 0, "n_10": 1, "n_01": 1, "n_00": 1}
    assert counts[2] == {"model1": "b", "model2": "c", "n_shared": 2, "n_11": 1, "n_10": 1, "n_01": 0, "n_00": 0}
    reordered = paired.pair_counts(SMALL, order=["c", "a", "missing", "b"])
    assert reordered.select("model1", "model2").rows() == [("c", "a"), ("c", "b"), ("a", "b")]
    assert reordered["n_10"].to_list() == [1, 0, 1]  # c-a: c chose 1 where a chose 0 on p3


def test_conservation_n_shared_is_items_both_used():
    sim = simulate.shared_propensity_trials({"m1": "g", "m2": "g", "m3": "h"}, n_items=500, seed=3, unparsed_rate=0.2)
    counts = paired.pair_counts(sim.trials)
    used = sim.trials.filter(pl.col("status") == "used")
    for r in counts.iter_rows(named=True):
        items = set(used.filter(pl.col("model") == r["model1"])["prompt_id"]) & set(
            used.filter(pl.col("model") == r["model2"])["prompt_id"])
        assert r["n_shared"] == len(items) == r["n_11"] + r["n_10"] + r["n_01"] + r["n_00"]
    assert counts["n_shared"].max() < 500  # some items were unanswered by one of the pair


def test_used_duplicates_and_missing_outcomes_are_refused():
    twice = pl.concat([SMALL, SMALL.filter((pl.col("model") == "a") & (pl.col("prompt_id") == "p1"))])
    with pytest.raises(ValueError, match="'a' has 2 used rows sharing an item"):
        paired.pair_counts(twice)
    blank = SMALL.with_columns(chose_deep=pl.when(pl.col("prompt_id") == "p3").then(None).otherwise("chose_deep"))
    with pytest.raises(ValueError, match="has no chose_deep"):
        paired.pair_counts(blank)
    with pytest.raises(ValueError, match="lacks column"):
        paired.pair_counts(SMALL.drop("status"))


def test_mcnemar_and_chi2_equal_statsmodels_and_scipy_on_crosstabs():
    sim = simulate.shared_propensity_trials({f"m{i}": "g" for i in range(4)}, n_items=400, seed=5)
    tests = paired.paired_tests(paired.pair_counts(sim.trials))
    used = sim.trials.filter(pl.col("status") == "used").to_pandas()
    wide = used.pivot(index="prompt_id", columns="model", values="chose_deep")
    for r in tests.iter_rows(named=True):
        both = wide[[r["model1"], r["model2"]]].dropna()
        table = pd.crosstab(both[r["model1"]], both[r["model2"]]).reindex(index=[1, 0], columns=[1, 0], fill_value=0)
        ref = mcnemar(table.to_numpy(), exact=True)
        assert (r["mcnemar_stat"], r["mcnemar_p"]) == (ref.statistic, ref.pvalue)
        n = len(both)
        k1, k2 = int(both[r["model1"]].sum()), int(both[r["model2"]].sum())
        chi = stats.chi2_contingency(np.array([[k1, n - k1], [k2, n - k2]]))
        assert r["chi2_stat"] == pytest.approx(chi.statistic, rel=1e-12)
        assert r["chi2_p"] == pytest.approx(chi.pvalue, rel=1e-12)
        d = (both[r["model1"]] - both[r["model2"]]).to_numpy()
        assert r["diff"] == pytest.approx(d.mean(), abs=1e-15)
        assert r["se_paired"] == pytest.approx(d.std() / np.sqrt(n), rel=1e-12)  # SE of the mean paired difference


def test_mcnemar_by_hand():
    counts = pl.DataFrame({"model1": ["a"], "model2": ["b"], "n_shared": [30], "n_11": [12], "n_10": [8],
                           "n_01": [2], "n_00": [8]})
    row = paired.paired_tests(counts).row(0, named=True)
    # exact McNemar: two-sided binomial test of 8 successes in 8 + 2 discordant items, p = 0.5
    assert row["mcnemar_p"] == pytest.approx(2 * (1 + 10 + 45) / 2**10, rel=1e-12)  # = 0.109375
    assert row["mcnemar_p"] == pytest.approx(stats.binomtest(8, 10, 0.5).pvalue, rel=1e-12)
    assert row["mcnemar_stat"] == 2
    assert row["diff"] == pytest.approx(6 / 30)
    assert row["se_paired"] == pytest.approx(np.sqrt(10 - 36 / 30) / 30)


def test_adjustments_equal_multipletests_and_skip_empty_pairs():
    sim = simulate.shared_propensity_trials({f"m{i}": "g" for i in range(5)}, n_items=300, seed=9)
    counts = paired.pair_counts(sim.trials)
    empty = pl.DataFrame({"model1": ["x"], "model2": ["y"], "n_shared": [0], "n_11": [0], "n_10": [0], "n_01": [0],
                          "n_00": [0]})
    tests = paired.paired_tests(pl.concat([counts, empty]))
    assert tests.filter(pl.col("model1") == "x")["mcnemar_p_holm"].is_nan().all()
    real = tests.filter(pl.col("n_shared") > 0)
    for test in ("mcnemar", "chi2"):
        p = real[f"{test}_p"].to_numpy()
        np.testing.assert_array_equal(real[f"{test}_p_holm"].to_numpy(), multipletests(p, method="holm")[1])
        np.testing.assert_array_equal(real[f"{test}_p_bh"].to_numpy(), multipletests(p, method="fdr_bh")[1])
    # hand-computed Holm and BH on three p-values
    np.testing.assert_allclose(paired.adjust(np.array([0.01, 0.04, np.nan, 0.03]), "holm"), [0.03, 0.06, np.nan, 0.06])
    np.testing.assert_allclose(paired.adjust(np.array([0.01, 0.04, 0.03]), "fdr_bh"), [0.03, 0.04, 0.04])


def test_pair_counts_equal_a_loop_over_items_with_gaps_and_other_outcomes():
    """The matrix-product counts against a plain loop: items missing for one model, outcomes other than 0/1
    (counted as 'not 1', as the 2x2 table defines them)."""
    rng = np.random.default_rng(4)
    rows = [(m, f"p{i}", int(rng.integers(0, 3)), "used") for m in "abcde" for i in range(60) if rng.random() < 0.8]
    trials = _trials(rows)
    got = {(r["model1"], r["model2"]): r for r in paired.pair_counts(trials).iter_rows(named=True)}
    answers = {m: {p: y for mm, p, y, _ in rows if mm == m} for m in "abcde"}
    assert list(got) == [(a, b) for i, a in enumerate("abcde") for b in "abcde"[i + 1:]]
    for (a, b), r in got.items():
        shared = answers[a].keys() & answers[b].keys()
        cells = [(answers[a][p] == 1, answers[b][p] == 1) for p in shared]
        assert (r["n_shared"], r["n_11"], r["n_10"], r["n_01"], r["n_00"]) == (
            len(shared), cells.count((True, True)), cells.count((True, False)), cells.count((False, True)),
            cells.count((False, False)))
