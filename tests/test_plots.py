"""Figures: what they draw, that long labels fit, the palette, rank-plot arithmetic."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.colors import to_hex

from dvbstats.report import plots

LONG = "replicate/meta/meta-llama-3-70b-instruct-with-a-long-suffix"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _dvgr(models: list[str]) -> pd.DataFrame:
    mean = np.linspace(0.2, 0.6, len(models))
    return pd.DataFrame({
        "model": models, "dvgr_mean": mean, "dvgr_hdi_low": mean - 0.03, "dvgr_hdi_high": mean + 0.03,
        "raw_dvgr": mean - 0.01, "wilson_low": mean - 0.04, "wilson_high": mean + 0.02,
    })


def _shown_labels(ax, axis: str) -> list:
    """The tick labels ``axis`` of ``ax`` actually draws (ticks inside the view limits)."""
    axis_ = ax.xaxis if axis == "x" else ax.yaxis
    low, high = sorted(axis_.get_view_interval())
    return [t.label1 for t in axis_.get_major_ticks() if low <= t.get_loc() <= high and t.label1.get_text()]


def _labels_inside(fig) -> None:
    """Every tick label is drawn whole inside the figure (nothing truncated)."""
    fig.canvas.draw()
    box = fig.bbox
    for ax in fig.axes:
        for label in _shown_labels(ax, "y") + _shown_labels(ax, "x"):
            extent = label.get_window_extent()
            assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, label.get_text()


def test_forest_draws_every_model_and_chance_line():
    table = _dvgr(["a", LONG, "c"])
    overall = _dvgr(["overall"]).iloc[0]
    with plots.style():
        fig = plots.forest(table, hdi_prob=0.94, overall=overall)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", LONG, "c", "overall"]
    assert any(np.allclose(line.get_xdata(), 0.5) for line in ax.get_lines())
    # the posterior means are drawn at their values, top row = first model
    points = ax.containers[0][0]
    x, y = points.get_data()
    assert np.allclose(x, [*table["dvgr_mean"], overall["dvgr_mean"]])
    assert y[0] > y[-1]
    _labels_inside(fig)


def test_forest_zooms_so_intervals_are_visible():
    table = _dvgr(["a", "b", "c"])
    table["dvgr_mean"] = [0.229, 0.30, 0.398]  # the published-scale example: HDIs 0.014 wide
    table["dvgr_hdi_low"], table["dvgr_hdi_high"] = table["dvgr_mean"] - 0.007, table["dvgr_mean"] + 0.007
    table["raw_dvgr"] = table["dvgr_mean"] + 0.001
    table["wilson_low"], table["wilson_high"] = table["raw_dvgr"] - 0.008, table["raw_dvgr"] + 0.008
    with plots.style():
        ax = plots.forest(table, hdi_prob=0.94).axes[0]
    low, high = ax.get_xlim()
    assert low <= table["wilson_low"].min() and high >= 0.5
    assert 0.014 / (high - low) > 0.03  # on a 0-1 axis it was 0.014
    far = table.assign(**{c: table[c] - 0.2 for c in table.columns if c != "model"})
    with plots.style():
        ax = plots.forest(far, hdi_prob=0.94).axes[0]
    assert ax.get_xlim()[1] < 0.5
    assert [t.get_text() for t in ax.texts] == ["chance (0.5) is right of the axis →"]


def test_figure_grows_with_models():
    with plots.style():
        small = plots.forest(_dvgr(["a", "b"]), hdi_prob=0.9)
        large = plots.forest(_dvgr([f"m{i}" for i in range(20)]), hdi_prob=0.9)
    assert large.get_figheight() > small.get_figheight()


def test_heatmap_annotates_values():
    wide = pd.DataFrame([[0.1, 0.62], [0.55, 0.3]], index=pd.Index(["m1", LONG], name="model"),
                        columns=pd.Index(["fidelity", "justice"], name="value"))
    with plots.style():
        fig = plots.heatmap(wide, colorbar_label="DVGR")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.10", "0.62", "0.55", "0.30"]
    _labels_inside(fig)


def test_effects_one_panel_per_term():
    table = pd.DataFrame({"term": ["value", "value", "context"], "level": ["a", "b", "legal"],
                          "mean": [0.1, -0.2, 0.0], "hdi_low": [0.0, -0.3, -0.1], "hdi_high": [0.2, -0.1, 0.1]})
    with plots.style():
        fig = plots.effects(table, hdi_prob=0.94, reference=0.0, xlabel="log-odds")
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["value", "context"]


def test_variance_components_sorted_on_one_axis():
    sd = pd.DataFrame({"term": ["model", "value", "context"], "mean": [0.9, 0.3, 0.05],
                       "hdi_low": [0.5, 0.2, 0.0], "hdi_high": [1.4, 0.5, 0.1]})
    with plots.style():
        fig = plots.variance_components(sd, hdi_prob=0.94)
    assert len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["context", "value", "model"]


def test_rank_plot_counts_every_draw_per_chain():
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(3, 400))
    stuck = np.stack([rng.normal(0, 1, 400), rng.normal(50, 1, 400)])
    with plots.style():
        fig = plots.rank_plot({"mixed": mixed, "stuck": stuck}, bins=10)
    for ax, draws in zip(fig.axes, (mixed, stuck), strict=False):
        steps = [p for p in ax.patches]
        assert len(steps) == draws.shape[0]
        assert all(s.get_data().values.sum() == draws.shape[1] for s in steps)
    low_chain, high_chain = (s.get_data().values for s in fig.axes[1].patches)
    assert low_chain[:5].sum() == 400 and high_chain[5:].sum() == 400  # separated chains are visible


def _ladder(fitted: bool = True) -> pd.DataFrame:
    """The synthetic published-scale example's size ladder: four families, close DVGRs that overlap."""
    points = pd.DataFrame({
        "family": ["gemini", "gemini", "gpt-4.1", "gpt-4.1", "gpt-4.1", "gpt-4o", "gpt-4o", "llama-3", "llama-3"],
        "model": ["gemini-2.0-flash", "gemini-2.0-flash-lite", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
                  "gpt-4o", "gpt-4o-mini", "llama-3-70b", "llama-3-8b"],
        "size_rank": [2, 1, 3, 2, 1, 2, 1, 2, 1],
        "dvgr_mean": [0.398, 0.345, 0.245, 0.229, 0.353, 0.251, 0.277, 0.243, 0.364],
    })
    points["dvgr_hdi_low"], points["dvgr_hdi_high"] = points["dvgr_mean"] - 0.008, points["dvgr_mean"] + 0.008
    if fitted:
        points["fitted_mean"] = points["dvgr_mean"] + np.linspace(-0.04, 0.04, len(points))
        points["fitted_hdi_low"], points["fitted_hdi_high"] = points["fitted_mean"] - 0.1, points["fitted_mean"] + 0.1
    return points


