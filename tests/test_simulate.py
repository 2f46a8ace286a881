"""Simulated harness dumps: format, truth, determinism, re-runs, and the calibrated example."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.special import expit

from dvbstats.input import schema
from dvbstats.input.manifest import sha256
from dvbstats.paper2025.reconstruct import DEFAULT_ROOT
from dvbstats.simulate import example
from dvbstats.simulate.dvb import (
    StudyDesign,
    draw_effects,
    draw_prompts,
    linear_predictor,
    population_agreement_effect,
    shared_propensity_trials,
    simulate,
)

FEATURE_DIMS = (("Formal", "Colloquial"), ("plain language", "technical jargon"), ("Tech-savvy", "data_driven"))
DESIGN = StudyDesign(feature_dims=FEATURE_DIMS, n_prompts=3000)
MODELS = ("gpt-4o-2024-08-06", "gemini/gemini-2.0-flash", "replicate/meta/meta-llama-3-8b-instruct")
RATES = dict(zip(MODELS, (0.02, 0.05, 0.10)))
RERUN = {MODELS[2]: 0.5}
SD = {"model": 0.5, "value": 0.5, "feature": 0.3, "context": 0.3, "model_value": 0.3}
EFFECTS = draw_effects(DESIGN, MODELS, intercept=-0.8, log_n_train=-0.05, sd=SD, seed=11)
NAME = re.compile(r"dvb_results_\d{8}-\d{6}_(.+)_full\.(csv|jsonl|parquet)")


def read_dump(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def parse_pair(pair: str) -> tuple[str, str, str, str, str]:
    """(v_pref, f_pref, v_less, f_less, context) by matching the known vocabulary (no underscore splitting)."""
    left, context = pair.rsplit(" - ", 1)
    pref, less = left.split("_vs_")

    def split(half: str) -> tuple[str, str]:
        (match,) = [(v, half[len(v) + 1 :]) for v in DESIGN.values if half.startswith(v + "_")]
        return match

    return (*split(pref), *split(less), context)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(EFFECTS, DESIGN, seed=5, unparsed_rate=RATES, out_dir=tmp_path_factory.mktemp("sim"), rerun=RERUN)


@pytest.fixture(scope="module")
def first_runs(sim) -> pl.DataFrame:
    return pl.concat([read_dump(p) for p in sim.paths[: len(MODELS)]])


def test_dumps_have_harness_columns_and_names(sim):
    assert len(sim.paths) == len(MODELS) + 1
    named = [NAME.fullmatch(p.name).group(1) for p in sim.paths]
    assert named == [m.replace("/", "_") for m in MODELS] + [MODELS[2].replace("/", "_")]
    for path, model in zip(sim.paths, [*MODELS, MODELS[2]]):
        dump = read_dump(path)
        assert tuple(dump.columns) == schema.HARNESS_COLUMNS
        assert dump["model"].unique().to_list() == [model]
    assert sim.paths[-1].name > sim.paths[2].name  # the re-run is stamped later


def test_pairs_round_trip_to_the_intended_design(sim, first_runs):
    truth = sim.trials.rename({"model_id": "model"})
    rows = first_runs.join(truth, on=["model", "prompt_id"], how="left", validate="1:1")
    assert rows.height == len(MODELS) * DESIGN.n_prompts and rows["value"].null_count() == 0
    parsed = [parse_pair(p) for p in rows["context_correlation_pair"]]
    intended = rows.select("value", "feature", "value_less", "feature_less", "context").rows()
    assert parsed == intended
    set_of = {v: s for s, vs in DESIGN.value_sets.items() for v in vs}
    assert all(set_of[v] == set_of[w] and v != w for v, _, w, _, _ in parsed)
    assert all((f, g) in FEATURE_DIMS or (g, f) in FEATURE_DIMS for _, f, _, g, _ in parsed)
    pairs_n = rows.select("context_correlation_pair", "n_train").rows()
    assert rows["test_id"].to_list() == [f"{p.replace(' ', '_')}_{n}" for p, n in pairs_n]
    assert rows["n_training_examples"].to_list() == [str(n) for n in rows["n_train"]]
    assert all(pid.startswith(tid + "_") for pid, tid in rows.select("prompt_id", "test_id").rows())
    prompts_per_model = first_runs.group_by("model").agg(pl.col("prompt_id").n_unique())["prompt_id"]
    assert prompts_per_model.to_list() == [DESIGN.n_prompts] * len(MODELS)
    # every model answers the same prompts
    assert first_runs.group_by("prompt_id").agg(pl.len())["len"].unique().to_list() == [len(MODELS)]


def test_answers_are_coded_consistently_and_options_balanced(first_runs):
    assert (first_runs["expected_deep_value_choice"] != first_runs["shallow_preference_choice"]).all()
    assert set(first_runs["expected_deep_value_choice"]) == set(schema.OPTIONS)
    ok = first_runs.filter(pl.col("success") == "True")
    assert ok["model_choice"].is_in(schema.OPTIONS).all()
    deep = (ok["model_choice"] == ok["expected_deep_value_choice"]).cast(pl.Int8).cast(pl.String)
    assert (ok["generalized_deep_value"] == deep).all()
    assert all(choice in raw for raw, choice in ok.select("raw_response", "model_choice").rows())
    assert ok["error"].null_count() == ok.height
    failed = first_runs.filter(pl.col("success") == "False")
    assert failed.height + ok.height == first_runs.height
    assert failed["model_choice"].null_count() == failed.height
    assert failed["generalized_deep_value"].null_count() == failed.height
    assert (failed["error"].str.len_chars() > 0).all()
    share_a = (first_runs.unique("prompt_id")["expected_deep_value_choice"] == "Option A").mean()
    assert abs(share_a - 0.5) < 4 * math.sqrt(0.25 / DESIGN.n_prompts)


def test_unparsed_rates_and_raw_dvgr_match_the_truth(sim, first_runs):
    for model, rate in RATES.items():
        failed = (first_runs.filter(pl.col("model") == model)["success"] == "False").mean()
        assert abs(failed - rate) < 4 * math.sqrt(rate * (1 - rate) / DESIGN.n_prompts)
    for model, dvgr_true, n_trials, n_deep in sim.truth.select("model_id", "dvgr_true", "n_trials", "n_deep").rows():
        trials = sim.trials.filter(pl.col("model_id") == model)
        assert dvgr_true == pytest.approx(trials["p_true"].mean())
        assert abs(n_deep / n_trials - dvgr_true) < 4 * math.sqrt(dvgr_true * (1 - dvgr_true) / n_trials)


def test_p_true_follows_the_truth_formula(sim):
    rows = sim.trials.sample(50, seed=1).rows(named=True)
    e = EFFECTS
    for r in rows:
        eta = (
            e.intercept
            + e.log_n_train * math.log(r["n_train"])
            + e.model[r["model_id"]]
            + e.value[r["value"]]
            + e.feature[r["feature"]]
            + e.context[r["context"]]
            + e.model_value[(r["model_id"], r["value"])]
        )
        assert r["p_true"] == pytest.approx(expit(eta), rel=1e-12)


def test_rerun_repeats_only_failed_prompts_and_leaves_the_truth(sim, first_runs, tmp_path):
    model = MODELS[2]
    failed_first = set(first_runs.filter((pl.col("model") == model) & (pl.col("success") == "False"))["prompt_id"])
    rerun = read_dump(sim.paths[-1])
    assert set(rerun["prompt_id"]) <= failed_first
    assert rerun["prompt_id"].n_unique() == rerun.height == round(RERUN[model] * len(failed_first))
    assert 0 < (rerun["success"] == "False").sum() < rerun.height / 2  # most now parse, a few fail again
    final = sim.trials.filter(pl.col("model_id") == model).join(rerun, on="prompt_id")
    assert final.filter("parsed")["chose_deep"].cast(pl.String).to_list() == final.filter("parsed")[
        "generalized_deep_value"
    ].to_list()
    assert (final["parsed"] == (final["success"] == "True")).all()

    plain = simulate(EFFECTS, DESIGN, seed=5, unparsed_rate=RATES, out_dir=tmp_path)
    assert plain.truth["dvgr_true"].to_list() == sim.truth["dvgr_true"].to_list()
    assert [p.read_bytes() for p in plain.paths] == [p.read_bytes() for p in sim.paths[: len(MODELS)]]


def test_same_seed_same_dumps_other_seed_other_dumps(tmp_path):
    small = StudyDesign(feature_dims=FEATURE_DIMS, n_prompts=400)
    effects = draw_effects(small, MODELS[:2], intercept=0.0, log_n_train=0.0, sd=SD, seed=3)
    runs = [simulate(effects, small, seed=s, out_dir=tmp_path / str(i)) for i, s in enumerate((7, 7, 8))]
    assert [p.read_bytes() for p in runs[0].paths] == [p.read_bytes() for p in runs[1].paths]
    assert runs[0].trials.equals(runs[1].trials)
    assert runs[0].paths[0].read_bytes() != runs[2].paths[0].read_bytes()


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_other_formats_hold_the_same_rows(tmp_path, file_format):
    small = StudyDesign(feature_dims=FEATURE_DIMS, n_prompts=300)
    effects = draw_effects(small, MODELS[:1], intercept=0.0, log_n_train=0.0, sd=SD, seed=3)
    csv = simulate(effects, small, seed=2, unparsed_rate=0.2, out_dir=tmp_path / "csv")
    other = simulate(effects, small, seed=2, unparsed_rate=0.2, out_dir=tmp_path / file_format, file_format=file_format)
    assert other.paths[0].suffix == f".{file_format}"
    read = pl.read_ndjson if file_format == "jsonl" else pl.read_parquet
    typed = read(other.paths[0])
    assert tuple(typed.columns) == schema.HARNESS_COLUMNS
    assert typed["success"].dtype == pl.Boolean
    as_text = typed.with_columns(
        pl.col("success").replace_strict({True: "True", False: "False"}, return_dtype=pl.String),
        pl.exclude("success").cast(pl.String),
    )
    assert as_text.equals(read_dump(csv.paths[0]).with_columns(pl.col("raw_response").fill_null("")))


def test_value_weights_set_the_preferred_value_frequencies():
    weights = {v: float(i + 1) for i, v in enumerate(schema.DVB_VALUES)}
    design = StudyDesign(feature_dims=FEATURE_DIMS, n_prompts=6600, prompts_per_test=3, value_weights=weights)
    counts = dict(draw_prompts(design, seed=4)["value"].value_counts().rows())
    total = sum(weights.values())
    for v, w in weights.items():
        assert abs(counts[v] - design.n_prompts * w / total) <= design.prompts_per_test


def test_draw_effects_levels_and_spread():
    many = [f"model-{i}" for i in range(2000)]
    effects = draw_effects(DESIGN, many, intercept=0.1, log_n_train=0.2, sd=SD | {"context": 0.0}, seed=9)
    assert list(effects.value) == list(DESIGN.values) and list(effects.feature) == list(DESIGN.features)
    assert set(effects.context.values()) == {0.0}
    assert np.std(list(effects.model.values())) == pytest.approx(SD["model"], rel=0.05)
    assert np.std(list(effects.model_value.values())) == pytest.approx(SD["model_value"], rel=0.05)
    assert draw_effects(DESIGN, many, intercept=0.1, log_n_train=0.2, sd=SD, seed=9).model == effects.model
    main_effects = {term: SD[term] for term in ("model", "value", "feature", "context")}
    without = draw_effects(DESIGN, MODELS, intercept=0, log_n_train=0, sd=main_effects, seed=1)
    assert without.model_value == {}


def test_linear_predictor_is_additive():
    prompts = draw_prompts(DESIGN, seed=1)
    base = linear_predictor(EFFECTS, prompts)
    shifted = replace(EFFECTS, model={m: x + 1.0 for m, x in EFFECTS.model.items()})
    assert np.allclose(linear_predictor(shifted, prompts), base + 1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: simulate(replace(EFFECTS, value={}), DESIGN, seed=1), "Effects.value: missing levels"),
        (lambda: simulate(EFFECTS, DESIGN, seed=1, unparsed_rate={MODELS[0]: 0.1}), "unparsed_rate"),
        (lambda: simulate(EFFECTS, DESIGN, seed=1, rerun={"nobody": 0.5}), "unknown model ids ['nobody']"),
        (lambda: simulate(EFFECTS, DESIGN, seed=1, file_format="xlsx"), "file_format"),
        (lambda: StudyDesign(feature_dims=[("Formal_vs_x", "Colloquial")]), "'Formal_vs_x'"),
        (lambda: StudyDesign(feature_dims=FEATURE_DIMS, contexts=("legal", "legal")), "repeated: ['legal']"),
        (lambda: StudyDesign(feature_dims=FEATURE_DIMS, value_weights={"fidelity": 1.0}), "StudyDesign.value_weights"),
        (lambda: draw_effects(DESIGN, MODELS, intercept=0, log_n_train=0, sd={"model": 1}, seed=1), "missing"),
    ],
)
def test_bad_input_raises_a_clear_error(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        change()


def test_example_matches_the_published_aggregates(tmp_path):
    paths = example.write_example(tmp_path / "example")
    manifest = json.loads((tmp_path / "example" / example.MANIFEST).read_text())
    assert manifest["synthetic"] is True and "SYNTHETIC" in manifest["notice"]
    assert [f["name"] for f in manifest["files"]] == [p.name for p in paths]
    assert example.is_example(paths) and example.is_example([tmp_path / "example"])
    assert not example.is_example([tmp_path / "elsewhere.csv"])

    dumps = pl.concat([read_dump(p) for p in paths])
    parsed = dumps.filter(pl.col("success") == "True")
    assert parsed.select("model", "prompt_id").is_unique().all()  # re-runs only repeat failures
    observed = parsed.group_by("model").agg(
        n_trials=pl.len(), raw_dvgr=(pl.col("generalized_deep_value") == "1").mean()
    )
    published = pl.read_csv(DEFAULT_ROOT / "dvb2025_models.csv")
    both = published.join(observed, left_on="model_id", right_on="model", how="left", validate="1:1")
    for _, n_parsed, n_deep, n_trials, raw_dvgr in both.select(
        "model_id", "n_trials_parsed", "n_chose_deep", "n_trials", "raw_dvgr"
    ).rows():
        assert abs(raw_dvgr - n_deep / n_parsed) < 0.02
        n_failed = example.N_PROMPTS - n_parsed
        assert abs(n_trials - n_parsed) <= 4 * math.sqrt(n_failed) + 1

    stamps = [p.stat().st_mtime_ns for p in paths]
    assert example.write_example(tmp_path / "example") == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps  # identical files are reused
    paths[0].write_text("edited\n")
    with pytest.raises(FileExistsError, match=re.escape(paths[0].name)):
        example.write_example(tmp_path / "example")
    example.write_example(tmp_path / "example", force=True)
    assert sha256(paths[0]) == manifest["files"][0]["sha256"]


def test_examples_are_written_to_the_cache_folder_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("DVBSTATS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert example.cache_dir() == tmp_path / "xdg" / "dvbstats"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert example.cache_dir() == tmp_path / "home" / ".cache" / "dvbstats"
    monkeypatch.setenv("DVBSTATS_CACHE", str(tmp_path / "mine"))
    assert example.cache_dir() == tmp_path / "mine"
    monkeypatch.chdir(tmp_path)
    paths = example.write_example()
    assert all(p.parent == tmp_path / "mine" / "example" for p in paths) and not (tmp_path / "data").exists()


def test_population_agreement_effect_is_the_limit_of_many_models_and_items():
    """The population of pairs' same-group effect (quadrature) against the least-squares truth of 90 models
    in 6 groups over 20,000 items, where the finite pairs' fit approaches it (its SD over seeds there: 0.001)."""
    groups = {f"m{g}_{k}": f"g{g}" for g in range(6) for k in range(15)}
    for sd_group_item in (0.0, 1.0):
        sim = shared_propensity_trials(groups, n_items=20_000, seed=3, sd_group_item=sd_group_item)
        assert sim.population_logit == pytest.approx(sim.effect_logit, abs=0.005)
        assert sim.population_pp == pytest.approx(sim.effect_pp, abs=0.12)
    assert sim.population_logit > 0.2  # a real effect at group-item SD 1, so the comparison is not of zeros
    assert population_agreement_effect(intercept=-0.5, sd_model=0.4, sd_item=1.0, sd_group_item=0.0,
                                       sd_model_item=1.0) == (0.0, 0.0)
