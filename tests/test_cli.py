"""``python -m dvbstats.fit`` as a user runs it: outputs, exit codes, messages."""

import json
import os
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvbstats.cli import fit as cli
from dvbstats.simulate import dvb as simulate


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> list[str]:
    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial"), ("Tech-savvy", "plain language")], n_prompts=400)
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
    for name in ("manifest.json", "posterior.nc", "rates.csv", "rates.parquet", "dvgr.csv", "sd.csv", "fixed.csv", "random_effects.csv",
                 "margins.csv", "ppc.csv", "diagnostics.csv", "data_quality.csv", "reconciliation.csv", "cells.parquet",
                 "trials.parquet"):
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
    assert "not in the model table" in captured.out and "brand-new/model-x" in captured.out  # the warning is shown
    assert (run / "trials.parquet").exists() and not Path("data").exists()  # the trial table follows the run


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


# --- a run owns its folder (issue 12) ------------------------------------------------------

FAST = ["--draws", "100", "--tune", "100", "--chains", "2", "--quiet", "--no-report", "--allow-warnings"]


def _siblings(folder: Path) -> list[str]:
    """Leftovers of a run beside its folder: temporary (``.x.partial-*``) or displaced (``.x.old-*``) folders."""
    return sorted(p.name for p in folder.absolute().parent.iterdir() if p.name.startswith("."))


