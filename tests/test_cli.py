"""``python -m dvbstats.fit`` as a user runs it: outputs, exit codes, messages."""

import json
from pathlib import Path

import polars as pl
import pytest

from dvbstats import fit as cli
from dvbstats import simulate


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> list[str]:
    design = simulate.Design(feature_dims=[("Formal", "Colloquial"), ("Tech-savvy", "plain language")], n_prompts=400)
    models = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "brand-new/model-x"]
    effects = simulate.draw_effects(design, models, intercept=-0.8, log_n_train=0.0,
                                    sd={"model": 0.4, "value": 0.3, "feature": 0.2, "context": 0.2}, seed=5)
    sim = simulate.simulate(effects, design, seed=6, out_dir=tmp_path_factory.mktemp("dumps"),
                            rerun={"gpt-4o-2024-08-06": 0.5})
    return [str(p) for p in sim.paths]


def test_failing_diagnostics_exit_3_loudly_and_still_write_everything(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main([*dumps, "--out", "run", "--draws", "60", "--tune", "60", "--chains", "2", "--quiet",
                     "--no-report", "--no-scaling"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_DIAGNOSTICS
    assert "SAMPLER DIAGNOSTICS FAILED" in captured.err and "ESS < 400" in captured.err
    run = Path("run")
    for name in ("manifest.json", "posterior.nc", "dvgr.csv", "dvgr.parquet", "sd.csv", "fixed.csv", "random_effects.csv",
                 "margins.csv", "ppc.csv", "diagnostics.csv", "data_quality.csv", "reconciliation.csv", "cells.parquet"):
        assert (run / name).exists(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["diagnostics"]["ok"] is False and manifest["diagnostics"]["failures"]
    assert {i["path"] for i in manifest["inputs"]} == set(dumps)
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert manifest["seed"] == 20251 and manifest["versions"]["pymc"] and manifest["versions"]["nutpie"]
    assert manifest["priors"]["sd_model"] == "halfnormal(1)"
    assert manifest["reconciliation"]["duplicated_prompts"] > 0
    dvgr = pl.read_csv(run / "dvgr.csv")
    assert dvgr["model"].to_list()[-1] == "overall"
    assert "model-x" in dvgr["model"].to_list()  # unknown id: short name derived from it
    totals = manifest["counts"]["totals"]
    assert dvgr.filter(pl.col("model") == "overall")["n_used"][0] == totals["n_used"]
    assert "unknown" in captured.out.lower() or "model-x" in captured.out  # the unknown-model warning is shown
    assert (Path("data/processed") / "run_trials.parquet").exists() or list(Path("data/processed").glob("*.parquet"))


def test_allow_warnings_exits_0(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main([dumps[0], "--out", "run", "--draws", "60", "--tune", "60", "--chains", "2", "--quiet",
                     "--no-report", "--allow-warnings", "--formula", "chose_deep ~ 1 + (1|value)", "--sampler", "pymc"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Posterior DVGR" in out and "overall" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--formula", "chose_deep ~ (x|model)"], "uses 'x' but the input has no such column"),
        (["--formula", "chose_deep ~ 1 + (1|chose_deep)"], "cannot be a grouping factor"),
        (["--formula", "chose_deep ~ 0"], "nothing to estimate"),
        (["--prior", "sd=halfnormal(-1)"], "sigma of halfnormal must be a positive number"),
        (["--prior", "sd=normal(0,1)"], "positive distribution"),
        (["--formula", "chose_deep ~ 1 + (1|colour)"], "'colour'"),
    ],
)
def test_bad_arguments_exit_2_with_a_plain_message(dumps, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main([dumps[0], "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_input_names_file_and_row(tmp_path, monkeypatch, capsys, dumps):
    monkeypatch.chdir(tmp_path)
    rows = pl.read_csv(dumps[0], infer_schema=False)
    bad = rows.with_columns(pl.when(pl.int_range(pl.len()) == 6).then(pl.lit("Option C"))
                            .otherwise(pl.col("model_choice")).alias("model_choice"))
    bad.write_csv("bad.csv")
    assert cli.main(["bad.csv", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "row 7" in err and "Option C" in err


def test_scaling_with_explicit_pairs_and_a_clear_note_when_it_cannot_run(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    common = ["--draws", "200", "--tune", "200", "--chains", "2", "--quiet", "--no-report", "--allow-warnings",
              "--formula", "chose_deep ~ 1 + (1|model) + (1|value)"]
    assert cli.main([*dumps, "--out", "pairs", "--scaling", "--pairs", "gpt-4o-mini:gpt-4o", *common]) == 0
    pairs = pl.read_csv(Path("pairs") / "scaling_pairs.csv")
    assert pairs.select("smaller", "larger").rows() == [("gpt-4o-mini", "gpt-4o")]
    assert "gpt-4o-mini -> gpt-4o" in capsys.readouterr().out

    single = [d for d in dumps if "mini" in d][:1]
    assert cli.main([*single, "--out", "single", "--scaling", *common]) == 0
    manifest = json.loads((Path("single") / "manifest.json").read_text())
    assert manifest["scaling"].startswith("not run: ")
    assert not (Path("single") / "scaling_pairs.csv").exists()
