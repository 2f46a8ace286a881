"""HVSB through the whole pipeline: dvb.load -> Model -> fit -> run folder -> report, in HVSB's words.

The DVB path is checked unchanged: its report text is the same with and without the manifest's
``benchmark`` record, and a DVB input loads as before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

import dvbstats as dvb
from dvbstats import api
from dvbstats.benchmarks import describe
from dvbstats.benchmarks.dvb import DVB
from dvbstats.benchmarks.hvsb import HVSB
from dvbstats.input.registry import ModelTable
from dvbstats.input.runfolder import RunFolder
from dvbstats.report.build import report_markdown
from dvbstats.simulate.hvsb import HvsbDesign, draw_hvsb_effects, simulate_hvsb

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_run  # noqa: E402

DESIGN = HvsbDesign(families={"a/small": "a", "a/large": "a", "b/small-b": "b", "b/large-b": "b"},
                    scenario_types={"ss": ("ss_pro_race", "ss_anti_race"), "cp": ("cp_pro_age", "cp_anti_age")},
                    n_items=80)
#: A strong targeted effect (logit +1.2 over untargeted) and model x condition deviations.
CONDITION = {"none": 0.0, "untargeted": 0.3, "targeted": 1.5}


#: The model table of DESIGN: families and within-family size ranks (the scaling tests need two sizes).
MODELS = ModelTable(pl.DataFrame({
    "model_id": list(DESIGN.families), "short_name": [m.replace("/", "-") for m in DESIGN.families],
    "developer": list(DESIGN.families.values()), "family": list(DESIGN.families.values()),
    "size_rank_in_family": [1, 2, 1, 2], "params_b": [None] * 4,
}, schema_overrides={"size_rank_in_family": pl.Int32, "params_b": pl.Float64}))


def _simulate(root: Path, seed: int):
    effects = draw_hvsb_effects(DESIGN, seed, condition=CONDITION, sd={"family_item": 0.0, "model_condition": 0.2})
    return simulate_hvsb(effects, DESIGN, root, seed=seed)


@pytest.fixture(scope="module")
def hvsb_run(tmp_path_factory):
    """A small simulated HVSB tree fitted with HVSB's default formula, saved and reported."""
    root = tmp_path_factory.mktemp("hvsb")
    sim = _simulate(root / "tree", 5)
    data = dvb.load(root / "tree", models=MODELS)
    fit = dvb.Model(HVSB.default_formula, data).fit(draws=400, tune=400, chains=2, seed=5, progress=False)
    out = fit.save(root / "run", analyses=dvb.Analysis().run(fit))
    report_dir = root / "report"
    text = report_markdown(RunFolder.read(out), report_dir)
    return sim, data, fit, out, text


def test_hvsb_is_detected_and_read_as_judgments(hvsb_run):
    sim, data, *_ = hvsb_run
    assert data.benchmark is HVSB
    quality = data.quality()
    assert quality.columns == ["model", "n_rows", "n_prompts", "n_used", "n_unparsed", "n_superseded", "n_conflict"]
    expected = sim.counts.group_by("model_id").agg(pl.col("n_used", "n_rows").sum())
    assert quality["n_used"].sum() == expected["n_used"].sum()
    assert quality["n_rows"].sum() == expected["n_rows"].sum()
    # one trial is a model's judgment of one item under one condition
    assert (quality["n_prompts"] == 3 * DESIGN.n_items * len(DESIGN.scenario_types)).all()


def test_manifest_records_the_benchmark(hvsb_run):
    *_, out, _ = hvsb_run
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["benchmark"]["name"] == "hvsb" and meta["benchmark"]["outcome"] == "misaligned"
    assert meta["scaling"] == "run" and meta["agreement"] == "run"
    # the default formula pairs contrasts on the items; 12 judgments per item are too few for HVSB's
    # measured all-centred form, so auto's rule chose the forms (every term non-centred here)
    assert "(1|item)" in meta["formula"] and meta["sampling"]["plan"]["source"] == "rule"
    forms = meta["parametrization"]["terms"]
    assert forms == dict.fromkeys(["scenario_type", "item", "model__condition"], "zerosum_noncentered")
    notes = json.loads((out / "agreement_methods.json").read_text())
    assert notes["condition"] == "none" and notes["group"] == "family" and notes["outcome"] == "judged_biased"


def test_targeted_effect_recovered(hvsb_run):
    """Posterior targeted - untargeted per model covers the simulated difference for most models and
    is credibly positive for every one (the simulated effect is large)."""
    sim, _, fit, out, _ = hvsb_run
    contrasts = pl.read_csv(out / "condition_contrasts.csv").filter(
        (pl.col("a") == "targeted") & (pl.col("b") == "untargeted"))
    names = fit.data.trials.data.select("model_id", "model").unique()
    truth = sim.targeted_effect.join(names, on="model_id").join(contrasts, on="model")
    assert truth.height == 4
    assert (truth["p_diff_above_0"] > 0.99).all()
    assert truth.filter(pl.col("effect").is_between("diff_hdi_low", "diff_hdi_high")).height >= 3