@pytest.mark.slow
def test_a_rerun_replaces_the_folder_whole(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first = ["--formula", "chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)", "--scaling"]
    assert cli.main([*dumps, "--out", "runs/sim", *first, *FAST]) == 0
    assert (Path("runs/sim") / "interaction_dvgr.csv").exists()
    assert {p.name for p in Path("runs/sim").glob("scaling_*.csv")} >= {"scaling_pairs.csv", "scaling_trend.csv"}
    # one vocabulary: the console's excluded rows are the table's excl column (duplicates said apart), and
    # rows read = used + excluded + superseded
    said = re.search(r"Ingested ([\d,]+) rows .*?([\d,]+) used, ([\d,]+) excluded .*?([\d,]+) superseded duplicate rows",
                     capsys.readouterr().out, re.S)  # the console wraps prose to the terminal
    dvgr, quality = pl.read_csv("runs/sim/dvgr.csv"), pl.read_csv("runs/sim/data_quality.csv")
    rows, used, excluded, superseded = (int(said[i].replace(",", "")) for i in range(1, 5))
    assert excluded == dvgr.filter(pl.col("model") != "overall")["n_excluded"].sum()
    assert superseded == quality["n_superseded"].sum() > 0 and rows == used + excluded + superseded
    assert cli.main([*dumps, "--out", "runs/sim", "--formula", "chose_deep ~ 1 + (1|model)", "--no-scaling", *FAST,
                     "--report"]) == 0
    assert Path("reports/sim/report.html").is_file() and [p.name for p in Path("reports").iterdir()] == ["sim"]
    left = sorted(p.name for p in Path("runs/sim").iterdir())
    assert "interaction_dvgr.csv" not in left and not [n for n in left if n.startswith("scaling_")], left
    manifest = json.loads((Path("runs/sim") / "manifest.json").read_text())
    assert manifest["formula"] == "chose_deep ~ 1 + (1|model)" and manifest["scaling"] == "not run (--no-scaling)"
    assert manifest["run_name"] == "sim"  # the run name follows --out
    assert _siblings(Path("runs/sim")) == []


@pytest.mark.slow
def test_a_foreign_folder_is_refused_unless_overwrite(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("mine").mkdir()
    Path("mine/notes.txt").write_text("keep me")
    assert cli.main([dumps[0], "--out", "mine", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out mine is a non-empty folder") and "--overwrite" in err
    assert Path("mine/notes.txt").read_text() == "keep me" and _siblings(Path("mine")) == []
    assert cli.main([dumps[0], "--out", "mine", "--overwrite", "--formula", "chose_deep ~ 1 + (1|model)", *FAST]) == 0
    assert not Path("mine/notes.txt").exists() and Path("mine/manifest.json").exists()


@pytest.mark.slow
def test_a_failed_run_leaves_no_folder(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("bad.csv").write_text("model_id,prompt_id\nx,1\n")
    assert cli.main(["bad.csv", *FAST]) == 2
    assert not Path("runs").exists() or list(Path("runs").iterdir()) == []

    def fail(*args, **kwargs):
        raise ValueError("the summaries failed")

    monkeypatch.setattr("dvbstats.results.tables.tables", fail)
    assert cli.main([dumps[0], "--out", "runs/late", "--formula", "chose_deep ~ 1 + (1|model)", *FAST]) == 2
    assert "the summaries failed" in capsys.readouterr().err
    assert list(Path("runs").iterdir()) == []  # neither runs/late nor its temporary folder


def test_ctrl_c_before_sampling_says_interrupted_and_exits_130(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dvbstats.api.load", interrupt)
    assert cli.main([dumps[0], "--out", "runs/x", *FAST]) == cli.EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and "error" not in err
    assert not Path("runs").exists() or list(Path("runs").iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_during_sampling_nan_padded_trace_exits_130_and_writes_nothing(dumps, tmp_path, monkeypatch, capsys):
    import nutpie

    monkeypatch.chdir(tmp_path)
    real = nutpie.sample

    class Interrupted:  # what nutpie's sampler returns after Ctrl-C: the draws not made are NaN
        def __init__(self, sampler, draws):
            self.sampler, self.draws = sampler, draws

        def wait(self, timeout=None):
            idata = self.sampler.wait(timeout=timeout)
            for var in idata.posterior.data_vars.values():
                var.values[:, self.draws // 2:] = np.nan
            return idata

        def __getattr__(self, name):
            return getattr(self.sampler, name)

    def interrupted(*args, **kwargs):
        return Interrupted(real(*args, **kwargs), kwargs["draws"])

    monkeypatch.setattr(nutpie, "sample", interrupted)
    assert cli.main([dumps[0], "--out", "runs/x", "--formula", "chose_deep ~ 1 + (1|model)", *FAST]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "p < 0" not in err and "Traceback" not in err
    assert not Path("runs").exists() or list(Path("runs").iterdir()) == []  # nothing written before the fit ends


@pytest.mark.slow
def test_a_model_without_usable_trials_is_flagged_and_left_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial")], n_prompts=300)
    models = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "brand-new/model-x"]
    effects = simulate.draw_effects(design, models, intercept=-0.8, log_n_train=0.0,
                                    sd={"model": 0.4, "value": 0.3, "feature": 0.2, "context": 0.2}, seed=5)
    sim = simulate.simulate(effects, design, seed=6, out_dir=tmp_path / "dumps",
                            unparsed_rate={"gpt-4o-2024-08-06": 0.03, "gpt-4o-mini-2024-07-18": 0.03, "brand-new/model-x": 1.0})
    paths = [str(p) for p in sim.paths]
    simple = ["--formula", "chose_deep ~ 1 + (1|model)", *FAST]
    assert cli.main([*paths, "--out", "runs/left-out", *simple]) == 0
    captured = capsys.readouterr()
    assert "NO usable trial: model-x" in captured.out
    dvgr = pl.read_csv("runs/left-out/dvgr.csv")
    assert "model-x" not in dvgr["model"].to_list()
    overall = dvgr.filter(pl.col("model") == "overall").row(0, named=True)
    used = pl.read_csv("runs/left-out/data_quality.csv")
    assert overall["n_prompts"] == used.filter(pl.col("model") != "model-x")["n_prompts"].sum()
    manifest = json.loads(Path("runs/left-out/manifest.json").read_text())
    assert manifest["empty_models"]["models"] == ["model-x"] and manifest["empty_models"]["in_fit"] is False

    assert cli.main([*paths, "--out", "runs/kept", "--keep-empty-models", *simple]) == 0
    assert "NO usable trial: model-x" in capsys.readouterr().out
    dvgr = pl.read_csv("runs/kept/dvgr.csv")
    assert dvgr.filter(pl.col("model") == "model-x")["n_used"][0] == 0
    assert json.loads(Path("runs/kept/manifest.json").read_text())["empty_models"]["in_fit"] is True


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write to (root ignores permissions, so then /sys)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("case", ["existing file", "below a file", "unwritable", "read-only cwd default out"])
def test_an_unusable_out_is_a_clean_error(dumps, tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    Path("taken").write_text("a file")
    read_only = _read_only_folder(tmp_path)
    out = {"existing file": ["--out", "taken"], "below a file": ["--out", "taken/run"],
           "unwritable": ["--out", str(read_only / "run")], "read-only cwd default out": []}[case]
    if case == "read-only cwd default out":
        monkeypatch.chdir(read_only)
    assert cli.main([dumps[0], *out, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out ") and "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_a_read_only_working_directory_is_fine_when_out_is_elsewhere(dumps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(_read_only_folder(tmp_path))
    out = tmp_path / "run"
    assert cli.main([dumps[0], "--out", str(out), "--formula", "chose_deep ~ 1 + (1|model)", *FAST]) == 0
    assert (out / "trials.parquet").exists() and (out / "manifest.json").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**64)])
def test_a_seed_out_of_range_is_a_clean_error(dumps, seed, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([dumps[0], "--seed", seed, *FAST])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "error: --seed must be a whole number from 0 to 4294967295" in err


@pytest.mark.slow
def test_the_command_in_the_manifest_has_no_absolute_paths(dumps, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*dumps, "--out", str(tmp_path / "abs"), "--formula", "chose_deep ~ 1 + (1|model)", *FAST]) == 0
    command = json.loads((tmp_path / "abs" / "manifest.json").read_text())["command"]
    assert command[:3] == ["python", "-m", "dvbstats.fit"]
    assert not [a for a in command if str(tmp_path) in a or a.startswith("/")], command
    assert "abs" in command and all(not Path(a).is_absolute() for a in command)


def test_a_benchmark_without_an_embedded_example_asks_for_input(tmp_path, monkeypatch, capsys):
    """`dvbstats fit --benchmark binary` without files says the binary benchmark has no example (it used to
    announce the DVB example, then fail on the HVSB example's files), and writes nothing."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--benchmark", "binary", "--quiet", "--no-report"]) == 2
    err = capsys.readouterr()
    assert "binary benchmark has no embedded example" in err.err and "DVB" not in err.out + err.err
    assert not any(tmp_path.iterdir())
