"""Generic code reads a benchmark's definition, never its name: a benchmark defined here alone, with a folder tree
of its own, an embedded example (DVB's too), its own model table, or caller-named columns and words
(``Benchmark.tree``, ``simulated``, ``models``, ``columns``, ``configure``), is detected, read, rebuilt from a
manifest and planned in its words without any other file naming it; its own run-folder tables come from its
definition's analyses (``extra_tables``), and the error for a table none recognises names the registered
definitions (``input_files``). The shipped definitions use the same fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

import dvbstats as dvb
from dvbstats.benchmarks import BENCHMARKS, binary_benchmark, describe, detect, from_record, inputs, results
from dvbstats.benchmarks.common import binary_judgments
from dvbstats.benchmarks.definition import Benchmark, Example, Tree, register_example, simulated
from dvbstats.benchmarks.hvsb import HVSB, judgment_files, model_table
from dvbstats.input.files import IngestError, Source
from dvbstats.input.manifest import sha256
from dvbstats.input.registry import ModelTable
from dvbstats.simulate.example import is_example, write_example
from dvbstats.simulate.hvsb import example_models, is_hvsb_example, write_hvsb_example
from tests.test_ingest import parsed, write_dump

MARK = "BALLOT_EXAMPLE"


def _in_ballots(path: Path) -> bool:
    """A ballot tree: ``<model>_ballots/<anything>.votes``, told by the path alone."""
    absolute = path.absolute()
    return (path.suffix == ".votes" or any(p.endswith("_ballots") for p in absolute.parts)
            or path.is_dir() and any(c.name.endswith("_ballots") for c in path.iterdir()))


def _ballot_files(paths) -> list[str]:
    return [str(f) for p in map(Path, paths) for f in (sorted(p.rglob("*.votes")) if p.is_dir() else [p])]


def read_ballots(paths, *, models=None, on_conflict="error"):
    """One ``item,vote`` line per trial; the model is the folder's name without ``_ballots``."""
    frames, found = [], []
    for name in _ballot_files(paths if isinstance(paths, (list, tuple)) else [paths]):
        rows = pl.read_csv(name, has_header=False, new_columns=["item", "voted"], schema_overrides={"item": pl.String})
        frames.append(rows.with_columns(
            pl.lit(name).alias("source_file"), pl.int_range(1, rows.height + 1, dtype=pl.Int64).alias("source_row"),
            pl.lit(Path(name).parent.name.removesuffix("_ballots")).alias("model_id"),
            pl.col("voted").cast(pl.Int8), pl.lit("used").alias("status"), pl.lit(None, pl.String).alias("reason")))
        found.append(Source(name, sha256(name), "csv", rows.height))
    trials = pl.concat(frames).select("source_file", "source_row", "model_id", "item", "voted", "status", "reason")
    return binary_judgments(trials, (), "voted", found, models, on_conflict)


def _table(names: dict[str, str]) -> ModelTable:
    return ModelTable(pl.DataFrame({
        "model_id": list(names), "short_name": list(names.values()), "developer": ["x"] * len(names),
        "family": ["f"] * len(names), "size_rank_in_family": [None] * len(names), "params_b": [None] * len(names)}))


def write_ballots(root: Path, models=("m1", "m2")) -> Path:
    for model in models:
        folder = root / f"{model}_ballots"
        folder.mkdir(parents=True)
        (folder / "answers.votes").write_text("q1,1\nq2,0\nq3,1\n")
    return root


@pytest.fixture
def ballots(tmp_path, monkeypatch) -> Benchmark:
    """A benchmark told by its folder tree, with its own model table and an embedded example; registered for the
    test only."""
    example_root = tmp_path / "example"

    def write() -> Path:
        if not example_root.exists():
            write_ballots(example_root, ("ex1",))
            (example_root / MARK).write_text("synthetic")
        return example_root

    def recognises(paths) -> bool:
        return any((folder / MARK).is_file() for p in map(Path, paths) for folder in (p, *p.absolute().parents))

    b = Benchmark(
        name="ballots", title="Ballots", read=read_ballots, outcome="voted", rate_name="yes share",
        rate_long="yes share: P(voted = 1)", reference=None, reference_label="",
        default_formula="voted ~ 1 + (1|model) + (1|item)", design=("model", "item"), item="item",
        one_table=False, tree=Tree(_in_ballots, _ballot_files),
        models=lambda: _table({"m1": "model-one", "m2": "model-two"}),
        simulated=Example(write, recognises, lambda: _table({"ex1": "example-one"})),
        example="the ballots example",
    )
    monkeypatch.setitem(BENCHMARKS, "ballots", b)
    return b


def tallies(*, outcome="outcome", rate_name="rate", reference=None, reference_label="", direction=None, design=()):
    """A benchmark of tables whose columns and words the caller gives (like binary judgments, under its own name)."""
    b = binary_benchmark(outcome=outcome, rate_name=rate_name, reference=reference, reference_label=reference_label,
                         direction=direction, design=design)
    return dataclasses.replace(b, name="tallies", title="tallies", recognises=None, logs=False, configure=tallies)


