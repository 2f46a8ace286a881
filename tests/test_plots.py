"""Figures: what they draw, that long labels fit, the palette, rank-plot arithmetic."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.colors import to_hex

from dvbstats import plots

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


def _labels_inside(fig) -> None:
    """Every tick label is drawn whole inside the figure (nothing truncated)."""
    fig.canvas.draw()
    box = fig.bbox
    for ax in fig.axes:
        for label in ax.get_yticklabels() + ax.get_xticklabels():
            if label.get_text():
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


def test_scaling_one_line_per_family():
    points = pd.DataFrame({"family": ["gpt", "gpt", "llama", "llama"], "model": ["s", "l", "8b", "70b"],
                           "size_rank": [1, 2, 1, 2], "dvgr_mean": [0.35, 0.25, 0.37, 0.24],
                           "dvgr_hdi_low": [0.3, 0.2, 0.33, 0.2], "dvgr_hdi_high": [0.4, 0.3, 0.41, 0.28]})
    with plots.style():
        fig = plots.scaling(points, hdi_prob=0.94, slope_label="slope -0.2")
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["gpt", "llama"]


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
