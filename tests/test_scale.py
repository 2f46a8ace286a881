"""Scale: the CLI streams its input, and outputs past their listing bounds say what they leave out.

The fits are small; the bounds (:mod:`dvbstats.results.bounds`) are lowered so that a few models and a
few hundred prompts cross them. The full-size figures come from ``benchmarks/bench_scale.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import dvbstats as dvb
from dvbstats import api
from dvbstats.cli import fit as cli
from dvbstats.input import ingest
from dvbstats.input.runfolder import RunFolder
from dvbstats.model.formula import parse
from dvbstats.report import build, markdown
from dvbstats.results import bounds
from dvbstats.simulate import dvb as simulate

ITEM_FORMULA = "chose_deep ~ 1 + (1|model) + (1|value) + (1|prompt)"
N_PROMPTS = 160


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> list[str]:
    """Three models (one unknown to the model table), a quarter of one model's prompts run twice."""
    ids = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "brand-new/model-x"]
    design = simulate.StudyDesign(n_prompts=N_PROMPTS, feature_dims=[("Formal", "Colloquial")])
    truth = simulate.draw_effects(design, ids, intercept=-0.5, log_n_train=-0.1,
                                  sd={"model": 0.5, "value": 0.3, "feature": 0.3, "context": 0.1}, seed=21)
    folder = tmp_path_factory.mktemp("dumps")
    return [str(p) for p in simulate.simulate(truth, design, seed=22, out_dir=folder, rerun={ids[1]: 0.25}).paths]


def _refuse(*_args, **_kwargs):
    raise AssertionError("the materialising trial reader or writer was called on the CLI path")


@pytest.fixture(scope="module")
def streamed(dumps, tmp_path_factory) -> tuple[Path, str]:
    """A CLI run with (1|prompt) while the eager reader and writer fail, and the item bound at 50 levels."""
    out = tmp_path_factory.mktemp("streamed") / "run"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "_read_dump_files", _refuse)
        mp.setattr(ingest.TrialTable, "read", classmethod(_refuse))
        mp.setattr(ingest.TrialTable, "write", _refuse)
        mp.setattr(bounds, "MAX_LEVELS_LISTED", 50)
        cli.run(dumps, out=out, formula=ITEM_FORMULA, draws=100, tune=100, chains=2, seed=4, scaling=False,
                progress=False, log=lines.append)
    return out, "\n".join(lines)


def test_the_cli_streams_and_writes_the_same_trial_table(dumps, streamed):
    out, _ = streamed
    eager = ingest.read_dumps(dumps)
    assert pl.read_parquet(out / "trials.parquet").equals(eager.data)
    stored = ingest.TrialFile.open(out / "trials.parquet")
    assert stored.sources == eager.sources and stored.reconciliation.equals(eager.reconciliation)
    assert (out / "agreement.csv").is_file() and (out / "paired_tests.csv").is_file()  # read lazily, by columns
    assert isinstance(dvb.Fit.load(out).data.trials, ingest.TrialFile)  # reading a run back is lazy too


def test_streamed_and_in_memory_data_agree(dumps):
    streamed, in_memory = api.load(dumps, stream=True), api.load(dumps)
    assert isinstance(streamed.trials, ingest.TrialFile) and isinstance(in_memory.trials, ingest.TrialTable)
    formula = parse(ITEM_FORMULA)
    assert streamed.cells(formula).data.equals(in_memory.cells(formula).data)
    assert streamed.quality().equals(in_memory.quality())
    assert streamed.reconciliation().equals(in_memory.reconciliation())
    assert streamed.models.data.sort("model_id").equals(in_memory.models.data.sort("model_id"))
    assert repr(streamed) == repr(in_memory)


