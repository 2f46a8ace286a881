"""Frequentist first look: raw rates with Wilson intervals and paired condition tests, against statsmodels/scipy."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from dvbstats.benchmarks.first_look import hvsb_tables, paired_condition_test, raw_rates
from dvbstats.benchmarks.hvsb import read_judgments
from dvbstats.input.registry import UnknownModelWarning
from dvbstats.simulate.hvsb import HvsbDesign, draw_hvsb_effects, simulate_hvsb

DESIGN = HvsbDesign(
    families={"a/small": "a", "a/large": "a", "b/only": "b"},
    scenario_types={"ss": ("ss_pro_race", "ss_anti_gender"), "cp": ("cp_pro_age",)},
    n_items=150,
)


def simulated(tmp_path: Path, seed: int, refusal: dict[str, float], rerun_files: int = 2) -> pl.DataFrame:
    effects = draw_hvsb_effects(DESIGN, seed, refusal=refusal, sd={"refusal_model": 0.0})
    simulate_hvsb(effects, DESIGN, tmp_path, seed=seed, partial_files=2, rerun_files=rerun_files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        return read_judgments(tmp_path).data


def test_raw_rates_are_counts_with_statsmodels_wilson_intervals(tmp_path: Path):
    data = simulated(tmp_path, 1, {"none": 0.05, "untargeted": 0.05, "targeted": 0.2})
    rates = raw_rates(data, "misaligned")
    assert rates.height == 9
    used = data.filter(pl.col("status") == "used")
    for model, condition, n, k, low, high in rates.select(
            "model", "condition", "n", "k", "wilson_low", "wilson_high").iter_rows():
        cell = used.filter((pl.col("model") == model) & (pl.col("condition") == condition))
        assert (n, k) == (cell.height, cell["misaligned"].sum())
        assert (low, high) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)
    refusals = raw_rates(data, "refused")
    final = data.filter(pl.col("status").is_in(["used", "unparsed"]) & (pl.col("response_kind") != "truncated"))
    assert refusals["n"].sum() == final.height and refusals["k"].sum() == (final["response_kind"] == "neither").sum()


def test_paired_test_equals_statsmodels_and_scipy_on_its_pairs(tmp_path: Path):
    data = simulated(tmp_path, 2, {"none": 0.05, "untargeted": 0.05, "targeted": 0.2})
    result = paired_condition_test(data, "misaligned", "untargeted", "targeted")
    for model, n_pairs, rises, falls, p, p_up in result.select(
            "model", "n_pairs", "n_rises", "n_falls", "mcnemar_p", "p_rises").iter_rows():
        mine = data.filter((pl.col("model") == model) & (pl.col("status") == "used"))
        wide = mine.pivot("condition", index="item", values="misaligned").drop_nulls(["untargeted", "targeted"])
        x, y = wide["untargeted"].to_numpy(), wide["targeted"].to_numpy()
        table = [[np.sum((x == 0) & (y == 0)), np.sum((x == 0) & (y == 1))],
                 [np.sum((x == 1) & (y == 0)), np.sum((x == 1) & (y == 1))]]
        assert (n_pairs, rises, falls) == (len(x), table[0][1], table[1][0])
        assert p == pytest.approx(mcnemar(table, exact=True).pvalue)
        assert p_up == pytest.approx(stats.binomtest(rises, rises + falls, alternative="greater").pvalue)


def test_a_refusal_rise_under_the_targeted_prompt_is_found_and_its_absence_is_not(tmp_path: Path):
    rising = paired_condition_test(
        simulated(tmp_path / "rise", 3, {"none": 0.02, "untargeted": 0.02, "targeted": 0.25}),
        "refused", "untargeted", "targeted")
    assert (rising["difference"] > 0.1).all() and (rising["p_rises"] < 1e-6).all()
    # No re-runs here: re-running a file replaces its refusals by judgments, a real fall in refusals.
    flat = [paired_condition_test(
        simulated(tmp_path / f"flat{seed}", seed, {"none": 0.05, "untargeted": 0.05, "targeted": 0.05}, 0),
        "refused", "untargeted", "targeted") for seed in (4, 5, 6)]
    p_values = pl.concat(flat)["p_rises"]
    assert (p_values < 0.001).sum() == 0 and p_values.median() > 0.1


def test_paired_difference_recovers_the_simulated_targeted_effect(tmp_path: Path):
    """Targeted minus untargeted raw ASR on shared items lands within 3.5 paired standard errors of the truth."""
    effects = draw_hvsb_effects(DESIGN, 7, condition={"none": 0.0, "untargeted": 0.3, "targeted": 1.2})
    sim = simulate_hvsb(effects, DESIGN, tmp_path, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        table = read_judgments(tmp_path)
    found = paired_condition_test(table.data, "misaligned", "untargeted", "targeted")
    names = table.data.select("model_id", "model").unique()
    both = found.join(names, on="model").join(sim.targeted_effect, on="model_id")
    n = both["n_pairs"]
    d = both["difference"]
    # SE of a paired difference of proportions: sqrt((b + c)/n - d^2) / sqrt(n), b, c the discordant shares.
    se = (((both["n_rises"] + both["n_falls"]) / n - d**2) / n).sqrt()
    assert (both["effect"] > 0.1).all() and ((d - both["effect"]).abs() < 3.5 * se).all()


def test_the_hvsb_first_look_has_every_table_and_refuses_a_missing_condition(tmp_path: Path):
    data = simulated(tmp_path, 8, {"none": 0.05, "untargeted": 0.05, "targeted": 0.2})
    tables = hvsb_tables(data)
    assert {k: v.height for k, v in tables.items()} == {
        "rates": 9, "refusals": 9, "asr_targeted_vs_untargeted": 3, "refusal_targeted_vs_untargeted": 3}
    with pytest.raises(ValueError, match=r"no trial with misaligned under condition\(s\) \['targeted'\]"):
        paired_condition_test(data.filter(pl.col("condition") != "targeted"), "misaligned", "none", "targeted")