def test_scaling_one_panel_per_family_with_the_pooled_fit():
    points = _ladder()
    with plots.style():
        fig = plots.scaling(points, hdi_prob=0.94, slope_label="pooled slope -0.14")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in panels] == ["gemini", "gpt-4.1", "gpt-4o", "llama-3"]
    ticks = [[t.get_text() for t in ax.get_xticklabels()] for ax in panels]
    assert ticks[1] == ["gpt-4.1-nano", "gpt-4.1-mini", "gpt-4.1"]  # smallest to largest
    # the pooled fit is drawn dashed at the fitted means, its HDI as a band
    fitted = points[points["family"] == "gpt-4.1"].sort_values("size_rank")
    dashed = [line for line in panels[1].get_lines() if line.get_linestyle() == "--" and len(line.get_xdata()) == 3]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), fitted["fitted_mean"])
    assert len(panels[1].collections) >= 1
    # zoomed: the 0.016-wide HDIs take a visible share of the axis, and chance stays on it
    low, high = panels[0].get_ylim()
    assert low <= 0.5 <= high and 0.016 / (high - low) > 0.03
    # slanted model names are parallel strips: they cannot touch when neighbouring anchors are
    # at least one text height apart across the slant
    fig.canvas.draw()
    anchors = sorted((ax.transData.transform((t.get_position()[0], 0))[0], t)
                     for ax in panels for t in _shown_labels(ax, "x"))
    for (x0, left), (x1, _) in zip(anchors, anchors[1:]):
        across = (x1 - x0) * np.sin(np.radians(left.get_rotation()))
        assert across >= left.get_fontsize() * fig.dpi / 72, left.get_text()
    _labels_inside(fig)


def test_scaling_without_fit_and_with_chance_off_the_axis():
    points = _ladder(fitted=False)
    points[["dvgr_mean", "dvgr_hdi_low", "dvgr_hdi_high"]] -= 0.19  # all DVGRs near 0.05-0.2
    with plots.style():
        fig = plots.scaling(points, hdi_prob=0.94)
    ax = fig.axes[0]
    assert not [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert ax.get_ylim()[1] < 0.5
    assert any("chance (0.5) is above the axis" in t.get_text() for t in ax.texts)


def test_zoom_keeps_chance_only_within_reach():
    assert plots.zoom(0.22, 0.41, pad=0) == (0.22, 0.5)  # 0.5 lies within one data span: kept
    low, high = plots.zoom(0.02, 0.08, pad=0)
    assert (low, high) == pytest.approx((0.02, 0.08))  # 0.5 is 7 spans away: the data decide
    assert plots.zoom(0.0, 0.98) == (0.0, 1.0)  # never beyond [0, 1]
    low, high = plots.zoom(0.3, 0.3, reference=0.9, pad=0.5)  # a single point still gets an axis
    assert (low, high) == pytest.approx((0.3 - 0.5 * plots.MIN_SPAN, 0.3 + 0.5 * plots.MIN_SPAN))


def test_ppc_panels_and_rate_lines():
    ppc = pd.DataFrame({"by": ["model", "model", "value"], "level": ["a", "b", "fidelity"],
                        "observed": [0.3, 0.5, 0.4], "predicted_mean": [0.31, 0.45, 0.4],
                        "predicted_low": [0.28, 0.42, 0.37], "predicted_high": [0.34, 0.48, 0.43]})
    rates = pd.DataFrame({"n_train": [4, 40, 4, 40], "group": ["a", "a", "overall", "overall"],
                          "rate": [0.3, 0.28, 0.31, 0.29]})
    with plots.style():
        fig = plots.posterior_predictive(ppc, interval_label="94% interval")
        lines = plots.rate_lines(rates, x="n_train", xlabel="n", log_x=True)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["by model", "by value"]
    assert [t.get_text() for t in lines.axes[0].get_legend().get_texts()] == ["a", "overall"]


def test_style_uses_colour_blind_palette_and_restores():
    before = plt.rcParams["axes.prop_cycle"]
    with plots.style():
        cycle = [to_hex(c["color"]) for c in plt.rcParams["axes.prop_cycle"]]
        assert cycle[:3] == sns.color_palette("colorblind").as_hex()[:3]
    assert plt.rcParams["axes.prop_cycle"] == before


def test_save_writes_png_and_closes(tmp_path):
    with plots.style():
        fig = plots.bar_rates(pd.Series([0.03, 0.1], index=["a", "b"]), xlabel="unparsed")
    path = plots.save(fig, tmp_path / "f" / "x.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
