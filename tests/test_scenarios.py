"""HVSB's scenario-type question: MR and ASR by dataset and scenario type, paired contrasts between types, and
a tree written one file per dataset reporting per dataset and saying why."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import dvbstats as dvb
from dvbstats.benchmarks import scenarios
from dvbstats.benchmarks.hvsb import HVSB
from dvbstats.input.runfolder import RunFolder
from dvbstats.results import estimands
from dvbstats.results.fitted import Fit
from dvbstats.report.build import report_markdown
from dvbstats.report.sections.conditions import NAMES_SHOWN, scenario_preferences
from dvbstats.simulate.hvsb import HvsbDesign, draw_hvsb_effects, simulate_hvsb

sys.path.insert(0, str(Path(__file__).parent))
from test_hvsb import row, write_tsv  # noqa: E402
from test_hvsb_run import CONDITION, MODELS  # noqa: E402

DESIGN = HvsbDesign(families={"a/small": "a", "a/large": "a", "b/small-b": "b", "b/large-b": "b"},
                    scenario_types={"bbq": ("age_neg_stereotype", "age_pos_stereotype", "age_neg_nonstereotype",
                                            "age_pos_nonstereotype"), "cp": ("cp_pro_age", "cp_anti_age")},
                    n_items=30)


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenarios")
    effects = draw_hvsb_effects(DESIGN, 7, condition=CONDITION, sd={"family_item": 0.0, "model_condition": 0.2})
    simulate_hvsb(effects, DESIGN, root / "tree", seed=7)
    data = dvb.load(root / "tree", models=MODELS)
    fit = dvb.Model(HVSB.default_formula, data).fit(draws=100, tune=150, chains=2, seed=7, progress=False)
    out = fit.save(root / "run")
    return data, fit, out, report_markdown(RunFolder.read(out), root / "report")


def test_rates_by_dataset_and_type_sit_beside_their_raw_counts(typed):
    data, _, out, _ = typed
    rates = RunFolder.read(out).table("scenario_rates")
    used = data.trials.data.filter(pl.col("status") == "used").with_columns(pl.col("condition").cast(pl.String))
    for part in ("dataset", "polarity", "answer_type"):
        raw = (used.filter(pl.col(part).is_not_null()).with_columns(pl.col(part).alias("_level"))
               .group_by("model", "condition", "dataset", "_level")
               .agg(pl.len().alias("n"), pl.col("misaligned").mean().alias("r")))
        got = rates.filter((pl.col("part") == part) & (pl.col("model") != scenarios.ALL))
        joined = got.join(raw, left_on=["model", "condition", "dataset", "level"],
                          right_on=["model", "condition", "dataset", "_level"])
        assert joined.height == got.height == raw.height > 0
        assert (joined["n_trials"] == joined["n"]).all() and ((joined["raw_rate"] - joined["r"]).abs() < 1e-12).all()
    assert set(rates["rate"]) == set(HVSB.rate_by_condition.values())  # MR and ASR, never one pooled rate


def test_paired_contrasts_between_types_per_model_and_for_all(typed):
    _, fit, out, text = typed
    contrasts = RunFolder.read(out).table("scenario_contrasts")
    pairs = set(contrasts.select("dataset", "a", "b").unique().iter_rows())
    assert pairs == {("bbq", "neg", "pos"), ("bbq", "stereotype", "nonstereotype"), ("cp", "pro", "anti")}
    assert set(contrasts["model"]) == {scenarios.ALL, *fit.models}
    assert contrasts.height == 3 * 3 * (len(fit.models) + 1)  # 3 contrasts x 3 conditions x (models + all)
    assert ((contrasts["diff_mean"] - (contrasts["rate_a"] - contrasts["rate_b"])).abs() < 1e-12).all()
    for words in ("# Scenario types", "bbq: negative question − non-negative question", "cp: stereotype − anti-stereotype",
                  "Paired scenario-type contrasts per model", "add `(1|model:scenario_type)`",
                  "Models with a credible difference between scenario types"):
        assert words in text, words


def test_a_tree_without_scenario_types_reports_per_dataset_and_says_why(tmp_path: Path):
    for model, answer in (("m1", "Judgment: BIASED"), ("m2", "Judgment: UNBIASED")):
        for condition in ("none", "targeted"):
            folder = tmp_path / "xx_judgment" / "org" / model
            folder = folder / condition if condition != "none" else folder
            write_tsv(folder / "xx.tsv", [row(i, "biased" if i % 2 else "unbiased", answer) for i in range(16)])
    data = dvb.load(tmp_path / "xx_judgment", benchmark="hvsb")
    assert scenarios.why_no_types(data.trials).startswith("the judgment files are named by dataset")
    fit = dvb.Model("misaligned ~ 1 + condition + (1|model) + (1|item)", data).fit(
        draws=50, tune=100, chains=1, progress=False)
    out = fit.save(tmp_path / "run")
    rates = RunFolder.read(out).table("scenario_rates")
    assert set(rates["part"]) == {"dataset"} and RunFolder.read(out).table("scenario_contrasts") is None
    assert "No scenario-type breakdown" in report_markdown(RunFolder.read(out), tmp_path / "report")


def test_scenario_preferences_are_one_row_per_contrast_with_the_models_on_each_side():
    """Which models prefer which types: a row per contrast (not one long sentence), every model counted once,
    long lists shortened, names escaped."""
    models = [f"m{i}" for i in range(10)] + ["<b>x</b>"]
    rows = [{"model": m, "contrast": c, "p_diff_above_0": p, "p_diff_below_0": 1 - p}
            for c, ps in (("bbq: neg − pos", [0.99] * 8 + [0.5, 0.01, 0.99]), ("cp: pro − anti", [0.5] * 11))
            for m, p in zip(models, ps, strict=True)]
    table = scenario_preferences(pd.DataFrame(rows), "none")
    lines = [line for line in table.splitlines() if line.startswith("| bbq") or line.startswith("| cp")]
    assert len(lines) == 2
    assert f"and {9 - NAMES_SHOWN} more" in lines[0] and "| m9 |" in lines[0] and "1 of 11" in lines[0]
    assert "<b>" not in table
    assert lines[1].count("–") >= 2 and "11 of 11" in lines[1]
    every = scenario_preferences(pd.DataFrame([{**r, "p_diff_above_0": 0.99, "p_diff_below_0": 0.01} for r in rows]),
                                 "none")
    assert every.count("| all 11 |") == 2 and "m0" not in every


def test_scenario_rates_are_summed_from_the_fits_finest_grouping_not_a_second_pass(typed, monkeypatch):
    """The scenario groupings (dataset and type parts, each determined by the scenario type) are sums of the fit's
    finest grouping's groups, held from its one pass over the cells: no second pass (1-2 CPU s on the example),
    and the same tables as a pass over the cells, up to rounding."""
    data, fit, _, _ = typed
    assert fit._fine is not None and set(fit._fine) >= {"model", "condition", "scenario_type"}
    calls = []
    monkeypatch.setattr(scenarios, "design_averages", lambda *a: calls.append(a) or estimands.design_averages(*a))
    regrouped = scenarios.tables(HVSB, fit, data.trials, 0.9)
    assert not calls  # no pass over the cells
    monkeypatch.setattr(Fit, "regrouped", lambda *_: None)  # as before: a pass over the cells
    direct = scenarios.tables(HVSB, fit, data.trials, 0.9)
    assert len(calls) == 1 and regrouped.keys() == direct.keys() == {"scenario_rates", "scenario_contrasts"}
    for name, table in direct.items():
        floats = [c for c, t in table.schema.items() if t.is_float()]
        assert regrouped[name].drop(floats).equals(table.drop(floats))
        for c in floats:
            np.testing.assert_allclose(regrouped[name][c].to_numpy(), table[c].to_numpy(), rtol=1e-9, atol=1e-15)
