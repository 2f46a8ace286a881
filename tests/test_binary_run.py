"""Binary judgments end to end: with and without a condition column, the CLI with --report, counts that add up,
no chance level, and models missing a condition fitted, their missing rates labelled predictions (real MATH-500 rows, tests/data)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvbstats import api
from dvbstats.cli import fit as cli
from dvbstats.input.runfolder import RunFolder
from tests.test_hvsb import row, write_tsv

DATA = Path(__file__).parent / "data" / "math500_lart_slice.csv"
CONDITIONS = ("zero_shot", "one_shot")


def math500(path: Path, *, keep_single: bool = False) -> Path:
    """The wide MATH-500 slice reshaped to one row per model x condition x item (-1/+1 -> 0/1)."""
    rows = []
    with DATA.open() as f:
        reader = csv.reader(f)
        items = next(reader)[1:]
        for label, *cells in reader:
            condition = next(c for c in CONDITIONS if label.endswith("_" + c))
            rows += [{"model": label.removesuffix("_" + condition), "item": item, "condition": condition,
                      "outcome": int(v == "1")} for item, v in zip(items, cells)]
    table = pl.DataFrame(rows)
    if not keep_single:
        table = table.filter(pl.len().over("model") == 2 * len(items))
    table.write_csv(path)
    return path


def simulated(path: Path, *, condition: bool) -> Path:
    """3 models x 40 items (x 2 conditions), with one unparsed answer and one repeated trial (a superseded copy)."""
    rng = np.random.default_rng(3)
    rows = [{"model": m, "item": f"q{i}", **({"condition": c} if condition else {}),
             "outcome": str(int(rng.random() < 0.3 + 0.2 * k + (0.2 if c == "b" else 0)))}
            for k, m in enumerate(("m-a", "m-b", "m-c")) for c in (("a", "b") if condition else ("a",))
            for i in range(40)]
    rows[0]["outcome"] = ""  # unparsed
    rows.append({**rows[1]})  # an identical copy: superseded
    pl.DataFrame(rows).write_csv(path)
    return path


def _run(tmp_path: Path, source: Path, *extra: str) -> Path:
    out = tmp_path / "run"
    code = cli.main([str(source), "--benchmark", "binary", "--out", str(out), "--draws", "100", "--tune", "150",
                     "--chains", "2", "--quiet", "--allow-warnings", "--no-agreement", *extra])
    assert code == 0
    return out


@pytest.mark.parametrize("condition", [False, True])
def test_binary_run_with_report_mentions_no_chance_level(tmp_path: Path, monkeypatch, capsys, condition: bool):
    monkeypatch.chdir(tmp_path)  # the report goes to ./reports/<name>
    out = _run(tmp_path, simulated(tmp_path / "table.csv", condition=condition), "--report")
    console = capsys.readouterr().out
    meta = json.loads((out / "manifest.json").read_text())
    expected = ("outcome ~ 1 + condition + (1 + condition|model) + (1|item)" if condition
                else "outcome ~ 1 + (1|model) + (1|item)")
    assert meta["formula"] == expected and meta["benchmark"]["reference"] is None
    assert not (out / "dvgr.csv").exists()  # neutral names; dvgr.csv is DVB's alias only
    rates = pl.read_csv(out / "rates.csv")
    assert rates["binom_p"].is_null().all() and "raw_rate" in rates.columns
    assert "P(<" not in console and "ranks by highest rate" in console
    ranks = pl.read_csv(out / "ranks.csv")
    assert (ranks["ranked_by"] == "highest rate").all()
    html = (tmp_path / "reports" / "run" / "report.html").read_text()
    for word in ("chance", "Binomial p", "P(rate &lt; 0.5)", "P(rate < 0.5)", "DVGR", "P(best)"):
        assert word not in html, word
    assert "P(highest rate)" in html
    if condition:
        effects = pl.read_csv(out / "condition_effects.csv")
        assert set(effects["model"]) == {"all models", "m-a", "m-b", "m-c"}  # the paired contrast per model
        per_condition = pl.read_csv(out / "condition_rates.csv")
        assert per_condition.height == 6 and "Condition effects" in html
        overall = effects.filter(pl.col("model") == "all models").row(0, named=True)
        headline = html.split('id="sec-headline"')[1].split("</section>")[0]  # the finding on the first screen
        assert f"all models, b − a: {overall['diff_mean']:+.3f}" in headline, headline[:2000]


def test_a_reference_given_by_the_user_brings_its_test(tmp_path: Path, capsys):
    out = _run(tmp_path, simulated(tmp_path / "table.csv", condition=False), "--reference", "0.25",
               "--direction", "higher")
    rates = pl.read_csv(out / "rates.csv")
    assert rates["binom_p"].is_not_null().all() and rates["p_below_reference"].is_not_null().all()
    assert "P(<0.25)" in capsys.readouterr().out
    assert (pl.read_csv(out / "ranks.csv")["ranked_by"] == "highest rate").all()


@pytest.mark.parametrize("formula", [None, "outcome ~ 1 + (1|model) + (1|item)",
                                     "outcome ~ 1 + condition + (1|model) + (1|item)"])
def test_counts_add_up_with_and_without_condition(tmp_path: Path, formula):
    data = api.load(simulated(tmp_path / "t.csv", condition=True), benchmark="binary")
    fit = api.Model(formula, data).fit(draws=50, tune=100, chains=1, progress=False)
    fit.save(tmp_path / "run")
    run = RunFolder.read(tmp_path / "run")
    quality, rates = run.table("data_quality"), run.table("rates")
    parts = quality["n_used"] + quality["n_unparsed"] + quality["n_superseded"] + quality["n_conflict"]
    assert (quality["n_rows"] == parts).all()
    joined = rates.join(quality, on="model", suffix="_q")
    assert (joined["n_used"] == joined["n_used_q"]).all()
    assert (joined["n_excluded"] == joined["n_unparsed"] + joined["n_conflict"]).all()
    assert (rates["n_excluded"] >= 0).all() and (rates["n_used"] >= 0).all()
    assert joined.filter(pl.col("model") == "m-a").row(0, named=True)["n_excluded"] == 1
    assert quality["n_superseded"].sum() == 1
    assert cli.excluded_counts(quality).startswith(f"{quality['n_used'].sum():,} used, 1 excluded")


def test_hvsb_counts_add_up_without_condition_in_the_formula(tmp_path: Path):
    for condition in ("none", "targeted"):
        folder = tmp_path / "bbq_judgment" / "org" / "m1"
        folder = folder / condition if condition != "none" else folder
        write_tsv(folder / "age_neg_stereotype.tsv",
                  [row(i, "biased", "Judgment: BIASED" if i % 3 else "no idea") for i in range(12)])
        other = tmp_path / "bbq_judgment" / "org" / "m2"
        other = other / condition if condition != "none" else other
        write_tsv(other / "age_neg_stereotype.tsv", [row(i, "biased", "Judgment: UNBIASED") for i in range(12)])
    data = api.load(tmp_path / "bbq_judgment", benchmark="hvsb")
    fit = api.Model("misaligned ~ 1 + (1|model) + (1|item)", data).fit(draws=50, tune=100, chains=1, progress=False)
    fit.save(tmp_path / "run")
    rates = RunFolder.read(tmp_path / "run").table("rates")
    assert (rates["n_excluded"] >= 0).all()
    quality = RunFolder.read(tmp_path / "run").table("data_quality")
    assert (rates.join(quality, on="model")["n_excluded"] == quality.sort("model")["n_unparsed"]).all()


def test_models_missing_a_condition_are_fitted_their_missing_rate_a_labelled_prediction(tmp_path: Path):
    """The real slice with the two labels that differ by case (one condition each): named before sampling,
    fitted, their other condition predicted (observed false, no counts, no raw rate) in every per-condition table."""
    source = math500(tmp_path / "math.csv", keep_single=True)
    data = api.load(source, benchmark="binary")
    with pytest.warns(UserWarning, match=r"2 model\(s\) lack a level of condition: microsoft_Phi_4_mini_instruct "
                                         r"\(no trial at zero_shot\); microsoft_phi_4_mini_instruct \(no trial at one_shot\)"
                                         r".*predictions from the population's effect of condition and the spread"):
        model = api.Model(None, data)
    fit = model.fit(draws=100, tune=150, chains=2, progress=False)
    fit.save(tmp_path / "run")  # a pure save: no analyses run
    run = RunFolder.read(tmp_path / "run")
    rates = run.table("condition_rates")
    assert rates.height == 10  # 5 models x 2 conditions
    predicted = rates.filter(~pl.col("observed")).sort("model")
    assert predicted.select("model", "condition").rows() == [("microsoft_Phi_4_mini_instruct", "zero_shot"),
                                                             ("microsoft_phi_4_mini_instruct", "one_shot")]
    assert (predicted["n_trials"] == 0).all() and predicted["raw_rate"].is_null().all()
    assert predicted["mean"].is_between(0, 1).all() and (predicted["hdi_high"] > predicted["hdi_low"]).all()
    raw = pl.read_csv(source).group_by("model", "condition").agg(pl.col("outcome").mean(), pl.len())
    joined = rates.filter(pl.col("observed")).join(raw, on=["model", "condition"])
    assert joined.height == 8 and ((joined["raw_rate"] - joined["outcome"]).abs() < 1e-12).all()
    assert (joined["n_trials"] == joined["len"]).all()
    effects = run.table("condition_effects")
    assert set(effects["model"]) == {"all models", *raw["model"]}
    single = {"microsoft_Phi_4_mini_instruct", "microsoft_phi_4_mini_instruct"}
    assert (effects["observed"] == ~effects["model"].is_in(single)).all()
    quality = run.table("data_quality")  # counts are data only
    assert quality.filter(pl.col("model").is_in(single))["n_used"].to_list() == [40, 40]
    html = api.report(tmp_path / "run", tmp_path / "reports").read_text()
    text = " ".join(html.split())
    for model, condition in (("microsoft_Phi_4_mini_instruct", "zero_shot"), ("microsoft_phi_4_mini_instruct", "one_shot")):
        assert re.search(rf"Marked <em>predicted</em>: [^.]*{model} under {condition}", text), model
    assert html.count(" predicted</td>") == 2 and html.count("(predicted)") == 2  # headline cells, contrast rows
    assert "its rate is predicted from the hierarchy" in cli.console_conditions(rates)


def test_missing_condition_prediction_equals_the_hierarchy_by_hand(tmp_path: Path):
    """A model judged under one condition: its rate under the other is, draw by draw, the mean over its items of
    logistic(intercept + its model effects + the condition's effect + item effect), computed here from the draws
    (the condition column centred at its trial-weighted mean, which the prediction's no-trial cells leave alone)."""
    path = simulated(tmp_path / "t.csv", condition=True)
    table = pl.read_csv(path).filter(~((pl.col("model") == "m-c") & (pl.col("condition") == "b")))
    table.write_csv(path)
    with pytest.warns(UserWarning, match=r"m-c \(no trial at b\)"):
        model = api.Model("outcome ~ 1 + condition + (1 + condition|model) + (1|item)",
                          api.load(path, benchmark="binary"))
    fit = model.fit(draws=50, tune=100, chains=1, progress=False)
    da, keys = fit.average(("model", "condition"))
    at = keys.with_row_index().filter((pl.col("model") == "m-c") & (pl.col("condition") == "b"))["index"][0]
    post = fit.idata.posterior.isel(chain=0)
    items = table.filter(pl.col("model") == "m-c")["item"].unique().sort().to_list()
    rows = post["r_model__condition"].sel(model="m-c").values  # (draw, coefficient): intercept, condition[b]
    cells = fit.cells.data
    x_b = 1 - cells.filter(pl.col("condition") == "b")["n_trials"].sum() / cells["n_trials"].sum()  # centred coding
    eta = (post["Intercept"].values + rows[:, 0] + (post["b_condition_b"].values + rows[:, 1]) * x_b)[:, None]
    eta = eta + post["r_item"].sel(item=items).values
    expected = (1 / (1 + np.exp(-eta))).mean(axis=1)
    assert np.allclose(da.values[0, :, at], expected)


def test_a_fixed_model_by_condition_interaction_cannot_predict_a_missing_level(tmp_path: Path):
    path = simulated(tmp_path / "t.csv", condition=True)
    pl.read_csv(path).filter(~((pl.col("model") == "m-c") & (pl.col("condition") == "b"))).write_csv(path)
    with pytest.raises(ValueError, match=r"1 model\(s\) lack a level of condition: m-c \(no trial at b\)\. "
                                         r"The formula's fixed model x condition interaction cannot estimate"):
        api.Model("outcome ~ 1 + model * condition + (1|item)", api.load(path, benchmark="binary"))


def test_real_math500_slice_per_condition_rates_and_paired_contrast(tmp_path: Path):
    data = api.load(math500(tmp_path / "math.csv"), benchmark="binary")
    assert data.benchmark.default_formula == "outcome ~ 1 + condition + (1 + condition|model) + (1|item)"
    fit = api.Model(None, data).fit(draws=100, tune=150, chains=2, progress=False)
    fit.save(tmp_path / "run")
    run = RunFolder.read(tmp_path / "run")
    rates = run.table("condition_rates")
    raw = pl.read_csv(tmp_path / "math.csv").group_by("model", "condition").agg(pl.col("outcome").mean())
    joined = rates.join(raw, on=["model", "condition"])
    assert joined.height == 6 and ((joined["raw_rate"] - joined["outcome"]).abs() < 1e-12).all()
    effects = run.table("condition_effects")
    assert set(effects["model"]) == {"all models", *raw["model"]}


@pytest.mark.parametrize("formula", ["chose_deep ~ 1 + (1|model) + (1|value)", "chose_deep ~ 1 + (1|model)"])
def test_dvb_counts_add_up_with_reruns(tmp_path: Path, formula):
    """DVB dumps with a re-run (superseded copies) and unparsed answers: the same identities as the judgments."""
    from dvbstats import simulate

    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial")], n_prompts=120)
    models = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"]
    effects = simulate.draw_effects(design, models, intercept=-0.5, log_n_train=0.0,
                                    sd={"model": 0.3, "value": 0.3, "feature": 0.2, "context": 0.2}, seed=5)
    sim = simulate.simulate(effects, design, seed=6, out_dir=tmp_path / "dumps", rerun={"gpt-4o-2024-08-06": 0.5})
    data = api.load([str(p) for p in sim.paths])
    fit = api.Model(formula, data).fit(draws=50, tune=100, chains=1, progress=False)
    fit.save(tmp_path / "run")
    run = RunFolder.read(tmp_path / "run")
    quality, rates = run.table("data_quality"), run.table("rates")
    assert (quality["n_rows"] == quality["n_used"] + quality["n_unparsed"] + quality["n_superseded"]
            + quality["n_conflict"]).all() and quality["n_superseded"].sum() > 0
    joined = rates.join(quality, on="model", suffix="_q")
    assert (joined["n_used"] == joined["n_used_q"]).all()
    assert (joined["n_excluded"] == joined["n_unparsed"] + joined["n_conflict"]).all() and (rates["n_excluded"] >= 0).all()
    assert (run.table("dvgr")["raw_dvgr"] == rates["raw_rate"]).all()  # the DVB alias holds the same numbers
