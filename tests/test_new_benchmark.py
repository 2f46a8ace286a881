"""Adding a benchmark is one module plus one registry line: this module alone defines a toy benchmark (one
:class:`Benchmark` definition, one :func:`dvbstats.benchmarks.register` call, and a report section of its own
registered with :func:`dvbstats.report.sections.register`) and runs it end to end: load -> fit -> Analysis ->
save -> report (the ``.qmd``), in its own words and direction, with no reference line. No other file names it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.special import expit

import dvbstats as dvb
from dvbstats import benchmarks
from dvbstats.benchmarks.binary import read_binary
from dvbstats.benchmarks.definition import Benchmark
from dvbstats.input.files import InputFile, columns
from dvbstats.input.runfolder import RunFolder
from dvbstats.report import sections
from dvbstats.report.build import report_markdown
from dvbstats.report.markdown import section

MODELS = ("alpha-1b", "alpha-8b", "beta-3b", "beta-70b")
ABILITY = (-1.0, 0.2, -0.4, 1.2)  # log-odds of solving an average puzzle


def read_puzzles(paths, *, models=None, on_conflict="error"):
    """The toy benchmark's reader: puzzle logs with the columns ``llm``, ``puzzle``, ``solved``."""
    return read_binary(paths, model="llm", item="puzzle", outcome="solved", design=(), models=models,
                       on_conflict=on_conflict)


def is_puzzle_log(file: InputFile) -> bool:
    return {"llm", "puzzle", "solved"} <= set(columns(file))


@sections.register("puzzle_note")
def puzzle_note(run, models) -> str:
    """The toy benchmark's own report section: which model solved most, in its words."""
    best = models.sort_values("dvgr_mean").iloc[-1]
    return section("About the puzzles", "puzzle-note", f"The most puzzles were solved by {best['model']}.")


PUZZLES = benchmarks.register(Benchmark(
    name="puzzles",
    title="Puzzle benchmark",
    read=read_puzzles,
    outcome="solved",
    rate_name="solve rate",
    rate_long="solve rate: P(the puzzle is solved)",
    reference=None,
    reference_label="",
    default_formula="solved ~ 1 + (1|model) + (1|item)",
    design=("model", "item"),
    item="item",
    direction="higher",
    primary="the solve rate per model",
    wording={"outcome_phrase": "solved the puzzle", "headline": "posterior solve rate per model",
             "below_reference": "", "reference_short": ""},
    report=("headline", "models", "forest", "puzzle_note", "contrasts", "diagnostics", "quality"),
    recognises=is_puzzle_log,
))


@pytest.fixture(scope="module")
def puzzle_log(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    difficulty = rng.normal(0, 0.8, 80)
    rows = [(m, f"p{j:03d}", int(rng.random() < expit(a - difficulty[j])))
            for m, a in zip(MODELS, ABILITY) for j in range(80)]
    path = tmp_path_factory.mktemp("puzzles") / "log.csv"
    pl.DataFrame(rows, schema=["llm", "puzzle", "solved"], orient="row").write_csv(path)
    return path


def test_a_registered_benchmark_is_detected_and_refuses_a_second_definition_under_its_name(puzzle_log):
    assert benchmarks.BENCHMARKS["puzzles"] is PUZZLES
    assert benchmarks.register(PUZZLES) is PUZZLES  # the same definition again: nothing changes
    assert benchmarks.detect([str(puzzle_log)]) == "puzzles"
    with pytest.raises(ValueError, match="already registered"):
        benchmarks.register(Benchmark(**{**{f: getattr(PUZZLES, f) for f in PUZZLES.__dataclass_fields__},
                                         "title": "another"}))


def test_a_registered_benchmark_reads_a_dataframe_as_the_same_table_in_a_file(puzzle_log):
    """Its definition says what its input is (``judgments``, ``one_table``: the defaults), so ``dvb.load`` takes
    its table as a DataFrame too, as the built-in binary benchmark's, without naming it anywhere."""
    from_file = dvb.load(str(puzzle_log), benchmark="puzzles")
    from_frame = dvb.load(pl.read_csv(puzzle_log), benchmark="puzzles")
    assert from_frame.benchmark.name == "puzzles" and [i["path"] for i in from_frame.inputs] == ["<DataFrame>"]
    assert from_frame.trials.data.drop("source_file").equals(from_file.trials.data.drop("source_file"))


def test_load_fit_analyse_save_and_report_a_registered_benchmark(puzzle_log, tmp_path):
    data = dvb.load(puzzle_log)
    assert data.benchmark is PUZZLES
    model = dvb.Model(PUZZLES.default_formula, data)
    fit = model.fit(draws=150, tune=200, chains=2, seed=3, progress=False)
    analyses = dvb.Analysis(contrasts=["all"]).run(fit)
    out = fit.save(tmp_path / "run", analyses=analyses)
    run = RunFolder.read(out)
    rates = run.table("rates").filter(pl.col("model") != "overall").sort("rate_mean")
    assert rates["model"].to_list()[-1] == "beta-70b"  # the most able model has the highest posterior rate
    assert rates["p_below_reference"].fill_nan(None).is_null().all()  # no reference: no P(rate < reference)
    ranks = run.table("ranks").sort("p_best", descending=True)
    assert ranks["level"][0] == "beta-70b"  # higher is better: rank 1 is the highest solve rate
    qmd = report_markdown(run, tmp_path / "report")
    assert qmd.splitlines()[1] == 'title: "Puzzle benchmark: run"'
    assert "Solve rate by model" in qmd and "posterior solve rate" in qmd.lower()
    assert "# About the puzzles {#sec-puzzle-note}" in qmd and "solved by beta-70b" in qmd
    assert "(1 = highest solve rate). **beta-70b** ranks first" in qmd  # ranks in its words and direction
    assert "The benchmark has no reference rate" in qmd and "Higher is better." in qmd
    for word in ("DVGR", "chance", "deep value", "Binomial p", "P(solve rate <"):
        assert word not in qmd, word
    assert (tmp_path / "report" / "figures" / "forest.png").is_file()
