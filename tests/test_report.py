"""The report: a run folder in, report.qmd and a self-contained report.html out (Pandoc engine).

Most tests render a fixture run folder written here with every contract file (docs/design.md,
"Run folder"), its numbers simulated from known model effects; one renders a real small fit.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yaml
from scipy.special import expit

from dvbstats.cli.report import main
from dvbstats.model.sample import Diagnostics
from dvbstats.report import RenderError, RunFolderError, markdown, narrative, render
from dvbstats.results.frequentist import binom_test, wilson

SECTIONS = ["headline", "models", "forest", "values", "variance", "training-size", "ppc", "diagnostics",
            "data-quality", "methods"]
HDI = 0.94


# --- fixture run folder -------------------------------------------------------------------


def _summary(draws: np.ndarray) -> tuple[float, float, float]:
    """Mean and central interval of flat draws (the fixture's stand-in for an HDI)."""
    low, high = np.quantile(draws, [(1 - HDI) / 2, (1 + HDI) / 2])
    return float(draws.mean()), float(low), float(high)


def make_run(
    root: Path,
    *,
    name: str = "fixture",
    models: tuple[str, ...] = ("gpt-4o", "gpt-4o-mini", "llama-3-70b", "a-model-with-a-very-long-name-v2"),
    model_logit: tuple[float, ...] = (-1.0, -0.6, -1.3, 0.7),
    ok: bool = True,
    synthetic: bool = True,
    aggregated: bool = False,
    seed: int = 1,
    rates: dict[str, float] | None = None,
) -> Path:
    """Write a run folder with every contract file; numbers come from binomial draws with known rates.

    ``rates`` fixes the share of deep-value choices of some models exactly (0.0 and 1.0: the boundaries).
    """
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    values, features, contexts, sizes = ["fidelity", "justice", "security"], ["Formal", "Colloquial"], ["legal", "finance"], [4, 20, 40]
    value_effect = dict(zip(values, (-0.3, 0.1, 0.2), strict=True))
    grid = pd.MultiIndex.from_product([models, values, features, contexts, sizes],
                                      names=["model", "value", "feature", "context", "n_train"]).to_frame(index=False)
    logit = (grid["model"].map(dict(zip(models, model_logit, strict=True))) + grid["value"].map(value_effect)
             - 0.05 * np.log(grid["n_train"]))
    grid["n_prompts"] = 30
    grid["n_trials"] = 30 - rng.binomial(30, 0.05, len(grid))
    grid["n_deep"] = rng.binomial(grid["n_trials"], expit(logit))
    for model, rate in (rates or {}).items():
        fixed_rate = grid["model"] == model
        grid.loc[fixed_rate, "n_deep"] = (rate * grid.loc[fixed_rate, "n_trials"]).round().astype(int)
    cells = grid if not aggregated else grid.groupby(["model", "value"], as_index=False)[["n_prompts", "n_trials", "n_deep"]].sum()
    cells.to_parquet(run / "cells.parquet")

    chains, n_draws = 2, 200
    shape = (chains, n_draws)
    post_model = {m: rng.normal(lg, 0.08, shape) for m, lg in zip(models, model_logit, strict=True)}
    by_model = cells.groupby("model", sort=False)[["n_prompts", "n_trials", "n_deep"]].sum().reindex(list(models))
    rows = []
    for m in [*models, "overall"]:
        counts = by_model.sum() if m == "overall" else by_model.loc[m]
        draws = expit(np.mean(list(post_model.values()), axis=0) if m == "overall" else post_model[m]).ravel()
        low, high = wilson(counts["n_deep"], counts["n_trials"])
        mean, hdi_low, hdi_high = _summary(draws)
        pop = _summary(expit(rng.normal(np.mean(model_logit), 0.8, draws.size)))
        rows.append({
            "model": m, "n_prompts": int(counts["n_prompts"]), "n_used": int(counts["n_trials"]),
            "n_excluded": int(counts["n_prompts"] - counts["n_trials"]),
            "raw_dvgr": counts["n_deep"] / counts["n_trials"], "wilson_low": float(low), "wilson_high": float(high),
            "binom_p": float(binom_test(counts["n_deep"], counts["n_trials"])),
            "dvgr_mean": mean, "dvgr_median": float(np.median(draws)), "dvgr_hdi_low": hdi_low, "dvgr_hdi_high": hdi_high,
            "p_below_half": float((draws < 0.5).mean()),
            "pop_dvgr_mean": pop[0], "pop_dvgr_hdi_low": pop[1], "pop_dvgr_hdi_high": pop[2],
            "r_hat": 1.001 if ok else 1.31, "ess_bulk": 1500.0, "ess_tail": 1200.0,
        })
    pd.DataFrame(rows).to_csv(run / "dvgr.csv", index=False)

    terms = ["model", "value"] if aggregated else ["model", "value", "feature", "context"]
    sd = {t: np.abs(rng.normal(s, 0.05, shape)) for t, s in zip(terms, (0.8, 0.25, 0.1, 0.05), strict=False)}
    pd.DataFrame([{"term": t, "mean": d.mean(), "median": np.median(d), "hdi_low": _summary(d.ravel())[1],
                   "hdi_high": _summary(d.ravel())[2], "r_hat": 1.002, "ess_bulk": 900.0, "ess_tail": 800.0}
                  for t, d in sd.items()]).to_csv(run / "sd.csv", index=False)
    fixed = {"Intercept": rng.normal(-0.5, 0.1, shape)}
    if not aggregated:
        fixed["b_log_n_train"] = rng.normal(-0.05, 0.02, shape)
    pd.DataFrame([{"term": t, "mean": d.mean(), "median": np.median(d), "hdi_low": _summary(d.ravel())[1],
                   "hdi_high": _summary(d.ravel())[2], "p_positive": (d > 0).mean(), "r_hat": 1.001,
                   "ess_bulk": 1100.0, "ess_tail": 900.0} for t, d in fixed.items()]).to_csv(run / "fixed.csv", index=False)
    levels = {"model": models, "value": values, "feature": features, "context": contexts}
    pd.DataFrame([{"term": t, "level": lv, "mean": rng.normal(0, 0.3), "hdi_low": -0.5, "hdi_high": 0.5}
                  for t in terms for lv in levels[t]]).assign(
        hdi_low=lambda d: d["mean"] - 0.2, hdi_high=lambda d: d["mean"] + 0.2).to_csv(run / "random_effects.csv", index=False)

    if not aggregated:
        margins = []
        for factor in ["value", "feature", "context", "n_train"]:
            g = cells.groupby(factor, as_index=False)[["n_trials", "n_deep"]].sum()
            rate = g["n_deep"] / g["n_trials"]
            margins.append(pd.DataFrame({"factor": factor, "level": g[factor].astype(str), "dvgr_mean": rate + 0.01,
                                         "dvgr_median": rate + 0.01, "dvgr_hdi_low": rate - 0.04,
                                         "dvgr_hdi_high": rate + 0.05, "n_trials": g["n_trials"], "raw_dvgr": rate}))
        pd.concat(margins).to_csv(run / "margins.csv", index=False)
        inter = cells.groupby(["model", "value"], as_index=False)[["n_trials", "n_deep"]].sum()
        inter["raw_dvgr"] = inter["n_deep"] / inter["n_trials"]
        inter.drop(columns="n_deep").assign(
            dvgr_mean=lambda d: d["raw_dvgr"], dvgr_median=lambda d: d["raw_dvgr"],
            dvgr_hdi_low=lambda d: d["raw_dvgr"] - 0.05, dvgr_hdi_high=lambda d: d["raw_dvgr"] + 0.05,
        ).to_csv(run / "interaction_dvgr.csv", index=False)

    ppc = []
    for by in ["model", "value"]:
        g = cells.groupby(by, as_index=False)[["n_trials", "n_deep"]].sum()
        obs = g["n_deep"] / g["n_trials"]
        ppc.append(pd.DataFrame({"by": by, "level": g[by], "observed": obs, "predicted_mean": obs + 0.005,
                                 "predicted_low": obs - 0.03, "predicted_high": obs + 0.04, "n_trials": g["n_trials"]}))
    pd.concat(ppc).to_csv(run / "ppc.csv", index=False)

    params = ["Intercept", *(f"b_{t}" for t in fixed if t != "Intercept"), *(f"sd[{t}]" for t in terms),
              *(f"dvgr[{m}]" for m in models), "dvgr_overall"]
    pd.DataFrame({"parameter": params, "r_hat": 1.002 if ok else 1.25, "ess_bulk": 900.0 if ok else 12.0,
                  "ess_tail": 800.0 if ok else 15.0}).to_csv(run / "diagnostics.csv", index=False)

    quality = by_model.reset_index().rename(columns={"n_trials": "n_used"})
    quality["n_unparsed"] = quality["n_prompts"] - quality["n_used"]
    superseded = [3, *[0] * (len(models) - 2), 1][:len(models)]  # duplicates for the first and the last model
    quality["n_rows"] = quality["n_prompts"] + superseded
    if not aggregated:
        quality["n_superseded"] = superseded
        quality["n_conflict"] = 0
        quality.drop(columns="n_deep").to_csv(run / "data_quality.csv", index=False)
        pd.DataFrame({"model": [models[0]] * 3 + [models[-1]],
                      "prompt_id": ["p1", "p2", "p3", "p9"], "n_copies": 2,
                      "action": ["identical", "identical", "failure replaced", "identical"]}).to_csv(run / "reconciliation.csv", index=False)

    import arviz as az

    posterior = {"Intercept": fixed["Intercept"], "sd": np.stack([sd[t] for t in terms], axis=-1),
                 "r_model": np.stack([post_model[m] for m in models], axis=-1)}
    if ok:
        posterior.update({k: v for k, v in fixed.items() if k != "Intercept"})
    else:  # two chains stuck in different places
        posterior.update({k: v + np.array([[0.0], [0.5]]) for k, v in fixed.items() if k != "Intercept"})
    az.from_dict(posterior=posterior, coords={"term": terms, "model": list(models)},
                 dims={"sd": ["term"], "r_model": ["model"]}).to_netcdf(str(run / "posterior.nc"), engine="h5netcdf")

    failures = [] if ok else ["max R-hat 1.31 > 1.01 (b_log_n_train)", "3 divergent transitions"]
    manifest = {
        "run_name": name, "created": "2025-11-23T10:00:00+00:00", "command": ["python", "-m", "dvbstats.fit", "x.csv"],
        "synthetic": synthetic,
        "inputs": [{"path": "data/raw/x.csv", "sha256": "ab" * 32, "format": "cells" if aggregated else "csv", "n_rows": 1440}],
        "counts": {"totals": {"n_rows": int(quality["n_rows"].sum())}},
        "reconciliation": {"duplicated_prompts": 4, "actions": {"identical": 3, "failure replaced": 1}},
        "formula": "chose_deep ~ 1 + (1|model) + (1|value)" if aggregated else
                   "chose_deep ~ 1 + log_n_train + (1|model) + (1|value) + (1|feature) + (1|context)",
        "priors": {"Intercept": "Normal(0, 1.5)", "sd": "HalfNormal(1)"},
        "parametrization": {"requested": "auto", "terms": {"model": "zerosum", "value": "zerosum_noncentered"}},
        "sampler": {"sampler": "nutpie", "draws": n_draws, "tune": 200, "chains": chains, "seed": 7, "target_accept": 0.9},
        "seed": 7, "hdi_prob": HDI,
        "versions": {"python": "3.11", "pymc": "5.28.5", "dvbstats": "0.1.0"},
        "diagnostics": {"ok": ok, "failures": failures, "max_r_hat": 1.002 if ok else 1.31, "min_ess_bulk": 900.0,
                        "min_ess_tail": 800.0, "divergences": 0 if ok else 3},
        "timing": {"total_s": 12.5},
    }
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run


# --- HTML inspection ----------------------------------------------------------------------


class Page(HTMLParser):
    """Collects what the tests check: tag attributes, element ids, table cells by table id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            self.attrs.append((tag, k, v or ""))
            if k == "id":
                self.ids.append(v)
        if tag == "table":
            self._table = dict(attrs).get("id", f"anon{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def flat(html: Path) -> str:
    """The HTML with runs of whitespace (Pandoc's line wrapping) collapsed to one space."""
    return " ".join(html.read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("ok")
    run = make_run(root / "runs")
    html = render(run, root / "reports", engine="pandoc")
    return run, html, flat(html)


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("fail")
    run = make_run(root / "runs", name="failing", ok=False, synthetic=False)
    return flat(render(run, root / "reports", engine="pandoc"))


# --- tests --------------------------------------------------------------------------------


def test_writes_qmd_and_html_under_run_name(rendered):
    run, html, _ = rendered
    assert html.name == "report.html" and html.parent.name == "fixture"
    assert (html.parent / "report.qmd").is_file()


def test_every_section_present_in_order(rendered):
    ids = [i.removeprefix("sec-") for i in Page(rendered[2]).ids if i.startswith("sec-")]
    assert ids == SECTIONS


def test_every_figure_embedded_as_image(rendered):
    _, html, text = rendered
    qmd = (html.parent / "report.qmd").read_text()
    figures = re.findall(r"\{#fig-([\w-]+)", qmd)
    assert set(figures) >= {"forest", "heatmap", "effects", "variance", "training-size", "ppc", "rank", "unparsed"}
    page = Page(text)
    srcs = [v for tag, k, v in page.attrs if tag == "img" and k == "src"]
    assert len(srcs) == len(figures)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert [i for i in page.ids if i.startswith("fig-")] == [f"fig-{f}" for f in figures]


def test_no_external_resources(rendered):
    page = Page(rendered[2])
    linked = [v for _, k, v in page.attrs if k in ("src", "href")]
    assert linked and not [v for v in linked if "http" in v]
    assert "<script" not in rendered[2]


def test_html_small(rendered):
    assert rendered[1].stat().st_size < 3 * 2**20


def _parse(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_model_table_equals_dvgr_table(rendered):
    run, _, text = rendered
    dvgr = pd.read_csv(run / "dvgr.csv").set_index("model")
    rows = Page(text).tables["tbl-models"]
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Model", "Used", "Excluded"] and "94% HDI" in header
    assert sorted(r[0] for r in body) == sorted(dvgr.index)
    assert body[-1][0] == "overall"
    for cells in body:
        row = dict(zip(header, cells, strict=True))
        want = dvgr.loc[row["Model"]]
        assert _parse(row["Used"]) == want["n_used"]
        assert _parse(row["Excluded"]) == want["n_excluded"]
        for column, key in [("Raw DVGR", "raw_dvgr"), ("Posterior DVGR", "dvgr_mean"), ("P(DVGR < 0.5)", "p_below_half")]:
            assert _parse(row[column]) == pytest.approx(want[key], abs=5e-4)
        for column, (lo, hi) in [("Wilson 95% CI", ("wilson_low", "wilson_high")), ("94% HDI", ("dvgr_hdi_low", "dvgr_hdi_high"))]:
            low, high = row[column].split("–")
            assert (_parse(low), _parse(high)) == pytest.approx((want[lo], want[hi]), abs=5e-4)
        p = row["Binomial p"]
        assert _parse(p) == pytest.approx(want["binom_p"], rel=0.05, abs=5e-4)


def test_table_sorted_like_forest(rendered):
    run, _, text = rendered
    body = Page(text).tables["tbl-models"][1:-1]
    means = [float(r[6]) for r in body]
    assert means == sorted(means)


def test_cross_references_resolved(rendered):
    text = rendered[2]
    assert "?@" not in text
    assert re.search(r'<a href="#fig-forest"[^>]*>Figure 1</a>', text)
    assert re.search(r'<a href="#tbl-models"[^>]*>Table 1</a>', text)
    assert re.search(r"<figcaption><strong>Figure 1:</strong> Posterior DVGR by model", text)


def test_synthetic_banner(rendered, failing):
    assert re.search(r'class="callout callout-warning".*?Synthetic data', rendered[2], re.S)
    assert "Synthetic data" not in failing


def test_failing_diagnostics_callout_at_top(rendered, failing):
    top = failing.index('class="callout callout-important"')
    assert top < failing.index('id="sec-headline"')
    assert "Sampler diagnostics failed" in failing
    assert "3 divergent transitions" in failing
    assert re.search(r'<a href="#sec-diagnostics"[^>]*>Section 8</a>', failing)
    assert "sampler checks failed" in failing  # the plain-language reading says so too
    assert "callout callout-important" not in rendered[2]


def test_qmd_is_quarto(rendered):
    qmd = (rendered[1].parent / "report.qmd").read_text()
    header = yaml.safe_load(qmd.split("---")[1])
    assert header["title"].endswith("fixture")
    assert header["format"]["html"]["embed-resources"] is True
    assert "::: {.callout-warning}" in qmd
    assert "@fig-forest" in qmd and "{#tbl-models}" in qmd and "{#sec-methods}" in qmd
    assert (rendered[1].parent / "report.css").is_file()


def test_methods_reproduce_the_run(rendered):
    text = rendered[2]
    section = text[text.index('id="sec-methods"'):]
    for needle in ["chose_deep ~ 1 + log_n_train", "Normal(0, 1.5)", "nutpie", "ab" * 32, "5.28.5", "seed 7",
                   "parametrisation of (value)", "zerosum_noncentered"]:
        assert needle in section, needle


def test_headline_counts_models_below_chance(rendered):
    run, _, text = rendered
    dvgr = pd.read_csv(run / "dvgr.csv")
    k = int((dvgr.loc[dvgr["model"] != "overall", "p_below_half"] > 0.95).sum())
    assert k == 3  # the fixture's truth: three models below chance, one above
    assert f"<strong>{k} of 4</strong> models credibly below chance" in text
    assert "3 of 4 models (" in text and "1 of 4 (a-model-with-a-very-long-name-v2) choose it more often" in text


def test_rerender_without_refitting(tmp_path):
    run = make_run(tmp_path / "runs")
    assert main([str(run), "--out-root", str(tmp_path / "out"), "--engine", "pandoc"]) == 0
    first = tmp_path / "out" / "fixture" / "report.html"
    (run / "sections").mkdir()
    (run / "sections" / "02_second.md").write_text("Second extra text.\n")
    (run / "sections" / "01_published_vs_reanalysis.md").write_text("# Published vs reanalysis {#sec-published}\n\nCompare.\n")
    assert main([str(run), "--out-root", str(tmp_path / "out"), "--engine", "pandoc"]) == 0
    ids = [i for i in Page(flat(first)).ids if i.startswith("sec-")]
    assert ids[-3:] == ["sec-published", "sec-second", "sec-methods"]


def test_scaling_section_only_with_scaling_tables(tmp_path):
    run = make_run(tmp_path / "runs")
    pd.DataFrame({"smaller": ["gpt-4o-mini"], "larger": ["gpt-4o"], "dvgr_smaller": [0.35], "dvgr_larger": [0.27],
                  "diff_mean": [-0.08], "diff_hdi_low": [-0.12], "diff_hdi_high": [-0.04], "p_diff_below_0": [0.999],
                  "chi2_p": [0.0002]}).to_csv(run / "scaling_pairs.csv", index=False)
    _trend(run, r_hat=1.002, ess=950.0, divergences=0)
    text = flat(render(run, tmp_path / "reports", engine="pandoc"))
    page = Page(text)
    ids = [i.removeprefix("sec-") for i in page.ids if i.startswith("sec-")]
    assert ids == [*SECTIONS[:6], "scaling", *SECTIONS[6:]]
    assert "fig-scaling" in page.ids
    pairs = page.tables["tbl-scaling-pairs"]
    assert pairs[1][:3] == ["gpt-4o-mini", "gpt-4o", "-0.080"]
    assert "BF01 = 1.70" in text
    assert "Sampler checks of the slope model: max R-hat 1.002, min bulk ESS 950, 0 divergent transitions" in text
    assert "all pass" in text and "callout callout-important" not in text


def _trend(run: Path, *, r_hat: float, ess: float, divergences: int) -> None:
    """A trend table and the slope model's checks, recorded by the same ``Diagnostics`` as the main fit's."""
    pd.DataFrame({"size_measure": ["rank"], "slope_mean": [-0.2], "slope_hdi_low": [-0.5], "slope_hdi_high": [0.1],
                  "p_slope_below_0": [0.88], "bf01": [1.7], "max_r_hat": [r_hat], "min_ess_bulk": [ess],
                  "divergences": [divergences]}).to_csv(run / "scaling_trend.csv", index=False)
    table = pl.DataFrame({"parameter": ["beta", "tau"], "r_hat": [r_hat, 1.0], "ess_bulk": [ess, 2000.0],
                          "ess_tail": [2000.0, 2000.0]})
    checks = Diagnostics(table, divergences, 4000).summary()
    (run / "scaling_methods.json").write_text(json.dumps({"notes": [], "diagnostics": checks}))


def test_failing_slope_diagnostics_flagged_at_top_and_in_section(tmp_path):
    run = make_run(tmp_path / "runs")
    _trend(run, r_hat=1.05, ess=120.0, divergences=2)
    fitted = pd.DataFrame({"model": ["gpt-4o-mini", "gpt-4o"], "family": ["gpt-4o", "gpt-4o"], "size_rank": [1, 2],
                           "fitted_mean": [0.35, 0.3], "fitted_hdi_low": [0.25, 0.2], "fitted_hdi_high": [0.45, 0.4]})
    fitted.to_csv(run / "scaling_models.csv", index=False)
    text = flat(render(run, tmp_path / "reports", engine="pandoc"))
    top = text[:text.index('id="sec-headline"')]
    assert 'class="callout callout-important"' in top and "Sampler diagnostics failed" in top
    for failure in ["R-hat &gt; 1.01 for 1 quantities (worst beta: 1.050)",
                    "ESS &lt; 400 for 1 quantities (worst beta: bulk 120)", "2 divergent transitions out of 4000 draws"]:
        assert f"pooled size-slope model: {failure}" in top, failure
    assert re.search(r'<a href="#sec-scaling"[^>]*>Section 7</a>', top)
    assert "Section 8" not in top  # the main fit passed its checks
    scaling = text[text.index('id="sec-scaling"'):text.index('id="sec-ppc"')]
    assert "Slope-model diagnostics failed" in scaling and "callout callout-important" in scaling
    assert "orange: the pooled-slope model" in scaling  # the figure draws the fitted trend


def test_dates_and_run_details_read_by_people(rendered):
    qmd = (rendered[1].parent / "report.qmd").read_text()
    assert yaml.safe_load(qmd.split("---")[1])["date"] == "23 November 2025, 10:00 UTC"
    methods = rendered[2][rendered[2].index('id="sec-methods"'):]
    assert "<code>python -m dvbstats.fit x.csv</code>" in methods and "total 12.5 s" in methods
    assert markdown.fmt_date("2025-11-23T23:30:00-02:00") == "24 November 2025, 01:30 UTC"
    assert markdown.fmt_date("2025-11-23T08:05:00") == "23 November 2025, 08:05"  # no zone given, none printed
    assert markdown.fmt_date("last Tuesday") == "last Tuesday"


def test_aggregated_run_says_what_is_missing(tmp_path):
    run = make_run(tmp_path / "runs", aggregated=True)
    text = flat(render(run, tmp_path / "reports", engine="pandoc"))
    ids = [i.removeprefix("sec-") for i in Page(text).ids if i.startswith("sec-")]
    assert ids == SECTIONS
    assert "Not available for this run: the data have no training-set size" in text
    assert "Not available for this run: the run was fitted to aggregated counts" in text
    assert 'id="fig-heatmap"' in text and "Raw DVGR by model and value" in text


def test_missing_manifest_names_the_file(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(RunFolderError, match=r"run/manifest\.json: not found"):
        render(tmp_path / "run", tmp_path / "reports", engine="pandoc")


def test_bad_table_names_file_and_columns(tmp_path):
    run = make_run(tmp_path / "runs")
    pd.read_csv(run / "dvgr.csv").drop(columns="binom_p").to_csv(run / "dvgr.csv", index=False)
    with pytest.raises(RunFolderError, match=r"dvgr\.csv: missing column\(s\) binom_p"):
        render(run, tmp_path / "reports", engine="pandoc")


def test_cli_reports_errors_and_help(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2  # bad input, as python -m dvbstats.fit
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "self-contained report.html" in capsys.readouterr().out


def test_quarto_engine_requires_quarto(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    run = make_run(tmp_path / "runs")
    with pytest.raises(RenderError, match="quarto CLI is not on PATH"):
        render(run, tmp_path / "reports", engine="quarto")



def test_pandoc_is_the_wheels_without_importing_pypandoc(tmp_path, monkeypatch):
    """The bundled Pandoc is found from the wheel's file list (pypandoc's 60 ms of imports stay off every path);
    ``$PYPANDOC_PANDOC`` overrides it, and one too old or not runnable is refused by name."""
    renderer = importlib.import_module("dvbstats.report.render")
    monkeypatch.delenv("PYPANDOC_PANDOC", raising=False)
    bundled = Path(renderer.pandoc_path())
    assert bundled.parent.name == "files" and bundled.parent.parent.name == "pypandoc"
    old = tmp_path / "pandoc"
    old.write_text("#!/bin/sh\necho 'pandoc 2.17.1.1'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PYPANDOC_PANDOC", str(old))
    with pytest.raises(RenderError, match=r"pandoc 2\.17 at .*too old"):
        renderer.pandoc_path()
    monkeypatch.setenv("PYPANDOC_PANDOC", str(tmp_path / "absent"))
    with pytest.raises(RenderError, match="does not run"):
        renderer.pandoc_path()
    done = subprocess.run([sys.executable, "-c", "import importlib, sys; "
                           "importlib.import_module('dvbstats.report.render').pandoc_path(); "
                           "print('pypandoc' in sys.modules)"], capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "PYPANDOC_PANDOC"})
    assert done.stdout.strip() == "False"

# --- the plain-language reading -----------------------------------------------------------


def _models(p_below: list[float], means: list[float] | None = None, width: float = 0.06) -> tuple[pd.DataFrame, pd.Series]:
    means = means or [0.3] * len(p_below)
    models = pd.DataFrame({"model": [f"m{i}" for i in range(len(p_below))], "p_below_half": p_below,
                           "dvgr_mean": means, "dvgr_hdi_low": [m - width / 2 for m in means],
                           "dvgr_hdi_high": [m + width / 2 for m in means]})
    overall = pd.Series({"dvgr_mean": 0.31, "dvgr_hdi_low": 0.27, "dvgr_hdi_high": 0.35,
                         "pop_dvgr_mean": 0.32, "pop_dvgr_hdi_low": 0.2, "pop_dvgr_hdi_high": 0.45})
    return models, overall


@pytest.mark.parametrize(("p_below", "expected"), [
    ([0.99, 0.999, 1.0], "All 3 models choose the deep value less often than chance"),
    ([0.5, 0.6, 0.3], "None of the 3 models is credibly below or above chance"),
    ([0.99, 0.5, 0.01], "1 of 3 models (m0) choose the deep value less often than chance; 1 of 3 (m2) choose "
                        "it more often than chance; for the other 1 model the data cannot tell"),
    ([0.01, 0.02], "All 2 models choose the deep value more often than chance"),
])
def test_reading_branches_on_counts(p_below, expected):
    models, overall = _models(p_below)
    text = narrative.reading(models, overall, hdi_prob=0.94, diagnostics_ok=True)
    assert expected in text
    assert "The overall DVGR is 0.310 (94% HDI 0.270–0.350)" in text and "about 3 of 10 tests" in text
    assert "wide" not in text and "provisional" not in text


def test_reading_flags_wide_intervals_and_failed_checks():
    models, overall = _models([0.9, 0.97], means=[0.2, 0.45], width=0.3)
    text = narrative.reading(models, overall, hdi_prob=0.9, diagnostics_ok=False, failures=["max R-hat 1.2"])
    assert "range from 0.200 (m0) to 0.450 (m1)" in text
    assert "The intervals are wide for all models (up to 0.30)" in text
    assert "sampler checks failed (max R-hat 1.2)" in text


# --- a real fit ---------------------------------------------------------------------------


@pytest.mark.slow
def test_renders_a_real_small_fit(tmp_path):
    from dvbstats import simulate
    from dvbstats.cli import fit

    sim = _small_simulation(simulate, tmp_path / "dumps")
    out, _ = fit.run([str(p) for p in sim.paths], out=tmp_path / "run", draws=150, tune=150, chains=2, seed=3,
                     formula="chose_deep ~ 1 + log_n_train + (1|model) + (1|value)",
                     processed=tmp_path / "processed", progress=False, log=lambda *a: None)
    html = render(out, tmp_path / "reports", engine="pandoc")
    text = flat(html)
    # 2 chains x 150 draws cannot reach the sampler's minimum ESS of 400: the checks are forced to fail
    assert json.loads((out / "manifest.json").read_text())["diagnostics"]["ok"] is False
    assert text.index('class="callout callout-important"') < text.index('id="sec-headline"')
    page = Page(text)
    sections = [i.removeprefix("sec-") for i in page.ids if i.startswith("sec-")]
    # a run of several models from trial dumps adds its ranks and its agreement between models
    with_models = [*SECTIONS[:6], "contrasts", *SECTIONS[6:9], "agreement", "methods"]
    assert [s for s in sections if s != "scaling"] == with_models
    dvgr = pd.read_csv(out / "dvgr.csv").set_index("model")
    body = page.tables["tbl-models"][1:]
    assert {r[0] for r in body} == set(dvgr.index)
    for row in body:
        assert float(row[6]) == pytest.approx(dvgr.loc[row[0], "dvgr_mean"], abs=5e-4)
    assert not [v for _, k, v in page.attrs if k in ("src", "href") and "http" in v]


def _small_simulation(simulate, out_dir: Path):
    """Three known models (two below chance, one above) on a small DVB-like design."""
    design = simulate.StudyDesign(value_sets={"a": ("fidelity", "justice"), "b": ("security", "tradition")},
                             feature_dims=[("Formal", "Colloquial")], contexts=("legal", "finance"),
                             n_prompts=240, prompts_per_test=4)
    effects = simulate.Effects(
        intercept=-0.4, log_n_train=-0.05,
        model={"gpt-4o-2024-08-06": -0.6, "gpt-4o-mini-2024-07-18": -0.2, "replicate/meta/meta-llama-3-8b-instruct": 1.2},
        value={"fidelity": -0.3, "justice": 0.1, "security": 0.0, "tradition": 0.2},
        feature={"Formal": 0.1, "Colloquial": -0.1}, context={"legal": 0.05, "finance": -0.05})
    return simulate.simulate(effects, design, seed=11, out_dir=out_dir)


# --- edge cases and the page width --------------------------------------------------------

#: Injected into a copy of a report: records every table's width against the page's after layout.
WIDTH_PROBE = """<script>
window.addEventListener("load", function () {
  var page = document.documentElement.clientWidth, out = [];
  document.querySelectorAll("table").forEach(function (t) {
    out.push({caption: t.caption ? t.caption.textContent.trim().slice(0, 80) : "",
              scroll: t.scrollWidth, client: t.clientWidth, right: t.getBoundingClientRect().right, page: page});
  });
  var pre = document.createElement("pre");
  pre.id = "table-widths";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
#: The narrowest desktop window a report must fit (the issue: Table 7 scrolled sideways at 1,400 px).
PAGE_WIDTH = 1280


def chromium() -> str:
    """The headless browser, or skip: the width checks need a layout engine (Debian package ``chromium``)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip("the table-width check needs headless Chromium (apt-get install chromium); not on PATH")
    return found


def tables_wider_than_page(html: Path, tmp_path: Path, width: int = PAGE_WIDTH) -> list[dict]:
    """Tables of ``html`` that overflow, laid out by headless Chromium in a ``width``-px window."""
    import html as html_lib
    import subprocess

    browser = chromium()
    probe = tmp_path / f"probe-{html.parent.name}.html"
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", WIDTH_PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},2000",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180, check=False)
    found = re.search(r'<pre id="table-widths">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium did not lay out {probe} (exit {done.returncode}): {done.stderr[-500:]}"
    tables = json.loads(html_lib.unescape(found.group(1)))
    assert tables, "the probe found no tables"
    return [t for t in tables if t["scroll"] > t["client"] + 1 or t["right"] > t["page"] + 1]


EDGE_RUNS = {
    "one-model": {"models": ("gpt-4o",), "model_logit": (-1.0,)},
    "one-model-all-deep": {"models": ("gpt-4o",), "model_logit": (6.0,), "rates": {"gpt-4o": 1.0}},
    "boundaries": {"models": ("never-deep", "gpt-4o", "always-deep"), "model_logit": (-6.0, -1.0, 6.0),
                   "rates": {"never-deep": 0.0, "always-deep": 1.0}},
}


@pytest.fixture(scope="module")
def edge_reports(tmp_path_factory) -> dict[str, Path]:
    """The edge cases rendered: one model, a model at 100%, models at 0% and 100% (no scaling tables)."""
    root = tmp_path_factory.mktemp("edges")
    return {name: render(make_run(root / "runs", name=name, **kwargs), root / "reports", engine="pandoc")
            for name, kwargs in EDGE_RUNS.items()}


@pytest.mark.parametrize("name", list(EDGE_RUNS))
def test_edge_cases_render(edge_reports, name):
    page = Page(edge_reports[name].read_text(encoding="utf-8"))
    rows = page.tables["tbl-models"][1:]
    assert [r[0] for r in rows][-1] == "overall" and len(rows) == len(EDGE_RUNS[name]["models"]) + 1
    assert "fig-forest" in page.ids and "scaling" not in " ".join(page.ids)


def test_boundary_rates_have_intervals_that_contain_them(edge_reports):
    page = Page(edge_reports["boundaries"].read_text(encoding="utf-8"))
    header, *rows = page.tables["tbl-models"]
    by_model = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert by_model["never-deep"]["Raw DVGR"] == "0.000" and by_model["never-deep"]["Wilson 95% CI"].startswith("0.000–")
    assert by_model["always-deep"]["Raw DVGR"] == "1.000" and by_model["always-deep"]["Wilson 95% CI"].endswith("–1.000")


def test_single_model_reading():
    models, overall = _models([0.99])
    assert "The model, m0, chooses the deep value less often than chance" in narrative.reading(
        models, overall, hdi_prob=0.94, diagnostics_ok=True)
    models, overall = _models([0.5])
    assert "We cannot tell whether the model, m0," in narrative.reading(models, overall, hdi_prob=0.94, diagnostics_ok=True)


def test_report_cli_renders_a_run_with_a_model_at_100_percent(tmp_path, capsys):
    run = make_run(tmp_path / "runs", name="all-deep", models=("always-deep", "gpt-4o"), model_logit=(6.0, -1.0),
                   rates={"always-deep": 1.0})
    dvgr = pd.read_csv(run / "dvgr.csv")  # as an older run wrote it: the upper limit a rounding error below 1
    dvgr.loc[dvgr["model"] == "always-deep", "wilson_high"] = 0.9999999999999998
    dvgr.to_csv(run / "dvgr.csv", index=False)
    assert main([str(run), "--out-root", str(tmp_path / "reports"), "--engine", "pandoc"]) == 0
    assert capsys.readouterr().out.strip().endswith("report.html")


@pytest.mark.parametrize("name", list(EDGE_RUNS))
def test_edge_case_tables_fit_the_page(edge_reports, tmp_path, name):
    assert tables_wider_than_page(edge_reports[name], tmp_path) == []


def test_fixture_report_tables_fit_the_page(rendered, tmp_path):
    assert tables_wider_than_page(rendered[1], tmp_path) == []


def test_committed_reanalysis_report_fits_the_page(tmp_path):
    html = Path(__file__).parents[1] / "reports" / "dvb2025_reanalysis" / "report.html"
    for width in (PAGE_WIDTH, 1400):
        assert tables_wider_than_page(html, tmp_path, width) == [], f"at {width} px"


def test_population_dvgr_in_the_model_table_and_the_reading(rendered):
    run, _, text = rendered
    dvgr = pd.read_csv(run / "dvgr.csv").set_index("model")
    header, *body = Page(text).tables["tbl-models"]
    column = "Population DVGR (94% HDI)"
    assert column in header
    for cells in body:
        row = dict(zip(header, cells, strict=True))
        want = dvgr.loc[row["Model"]]
        mean, interval = row[column].split(" (")
        low, high = interval.rstrip(")").split("–")
        assert (_parse(mean), _parse(low), _parse(high)) == pytest.approx(
            (want["pop_dvgr_mean"], want["pop_dvgr_hdi_low"], want["pop_dvgr_hdi_high"]), abs=5e-4)
    models = dvgr.drop(index="overall")
    reach = models[(models["pop_dvgr_hdi_low"] <= 0.5) & (models["pop_dvgr_hdi_high"] >= 0.5)]
    headline = text[text.index('id="sec-headline"'):text.index('id="sec-models"')]
    assert f"{len(reach)} of 4 models" in headline and "population DVGR" in headline


def test_reading_states_the_population_caveat():
    models, overall = _models([0.99, 0.99])
    models = models.assign(pop_dvgr_hdi_low=[0.1, 0.2], pop_dvgr_hdi_high=[0.45, 0.6])
    text = narrative.reading(models, overall, hdi_prob=0.94, diagnostics_ok=True)
    assert "the 94% HDIs of 1 of 2 models (m1) reach 0.5" in text
    models = models.assign(pop_dvgr_hdi_high=[0.45, 0.49])
    assert "the 94% HDIs of all 2 models stay clear of 0.5" in narrative.reading(
        models, overall, hdi_prob=0.94, diagnostics_ok=True)


def test_models_without_usable_trials_are_flagged_at_the_top(tmp_path):
    run = make_run(tmp_path / "runs", name="empty")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["empty_models"] = {"models": ["model-x"], "in_fit": False,
                                "note": "left out of the fit and of the overall DVGR"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    text = flat(render(run, tmp_path / "reports", engine="pandoc"))
    top = text[:text.index('id="sec-headline"')]
    assert "Models without a usable trial" in top and "<strong>model-x</strong>" in top
    assert "left out of the fit and of the overall DVGR" in top


def test_a_rerender_replaces_the_report_folder_whole(tmp_path, capsys):
    run = make_run(tmp_path / "runs", name="again")
    reports = tmp_path / "reports"
    html = render(run, reports, engine="pandoc")
    (html.parent / "figures" / "stale.png").write_bytes(b"old")
    assert render(run, reports, engine="pandoc") == html and html.is_file()
    assert not (html.parent / "figures" / "stale.png").exists()
    assert [p.name for p in reports.iterdir()] == ["again"]  # no temporary folder left
    foreign = reports / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "run_name": "mine"}))
    assert main([str(run), "--out-root", str(reports), "--engine", "pandoc"]) == 2
    assert "report folder" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "keep"


def test_a_model_only_formula_renders(tmp_path):
    """``chose_deep ~ 1 + (1|model)`` writes margins.csv with no rows (and no summary columns)."""
    run = make_run(tmp_path / "runs", name="model-only")
    (run / "margins.csv").write_text("factor,level\n")
    (run / "interaction_dvgr.csv").unlink()
    text = flat(render(run, tmp_path / "reports", engine="pandoc"))
    assert 'id="sec-values"' in text


def test_a_model_kept_without_trials_renders_dashes(tmp_path):
    """``--keep-empty-models``: the model's raw rate is NaN, which polars writes as ``NaN``."""
    run = make_run(tmp_path / "runs", name="kept-empty")
    dvgr = pd.read_csv(run / "dvgr.csv")
    empty = dvgr["model"] == "gpt-4o"
    dvgr.loc[empty, ["raw_dvgr", "wilson_low", "wilson_high", "binom_p"]] = np.nan
    dvgr.loc[empty, "n_used"] = 0
    dvgr.to_csv(run / "dvgr.csv", index=False, na_rep="NaN")
    page = Page(render(run, tmp_path / "reports", engine="pandoc").read_text(encoding="utf-8"))
    header, *rows = page.tables["tbl-models"]
    row = dict(zip(header, next(r for r in rows if r[0] == "gpt-4o"), strict=True))
    assert row["Raw DVGR"] == row["Wilson 95% CI"] == row["Binomial p"] == "–"