def test_item_level_levels_are_left_out_of_the_per_level_tables_with_a_note(streamed):
    out, console = streamed
    effects = pl.read_csv(out / "random_effects.csv")
    assert "prompt" not in effects["term"].to_list() and {"model", "value"} <= set(effects["term"])
    assert "prompt" not in pl.read_csv(out / "margins.csv")["factor"].to_list()
    assert "prompt" in pl.read_csv(out / "sd.csv")["term"].to_list()
    items = pl.read_csv(out / "item_effects.csv")
    assert items.height == N_PROMPTS and items["term"].unique().to_list() == ["prompt"]
    posterior = dvb.Fit.load(out).idata.posterior["r_prompt"]
    truth = posterior.mean(("chain", "draw")).to_series()
    got = dict(zip(items["level"], items["mean"], strict=True))
    assert np.allclose([got[str(k)] for k in truth.index], truth.to_numpy())
    assert np.allclose(items["sd"].to_numpy(), posterior.std(("chain", "draw"), ddof=1).to_numpy(), rtol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("prompt (160 levels)" in note for note in manifest["bounded"])
    assert "prompt (160 levels)" in console and "item_effects.csv" in console


def test_item_level_design_averages_are_computed_only_on_request(streamed, monkeypatch):
    monkeypatch.setattr(bounds, "MAX_LEVELS_LISTED", 50)
    fit = dvb.Fit.load(streamed[0])
    assert ("prompt",) not in fit._averages and ("value",) in fit._averages
    draws, levels = fit.level_draws("prompt")  # still there when asked for
    assert draws.shape[1] == len(levels) == N_PROMPTS


def test_the_report_past_the_heatmap_bound_gives_tables_and_says_so(streamed, tmp_path, monkeypatch):
    monkeypatch.setattr(bounds, "MAX_HEATMAP_MODELS", 2)
    monkeypatch.setattr(bounds, "MAX_PAIR_ROWS", 2)
    qmd = build.report_markdown(RunFolder.read(streamed[0]), tmp_path)
    figures = {p.name for p in (tmp_path / markdown.FIGURES).iterdir()}
    assert "p-superior.png" not in figures and "agreement.png" not in figures and "ranks.png" in figures
    assert "{#tbl-p-superior}" in qmd and "{#tbl-agreement-extremes}" in qmd and "@tbl-p-superior" in qmd
    assert "heatmap is not drawn" in qmd and "heatmaps are not drawn" in qmd
    assert "2 of 3 rows shown" in qmd and "every row is in paired_tests.csv" in qmd
    paired = qmd.split("{#tbl-paired-tests}")[0].rsplit("| Model 1 |", 1)[1]
    assert paired.count("\n| ") == 2  # two pairs listed, the rest in the CSV


def test_below_the_bounds_the_heatmaps_stay(streamed, tmp_path):
    qmd = build.report_markdown(RunFolder.read(streamed[0]), tmp_path)
    assert "{#fig-p-superior" in qmd and "{#fig-agreement" in qmd and "rows shown" not in qmd


def test_many_models_fit_with_bounded_outputs(tmp_path):
    """35 models (an aggregated cell table, one formula term): every pair in the CSV files, the
    report's P(row > column) as a table of neighbours in rank, the bound said on the console."""
    rng = np.random.default_rng(3)
    n = bounds.MAX_HEATMAP_MODELS + 5
    rates = 1 / (1 + np.exp(-rng.normal(-0.4, 0.6, n)))
    path = tmp_path / "cells.csv"
    pl.DataFrame({"model": [f"m{i:02d}" for i in range(n)], "n_trials": [300] * n,
                  "n_deep": rng.binomial(300, rates)}).write_csv(path)
    lines: list[str] = []
    out, fit = cli.run([str(path)], out=tmp_path / "run", formula="chose_deep ~ 1 + (1|model)", draws=200,
                       tune=200, chains=2, seed=1, progress=False, log=lines.append)
    superior = pl.read_csv(out / "p_superior.csv")
    assert superior.shape == (n, n + 1) and pl.read_csv(out / "ranks.csv").height == n
    both = superior.drop("level").to_numpy() + superior.drop("level").to_numpy().T  # P(a > b) + P(b > a)
    assert np.isnan(np.diag(both)).all() and np.allclose(both[~np.eye(n, dtype=bool)], 1)
    note = f"{n} models: the report draws no models x models heatmaps"
    assert any(note in line for line in lines)
    assert any(note in b for b in json.loads((out / "manifest.json").read_text())["bounded"])
    qmd = build.report_markdown(RunFolder.read(out), tmp_path / "report")
    assert "{#tbl-p-superior}" in qmd and "{#fig-p-superior" not in qmd
    table = qmd.split("{#tbl-p-superior}")[0].rsplit("| Model |", 1)[1]
    assert table.count("\n| ") == bounds.MAX_PAIR_ROWS < n - 1  # one screen of neighbour pairs; all in the CSV
    assert f"{bounds.MAX_PAIR_ROWS} of {n - 1:,} rows shown" in qmd