@pytest.fixture
def tally(monkeypatch) -> Benchmark:
    b = tallies()
    monkeypatch.setitem(BENCHMARKS, "tallies", b)
    return b


def test_a_benchmark_told_by_its_folder_tree_is_detected_and_read_with_its_model_table(ballots, tmp_path):
    root = write_ballots(tmp_path / "votes")
    file = root / "m1_ballots" / "answers.votes"
    assert detect(root) == detect(root / "m2_ballots") == detect(file) == "ballots"
    assert inputs.judged(str(root)) and inputs.judged_as([str(root)]) == "ballots"
    data = dvb.load(root)
    assert data.benchmark is ballots and not data.synthetic and data.trials.benchmark == "ballots"
    assert sorted(data.trials.data["model"].unique()) == ["model-one", "model-two"]  # its table, not DVB's
    dump = tmp_path / "votes" / "dump.csv"  # a table beside the tree is classified too
    pl.DataFrame({"model": ["m"], "item": ["q"], "outcome": [1]}).write_csv(dump)
    with pytest.raises(IngestError, match="a binary input mixed with a ballots input"):
        detect(root)


def test_a_benchmarks_embedded_example_is_read_with_its_models_and_labelled_synthetic(ballots):
    data = dvb.load(None, benchmark="ballots")
    assert data.benchmark is ballots and data.synthetic
    assert data.trials.data["model"].unique().to_list() == ["example-one"]
    again = dvb.load(ballots.simulated.write() / "ex1_ballots")  # the example given as a path: still synthetic
    assert again.synthetic and again.trials.data["model"].unique().to_list() == ["example-one"]


def test_dvbs_embedded_example_is_the_one_its_definition_names(tmp_path, monkeypatch):
    """``dvb.load()`` reads the example DVB's definition names (``simulated``, like HVSB's), and labels it, or any
    of its files given as a path, synthetic (the loader used to write and recognise DVB's own example by name)."""
    folder = tmp_path / "tiny_example"

    def write() -> tuple[Path, ...]:  # its files, not its folder (which could hold more than input)
        folder.mkdir(exist_ok=True)
        return (write_dump(folder / "dump.csv", [parsed("p1", "Option A"), parsed("p2", "Option B")]),)

    tiny = Example(write, lambda paths: any(Path(p).parent == folder for p in paths), ModelTable.default)
    monkeypatch.setitem(BENCHMARKS, "dvb", dataclasses.replace(BENCHMARKS["dvb"], simulated=tiny))
    data = dvb.load()
    assert data.synthetic and data.trials.data.height == 2 and data.inputs[0]["path"] == str(folder / "dump.csv")
    assert dvb.load(folder / "dump.csv").synthetic and dvb.load(None, benchmark="dvb").trials.data.height == 2
    assert not dvb.load(write_dump(tmp_path / "real.csv", [parsed("p1", "Option A")])).synthetic


def test_a_benchmark_without_an_example_says_so(tally):
    with pytest.raises(ValueError, match="the tallies benchmark has no embedded example"):
        inputs.read(None, benchmark="tallies")


@pytest.mark.filterwarnings("ignore::dvbstats.input.registry.UnknownModelWarning")
def test_a_benchmark_the_caller_configures_reads_any_table_and_is_rebuilt_in_its_words(tally, tmp_path):
    path = tmp_path / "evals.csv"
    pl.DataFrame({"llm": ["a", "a", "b", "b"], "question": ["q1", "q2", "q1", "q2"], "correct": [1, 0, 1, 1],
                  "condition": ["x", "y", "x", "y"]}).write_csv(path)
    with pytest.raises(IngestError, match="not a DVB harness dump"):
        detect(path)
    assert detect(path, "tallies") == "tallies"  # its columns are named by the caller: any table, when asked
    data = dvb.load(path, benchmark="tallies", columns={"model_column": "llm", "item_column": "question",
                                                         "outcome": "correct", "reference": 0.25})
    b = data.benchmark
    assert (b.name, b.outcome, b.reference, b.design) == ("tallies", "correct", 0.25, ("model", "item", "condition"))
    assert b.default_formula.startswith("correct ~ 1 + condition")
    rebuilt = from_record(describe(b))
    assert (rebuilt.name, rebuilt.outcome, rebuilt.reference, rebuilt.design) == (
        "tallies", "correct", 0.25, ("model", "item", "condition"))
    plan = dvb.design(rates={"A": 0.5, "B": 0.4}, item_sd=0.5, contrasts=["A-B"], items=[10], sims=10,
                      benchmark="tallies", rate_name="accuracy")
    assert (plan.recommendation["benchmark"], plan.recommendation["rate"]) == ("tallies", "accuracy")


