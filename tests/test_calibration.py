"""The calibration suite (analyses/calibration.py): its summaries on constructed ranks and intervals, and a
small run of real fits (slow: two Rasch fits and one DVB fit at reduced draws)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvbstats.simulate import population_agreement_effect

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("calibration", REPO / "analyses" / "calibration.py")
cal = importlib.util.module_from_spec(spec)
sys.modules["calibration"] = cal  # dataclasses look their module up
spec.loader.exec_module(cal)


def _fits(ranks: list[dict], intervals: list[list]) -> pl.DataFrame:
    return pl.DataFrame({"class": "dvb", "simulator": "prior", "seed": list(range(len(ranks))),
                         "ranks": [json.dumps(r) for r in ranks], "intervals": [json.dumps(intervals)] * len(ranks)})


def test_sbc_table_rejects_skewed_ranks_only():
    rng = np.random.default_rng(0)
    ranks = [{"uniform": int(u), "too_low": int(min(u, v))}
             for u, v in zip(rng.integers(0, cal.THINNED + 1, 300), rng.integers(0, cal.THINNED + 1, 300))]
    t = cal.sbc_table(_fits(ranks, []))
    by = {r["quantity"]: r for r in t.iter_rows(named=True)}
    assert by["uniform"]["fits"] == 300 and not by["uniform"]["rejects"]
    assert by["too_low"]["rejects"]  # the minimum of two uniforms: ranks pile up low (an overestimating posterior)
    assert by["uniform"]["tests"] == 2 and by["uniform"]["threshold"] == pytest.approx(cal.ALPHA / 2)


def test_coverage_table_counts_and_wilson():
    intervals = [["rate", "m0", 0.1, 0.3, 0.2], ["rate", "m1", 0.1, 0.3, 0.35], ["pbest", "m0", 0.7, 0.7, 1.0]]
    t = cal.coverage_table(_fits([{}] * 10, intervals))
    row = t.row(0, named=True)
    assert (row["estimand"], row["intervals"], row["covered"]) == ("rate", 20, 10)
    assert row["wilson_low"] == pytest.approx(0.2993, abs=1e-3) and row["wilson_high"] == pytest.approx(0.7007, abs=1e-3)
    assert cal.pbest_table(_fits([{}] * 10, intervals))["n"].sum() == 10
    pooled = cal.coverage_table(_fits([{}] * 10, intervals), ("estimand", "simulator"))
    assert pooled.select("estimand", "fits", "intervals", "covered").row(0) == ("rate", 10, 20, 10)
    md = cal.markdown(pooled).splitlines()
    assert md[0].startswith("| estimand | simulator | fits |")
    assert md[2] == "| rate | prior | 10 | 20 | 10 | 50.0% | 29.9-70.1% | 50.0-50.0% |"  # every fit covers one of two


def test_summary_counts_fits_and_states_the_multiplicity():
    fits = _fits([{"q": 5}] * 12, [["rate", "m0", 0.1, 0.3, 0.2]]).with_columns(
        ok=pl.Series([True] * 9 + [False] * 3), seconds=pl.Series([1.0] * 6 + [3.0] * 6))
    counts = cal.fits_table(fits)
    assert counts.select("class", "simulator", "fits", "passed", "median_s", "total_s").row(0) == (
        "dvb", "prior", 12, 9, 2.0, 24.0)
    tables = {"fits_by_class": counts, "sbc": cal.sbc_table(fits), "coverage_pooled": cal.coverage_table(fits, ("estimand", "simulator")),
              "rank_mass": cal.rank_mass_table(fits)}
    md = cal.summary_markdown(tables)
    assert "| dvb | prior | 12 | 9 | 2.0 |" in md
    assert "1 quantities, each at 1% / 1 = 0.01 (Bonferroni)" in md
    assert "| dvb | 12 | 1 | " in md and "| rate | prior | 12 | 12 | 12 | 100.0% |" in md


def test_rank_intervals_are_scored_against_the_mass_they_hold():
    """A discrete rank's central interval holds more than 94%: the table sets coverage beside that mass, over the
    fits that recorded it (older rows, five fields, are left out of it but still counted in the coverage)."""
    held = [["rank", "m0", 1.0, 2.0, 1.0, 0.99], ["rank", "m1", 2.0, 2.0, 3.0, 0.96]]
    fits = pl.concat([_fits([{}] * 10, held), _fits([{}] * 5, [["rank", "m0", 1.0, 1.0, 1.0]])])
    t = cal.rank_mass_table(fits)
    assert t.select("intervals", "covered", "coverage").row(0) == (20, 10, 0.5)
    assert t["mean_mass"][0] == pytest.approx(0.975)
    assert cal.coverage_table(fits)["intervals"].sum() == 25
    assert cal.rank_mass_table(_fits([{}] * 5, [["rank", "m0", 1.0, 1.0, 1.0]])).is_empty()


def test_fit_bootstrap_is_wider_when_misses_cluster_in_fits():
    """60 fits of 6 intervals, 36 misses: spread one per fit, or all six in 6 fits. Same share; the
    clustered misses give a wider interval over fits, the spread ones a narrower one than Wilson's."""
    fit = np.repeat(np.arange(60), 6)
    spread = np.ones(360)
    spread[::10] = 0
    clustered = np.where(fit < 6, 0.0, 1.0)
    lo_s, hi_s = cal.fit_bootstrap(spread, fit)
    lo_c, hi_c = cal.fit_bootstrap(clustered, fit)
    wl, wh = cal.wilson(324, 360)
    assert lo_c < wl < lo_s <= 0.9 <= hi_s < wh < hi_c


