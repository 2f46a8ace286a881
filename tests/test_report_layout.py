"""Report layout (issue 24): long input lists are summarised, not listed file by file."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report import methods, plots, render
from dvbstats.report.sections import conditions, rates
from tests.test_report import Page, flat, make_run


def _inputs(n_models: int = 12, datasets=("bbq", "cbbq"), conditions=("none", "targeted", "untargeted")) -> list[dict]:
    return [{"path": f"/data/hvsb/{d}_judgment/org/model-{m}/{c}/type{t}.tsv", "sha256": f"{d}{m}{c}{t}".ljust(64, "0"),
             "format": "tsv", "n_rows": 10}
            for d in datasets for m in range(n_models) for c in conditions for t in range(4)]


def test_many_inputs_counted_per_folder_with_one_hash():
    inputs = _inputs()
    text = methods.input_files(inputs)
    assert "tbl-inputs" in text
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table) <= methods.MAX_LISTED  # one screen, not 288 rows
    assert "type0.tsv" not in text
    assert f"{len(inputs):,} input files" in text and f"{10 * len(inputs):,} rows" in text
    expected = hashlib.sha256("".join(h + "\n" for h in sorted(i["sha256"] for i in inputs)).encode()).hexdigest()
    assert expected in text
    assert "manifest.json" in text


def test_folder_counts_add_up_at_the_deepest_level_that_fits():
    inputs = _inputs()
    folders = methods.input_folders(inputs)
    assert folders["files"].sum() == len(inputs) and folders["rows"].sum() == 10 * len(inputs)
    assert list(folders["folder"]) == ["bbq_judgment", "cbbq_judgment"]  # dataset level: 72 folders would not fit
    assert list(folders["sub_folders"]) == [36, 36]  # 12 models x 3 conditions
    few = methods.input_folders(_inputs(n_models=2, datasets=("bbq",)))
    assert len(few) == 6 and few["files"].tolist() == [4] * 6


def test_combined_hash_ignores_order_and_location():
    inputs = _inputs(n_models=1)
    moved = [{**i, "path": "/elsewhere/" + i["path"]} for i in reversed(inputs)]
    assert methods.combined_sha256(inputs) == methods.combined_sha256(moved)
    assert methods.combined_sha256(inputs) != methods.combined_sha256(inputs[1:])


def test_few_inputs_listed_with_hashes():
    inputs = _inputs(n_models=1, datasets=("bbq",), conditions=("none",))
    text = methods.input_files(inputs)
    assert text.count("| `/data/hvsb/") == 4 and inputs[0]["sha256"] in text


def test_a_runs_leading_section_opens_the_report(tmp_path):
    run = make_run(tmp_path / "runs")
    (run / "sections").mkdir()
    (run / "sections" / "00_findings.md").write_text("# What the analysis finds {#sec-findings}\n\nClaims.\n")
    (run / "sections" / "01_detail.md").write_text("# Detail {#sec-detail}\n\nMore.\n")
    ids = [i for i in Page(flat(render(run, tmp_path / "reports", engine="pandoc"))).ids if i.startswith("sec-")]
    assert ids[0] == "sec-findings" and ids[-2:] == ["sec-detail", "sec-methods"]


def test_values_section_is_titled_by_what_it_shows():
    assert rates.values_title(["value"]) == "Models and values"
    assert rates.values_title(["value", "value", "feature", "context"]) == "Models, values, features and contexts"
    assert rates.values_title([]) == "Models and design factors"


def test_agreement_heatmaps_legible_and_colour_bars_no_taller_than_them():
    names = [f"deepseek/synthetic-{c}" for c in "abcdefghijkl"]
    table = pd.DataFrame(np.full((12, 12), 0.8), index=names, columns=names)
    with plots.style():
        fig = plots.pair_heatmaps({"raw agreement": table, "Cohen's kappa": table - 0.5}, groups=["d"] * 6 + ["o"] * 6)
        fig.canvas.draw()
        heatmaps, bars = fig.axes[0::2], fig.axes[1::2]
        assert fig.get_size_inches()[0] == plots.WIDTH  # printed at the text width, not scaled down
        for heat, bar in zip(heatmaps, bars, strict=True):
            assert bar.get_position().height <= heat.get_position().height + 1e-6
        sizes = {t.get_fontsize() for t in heatmaps[0].texts}
        assert sizes == {8} and len(heatmaps[0].texts) == 144
        # cells about square: no blank band above or beside the grid
        box = heatmaps[0].get_window_extent()
        assert 0.7 < (box.width / box.height) < 1.4
    plots.plt.close(fig)


def test_quality_by_condition_is_one_row_per_model(tmp_path):
    run = make_run(tmp_path / "runs")
    models = [f"model-{i}" for i in range(12)]
    pd.DataFrame([{"model": m, "condition": c, "n_rows": 2003, "n_used": 1900, "n_refused": 60, "n_malformed": 40,
                   "n_unparsed": 100, "n_superseded": 3, "n_conflict": 0}
                  for m in models for c in ("none", "untargeted", "targeted")]).to_csv(
        run / "quality_by_condition.csv", index=False)
    text = conditions.quality(RunFolder.read(run))
    rows = [line for line in text.splitlines() if line.startswith("| model-")]
    assert len(rows) == 12  # not 36: one screen
    assert rows[0].split(" | ")[1:3] == ["6,009", "1,900"] and "100 (60 + 40)" in rows[0]
    assert "none: used" in text and "targeted: unparsed (refused + malformed)" in text