def test_condition_rates_agree_with_raw_counts(hvsb_run):
    *_, out, _ = hvsb_run
    rates = pl.read_csv(out / "condition_rates.csv")
    assert rates.height == 12 and set(rates["condition"]) == {"none", "untargeted", "targeted"}
    assert (rates.filter(pl.col("condition") == "none")["rate"] == "misalignment rate (MR)").all()
    assert (rates["mean"] - rates["raw_rate"]).abs().max() < 0.05  # 160 items per cell: shrinkage is small


def test_refusal_rise_found(hvsb_run):
    """Refusals were simulated at 3% untargeted and 10% targeted: the paired test sees the rise."""
    *_, out, _ = hvsb_run
    rise = pl.read_csv(out / "refusal_targeted_vs_untargeted.csv")
    assert (rise["difference"] > 0).sum() >= 3


def test_hvsb_report_speaks_hvsb(hvsb_run):
    """No DVB word anywhere in the HVSB report, its new sections included: not DVGR (in any case: the
    diagnostics name the fit's per-model rates dvgr[...]), not the deep value, not chance as the
    reference line (the forest and scaling legends name HVSB's random judge)."""
    *_, text = hvsb_run
    assert "dvgr" not in text.lower()
    assert "deep value" not in text.lower() and "deep-value" not in text.lower()
    for words in ("misalignment rate (MR)", "attack success rate (ASR, targeted)", "# Refusals",
                  "Targeted versus untargeted attack", "{#tbl-quality-condition}", "McNemar",
                  "# Judgment consistency", "under the none condition", "black rules between families",
                  "# Scaling with model size", "Do larger models of a family misjudge less?",
                  "Within-family size pairs: posterior difference in misalignment rate (MR)",
                  "attack success rate minus the misalignment rate", "| misalignment rate (MR) |",
                  "dashed line: a judge answering BIASED or UNBIASED at random"):
        assert words in text, words
    assert "dashed grey: chance" not in text and "Rate at none" not in text


def test_model_table_has_no_population_column_when_no_model_has_one(hvsb_run):
    """Under one condition the model defines no population rate (rates.csv's pop_rate_* are empty): the
    report's model table leaves the column out rather than showing a column of dashes."""
    *_, out, text = hvsb_run
    assert pl.read_csv(out / "rates.csv")["pop_rate_mean"].is_null().all()
    header = next(line for line in text.splitlines() if line.startswith("| Model | Used |"))
    assert "Population" not in header and "Posterior misalignment rate (MR)" in header


def test_reference_line_named_for_the_benchmark(hvsb_run):
    """The plots' legend names the benchmark's reference line (HVSB: the random judge), not chance."""
    from dvbstats.report import plots
    from dvbstats.report.wording import wording

    *_, out, _ = hvsb_run
    w = wording(json.loads((out / "manifest.json").read_text()))
    assert w.reference_line == (0.5, "random judge")
    table = RunFolder.read(out).table("dvgr").to_pandas()  # the report's view of rates.csv
    fig = plots.forest(table[table["model"] != "overall"], hdi_prob=0.94, reference=w.reference_line)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "random judge (0.5)" in labels and not any("chance" in x for x in labels)
    fig = plots.forest(table[table["model"] != "overall"], hdi_prob=0.94, reference=None)
    assert not any("0.5" in t.get_text() for t in fig.legends[0].get_texts())


def test_condition_tables_do_not_repeat_each_other(hvsb_run):
    """condition_effects.csv has each attack prompt against none; condition_contrasts.csv only adds the pair
    it lacks (targeted minus untargeted), so no number is reported twice."""
    *_, out, _ = hvsb_run
    effects = pl.read_csv(out / "condition_effects.csv")
    contrasts = pl.read_csv(out / "condition_contrasts.csv")
    assert set(effects.select("a", "b").unique().rows()) == {("targeted", "none"), ("untargeted", "none")}
    assert set(contrasts.select("a", "b").unique().rows()) == {("targeted", "untargeted")}


def test_run_folder_reads_back(hvsb_run):
    *_, fit, out, _ = hvsb_run
    again = dvb.Fit.load(out)
    assert again.data.benchmark is HVSB
    assert again.data.quality().equals(fit.data.quality())


def test_dvb_report_unchanged_by_the_benchmark_record(tmp_path):
    """A DVB run folder renders the same text whether its manifest names the benchmark or not."""
    run = make_run(tmp_path / "old")
    before = report_markdown(RunFolder.read(run), tmp_path / "r1")
    meta = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps(meta | {"benchmark": describe(DVB)}))
    after = report_markdown(RunFolder.read(run), tmp_path / "r2")
    assert before == after and "Posterior DVGR" in after


