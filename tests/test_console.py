"""Console output (issue 24): tables fit the terminal, progress lines say what is done, --help speaks for every
benchmark, --report-dir."""

from __future__ import annotations

import argparse

import arviz as az
import numpy as np
import polars as pl
import pytest

from dvbstats.cli import fit as cli
from dvbstats.model import fastlogp, sample

LONG = ["deepseek/synthetic-a-very-long-model-name", "openai/gpt-synthetic-b-2025-preview", "m-c"]


def _rates(models=LONG) -> pl.DataFrame:
    n = len(models) + 1
    return pl.DataFrame({
        "model": [*models, "overall"], "n_used": [120_000] * n, "n_excluded": [3_346] * n,
        "raw_rate": [0.5] * n, "wilson_low": [0.4] * n, "wilson_high": [0.6] * n, "rate_mean": [0.5] * n,
        "rate_hdi_low": [0.4] * n, "rate_hdi_high": [0.6] * n, "p_below_reference": [0.5] * n,
        "r_hat": [1.001] * n, "ess_bulk": [5342.0] * n})


@pytest.mark.parametrize("below", ["P(<0.5)", ""])
def test_model_table_fits_100_columns_with_a_legend(below):
    text = cli.console_table(_rates(), "DVGR", below, width=100)
    assert max(map(len, text.splitlines())) <= 100
    for name in LONG[:2]:
        assert f"= {name}" in text  # the legend names every shortened model in full
    assert "\nm-c " in text and "= m-c" not in text


def test_short_model_names_are_kept_and_tables_are_not_padded_needlessly():
    text = cli.console_table(_rates(["m-a", "m-b"]), "rate", "", width=200)
    assert "=" not in text and max(map(len, text.splitlines())) < 100


def test_condition_table_fits_the_terminal():
    rates = pl.DataFrame({"model": LONG * 2, "condition": ["none"] * 3 + ["targeted"] * 3,
                          "rate": ["MR"] * 3 + ["ASR"] * 3,
                          "mean": [0.5] * 6, "hdi_low": [0.4] * 6, "hdi_high": [0.6] * 6, "raw_rate": [0.5] * 6})
    assert max(map(len, cli.console_conditions(rates, width=100).splitlines())) <= 100
    text = cli.console_conditions(rates, width=80)
    assert max(map(len, text.splitlines())) <= 80 and text.count(f"= {LONG[0]}") == 1


def test_shortened_names_stay_distinct():
    names = [f"provider/model-{i}-with-a-long-common-prefix" for i in range(12)]
    short, legend = cli.short_names(names, 14)
    assert len(set(short.values())) == 12 and all(len(s) <= 14 for s in short.values()) and len(legend) == 12


def test_prose_wraps_to_the_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    cli.say("Fitting " + "x ~ 1 + (1|model) " * 10)
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 100


def _trace(chains: int, draws: int, made: int | None = None) -> az.InferenceData:
    """Sample statistics as nutpie's trace holds them: chains behind the longest one padded with NaN."""
    step_size = np.full((chains, draws), 0.3)
    step_size[chains // 2:, draws if made is None else made:] = np.nan
    return az.from_dict(sample_stats={"diverging": np.zeros((chains, draws), bool), "step_size": step_size})


def test_progress_says_what_follows_sampling_and_prints_the_count_once(capsys):
    sample._progress_line(_trace(4, 50), 400, 12.0, final=False)
    sample._progress_line(_trace(4, 100), 400, 20.0, final=False)  # every draw in: now collecting them
    sample._progress_line(_trace(4, 100), 400, 31.0, final=False)
    sample._progress_line(_trace(4, 100), 400, 33.0)
    out = capsys.readouterr().out.splitlines()
    assert sum("400/400 draws" in line for line in out) == 1 and out[-1].startswith("  sampling: 400/400")
    assert "200/400" in out[0] and "collecting" in out[1] and "collecting" in out[2]


def test_progress_counts_the_draws_made_not_the_padded_trace(capsys):
    """4 chains on 2 cores: two chains done, two not started: half the draws, not 'sampling done'."""
    sample._progress_line(_trace(4, 100, made=0), 400, 20.0, final=False)
    sample._progress_line(_trace(4, 100, made=60), 400, 30.0, final=False)
    out = capsys.readouterr().out.splitlines()
    assert "200/400" in out[0] and "320/400" in out[1] and not any("collecting" in line for line in out)


def test_compile_note_follows_numbas_cache(monkeypatch, tmp_path):
    index = tmp_path / "logp.nbi"
    monkeypatch.setattr(fastlogp._logp._cache._cache_file, "_index_path", str(index))
    assert not fastlogp.compiled_before()
    index.write_bytes(b"")
    assert fastlogp.compiled_before()


def _help() -> str:
    formatter = cli.parser()
    formatter.formatter_class = lambda prog: argparse.RawDescriptionHelpFormatter(prog, width=100)
    return formatter.format_help()


def test_help_speaks_for_every_benchmark_and_fits_100_columns():
    text = _help()
    assert max(map(len, text.splitlines())) <= 100
    flat = " ".join(text.split())
    for words in ("HVSB", "binary", "MR", "ASR", "rate units", "percentage points", "--report-dir",
                  "condition:targeted-untargeted"):
        assert words in flat
    contrast = flat[flat.index("--contrast A-B posterior"):flat.index("--contrasts {all} all")]
    assert "DVGR" in contrast and "binary" in contrast


def test_report_dir_is_passed_and_printed(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_run(paths, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", fake_run)
    cli.main(["x.csv", "--report", "--report-dir", str(tmp_path / "rep")])
    assert seen["report_dir"] == tmp_path / "rep"