@pytest.mark.filterwarnings("ignore::dvbstats.input.registry.UnknownModelWarning")
def test_a_benchmarks_own_tables_are_those_its_definition_names_and_no_others(tmp_path):
    """Every analysis ``extra_tables`` names runs, in order, on the judgments of a fit with a condition; judgments
    that merely look like HVSB's (a ``refused`` column, untargeted and targeted prompts) get none of HVSB's first
    look or refusal counts, which its definition alone names (``extra_tables``, ``refusals``; generic code used to
    test for the column and the levels)."""
    models, items, conditions = ["m1", "m2"], [f"q{i}" for i in range(12)], ["untargeted", "targeted"]
    rows = [(m, q, c, (i + j + k) % 2, (i * j + k) % 3 == 0) for i, m in enumerate(models)
            for j, q in enumerate(items) for k, c in enumerate(conditions)]
    path = tmp_path / "judged.csv"
    pl.DataFrame(rows, schema=["model", "item", "condition", "outcome", "refused"], orient="row").with_columns(
        pl.col("refused").cast(pl.Int8)).write_csv(path)
    data = dvb.load(path, benchmark="binary")
    assert "refused" in data.trials.data.columns
    fit = dvb.Model("outcome ~ 1 + condition + (1|model)", data).fit(draws=50, tune=100, chains=1, seed=1,
                                                                        progress=False)
    plain = results.tables(data.benchmark, fit, data.trials, 0.9)
    assert list(plain) == ["quality_by_condition", "condition_rates", "condition_contrasts"]
    assert "n_refused" not in plain["quality_by_condition"].columns  # refusals only where a definition names them

    def per_model(b, fit, trials, hdi_prob):
        return {"rows_per_model": trials.data.group_by("model").len().sort("model")}

    def asked(b, fit, trials, hdi_prob):
        return {"asked": pl.DataFrame({"benchmark": [b.name], "hdi": [hdi_prob]})}

    own = dataclasses.replace(data.benchmark, extra_tables=(per_model, asked))
    tables = results.tables(own, fit, data.trials, 0.9)
    assert list(tables) == [*plain, "rows_per_model", "asked"]
    assert tables["rows_per_model"]["len"].to_list() == [24, 24] and tables["asked"].row(0) == ("binary", 0.9)


def test_the_error_for_a_table_no_benchmark_recognises_names_the_registered_ones(ballots, tally, monkeypatch,
                                                                                 tmp_path):
    """What an unrecognised table is not, and how a table with caller-named columns is read, come from the
    registered definitions (``input_files``, ``columns``), not a list written once for DVB, HVSB and binary."""
    monkeypatch.setitem(BENCHMARKS, "ballots", dataclasses.replace(ballots, input_files="a ballot file"))
    path = tmp_path / "other.csv"
    pl.DataFrame({"x": [1]}).write_csv(path)
    with pytest.raises(IngestError) as err:
        detect(path)
    assert str(err.value) == (
        f"{path}: not a DVB harness dump or cell table nor an HVSB judgment file nor a ballot file; for a table of "
        "binary judgments pass benchmark='binary' (--benchmark binary) and name its model, item and outcome "
        "columns; for a table of tallies pass benchmark='tallies' (--benchmark tallies) and name its model, item "
        "and outcome columns")


def test_a_fixed_benchmark_refuses_the_callers_words(ballots, tmp_path):
    root = write_ballots(tmp_path / "votes")
    with pytest.raises(ValueError, match="ballots defines its own"):
        inputs.read([str(root)], reference=0.5)


def test_the_shipped_definitions_use_the_same_fields():
    """HVSB is told by its tree and names its example, which the reading layer registers (the simulator sits above
    the definitions); binary judgments read logs, name their columns and are configured; DVB has none of these."""
    hvsb, binary, dvb_ = BENCHMARKS["hvsb"], BENCHMARKS["binary"], BENCHMARKS["dvb"]
    assert hvsb.tree.files is judgment_files and hvsb.models is model_table and hvsb.simulated == "hvsb example"
    assert (hvsb.refusals, binary.refusals, dvb_.refusals) == ("refused", None, None)
    assert simulated(hvsb) == Example(write_hvsb_example, is_hvsb_example, example_models)
    assert inputs.default_models(HVSB, synthetic=True).data.equals(example_models().data)
    assert inputs.default_models(HVSB, synthetic=False).data.equals(model_table().data)
    assert inputs.default_models(binary, synthetic=False).data.equals(ModelTable.default().data)
    assert (binary.logs, binary.columns, binary.configure) == (True, True, binary_benchmark)
    assert (hvsb.logs, hvsb.columns, hvsb.configure, dvb_.tree, dvb_.simulated) == (False, False, None, None,
                                                                                      "dvb example")
    assert simulated(dvb_) == Example(write_example, is_example, ModelTable.default)
    with pytest.raises(ValueError, match="an example named 'hvsb example' is already registered"):
        register_example("hvsb example", Example(write_hvsb_example, is_hvsb_example, model_table))
    with pytest.raises(LookupError, match="no example is registered as 'nothing'"):
        simulated(dataclasses.replace(hvsb, simulated="nothing"))
