"""Condition effects on the probability scale: per model and for all models, against simulated truth."""

import numpy as np
import polars as pl
import pytest
from scipy.special import expit

from dvbstats.input.cells import CellTable
from dvbstats.model.formula import parse
from dvbstats.model.sample import SamplerSettings
from dvbstats.report.sections import checks, contrasts
from dvbstats.results import tables as summaries
from dvbstats.results.fitted import fit


def _cells(seed: int):
    """8 models x 2 conditions x 3 values; the attack raises each model's logit by its own slope."""
    rng = np.random.default_rng(seed)
    intercepts, slopes = rng.normal(-0.5, 0.5, 8), rng.normal(0.8, 0.4, 8)
    value_effect = np.array([-0.3, 0.0, 0.3])
    rows, truth = [], {}
    for m in range(8):
        for c, condition in enumerate(["none", "targeted"]):
            for v in range(3):
                p = expit(intercepts[m] + slopes[m] * c + value_effect[v])
                rows.append({"model": f"m{m}", "condition": condition, "value": f"v{v}", "n_prompts": 300,
                             "n_trials": 300, "n_deep": int(rng.binomial(300, p))})
        truth[f"m{m}"] = np.mean([expit(intercepts[m] + slopes[m] + e) - expit(intercepts[m] + e) for e in value_effect])
    return CellTable(pl.DataFrame(rows), ("model", "condition", "value")), truth


@pytest.mark.slow
def test_condition_contrasts_cover_each_models_true_effect():
    covered, total = 0, 0
    for seed in (1, 2):
        cells, truth = _cells(seed)
        f = fit(parse("y ~ 1 + condition + (1 + condition|model) + (1|value)"), cells,
                settings=SamplerSettings(draws=500, tune=500, chains=2, seed=seed), progress=False)
        table = summaries.condition_table(f, 0.94)
        per_model = table.filter(pl.col("model") != "all models")
        assert per_model["a"].unique().to_list() == ["targeted"] and per_model["b"].unique().to_list() == ["none"]
        for row in per_model.iter_rows(named=True):
            total += 1
            covered += row["diff_hdi_low"] <= truth[row["model"]] <= row["diff_hdi_high"]
        overall = table.filter(pl.col("model") == "all models").row(0, named=True)
        assert overall["diff_hdi_low"] <= np.mean(list(truth.values())) <= overall["diff_hdi_high"]
        assert overall["p_diff_above_0"] > 0.99
    assert covered / total >= 0.8, f"{covered}/{total} per-model condition effects covered"


def test_no_condition_term_gives_no_table_and_no_section(tmp_path):
    cells, _ = _cells(3)
    f = fit(parse("y ~ 1 + (1|model)"), CellTable(cells.data.group_by("model").agg(
        pl.col("n_prompts", "n_trials", "n_deep").sum()), ("model",)),
        settings=SamplerSettings(draws=100, tune=100, chains=2), progress=False)
    assert summaries.condition_table(f, 0.94) is None
    assert "condition_effects" not in summaries.tables(f, 0.94, 1)


def test_the_section_reads_the_table(tmp_path):
    table = pl.DataFrame({
        "factor": ["condition"] * 3, "model": ["all models", "m0", "m1"], "a": ["targeted"] * 3, "b": ["none"] * 3,
        "rate_a": [0.5, 0.6, 0.4], "rate_b": [0.3, 0.3, 0.3], "diff_mean": [0.2, 0.3, 0.1],
        "diff_hdi_low": [0.1, 0.2, 0.0], "diff_hdi_high": [0.3, 0.4, 0.2], "p_diff_above_0": [1.0, 1.0, 0.97]})

    class Run:
        hdi_prob = 0.94
        manifest: dict = {}  # no benchmark record: DVB's words

        def table(self, name):
            return table if name == "condition_effects" else None

    text = contrasts.condition_effects(Run(), figures=None)
    assert "Condition effects" in text and "+0.200" in text and "m1" in text and "targeted" in text
    assert "Rate at none" in text and "attack success rate" not in text

    from dvbstats.benchmarks import describe
    from dvbstats.benchmarks.hvsb import HVSB

    Run.manifest = {"benchmark": describe(HVSB)}  # HVSB: the columns name MR and ASR
    text = contrasts.condition_effects(Run(), figures=None)
    assert "| misalignment rate (MR) | attack success rate (ASR, targeted) |" in text
    assert "Rate at" not in text and "attack success rate minus the misalignment rate" in text


def test_prior_predictive_section_only_when_the_run_has_one():
    table = pl.DataFrame({"by": ["model", "model"], "level": ["a", "b"], "observed": [0.3, 0.99],
                          "predicted_mean": [0.5, 0.5], "predicted_low": [0.05, 0.05],
                          "predicted_high": [0.95, 0.95], "n_trials": [100, 100]})

    class Run:
        hdi_prob = 0.94

        def __init__(self, tables):
            self.tables = tables

        def table(self, name):
            return self.tables.get(name)

    figures = lambda *args, **kwargs: "FIGURE"  # noqa: E731
    assert checks.prior_predictive(Run({}), figures) == ""
    text = checks.prior_predictive(Run({"prior_predictive": table}), figures)
    assert "Prior predictive check" in text and "1 of 2 observed rates" in text and "model *b*" in text
