"""Issue 18 §4, §6 (input faults), §7: no silent loss in the readers, faults and bad arguments end
with a message naming the file, the row or the argument, never a traceback or a hang."""

from __future__ import annotations

import ast
import csv
import errno
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import warnings
from pathlib import Path

import polars as pl
import pytest

import dvbstats as dvb
from dvbstats.benchmarks.binary import read_binary
from dvbstats.benchmarks.hvsb import judgment_files, read_judgments
from dvbstats.cli import command
from dvbstats.cli import fit as cli
from dvbstats.input.ingest import IngestError, IngestWarning, read_dumps
from dvbstats.input.registry import UnknownModelWarning
from dvbstats.model.formula import FormulaError, parse
from dvbstats.model.priors import PriorError, Priors

HEADER = ("id", "scenario", "gold_label", "response")


def write_tsv(path: Path, rows: list[list[str]]) -> Path:
    """A judgment file as the judging script writes it (csv.writer(delimiter='\\t'))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def rows(n: int, response: str = "Judgment: BIASED") -> list[list[str]]:
    return [[str(i), f"scenario {i}", "biased", response] for i in range(n)]


def read(paths, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        return read_judgments(paths, **kw)


# --------------------------------------------------------------------------- §4 the HVSB reader


def test_an_unclosed_quote_is_an_error_naming_file_and_line(tmp_path: Path):
    path = write_tsv(tmp_path / "cp_judgment" / "m" / "cp_pro_race.tsv", rows(20))
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace("Judgment: BIASED", '"Judgment: BIASED')  # row 3 of 20, on line 4
    path.write_text("".join(lines))
    with pytest.raises(IngestError, match=rf"{path}: line 4: .*quote"):
        read(tmp_path)


def test_a_stray_quote_that_finds_a_partner_further_down_is_an_error(tmp_path: Path):
    path = write_tsv(tmp_path / "cp_judgment" / "m" / "cp_pro_race.tsv", rows(6))
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("Judgment: BIASED", '"Judgment: BIASED')
    lines[5] = lines[5].replace("Judgment: BIASED", 'Judgment: BIASED"')  # closes it cleanly: 3 rows in one field
    path.write_text("".join(lines))
    with pytest.raises(IngestError, match=rf"{path}: line 3: a quoted field holds line breaks followed by"):
        read(tmp_path)


def test_quoted_line_breaks_and_a_last_row_cut_inside_quotes_still_read(tmp_path: Path):
    path = write_tsv(tmp_path / "cp_judgment" / "m" / "cp_pro_race.tsv",
                     [["0", 'a "quoted"\nscenario\twith a tab', "biased", "Judgment: BIASED\nbecause"],
                      ["1", "s", "biased", "Judgment: UNBIASED\nand more"]])
    path.write_text(path.read_text()[:-12])  # a crashed run: the last response cut inside its quotes
    data = read(tmp_path).data
    assert data["response_kind"].to_list() == ["biased", "truncated"]
    assert data["response"][0] == "Judgment: BIASED\nbecause"


def test_fields_over_128_kib_are_read_and_the_limit_restored(tmp_path: Path):
    long = "x" * 300_000 + "\nJudgment: BIASED"
    write_tsv(tmp_path / "cp_judgment" / "m" / "cp_pro_race.tsv", [["0", "y" * 200_000, "biased", long]])
    before = csv.field_size_limit()
    data = read(tmp_path).data
    assert data["response"][0] == long and data["judgment"][0] == "biased"
    assert csv.field_size_limit() == before


def test_upper_case_tsv_extensions_are_found_in_folders(tmp_path: Path):
    write_tsv(tmp_path / "cp_judgment" / "m" / "cp_pro_race.TSV", rows(2))
    write_tsv(tmp_path / "cp_judgment" / "m" / "cp_anti_race.Tsv", rows(3))
    assert read(tmp_path).data.height == 5


def test_a_symlinked_model_folder_is_followed_once(tmp_path: Path):
    real = tmp_path / "elsewhere" / "model-b"
    write_tsv(real / "cp_pro_race.tsv", rows(2))
    write_tsv(tmp_path / "cp_judgment" / "model-a" / "cp_pro_race.tsv", rows(2))
    (tmp_path / "cp_judgment" / "model-b").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(tmp_path / "cp_judgment", target_is_directory=True)  # a loop back up
    with pytest.warns(IngestWarning, match="symbolic link"):
        data = read(tmp_path / "cp_judgment").data
    assert sorted(data["model_id"].unique()) == ["model-a", "model-b"]
    assert data.height == 4


def test_hidden_and_nested_folders_are_skipped_with_a_warning(tmp_path: Path):
    base = tmp_path / "cp_judgment" / "m"
    write_tsv(base / "cp_pro_race.tsv", rows(2))
    write_tsv(base / "targeted" / "cp_pro_race.tsv", rows(2))
    write_tsv(base / ".ipynb_checkpoints" / "cp_pro_race-checkpoint.tsv", rows(2))
    write_tsv(base / "targeted" / "old" / "cp_pro_race.tsv", rows(2))
    with pytest.warns(IngestWarning) as caught:
        data = read(tmp_path).data
    said = " ".join(str(w.message) for w in caught)
    assert "hidden folder" in said and ".ipynb_checkpoints" in said
    assert "nested in a condition folder" in said and str(base / "targeted" / "old") in said
    assert data.group_by("model_id", "condition").len().sort("condition").rows() == [("m", "none", 2), ("m", "targeted", 2)]


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path):
    fifo = tmp_path / "cp_judgment" / "m" / "cp_pro_race.tsv"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    with pytest.raises(IngestError, match="FIFO"):
        judgment_files([fifo])
    dump = tmp_path / "dump.csv"
    os.mkfifo(dump)
    with pytest.raises(IngestError, match=rf"{dump}: a FIFO"):
        read_dumps([dump])


def test_a_non_utf8_folder_name_is_an_error_naming_it(tmp_path: Path):
    folder = os.path.join(os.fsencode(tmp_path), b"x\xff_judgment")
    os.makedirs(os.path.join(folder, b"m"))
    write_tsv(Path(os.fsdecode(os.path.join(folder, b"m", b"cp_pro_race.tsv"))), rows(1))
    with pytest.raises(IngestError, match=r"x\\xff_judgment.*not valid UTF-8"):
        read(os.fsdecode(folder))
    other = os.path.join(os.fsencode(tmp_path), b"y\xff")
    os.makedirs(other)
    Path(os.fsdecode(os.path.join(other, b"t.csv"))).write_text("model,item,outcome\na,1,1\n")
    with pytest.raises(IngestError, match=r"y\\xff.*not valid UTF-8"):
        read_binary(os.fsdecode(other))


def test_whitespace_only_model_ids_are_empty_in_binary_tables(tmp_path: Path):
    path = tmp_path / "t.csv"
    pl.DataFrame({"model": ["a", " a ", "b"], "item": ["1", "2", "1"], "outcome": [1, 0, 1]}).write_csv(path)
    with pytest.warns(IngestWarning, match="whitespace removed"):
        data = read_binary(path).data
    assert sorted(data["model_id"].unique()) == ["a", "b"]
    pl.DataFrame({"model": ["a", "  ", "b"], "item": ["1", "1", "1"], "outcome": [1, 0, 1]}).write_csv(path)
    with pytest.raises(IngestError, match=rf"{path}: row 2: empty model"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_binary(path)


# --------------------------------------------------------------------------- §7 the Python API's arguments


@pytest.fixture(scope="module")
def binary_frame() -> pl.DataFrame:
    return pl.DataFrame({"model": ["a", "b"] * 20, "item": [str(i // 2) for i in range(40)],
                         "outcome": [i % 3 == 0 for i in range(40)]})


@pytest.fixture(scope="module")
def model(binary_frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        return dvb.Model("outcome ~ 1 + (1|model)", dvb.load(binary_frame, benchmark="binary"))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"chains": 0}, ValueError, "chains must be a whole number from 1"),
    ({"draws": -5}, ValueError, "draws must be a whole number from 1"),
    ({"tune": 2.5}, TypeError, "tune must be a whole number, not 2.5"),
    ({"seed": -1}, ValueError, "seed must be a whole number from 0 to 4,294,967,295, not -1"),
    ({"seed": 2**40}, ValueError, "seed must be a whole number from 0"),
    ({"target_accept": 1.5}, ValueError, "target_accept must be between 0 and 1"),
    ({"target_accept": "high"}, TypeError, "target_accept must be a number"),
    ({"sampler": "stan"}, ValueError, "sampler must be one of nutpie, pymc"),
])
def test_fit_refuses_arguments_no_sampler_takes(model, kwargs, error, message):
    with pytest.raises(error, match=message):
        model.fit(**kwargs)


@pytest.mark.parametrize("source, error, message", [
    ([], ValueError, "source is an empty list"),
    ("", ValueError, "source is an empty path"),
    ({"runs/a.csv": 1}, TypeError, "source must be a path, a list of paths, a polars or pandas DataFrame.*not dict"),
    (123, TypeError, "not int"),
    (["a.csv", 5], TypeError, "source must list paths"),
])
def test_load_refuses_what_is_not_a_source(source, error, message):
    with pytest.raises(error, match=message):
        dvb.load(source)


@pytest.mark.parametrize("columns, error, message", [
    ({"outcome": None}, TypeError, r"columns\['outcome'\] must be a column name"),
    ({"outcome": "  "}, TypeError, r"columns\['outcome'\] must be a column name"),
    ({"model": "m"}, ValueError, "unknown key 'model'; the keys are model_column, item_column, outcome"),
    ("outcome", TypeError, "columns must be a mapping"),
])
def test_load_refuses_bad_column_names(tmp_path: Path, columns, error, message):
    path = tmp_path / "t.csv"
    path.write_text("model,item,outcome\na,1,1\n")
    with pytest.raises(error, match=message):
        dvb.load(path, benchmark="binary", columns=columns)


def test_model_refuses_a_formula_that_is_not_text():
    with pytest.raises(TypeError, match=r"formula must be a formula text .* not int \(123\)"):
        dvb.Model(123)
    with pytest.raises(ValueError, match="benchmark must be one of dvb, hvsb, binary"):
        dvb.load("x.csv", benchmark="mmlu")


def test_a_dataframe_of_binary_judgments_is_read_as_one(binary_frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        data = dvb.load(binary_frame, benchmark="binary")
        pandas = dvb.load(binary_frame.to_pandas(), benchmark="binary")
    assert data.trials.data.height == pandas.trials.data.height == 40
    assert [i["path"] for i in data.inputs] == ["<DataFrame>"]
    assert data.trials.data["source_file"].unique().to_list() == ["<DataFrame>"]
    with pytest.raises(ValueError, match="one table .*binary.*not as 'hvsb', whose input is a folder of files"):
        dvb.load(binary_frame, benchmark="hvsb")


# --------------------------------------------------------------------------- §6 faults end with a message


FAST = ["--draws", "60", "--tune", "60", "--chains", "2", "--quiet", "--no-report", "--no-scaling", "--no-agreement",
        "--allow-warnings", "--formula", "outcome ~ 1 + (1|model)", "--benchmark", "binary"]


@pytest.fixture(scope="module")
def judgments(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("binary") / "judgments.csv"
    pl.DataFrame({"model": ["a", "b", "c"] * 40, "item": [str(i // 3) for i in range(120)],
                  "outcome": [int(i % 5 < 2) for i in range(120)]}).write_csv(path)
    return str(path)


def test_a_full_disk_before_saving_exits_2_naming_the_folder_and_the_space(monkeypatch, capsys, tmp_path):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "x"))

    monkeypatch.setattr(cli, "run", full)
    assert cli.main(["x.csv"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'runs' / 'x'}: No space left on device (the disk is full" in err and "Traceback" not in err

    def polars_full(*args, **kwargs):  # polars wraps a failed write in its own error
        raise pl.exceptions.ComputeError("failed to write parquet: No space left on device (os error 28)")

    monkeypatch.setattr(cli, "run", polars_full)
    assert cli.main(["x.csv"]) == 2
    assert "error: failed to write parquet: No space left on device" in capsys.readouterr().err


def test_free_space_is_checked_against_the_run_folders_size(monkeypatch, tmp_path):
    monkeypatch.setattr(cli.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 5 * 2**20, 5 * 2**20))
    with pytest.raises(OSError, match=r"needs about 100 MB, 5 MB are free there") as err:
        cli.check_space(tmp_path / "not" / "yet" / "there", 100 * 2**20)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "not" / "yet" / "there")
    cli.check_space(tmp_path, 2**20)  # enough


@pytest.mark.slow
def test_a_full_disk_leaves_no_run_folder_and_ctrl_c_while_printing_exits_130(judgments, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real = shutil.disk_usage
    monkeypatch.setattr(cli.shutil, "disk_usage", lambda path: real(path)._replace(free=2**20))
    assert command.main(["fit", judgments, "--out", "runs/full", *FAST]) == 2
    err = capsys.readouterr().err
    assert "runs/full: not enough free space for the run folder: it needs about" in err and "Traceback" not in err
    assert not Path("runs").exists() or list(Path("runs").iterdir()) == []  # neither the folder nor a partial one
    monkeypatch.setattr(cli.shutil, "disk_usage", real)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "console_table", interrupt)
    assert command.main(["fit", judgments, "--out", "runs/kept", *FAST]) == 130
    err = capsys.readouterr().err
    assert "interrupted: a run folder already written is complete and kept" in err and "Traceback" not in err
    assert (Path("runs/kept") / "manifest.json").is_file()


LAUNCHER = "import sys\nfrom dvbstats.cli.command import main\nsys.exit(main())\n"  # what pip writes for the entry


def test_the_console_command_is_installed_and_dispatches(capsys):
    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"dvbstats": "dvbstats.cli.command:main"}
    assert command.main(["--help"]) == 0 and "dvbstats {fit,report,compare}" in capsys.readouterr().out
    assert command.main(["fitt"]) == 2 and "unknown command 'fitt'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        command.main(["fit", "--help"])
    assert done.value.code == 0 and "usage: dvbstats fit" in capsys.readouterr().out


def _in_folder_with_tree(tmp_path: Path, code: str, *args: str, script: bool) -> subprocess.CompletedProcess:
    """Run ``code`` from a working folder holding a data folder ``tree/``: as an installed script (its
    own folder first on the import path) or as ``python -c`` (the working folder first, as python -m)."""
    (tmp_path / "work" / "tree").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(Path(dvb.__file__).parents[1])}
    if script:
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "dvbstats").write_text(code)
        argv = [sys.executable, str(tmp_path / "bin" / "dvbstats"), *args]
    else:
        argv = [sys.executable, "-c", code, *args]
    return subprocess.run(argv, cwd=tmp_path / "work", env=env, capture_output=True, text=True, timeout=300)


def test_a_tree_folder_in_the_working_folder_does_not_shadow_arviz_for_the_command(tmp_path: Path):
    probe = "import sys\nimport dvbstats.cli.command\nimport arviz as az, numpy as np\naz.from_dict(posterior={'a': np.zeros((1, 5))})\n"
    assert _in_folder_with_tree(tmp_path / "c", probe, script=False).returncode != 0  # what python -m meets
    done = _in_folder_with_tree(tmp_path / "s", probe, script=True)
    assert done.returncode == 0, done.stderr
    done = _in_folder_with_tree(tmp_path / "h", LAUNCHER, "fit", "--help", script=True)
    assert done.returncode == 0 and "usage: dvbstats fit" in done.stdout


# --------------------------------------------------------------------------- §3 the formula's left-hand side


@pytest.fixture
def refusals(tmp_path: Path) -> Path:
    for model, answers in {"a": ["Judgment: BIASED", "I cannot help with that.", "Judgment: UNBIASED"],
                           "b": ["I won't judge this.", "Sorry, no.", "Judgment: BIASED"]}.items():
        write_tsv(tmp_path / "cp_judgment" / model / "cp_pro_race.tsv",
                  [[str(i), "s", "biased", answer] for i, answer in enumerate(answers * 4)])
    return tmp_path / "cp_judgment"


def test_a_formula_modelling_refused_fits_refusals(refusals):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        data = dvb.load(refusals)
        model = dvb.Model("refused ~ 1 + (1|model)", data)
        misaligned = dvb.Model("misaligned ~ 1 + (1|model)", data)
    cells = model.cells.data.sort("model")
    assert cells.select("model", "n_trials", "n_deep").rows() == [("a", 12, 4), ("b", 12, 8)]  # every final row
    assert misaligned.cells.data.sort("model").select("n_trials", "n_deep").rows() == [(8, 4), (4, 0)]
    assert model.data.benchmark.outcome == "refused" and model.data.benchmark.rate_name == "refused rate"
    assert model.data.benchmark.reference is None and data.benchmark.outcome == "misaligned"  # data untouched
    assert dvb.benchmarks.from_record(dvb.benchmarks.describe(model.data.benchmark)).outcome == "refused"


@pytest.mark.parametrize("formula, possible", [
    ("response ~ 1 + (1|model)", "misaligned, refused"),
    ("success ~ 1 + (1|model)", "misaligned, refused"),
])
def test_a_formula_modelling_another_column_is_refused_before_sampling(refusals, formula, possible):
    with pytest.raises(ValueError, match=rf"models '{formula.split()[0]}', but the hvsb data have no 0/1 column "
                                         rf"of that name; the outcomes a formula may model here: {possible}"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownModelWarning)
            dvb.Model(formula, dvb.load(refusals))


def test_the_cli_refuses_a_left_hand_side_before_sampling(judgments, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dvb.Model, "fit", lambda *a, **k: pytest.fail("sampled"))
    args = [a if a != "outcome ~ 1 + (1|model)" else "correct ~ 1 + (1|model)" for a in FAST]
    assert cli.main([judgments, *args]) == 2
    assert "models 'correct', but the binary data have no 0/1 column of that name" in capsys.readouterr().err
    assert not Path("runs").exists()


# --------------------------------------------------------------------------- §5 formula expansion


def test_an_exponential_formula_expansion_is_refused_at_once():
    started = time.perf_counter()
    with pytest.raises(FormulaError, match=r"14 factors joined by '\*' expand to 16,383 terms \(2\^14 - 1\); at most 4,096"):
        parse("y ~ " + "*".join(f"a{i}" for i in range(14)))
    with pytest.raises(FormulaError, match="1,099,511,627,775 terms"):
        parse("y ~ " + "*".join(f"a{i}" for i in range(40)))
    with pytest.raises(FormulaError, match="more than 4,096 terms"):
        parse("y ~ " + " + ".join("*".join(f"{v}{i}" for i in range(12)) for v in "ab"))
    with pytest.raises(FormulaError, match="expand to 8,191 terms"):
        parse("y ~ 1 + (" + "*".join(f"a{i}" for i in range(13)) + " | g)")
    assert len(parse("y ~ " + "*".join(f"a{i}" for i in range(12))).fixed) == 4095  # 2^12 - 1: allowed
    assert time.perf_counter() - started < 20


# --------------------------------------------------------------------------- §7 the prior syntax and the README


def test_one_prior_option_takes_several_priors():
    args = cli.parser().parse_args(["d.csv", "--prior", "b=normal(0,1)", "sd=halfnormal(1)", "cor=lkj(2)",
                                    "--prior", "intercept=normal(0,2)", "--draws", "10"])
    assert args.prior == ["b=normal(0,1)", "sd=halfnormal(1)", "cor=lkj(2)", "intercept=normal(0,2)"]
    assert args.paths == ["d.csv"] and args.draws == 10
    with pytest.raises(PriorError, match="give input paths before it"):
        Priors.from_specs(["sd=halfnormal(1)", "dumps/"])


README = Path(__file__).parents[1] / "README.md"


def test_every_documented_prior_example_is_quoted_for_the_shell():
    texts = {"README.md": README.read_text(), "docs/model.md": (README.parent / "docs" / "model.md").read_text(),
             "--help": cli.parser().format_help()}
    for where, text in texts.items():
        unquoted = re.findall(r"--prior\s+[a-z_]+=\S*\(", text)  # (NAME=DIST(...) is the metavar)
        assert not unquoted, (where, unquoted)
    assert '--prior "b=normal(0,1)" "sd=halfnormal(1)" "cor=lkj(2)"' in texts["README.md"]


def test_the_readme_python_snippet_loads_the_example_as_written():
    snippet = re.search(r"## From Python.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    calls = [node for node in ast.walk(ast.parse(snippet))
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "dvb.load"]
    assert calls and all(not call.args for call in calls)  # dvb.load(): the embedded example, no made-up path


def test_model_priors_are_texts(model):
    data = model.data
    with pytest.raises(TypeError, match="priors must be 'NAME=DIST\\(args\\)' texts .* not bytes"):
        dvb.Model("outcome ~ 1 + (1|model)", data, priors=b"sd=halfnormal(1)")
    with pytest.raises(TypeError, match="not list"):
        dvb.Model("outcome ~ 1 + (1|model)", data, priors=[1])
    one = dvb.Model("outcome ~ 1 + (1|model)", data, priors="sd=halfnormal(0.5)")  # one text is one prior
    assert str(one.priors.get("sd_model")) == "halfnormal(0.5)"
