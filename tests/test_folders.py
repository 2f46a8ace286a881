"""Never write or delete outside what the user named (issue 18 §2), and re-rendering faults that end with a
message (§6): run names that are one folder, folders dvbstats recognises as its own by a mark it wrote,
leftovers of killed runs, a malformed manifest, Ctrl-C while a report renders."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from dvbstats.cli import fit as fit_cli
from dvbstats.cli import report as report_cli
from dvbstats.input import folders
from dvbstats.input.folders import OutputFolderError
from dvbstats.report import render

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_run  # noqa: E402


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _set(run: Path, **fields) -> None:
    meta = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**meta, **fields}))


# --- the report folder's name comes from the manifest: one folder inside reports/ -------------


@pytest.mark.parametrize("name", ["../victim", "../../victim", "/tmp/victim-abs", "a/b", "..", ".", ".hidden",
                                  "a\\b", "x\ny", "x\x00y", " ", "v" * 300])
def test_a_tampered_run_name_writes_nothing_outside_reports(tmp_path, capsys, name):
    run = make_run(tmp_path / "runs", name="fixture")
    _set(run, run_name=name)
    before = _tree(tmp_path)
    assert report_cli.main([str(run), "--out-root", str(tmp_path / "reports"), "--engine", "pandoc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'manifest.json'}: run_name") and "one folder name" in err
    assert _tree(tmp_path) == before and not Path("/tmp/victim-abs").exists()


def test_an_empty_run_name_falls_back_to_the_run_folder_name(tmp_path):
    run = make_run(tmp_path / "runs", name="fixture")
    _set(run, run_name="")
    assert render(run, tmp_path / "reports", engine="pandoc") == tmp_path / "reports" / "fixture" / "report.html"


def test_names_given_are_checked_and_names_derived_are_made_one_folder():
    assert folders.folder_name("gpt-4o run 2") == "gpt-4o run 2"
    for bad in ("../x", "x/y", "..", ".x", "", "x\ty"):
        with pytest.raises(OutputFolderError):
            folders.folder_name(bad)
    assert folders.as_folder_name("../../etc/passwd") == "_.._etc_passwd"
    assert folders.as_folder_name("..") == "run" and folders.as_folder_name(".hidden") == "hidden"
    assert len(folders.as_folder_name("é" * 300).encode()) <= folders.MAX_NAME


def test_fit_refuses_a_name_that_is_not_one_folder_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert fit_cli.main(["--name", "../victim"]) == 2
    assert "--name '../victim' holds a path separator" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --- whose folder it is -------------------------------------------------------------------------


def test_a_folder_with_a_foreign_manifest_is_not_replaced(tmp_path):
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "main.py").write_text("print('mine')\n")
    (app / "manifest.json").write_text("{}")
    with pytest.raises(OutputFolderError, match="its manifest.json was not written by dvbstats"):
        folders.check(app, marker="manifest.json", overwrite=False)
    with pytest.raises(OutputFolderError):
        with folders.replacing(app, marker="manifest.json") as work:
            (work / "manifest.json").write_text("{}")
    assert (app / "src" / "main.py").is_file()
    folders.check(app, marker="manifest.json", overwrite=True)  # the user may say so


def test_a_foreign_report_folder_is_refused_and_ours_is_replaced(tmp_path, capsys):
    run = make_run(tmp_path / "runs", name="fixture")
    foreign = tmp_path / "reports" / "fixture"
    foreign.mkdir(parents=True)
    (foreign / "report.qmd").write_text("---\ntitle: my own notes\n---\n")
    (foreign / "notes.md").write_text("keep")
    assert report_cli.main([str(run), "--out-root", str(tmp_path / "reports"), "--engine", "pandoc"]) == 2
    assert "report folder" in capsys.readouterr().err and (foreign / "notes.md").read_text() == "keep"
    (foreign / "notes.md").unlink()
    (foreign / "report.qmd").unlink()
    html = render(run, tmp_path / "reports", engine="pandoc")
    mark = json.loads((html.parent / folders.MARK).read_text())
    assert mark["written_by"] == "dvbstats" and mark["marker"] == "report.qmd" and len(mark["id"]) == 32
    assert render(run, tmp_path / "reports", engine="pandoc") == html  # ours: replaced


def test_folders_written_before_the_mark_are_still_recognised(tmp_path):
    run = make_run(tmp_path / "runs", name="fixture")  # a manifest recording dvbstats' version, no mark
    assert not (run / folders.MARK).exists() and folders.ours(run, "manifest.json")
    report = tmp_path / "old-report"
    report.mkdir()
    (report / "report.qmd").write_text('---\ntitle: "DVB: x"\nsubtitle: "dvbstats report"\ndate: ""\n---\n')
    assert folders.ours(report, "report.qmd")
    (report / folders.MARK).write_text(json.dumps({"written_by": "dvbstats", "marker": "manifest.json", "id": "0"}))
    assert not folders.ours(report, "report.qmd")  # a mark for another kind of folder


# --- leftovers of killed runs ----------------------------------------------------------------------


def _leftover(parent: Path, name: str, kind: str, **mark) -> Path:
    path = parent / f".{name}.{kind}-{os.urandom(4).hex()}"
    (path / "half").mkdir(parents=True)
    if mark:
        (path / folders.MARK).write_text(json.dumps({"written_by": "dvbstats", "marker": "report.qmd",
                                                     "id": "f" * 32, **mark}))
    return path


def test_leftovers_of_killed_runs_are_removed_and_said_others_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid, host = int(dead.stdout), socket.gethostname()
    target = tmp_path / "x"
    stale = [_leftover(tmp_path, "x", "partial", pid=pid, host=host), _leftover(tmp_path, "x", "old", pid=pid, host=host)]
    kept = [_leftover(tmp_path, "x", "partial", pid=os.getpid(), host=host),  # a run still going
            _leftover(tmp_path, "x", "partial", pid=pid, host="another-host"),  # not ours to judge
            _leftover(tmp_path, "x", "partial"),  # no mark: not ours
            _leftover(tmp_path, "y", "partial", pid=pid, host=host)]  # another target
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with folders.replacing(target, marker="report.qmd") as work:
            (work / "report.qmd").write_text("x")
    said = [str(w.message) for w in caught if issubclass(w.category, folders.LeftoverWarning)]
    assert len(said) == 2 and all("interrupted dvbstats run" in s for s in said)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (target / "report.qmd").is_file()


def test_the_report_command_says_which_leftovers_it_removed(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run = make_run(tmp_path / "runs", name="fixture")
    (tmp_path / "reports").mkdir()
    stale = _leftover(tmp_path / "reports", "fixture", "partial", pid=int(dead.stdout), host=socket.gethostname())
    assert report_cli.main([str(run), "--out-root", str(tmp_path / "reports"), "--engine", "pandoc"]) == 0
    assert f"note: removed {stale}" in capsys.readouterr().err and not stale.exists()


# --- faults end with a message ---------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "said"), [
    ("hdi_prob", "x", "hdi_prob must be a number between 0 and 1, not 'x'"),
    ("hdi_prob", 1.5, "hdi_prob must be a number between 0 and 1"),
    ("diagnostics", {"ok": "yes"}, "diagnostics.ok must be true or false"),
    ("priors", ["b"], "priors must be an object"),
    ("inputs", [{"path": 3}], "inputs[0].path must be text"),
    ("versions", {"numpy": 2}, "versions.numpy must be text"),
    ("formula", None, "formula must be text"),
    ("benchmark", {"name": "binary", "reference": "half"}, "benchmark.reference must be"),
])
def test_a_malformed_manifest_exits_2_naming_the_file_and_field(tmp_path, capsys, field, value, said):
    run = make_run(tmp_path / "runs", name="fixture")
    _set(run, **{field: value})
    assert report_cli.main([str(run), "--out-root", str(tmp_path / "reports"), "--engine", "pandoc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'manifest.json'}: ") and said in err and "Traceback" not in err
    assert not (tmp_path / "reports").exists() or list((tmp_path / "reports").iterdir()) == []


def test_ctrl_c_while_a_report_renders_keeps_the_earlier_report(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "runs", name="fixture")
    html = render(run, tmp_path / "reports", engine="pandoc")
    before = html.read_bytes()

    def interrupted(qmd):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("dvbstats.report.render"), "render_pandoc", interrupted)
    assert report_cli.main([str(run), "--out-root", str(tmp_path / "reports"), "--engine", "pandoc"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert html.read_bytes() == before and [p.name for p in (tmp_path / "reports").iterdir()] == ["fixture"]


def test_ctrl_c_while_the_fit_renders_its_report_says_the_run_folder_was_kept(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise fit_cli.ReportInterrupted(Path("runs/kept"))

    monkeypatch.setattr(fit_cli, "run", interrupted)
    assert fit_cli.main([]) == 130
    err = capsys.readouterr().err
    assert "the run folder runs/kept is complete and was kept" in err and "python -m dvbstats.report runs/kept" in err


def test_ctrl_c_in_the_report_step_of_a_fit_keeps_the_complete_run(tmp_path, monkeypatch, capsys):
    from test_report import _small_simulation

    from dvbstats import simulate

    sim = _small_simulation(simulate, tmp_path / "dumps")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_cli.api, "report", interrupted)
    monkeypatch.chdir(tmp_path)
    assert fit_cli.main([*map(str, sim.paths), "--out", "runs/kept", "--formula", "chose_deep ~ 1 + (1|model)",
                         "--draws", "50", "--tune", "50", "--chains", "1", "--quiet", "--report", "--no-scaling",
                         "--no-agreement"]) == 130
    err = capsys.readouterr().err
    assert "the run folder runs/kept is complete and was kept" in err
    assert folders.ours(Path("runs/kept"), "manifest.json") and not Path("reports").exists()