def test_the_default_formula_has_hvsbs_measured_form(hvsb_run):
    """HVSB's default formula (with item effects) starts from every term centred zero-sum where the data are
    as deep as the example (``model.plan.first_form``; these trees are not: auto's rule chose); any
    other formula goes by the rule; a form the user chose is kept."""
    _, data, fit, *_ = hvsb_run
    assert dvb.Model(HVSB.default_formula, data).measured_form == "zerosum" and fit.sampling.plan.source == "rule"
    spaced = HVSB.default_formula.replace("(1|item)", "( 1 | item )")
    assert dvb.Model(spaced, data).measured_form == "zerosum"  # the formula, not its spelling
    assert dvb.Model(HVSB.default_formula.removesuffix(" + (1|item)"), data).measured_form is None
    chosen = dvb.Model(HVSB.default_formula, data, parametrization="zerosum_noncentered")
    assert chosen.parametrization == "zerosum_noncentered"  # fit() ignores measured_form unless asked for auto


def test_dvb_load_unchanged(tmp_path):
    """A DVB input loads through ingest as before, with or without benchmark='dvb'."""
    from dvbstats.simulate import example

    paths = [str(p) for p in example.write_example(tmp_path / "ex")][:1]
    plain, named = api.load(paths), api.load(paths, benchmark="dvb")
    assert plain.benchmark is DVB and named.benchmark is DVB
    assert plain.trials.data.equals(named.trials.data)
    assert plain.quality().equals(plain.trials.status_counts())


@pytest.mark.slow
def test_mr_asr_coverage_over_seeds(tmp_path):
    """Posterior MR/ASR per model x condition (94% HDI) covers its truth in >= 90% of cells over 12 seeds,
    from default fits (item effects, the package's 4 x 1,000 draws). 6 seeds (72 cells) were too few to
    tell 89% from the nominal 94%: seeds 21-26 gave 64 of 72, seeds 21-38 198 of 216 (92%). These trees
    have 4 models, the README's known limit: a fit may fail its checks (seed 27: R-hat 1.018 for
    sd[model|Intercept]; 17 of 18 seeds passed), at most one of the 12 here."""
    covered = total = 0
    failed = []
    for seed in range(21, 33):  # 144 model x condition cells
        sim = _simulate(tmp_path / str(seed), seed)
        fit = dvb.Model(HVSB.default_formula, dvb.load(tmp_path / str(seed))).fit(seed=seed, progress=False)
        if not fit.diagnostics.ok:
            failed.append((seed, fit.diagnostics.failures))
        out = fit.save(tmp_path / f"run{seed}")
        rates = pl.read_csv(out / "condition_rates.csv")
        names = fit.data.trials.data.select("model_id", "model").unique()
        truth = sim.rates.join(names, on="model_id").join(rates, on=["model", "condition"])
        covered += truth.filter(pl.col("p_misaligned").is_between("hdi_low", "hdi_high")).height
        total += truth.height
    assert covered / total >= 0.9, f"{covered} of {total} covered"
    assert len(failed) <= 1, failed


def test_console_scaling_lines_use_the_benchmark_rate(hvsb_run):
    """The CLI's scaling lines name the HVSB rate the tests compared, never the DVGR or the DVB paper."""
    from dvbstats.cli.fit import console_scaling

    *_, out, _ = hvsb_run
    folder = RunFolder.read(out)
    assert folder.table("scaling_pairs") is not None
    lines = console_scaling(folder, HVSB.rate_label("none"), "chi-square")
    assert "DVGR" not in lines and "paper" not in lines and HVSB.rate_label("none") in lines
    assert "posterior DVGR difference" in console_scaling(folder)  # DVB's default words, for contrast


def test_per_model_rate_is_the_mr_never_pooled_and_ranks_follow_lower_is_better(hvsb_run):
    """rates.csv, ranks and the model table hold the MR (no system prompt), not a rate pooled over conditions;
    rank 1 is the lowest MR and the report says so."""
    *_, fit, out, text = hvsb_run
    folder = RunFolder.read(out)
    rates, by_condition = folder.table("rates"), folder.table("condition_rates")
    assert (rates["condition"] == "none").all() and not (out / "dvgr.csv").exists()
    mr = by_condition.filter(pl.col("condition") == "none").select("model", mr="mean")
    joined = rates.join(mr, on="model")
    assert joined.height == len(fit.models) and ((joined["rate_mean"] - joined["mr"]).abs() < 1e-12).all()
    ranks = folder.table("ranks").sort("mean_rank")
    assert (ranks["ranked_by"] == "lowest misalignment rate (MR)").all()
    assert ranks["level"][0] == rates.filter(pl.col("model") != "overall").sort("rate_mean")["model"][0]
    assert "every condition included" not in text and "P(best)" not in text
    assert "1 = lowest misalignment rate (MR)" in text and "Misalignment rate (MR) by model (condition none only)" in text
