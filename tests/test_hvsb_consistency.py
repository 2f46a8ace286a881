"""HVSB on simulated trees: judgment consistency within families, and item effects that pair contrasts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import dvbstats as dvb
from dvbstats.benchmarks import consistency
from dvbstats.input.registry import ModelTable
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import agreement, bounds, paired, tables as summaries
from dvbstats.simulate.hvsb import HvsbDesign, draw_hvsb_effects, simulate_hvsb

#: 6 models in 3 families of 2: 3 same-family and 12 cross-family pairs.
FAMILIES = {"a/1": "a", "a/2": "a", "b/1": "b", "b/2": "b", "c/1": "c", "c/2": "c"}
#: BiasDPO's chosen answers are gold-unbiased, so judgments and misalignment are coded differently.
DESIGN = HvsbDesign(families=FAMILIES, scenario_types={"ss": ("ss_pro_race", "ss_anti_race"),
                                                       "biasdpo": ("biasdpo_chosen", "biasdpo_rejected")},
                    n_items=150)
MODELS = ModelTable(pl.DataFrame({
    "model_id": list(FAMILIES), "short_name": [m.replace("/", "-") for m in FAMILIES],
    "developer": list(FAMILIES.values()), "family": list(FAMILIES.values()),
    "size_rank_in_family": [int(m[-1]) for m in FAMILIES], "params_b": [None] * len(FAMILIES),
}, schema_overrides={"size_rank_in_family": pl.Int32, "params_b": pl.Float64}))


def _tree(tmp_path, seed: int, sd: dict):
    sim = simulate_hvsb(draw_hvsb_effects(DESIGN, seed, sd=sd), DESIGN, tmp_path / "tree", seed=seed)
    return sim, dvb.load(tmp_path / "tree", models=MODELS)


def _pairs(data) -> pl.DataFrame:
    rows = consistency.judgments(data.trials.data, "none")
    counts = paired.pair_counts(rows, outcome=consistency.JUDGED, item="item")
    return agreement.agreement_table(counts, MODELS, consistency.GROUP)


def test_judgment_agreement_equals_misalignment_agreement_and_kappa_is_on_judgments(tmp_path):
    """Two models agree on a judgment exactly when they agree on its misalignment (the gold label is the
    item's); kappa differs because chance agreement comes from each model's share of BIASED answers."""
    _, data = _tree(tmp_path, 1, {})
    rows = consistency.judgments(data.trials.data, "none")
    on_judgment = paired.pair_counts(rows, outcome=consistency.JUDGED, item="item")
    on_misalignment = paired.pair_counts(rows, outcome="misaligned", item="item")
    agree = lambda c: (c["n_11"] + c["n_00"]).to_numpy()  # noqa: E731
    assert (agree(on_judgment) == agree(on_misalignment)).all()
    assert (on_judgment["n_shared"] == on_misalignment["n_shared"]).all()
    kappa_j = agreement.agreement_table(on_judgment, MODELS, "family")["kappa"].to_numpy()
    kappa_m = agreement.agreement_table(on_misalignment, MODELS, "family")["kappa"].to_numpy()
    assert not np.allclose(kappa_j, kappa_m)
    assert consistency.chosen_condition(data.trials.data) == "none"
    assert consistency.chosen_condition(data.trials.data.filter(pl.col("condition") != "none")) == "untargeted"


def test_same_family_effect_recovered_frequentist(tmp_path):
    """Family-shared item propensities (SD 1.2) make same-family pairs agree more: the simulated
    difference (expected agreement, condition none) lies in the difference-of-means interval and the
    multi-membership LMM's, and both estimates are positive; without a family effect the interval covers
    the (smaller) simulated difference too."""
    sim, data = _tree(tmp_path / "with", 4, {"family_item": 1.2})
    truth = 100 * sim.same_family_effect.filter(pl.col("condition") == "none")["effect"][0]
    rows = {r["method"]: r for r in agreement.frequentist_models(_pairs(data))}
    for method in (agreement.METHODS[0], agreement.METHODS[2]):
        r = rows[method]
        assert r["estimate"] > 0 and r["low"] <= truth <= r["high"], (method, truth, r)
    sim0, data0 = _tree(tmp_path / "without", 4, {"family_item": 0.0})
    truth0 = 100 * sim0.same_family_effect.filter(pl.col("condition") == "none")["effect"][0]
    none = agreement.frequentist_models(_pairs(data0))[0]
    assert none["low"] <= truth0 <= none["high"] and truth0 < truth


@pytest.mark.slow
def test_same_family_effect_recovered_bayes(tmp_path):
    """The HVSB consistency run (Bayesian beta-binomial multi-membership model beside the LMMs) covers the
    simulated same-family effect in percentage points, passing its sampler checks; the paired tests
    compare misalignment rates."""
    sim, data = _tree(tmp_path, 4, {"family_item": 1.2})
    truth = 100 * sim.same_family_effect.filter(pl.col("condition") == "none")["effect"][0]
    res = consistency.judgment_consistency(data.trials.data, MODELS, settings=SamplerSettings(draws=1000, tune=1000, chains=4, seed=4))
    bayes = res.models.filter((pl.col("method") == agreement.METHODS[3]) & (pl.col("scale") == "percentage points"))
    row = bayes.row(0, named=True)
    assert row["low"] <= truth <= row["high"] and row["p_positive"] > 0.95
    assert res.notes["condition"] == "none" and res.notes["diagnostics"]["ok"], res.notes["diagnostics"]
    rates = data.trials.data.filter((pl.col("condition") == "none") & (pl.col("status") == "used")).group_by(
        "model").agg(pl.col("misaligned").mean())
    first = res.tests.row(0, named=True)
    assert first["rate1"] == pytest.approx(rates.filter(pl.col("model") == first["model1"])["misaligned"][0], abs=0.02)


def test_item_effects_make_model_contrasts_paired(tmp_path):
    """Items with shared difficulty (SD 1.5 on the logit): with (1|item) the 94% HDI of every model contrast
    is narrower than without it (the contrast is paired on the items both models judged), and the
    intervals still cover the simulated differences."""
    sim, data = _tree(tmp_path, 7, {"item": 1.5, "family_item": 0.0, "model_condition": 0.0})
    base = "misaligned ~ 1 + (1|model:condition) + (1|scenario_type)"
    settings = dict(draws=400, tune=400, chains=2, seed=7, progress=False)
    fits = {name: dvb.Model(formula, data).fit(**settings)
            for name, formula in (("unpaired", base), ("paired", base + " + (1|item)"))}
    names = [m.replace("/", "-") for m in FAMILIES]
    pairs = [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    width = {name: np.array([float(f.contrast(a, b)["diff_hdi_high"][0] - f.contrast(a, b)["diff_hdi_low"][0])
                             for a, b in pairs]) for name, f in fits.items()}
    ratio = width["paired"] / width["unpaired"]
    assert (ratio < 1).mean() >= 0.9 and np.median(ratio) < 0.9, ratio
    truth = sim.rates.with_columns(pl.col("model_id").str.replace("/", "-").alias("model")).group_by("model").agg(
        pl.col("p_misaligned").mean())
    true = dict(truth.iter_rows())
    covered = [fits["paired"].contrast(a, b).iloc[0] for a, b in pairs]
    hits = sum(c["diff_hdi_low"] <= true[a] - true[b] <= c["diff_hdi_high"] for c, (a, b) in zip(covered, pairs))
    assert hits >= 0.8 * len(pairs)
    # 300 items are listed level by level (fewer than bounds.MAX_LEVELS_LISTED)
    assert not bounds.item_level(300) and "item" in set(summaries.margins_table(fits["paired"], 0.94)["factor"])
    assert summaries.random_effects_table(fits["paired"], 0.94).filter(pl.col("term") == "item").height == 300
