"""Benchmarks as a concept: the definitions, detection from the input, mixing errors, binary judgments."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest

from dvbstats.benchmarks import BENCHMARKS, binary_benchmark, describe, detect, from_record, load, read_binary
from dvbstats.benchmarks import consistency, first_look, inputs, scenarios
from dvbstats.benchmarks.definition import analysis, register_analysis
from dvbstats.benchmarks.dvb import DVB
from dvbstats.benchmarks.hvsb import HVSB
from dvbstats.input import ingest
from dvbstats.input.ingest import IngestError
from dvbstats.input.registry import UnknownModelWarning
from dvbstats.model.plan import PARAMETRIZATIONS
from dvbstats.model.formula import DEFAULT_FORMULA, parse
from dvbstats.results import agreement
from tests.test_hvsb import row, write_tsv
from tests.test_ingest import parsed, write_dump


@pytest.fixture(autouse=True)
def _quiet_unknown_models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        yield


def test_dvb_definition_describes_todays_behaviour():
    dvb = BENCHMARKS["dvb"]
    assert dvb.read is ingest.load and dvb.outcome == "chose_deep" and dvb.default_formula == DEFAULT_FORMULA
    assert dvb.reference == 0.5 and dvb.rate_name == "DVGR" and dvb.item == "prompt_id"
    assert set(parse(dvb.default_formula).variables) <= set(dvb.design)


def test_shipped_definitions_name_their_analyses_which_the_implementing_modules_register():
    """A definition names its own analyses (they sit in higher layers, which a definition does not import); the
    modules that implement them register them under those names, and :func:`analysis` gives the function."""
    assert (BENCHMARKS["dvb"].agreement, BENCHMARKS["hvsb"].agreement, BENCHMARKS["hvsb"].extra_tables) == (
        "dvb model agreement", "hvsb judgment consistency", ("hvsb scenario tables", "hvsb first look"))
    assert analysis(BENCHMARKS["dvb"].agreement) is agreement.dvb_agreement
    assert analysis(BENCHMARKS["hvsb"].agreement) is consistency.judgment_consistency
    assert [analysis(a) for a in BENCHMARKS["hvsb"].extra_tables] == [scenarios.tables, first_look.tables]
    assert analysis(len) is len  # a definition may give the function itself
    with pytest.raises(LookupError, match="no analysis is registered as 'nothing'"):
        analysis("nothing")
    with pytest.raises(ValueError, match="already registered"):
        register_analysis("dvb model agreement")(len)
    assert register_analysis("dvb model agreement")(agreement.dvb_agreement) is agreement.dvb_agreement

@pytest.mark.parametrize("name", ["hvsb", "binary"])
def test_every_default_formula_parses_over_the_design(name):
    benchmark = BENCHMARKS[name]
    for text in [benchmark.default_formula, *benchmark.forms]:  # and every formula with a measured form
        formula = parse(text)
        assert formula.response == benchmark.outcome and set(formula.variables) <= set(benchmark.design)
    assert set(benchmark.forms.values()) <= set(PARAMETRIZATIONS) - {"auto"}


def test_hvsb_names_its_rate_per_condition_and_never_says_dvgr():
    assert HVSB.rate_label("none") == "misalignment rate (MR)"
    assert HVSB.rate_label("targeted").startswith("attack success rate (ASR")
    assert HVSB.rate_label() == "misalignment rate"
    words = [HVSB.title, HVSB.rate_name, HVSB.rate_long, HVSB.reference_label, *HVSB.wording.values(),
             *HVSB.rate_by_condition.values()]
    assert not any("DVGR" in w or "deep" in w.lower() for w in words)


def test_each_definition_states_direction_reference_and_primary_estimands():
    assert (DVB.direction, DVB.reference, DVB.best) == ("higher", 0.5, "highest DVGR")
    assert (HVSB.direction, HVSB.primary_condition) == ("lower", "none")
    assert HVSB.best == "lowest misalignment rate (MR)" and "never one rate pooled" in HVSB.primary
    assert BENCHMARKS["binary"].reference is None and BENCHMARKS["binary"].direction is None
    for b in BENCHMARKS.values():
        record = describe(b)
        assert from_record(record).best == b.best and record["direction"] == b.direction and b.primary


def test_a_binary_benchmark_takes_the_users_names():
    asr = binary_benchmark(outcome="jailbroken", rate_name="attack success rate", design=("template",))
    assert asr.default_formula == "jailbroken ~ 1 + (1|model) + (1|item)"  # a Rasch model: no condition column
    assert asr.rate_label("anything") == "attack success rate" and asr.reference is None
    assert asr.direction is None and asr.best == "highest attack success rate"
    shots = binary_benchmark(design=("condition",), direction="higher", reference=0.25)
    assert shots.default_formula == "outcome ~ 1 + condition + (1 + condition|model) + (1|item)"
    assert shots.reference == 0.25 and "0.25" in shots.reference_label and shots.best == "highest rate"
    with pytest.raises(ValueError, match="direction"):
        binary_benchmark(direction="up")
    with pytest.raises(ValueError, match="reference"):
        binary_benchmark(reference=1.5)
    with pytest.raises(ValueError, match="must model 'outcome'"):
        type(asr)(**{**asr.__dict__, "outcome": "outcome", "wording": {}, "rate_by_condition": {}})


# --------------------------------------------------------------------------- detection


@pytest.fixture
def hvsb_tree(tmp_path: Path) -> Path:
    write_tsv(tmp_path / "hv" / "bbq_judgment" / "org" / "m-1" / "targeted" / "Age_neg_stereotype.tsv",
              [row(0, "biased", "Judgment: BIASED")])
    return tmp_path / "hv"


@pytest.fixture
def dvb_dump(tmp_path: Path) -> Path:
    (tmp_path / "dvb").mkdir()
    return write_dump(tmp_path / "dvb" / "dump.csv", [parsed("p1", "Option A"), parsed("p2", "Option B")])


def binary_table(path: Path, columns=("model", "item", "outcome"), fmt: str = "csv") -> Path:
    model, item, outcome = columns
    df = pl.DataFrame({
        model: ["m1", "m1", "m2", "m2", "m1"],
        item: ["q1", "q2", "q1", "q2", "q1"],
        "condition": ["a", "a", "a", "a", "b"],
        outcome: ["1", "0", "true", "", "0"],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    {"csv": df.write_csv, "parquet": df.write_parquet, "jsonl": df.write_ndjson}[fmt](path)
    return path


def test_detects_each_benchmark(hvsb_tree: Path, dvb_dump: Path, tmp_path: Path):
    assert detect(hvsb_tree) == "hvsb"
    assert detect(hvsb_tree / "bbq_judgment") == "hvsb"
    assert detect(hvsb_tree / "bbq_judgment" / "org") == "hvsb"  # a model folder, slash in the model name
    assert detect(next(hvsb_tree.rglob("*.tsv"))) == "hvsb"
    assert detect(dvb_dump) == "dvb" and detect(dvb_dump.parent) == "dvb"
    cells = tmp_path / "cells.csv"
    pl.DataFrame({"model": ["m"], "value": ["v"], "n_trials": [4], "n_deep": [2]}).write_csv(cells)
    assert detect(cells) == "dvb"
    assert detect(binary_table(tmp_path / "b" / "judgments.csv")) == "binary"


def test_an_unrecognised_table_is_binary_only_when_asked(tmp_path: Path):
    path = binary_table(tmp_path / "evals.csv", columns=("llm", "question", "correct"))
    with pytest.raises(IngestError, match="not a DVB harness dump.*pass benchmark='binary'") as err:
        detect(path)
    assert str(err.value).startswith(str(path))
    assert detect(path, "binary") == "binary"


def test_mixing_two_benchmarks_is_an_error_naming_both_files(hvsb_tree: Path, dvb_dump: Path, tmp_path: Path):
    with pytest.raises(IngestError, match="a dvb input mixed with a hvsb input") as err:
        detect([hvsb_tree, dvb_dump])
    assert str(err.value).startswith(f"{dvb_dump}: ") and str(next(hvsb_tree.rglob("*.tsv"))) in str(err.value)
    both = binary_table(tmp_path / "dvb" / "judgments.csv")  # beside the dump, in the same folder
    with pytest.raises(IngestError, match="mixed with") as err:
        detect(dvb_dump.parent)
    assert str(both) in str(err.value) and str(dvb_dump) in str(err.value)
    beside = write_dump(hvsb_tree / "dump.csv", [parsed("p1", "Option A")])  # a dump beside the tree
    with pytest.raises(IngestError, match="a dvb input mixed with a hvsb input") as err:
        detect(hvsb_tree)
    assert str(err.value).startswith(str(beside))
    beside.unlink()
    with pytest.raises(IngestError, match="a hvsb input, but benchmark='dvb' was asked for"):
        detect(hvsb_tree, "dvb")
    with pytest.raises(ValueError, match="benchmark must be one of dvb, hvsb, binary"):
        detect(hvsb_tree, "mmlu")


def test_load_reads_with_the_detected_benchmark(hvsb_tree: Path, dvb_dump: Path):
    benchmark, table = load(hvsb_tree)
    assert benchmark.name == "hvsb" and table.data["model_id"].to_list() == ["org/m-1"]
    benchmark, trials = load(dvb_dump)
    assert benchmark.name == "dvb" and isinstance(trials, ingest.TrialTable) and trials.data.height == 2


# --------------------------------------------------------------------------- binary judgments


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_binary_reader_with_renamed_columns(tmp_path: Path, fmt: str):
    path = binary_table(tmp_path / f"evals.{fmt}", columns=("llm", "question", "correct"), fmt=fmt)
    table = read_binary(path, model="llm", item="question", outcome="correct")
    data = table.data
    assert data.columns == ["source_file", "source_row", "model_id", "model", "item", "condition", "correct",
                            "status", "reason"]
    assert data["correct"].to_list() == [1, 0, 1, None, 0] and data["correct"].dtype == pl.Int8
    assert data["status"].to_list() == ["used", "used", "used", "unparsed", "used"]
    assert data["reason"][3] == "empty correct" and table.reconciliation.height == 0
    only = read_binary(path, model="llm", item="question", outcome="correct", design=[], on_conflict="first")
    assert "condition" not in only.data.columns
    # Without the condition in the design, m1's two answers to q1 are copies that conflict.
    with pytest.raises(IngestError, match="conflicting parsed answers"):
        read_binary(path, model="llm", item="question", outcome="correct", design=[], on_conflict="error")
    assert read_binary(path, model="llm", item="question", outcome="correct", design=[],
                       on_conflict="exclude").data["status"].to_list()[::4] == ["conflict", "conflict"]


def test_binary_reader_reconciles_copies_and_names_bad_rows(tmp_path: Path):
    path = tmp_path / "j.csv"
    path.write_text("model,item,outcome,run\nm,q1,1,r1\nm,q1,1,r1\nm,q2,,r1\nm,q2,0,r1\n")
    table = read_binary(path)
    assert table.data["status"].to_list() == ["used", "superseded", "superseded", "used"]
    assert table.data["run"].to_list() == ["r1"] * 4
    assert table.reconciliation.select("item", "run", "action").rows() == [
        ("q1", "r1", "identical"), ("q2", "r1", "parsed_supersedes_failure")]
    path.write_text("model,item,outcome\nm,q1,1\nm,q2,yes\n")
    with pytest.raises(IngestError, match=r"j.csv: row 2: outcome must be 0/1/true/false or empty, got 'yes'"):
        read_binary(path)
    path.write_text("model,question,outcome\nm,q1,1\n")
    with pytest.raises(IngestError, match=r"j.csv: missing binary-judgment column\(s\) 'item'"):
        read_binary(path)
    path.write_text("model,item,outcome,status\nm,q1,1,x\n")
    with pytest.raises(IngestError, match=r"column name\(s\) \['status'\] are reserved"):
        read_binary(path)


def test_key_values_that_would_read_alike_are_refused(tmp_path: Path):
    path = tmp_path / "j.csv"
    path.write_text("model,item,outcome,run\nm,a | b,1,c\nm,a,1,b | c\n")
    with pytest.raises(IngestError, match=r"j.csv: row 1: the values of item, run \('a \| b', 'c'\) contain"):
        read_binary(path)


def test_the_judgment_reader_refuses_a_benchmark_whose_input_is_not_judgments(dvb_dump: Path):
    """``Benchmark.judgments`` says which reader takes a benchmark's input: DVB's dumps go to ingest."""
    assert not BENCHMARKS["dvb"].judgments and BENCHMARKS["hvsb"].judgments and BENCHMARKS["binary"].judgments
    with pytest.raises(ValueError, match="a dvb input, not judgments; read it with dvbstats.load"):
        inputs.read([str(dvb_dump)], benchmark="dvb")