def test_independent_truth_is_the_prompt_weighted_mean_of_cell_probabilities():
    data, p = cal.simulate_independent(cal.CLASSES["hvsb"], seed=3)
    assert data.height == 6 * 2 * 40 and np.all((p > 0) & (p < 1))
    rates = cal._weighted_rates(data, p, ["model"])
    first = data.with_columns(p=pl.Series(p)).filter(pl.col("model") == "m0")["p"].mean()
    assert rates["rate"][0] == pytest.approx(first)
    # skewed item effects: the centred exponential has skewness 2
    assert cal._skewed(np.random.default_rng(1), 200_000, 1.0).mean() == pytest.approx(0, abs=0.01)


def test_rows_with_keys_in_another_order_land_in_their_columns(tmp_path):
    """The scaling class builds its row in another key order; fits.csv keeps one column order."""
    base = {c: 0 for c in cal.COLUMNS} | {"class": "dvb", "simulator": "prior", "ranks": "{}", "intervals": "[]"}
    cal._append(tmp_path / "f.csv", base)
    cal._append(tmp_path / "f.csv", dict(reversed(list((base | {"class": "scaling", "seconds": 7}).items()))))
    t = pl.read_csv(tmp_path / "f.csv")
    assert t.columns == list(cal.COLUMNS)
    assert t["class"].to_list() == ["dvb", "scaling"] and t["seconds"].to_list() == [0, 7]


