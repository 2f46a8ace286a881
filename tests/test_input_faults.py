"""Issue 18 §4, §6 (input faults), §7: no silent loss in the readers, faults and bad arguments end
with a message naming the file, the row or the argument, never a traceback or a hang."""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import polars as pl
import pytest

from dvbstats.benchmarks.binary import read_binary
from dvbstats.benchmarks.hvsb import judgment_files, read_judgments
from dvbstats.input.ingest import IngestError, IngestWarning, read_dumps
from dvbstats.input.registry import UnknownModelWarning

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