def test_agreement_simulators_keep_the_pairs_and_state_the_truth():
    """Independent: the harness simulation's pairs with the truth of the estimand the interval claims (the
    population of pairs' effect, not these pairs' own); prior: the same pairs and shared items, agreement counts
    redrawn from the model's prior predictive, truth its drawn parameters."""
    pairs, truth = cal.simulate_agreement("independent", 5)
    sd_group_item = np.random.default_rng(5).uniform(0, 1.2)
    population = population_agreement_effect(intercept=-0.5, sd_model=0.4, sd_item=1.0,
                                             sd_group_item=sd_group_item, sd_model_item=1.0)
    assert (truth["b"][0], truth["diff_pp"][0]) == population
    n_models = sum(cal.AGREEMENT_FAMILIES.values())
    assert pairs.height == n_models * (n_models - 1) // 2
    assert int(pairs["same_group"].sum()) == sum(n * (n - 1) // 2 for n in cal.AGREEMENT_FAMILIES.values())
    assert set(truth) == {"diff_pp", "b"} and np.isfinite(truth["diff_pp"][0])
    prior, drawn = cal.simulate_agreement("prior", 5)
    assert prior["n_shared"].to_list() == pairs["n_shared"].to_list()
    assert prior["n_agree"].to_list() != pairs["n_agree"].to_list()
    assert ((prior["n_agree"] >= 0) & (prior["n_agree"] <= prior["n_shared"])).all()
    assert np.allclose(prior["agreement"], prior["n_agree"] / prior["n_shared"])
    assert set(drawn) == set(cal.AGREEMENT_PARAMETERS)
    a, b = drawn["a"][0], drawn["b"][0]
    assert drawn["diff_pp"][0] == pytest.approx(100 * (1 / (1 + np.exp(-a - b)) - 1 / (1 + np.exp(-a))))


@pytest.mark.slow
def test_small_suite_runs_resumes_and_summarises(tmp_path):
    """Two Rasch fits (prior and independent simulator), one DVB fit and two agreement fits with 300 draws:
    rows appended, a rerun adds nothing, the summaries and figures are written and every interval is scored."""
    n = cal.run(["rasch", "agreement"], ["prior", "independent"], 1, 1, 300, 300, tmp_path, log=lambda _: None)
    n += cal.run(["dvb"], ["prior"], 1, 1, 300, 300, tmp_path, log=lambda _: None)
    assert n == 5
    assert cal.run(["rasch"], ["prior", "independent"], 1, 1, 300, 300, tmp_path, log=lambda _: None) == 0
    tables = cal.summarise(tmp_path)
    fits = pl.read_csv(tmp_path / cal.FITS)
    assert fits.height == 5 and set(fits["class"]) == {"rasch", "dvb", "agreement"}
    cov = tables["coverage"]
    assert set(cov["estimand"]) == {"rate", "contrast", "rank", "agreement", "agreement_logit"}
    assert cov.filter(pl.col("estimand") == "rate")["intervals"].sum() == 3 * 6
    assert cov.filter(pl.col("estimand") == "agreement")["intervals"].sum() == 2
    prior = fits.filter(pl.col("simulator") == "prior")
    ranks = json.loads(prior.filter(pl.col("class") == "rasch")["ranks"][0])
    assert {"Intercept", "sd[model]", "rate[m0]", "contrast[m0-m1]"} <= set(ranks)
    assert set(json.loads(prior.filter(pl.col("class") == "agreement")["ranks"][0])) == set(cal.AGREEMENT_PARAMETERS)
    assert all(0 <= v <= cal.THINNED for r in prior["ranks"] for v in json.loads(r).values())
    assert all((tmp_path / f"sbc_{c}.png").is_file() for c in ("rasch", "dvb", "agreement"))
    assert "| rasch | prior | 1 | " in (tmp_path / "coverage.md").read_text()
    held = [v for r in fits["intervals"] for v in json.loads(r) if v[0] == "rank"]
    assert held and all(len(v) == 6 and cal.HDI_PROB <= v[5] <= 1 + 1e-12 for v in held)
    assert tables["rank_mass"]["intervals"].sum() == len(held)


def test_cost_measures_the_scaling_class():
    """``cost`` measures the classes that are not formula fits too (the scaling trend: exact draws, no NUTS)."""
    row = cal.fit_cost("scaling", 3)
    assert row["class"] == "scaling" and row["fit_cpu_s"] >= 0 and row["ok"] in (True, False)
    assert row["divergences"] == 0


def test_sampler_seeds_are_recorded_and_legacy_files_keep_their_columns(tmp_path):
    """A row records its sampler seed; a fits.csv written before that column takes rows whose sampler seed is
    their data seed (in its own columns) and refuses others: no row's sampler seed is lost."""
    base = {c: 0 for c in cal.COLUMNS} | {"class": "dvb", "simulator": "prior", "ranks": "{}", "intervals": "[]"}
    legacy = tmp_path / "legacy.csv"
    pl.DataFrame([base]).select(cal.COLUMNS[:-1]).write_csv(legacy)
    cal._append(legacy, base | {"seed": 2, "sampler_seed": 2})
    t = pl.read_csv(legacy)
    assert t.columns == list(cal.COLUMNS[:-1]) and t["seed"].to_list() == [0, 2]
    with pytest.raises(ValueError, match="sampler seeds"):
        cal._append(legacy, base | {"seed": 3, "sampler_seed": 1003})
    cal._append(tmp_path / "new.csv", base | {"seed": 3, "sampler_seed": 1003})
    assert pl.read_csv(tmp_path / "new.csv")["sampler_seed"].to_list() == [1003]
