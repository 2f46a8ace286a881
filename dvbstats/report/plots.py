"""Figures for dvbstats reports, in one style.

Every function takes tables (pandas DataFrames with the run-folder columns) or arrays and
returns a matplotlib :class:`~matplotlib.figure.Figure`; nothing here computes a statistic.
Figures are drawn inside :func:`style` (seaborn's colour-blind palette, the Okabe–Ito
colours, constrained layout so that long model names are never cut off) and grow with the
number of rows they show.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from matplotlib.figure import Figure  # noqa: E402

from dvbstats.constants import CHANCE, HDI_PROB  # noqa: E402  (CHANCE: DVGR of a model that ignores the deep value)
from dvbstats.results import tables as summaries  # noqa: E402
from dvbstats.results.fitted import Fit, provide  # noqa: E402

#: Okabe & Ito (2008) colours, safe for the common colour-vision deficiencies.
OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
POSTERIOR = OKABE_ITO["blue"]
RAW = OKABE_ITO["orange"]
OBSERVED = OKABE_ITO["vermillion"]
FITTED = OKABE_ITO["orange"]
REFERENCE = "#555555"
#: Diverging map centred on chance for DVGR heatmaps (blue below 0.5, red above).
DVGR_CMAP = "RdBu_r"

#: Smallest data span a zoomed probability axis is built around (a single point still gets an axis).
MIN_SPAN = 0.05
#: Families per row of the scaling figure.
SCALING_COLUMNS = 4
ROW_HEIGHT = 0.32  # inches per labelled row
WIDTH = 7.5  # inches; the report's text width


@contextmanager
def style() -> Iterator[None]:
    """Draw inside the report style: white grid, colour-blind palette, readable fonts."""
    rc = {
        "figure.constrained_layout.use": True,
        "figure.dpi": 100,
        "savefig.dpi": 110,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.labelsize": 10,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 9,
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with sns.axes_style("whitegrid"), sns.color_palette("colorblind"), plt.rc_context(rc):
        yield


def save(fig: Figure, path: Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG and close it (figures are not kept open between sections)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def _height(n_rows: int, extra: float = 1.2) -> float:
    return max(2.4, ROW_HEIGHT * n_rows + extra)


def zoom(low: float, high: float, *, reference: float = CHANCE, reach: float = 1.0,
         pad: float = 0.06) -> tuple[float, float]:
    """Limits of a probability axis fitted to the data ``[low, high]`` rather than to ``[0, 1]``.

    Intervals of a few hundredths are invisible on a 0–1 axis, so the axis spans the data plus a
    margin; it is stretched to include ``reference`` (chance) when that lies within ``reach``
    data spans of the data, so the comparison with chance stays on the page. Limits stay in [0, 1].
    """
    span = max(high - low, MIN_SPAN)
    if low - reach * span <= reference <= high + reach * span:
        low, high = min(low, reference), max(high, reference)
    margin = pad * max(high - low, MIN_SPAN)
    return max(0.0, low - margin), min(1.0, high + margin)


#: The reference line of a rate axis and its name in legends: DVB's chance. Other benchmarks pass their own
#: (``Benchmark.reference`` and ``wording["reference_short"]``); None draws no line.
Reference = tuple[float, str] | None
CHANCE_LINE: Reference = (CHANCE, "chance")


def _zoom_to(ends: np.ndarray, reference: Reference) -> tuple[float, float]:
    """:func:`zoom` of the finite ``ends``, towards the reference line when there is one."""
    low, high = np.nanmin(ends), np.nanmax(ends)
    return zoom(low, high, reference=reference[0]) if reference else zoom(low, high, reach=-1.0)


def _chance(ax: plt.Axes, limits: tuple[float, float], *, axis: str, reference: Reference = CHANCE_LINE) -> None:
    """Set ``limits`` on ``axis`` and draw the reference line, or say where it lies off the axis."""
    low, high = limits
    (ax.set_xlim if axis == "x" else ax.set_ylim)(low, high)
    if reference is None:
        return
    value, name = reference
    if low <= value <= high:
        line = ax.axvline if axis == "x" else ax.axhline
        line(value, color=REFERENCE, linestyle="--", linewidth=1, label=f"{name} ({value:g})")
        return
    above = value > high
    where = ("right of" if above else "left of") if axis == "x" else ("above" if above else "below")
    text = f"{name} ({value:g}) is {where} the axis"
    if axis == "x":
        ax.text(1.0 if above else 0.0, 1.01, text + (" →" if above else ""), transform=ax.transAxes,
                ha="right" if above else "left", va="bottom", fontsize=8, color=REFERENCE)
    else:
        ax.text(0.01, 0.99 if above else 0.01, text, transform=ax.transAxes, ha="left",
                va="top" if above else "bottom", fontsize=8, color=REFERENCE)


def _legend_entries(ax: plt.Axes) -> tuple[list, list[str]]:
    """``ax``'s legend handles and labels, the posterior first and the reference line last."""
    handles, labels = ax.get_legend_handles_labels()
    lines = {line.get_label() for line in ax.get_lines() if line.get_linestyle() == "--" and line.get_color() == REFERENCE}
    order = sorted(range(len(labels)), key=lambda i: (labels[i] in lines,
                                                       not labels[i].startswith("posterior")))
    return [handles[i] for i in order], [labels[i] for i in order]


def _interval_rows(
    ax: plt.Axes,
    y: np.ndarray,
    centre: pd.Series,
    low: pd.Series,
    high: pd.Series,
    *,
    color: str,
    label: str,
    marker: str = "o",
) -> None:
    ax.errorbar(
        centre,
        y,
        # an interval that misses its centre by a rounding error (an old run's Wilson limit at 0% or 100%)
        xerr=np.clip(np.vstack([centre - low, high - centre]), 0, None),
        fmt=marker,
        color=color,
        ecolor=color,
        elinewidth=1.6,
        markersize=5,
        capsize=0,
        label=label,
    )


#: The forest plot's axis label for DVB.
FOREST_XLABEL = "DVGR = P(model follows the deep value)"


def forest(dvgr: pd.DataFrame, *, hdi_prob: float, overall: pd.Series | None = None,
           xlabel: str = FOREST_XLABEL, reference: Reference = CHANCE_LINE) -> Figure:
    """Posterior DVGR with its HDI per model, the raw rate with its Wilson interval beside it.

    ``dvgr`` has the run's ``dvgr.csv`` columns, one row per model, in the order to draw
    (top to bottom); ``overall`` is the ``model = "overall"`` row, drawn below a rule.
    """
    rows = pd.concat([dvgr, overall.to_frame().T]) if overall is not None else dvgr
    n = len(rows)
    fig, ax = plt.subplots(figsize=(WIDTH, _height(n)))
    y = np.arange(n)[::-1].astype(float)
    _interval_rows(
        ax, y + 0.15, rows["dvgr_mean"].astype(float), rows["dvgr_hdi_low"].astype(float),
        rows["dvgr_hdi_high"].astype(float), color=POSTERIOR,
        label=f"posterior mean, {hdi_prob:.0%} HDI",
    )
    _interval_rows(
        ax, y - 0.15, rows["raw_dvgr"].astype(float), rows["wilson_low"].astype(float),
        rows["wilson_high"].astype(float), color=RAW, marker="s",
        label="raw rate, Wilson 95% CI",
    )
    if overall is not None:
        ax.axhline(0.5, color=REFERENCE, linewidth=0.8)
    ax.set_yticks(y, rows["model"].astype(str))
    ax.set_ylim(-0.7, n - 0.3)
    ends = rows[["dvgr_hdi_low", "dvgr_hdi_high", "wilson_low", "wilson_high"]].to_numpy(dtype=float)
    _chance(ax, _zoom_to(ends, reference), axis="x", reference=reference)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    fig.legend(*_legend_entries(ax), loc="outside lower center", ncol=3)
    return fig


def fit_forest(fit: Fit, hdi_prob: float = HDI_PROB) -> Figure:
    """:func:`forest` of a fit (``Fit.plot_forest``): its posterior rate per model with the HDI beside the raw rate
    and Wilson interval, and the overall rate."""
    table = summaries.dvgr_table(fit, hdi_prob, fit.settings.seed).to_pandas()
    models, overall = table[table["model"] != "overall"], table[table["model"] == "overall"].iloc[0]
    return forest(models, hdi_prob=hdi_prob, overall=overall)


provide(plot_forest=fit_forest)


def heatmap(table: pd.DataFrame, *, colorbar_label: str) -> Figure:
    """Annotated heatmap of a model x factor table of rates, diverging around chance."""
    n_rows, n_cols = table.shape
    width = min(max(WIDTH, 0.62 * n_cols + 3.0), 12.0)
    fig, ax = plt.subplots(figsize=(width, _height(n_rows, extra=2.0) + 0.15 * n_rows))
    sns.heatmap(
        table.astype(float), ax=ax, cmap=DVGR_CMAP, center=CHANCE, vmin=0, vmax=1,
        annot=True, fmt=".2f", annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white",
        cbar_kws={"label": colorbar_label, "shrink": 0.8},
    )
    ax.set_xlabel(str(table.columns.name or ""))
    ax.set_ylabel(str(table.index.name or ""))
    ax.tick_params(axis="x", rotation=40)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.tick_params(axis="y", rotation=0)
    return fig


def effects(table: pd.DataFrame, *, hdi_prob: float, reference: float, xlabel: str) -> Figure:
    """Per-level estimates with HDIs, one panel per term, a dashed line at ``reference``.

    ``table`` has ``term, level, mean, hdi_low, hdi_high`` (as ``random_effects.csv``); levels
    are drawn in the given order within each term.
    """
    terms = list(dict.fromkeys(table["term"]))
    sizes = [int((table["term"] == t).sum()) for t in terms]
    fig, axes = plt.subplots(
        len(terms), 1, figsize=(WIDTH, _height(sum(sizes), extra=0.9 * len(terms))),
        height_ratios=[s + 1.5 for s in sizes], sharex=True, squeeze=False,
    )
    for ax, term in zip(axes[:, 0], terms, strict=True):
        rows = table[table["term"] == term]
        y = np.arange(len(rows))[::-1]
        _interval_rows(ax, y, rows["mean"], rows["hdi_low"], rows["hdi_high"],
                       color=POSTERIOR, label=f"{hdi_prob:.0%} HDI")
        ax.axvline(reference, color=REFERENCE, linestyle="--", linewidth=1)
        ax.set_yticks(y, rows["level"].astype(str))
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(term, loc="left")
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel(xlabel)
    return fig


def variance_components(sd: pd.DataFrame, *, hdi_prob: float) -> Figure:
    """Posterior SDs of the random effects on one axis: which factor moves choices most."""
    rows = sd.sort_values("mean", ascending=True)
    n = len(rows)
    fig, ax = plt.subplots(figsize=(WIDTH, _height(n, extra=1.0)))
    y = np.arange(n)
    _interval_rows(ax, y, rows["mean"], rows["hdi_low"], rows["hdi_high"],
                   color=POSTERIOR, label=f"posterior mean, {hdi_prob:.0%} HDI")
    ax.set_yticks(y, rows["term"].astype(str))
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(left=0)
    ax.set_xlabel("standard deviation between levels (log-odds scale)")
    ax.grid(axis="y", visible=False)
    return fig


def rate_lines(rates: pd.DataFrame, *, x: str, xlabel: str, log_x: bool = False,
               order: Sequence[str] | None = None) -> Figure:
    """Observed rate against ``x`` with one line per ``group`` (e.g. DVGR by training-set size).

    ``rates`` has columns ``x, group, rate``; groups are drawn in ``order`` (default: as they
    come); a group named ``"overall"`` is drawn black and thick.
    """
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    present = list(dict.fromkeys(rates["group"]))
    groups = [g for g in (order or present) if g in present and g != "overall"]
    palette = sns.color_palette("colorblind", max(len(groups), 1))
    for colour, group in zip(palette, groups, strict=False):
        rows = rates[rates["group"] == group].sort_values(x)
        ax.plot(rows[x], rows["rate"], marker="o", color=colour, label=group, linewidth=1.3)
    if "overall" in set(rates["group"]):
        rows = rates[rates["group"] == "overall"].sort_values(x)
        ax.plot(rows[x], rows["rate"], marker="D", color="black", linewidth=2.6, label="overall")
    _chance(ax, zoom(float(rates["rate"].min()), float(rates["rate"].max())), axis="y")
    if log_x:
        ax.set_xscale("log")
    ticks = sorted(set(rates[x]))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("observed DVGR")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def scaling(points: pd.DataFrame, *, hdi_prob: float, slope_label: str | None = None, rate: str = "DVGR",
            reference: Reference = CHANCE_LINE) -> Figure:
    """Posterior ``rate`` (DVGR) against size within family: one panel per family on a shared, zoomed axis.

    ``points`` has ``family, model, size_rank, dvgr_mean, dvgr_hdi_low, dvgr_hdi_high``; with
    ``fitted_mean, fitted_hdi_low, fitted_hdi_high`` (the pooled-slope model's fitted DVGR per
    model, ``scaling_models.csv``) each panel also shows the fitted line with its band, so the
    pooled trend is seen against every family's own points. Panels are labelled with the family,
    ticks with the model names (smallest left), so no label can overlap another; ``slope_label``
    (the pooled slope with its interval) is the figure's subtitle.
    """
    families = list(dict.fromkeys(points["family"]))
    fitted = {"fitted_mean", "fitted_hdi_low", "fitted_hdi_high"} <= set(points.columns)
    n_cols = min(len(families), SCALING_COLUMNS)
    n_rows = int(np.ceil(len(families) / n_cols))
    sizes = [int((points["family"] == f).sum()) for f in families]
    ratios = [s + 1 for s in sizes] if n_rows == 1 else None  # one row: panel width follows its models
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(WIDTH, 3.3 * n_rows + 0.9), sharey=True, squeeze=False,
                             width_ratios=ratios)
    bounds = ["dvgr_hdi_low", "dvgr_hdi_high", *(["fitted_hdi_low", "fitted_hdi_high"] if fitted else [])]
    ends = points[bounds].to_numpy(dtype=float)
    limits = _zoom_to(ends, reference)
    for ax, family in zip(axes.flat, families, strict=False):
        rows = points[points["family"] == family].sort_values("size_rank")
        x = np.arange(len(rows), dtype=float)
        if fitted:
            ax.fill_between(x, rows["fitted_hdi_low"].astype(float), rows["fitted_hdi_high"].astype(float),
                            color=FITTED, alpha=0.18, linewidth=0, label=f"pooled-slope fit, {hdi_prob:.0%} HDI")
            ax.plot(x, rows["fitted_mean"].astype(float), color=FITTED, linestyle="--", linewidth=1.8,
                    label="pooled-slope fit, mean")
        mean = rows["dvgr_mean"].astype(float)
        ax.errorbar(x, mean, yerr=np.vstack([mean - rows["dvgr_hdi_low"], rows["dvgr_hdi_high"] - mean]),
                    fmt="o-", color=POSTERIOR, linewidth=1, elinewidth=1.6, markersize=5, capsize=0,
                    label=f"posterior {rate}, {hdi_prob:.0%} HDI")
        _chance(ax, limits, axis="y", reference=reference)
        ax.set_xticks(x, rows["model"].astype(str), rotation=35, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_title(str(family), loc="left")
        ax.grid(axis="x", visible=False)
    for ax in list(axes.flat)[len(families):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"posterior {rate}")
    if slope_label:
        fig.suptitle(slope_label, x=0.01, ha="left", fontsize=9, fontweight="normal")
    fig.legend(*_legend_entries(axes[0, 0]), loc="outside lower center", ncol=2)
    return fig


def posterior_predictive(ppc: pd.DataFrame, *, interval_label: str, xlabel: str = "DVGR",
                         reference: float | None = CHANCE) -> Figure:
    """Observed rates against posterior predictive intervals, one panel per grouping.

    ``ppc`` has the columns of ``ppc.csv`` (``by, level, observed, predicted_mean,
    predicted_low, predicted_high``); a level whose cross falls outside its bar is a misfit.
    """
    groups = list(dict.fromkeys(ppc["by"]))
    sizes = [int((ppc["by"] == g).sum()) for g in groups]
    fig, axes = plt.subplots(
        1, len(groups), figsize=(WIDTH if len(groups) < 3 else 10.0, _height(max(sizes), extra=1.4)),
        squeeze=False, sharex=True,
    )
    for ax, group in zip(axes[0], groups, strict=True):
        rows = ppc[ppc["by"] == group]
        y = np.arange(len(rows))[::-1]
        _interval_rows(ax, y, rows["predicted_mean"], rows["predicted_low"], rows["predicted_high"],
                       color=POSTERIOR, label=f"predicted ({interval_label})")
        ax.scatter(rows["observed"], y, marker="x", color=OBSERVED, s=40, zorder=3, label="observed")
        if reference is not None:  # the benchmark's reference line (none for a binary benchmark without one)
            ax.axvline(reference, color=REFERENCE, linestyle="--", linewidth=1)
        ax.set_yticks(y, rows["level"].astype(str))
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(f"by {group}", loc="left")
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", visible=False)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
    return fig


def rank_plot(draws: Mapping[str, np.ndarray], *, bins: int = 20) -> Figure:
    """Rank plots (Vehtari et al. 2021): per parameter, a histogram of each chain's ranks.

    ``draws`` maps a parameter label to a ``(chain, draw)`` array. Ranks are taken over all
    chains pooled; well-mixed chains give flat, overlapping histograms near the dashed line.
    """
    names = list(draws)
    n_cols = min(3, len(names))
    n_rows = int(np.ceil(len(names) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(WIDTH if n_cols > 1 else 4.0, 2.1 * n_rows + 0.6),
                             squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        values = np.asarray(draws[name], dtype=float)
        ranks = values.ravel().argsort(kind="stable").argsort().reshape(values.shape)
        edges = np.linspace(0, ranks.size, bins + 1)
        palette = sns.color_palette("colorblind", values.shape[0])
        for chain, colour in zip(ranks, palette, strict=True):
            counts, _ = np.histogram(chain, bins=edges)
            ax.stairs(counts, edges, baseline=None, color=colour, linewidth=1.3)
        ax.axhline(values.shape[1] / bins, color=REFERENCE, linestyle="--", linewidth=1)
        ax.set_ylim(0, None)
        ax.set_title(name, loc="left", fontsize=9)
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_xlabel("rank (all chains)", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    return fig


def bar_rates(rates: pd.Series, *, xlabel: str) -> Figure:
    """Horizontal bars of a per-level rate (e.g. the share of unparseable responses per model)."""
    fig, ax = plt.subplots(figsize=(WIDTH, _height(len(rates), extra=1.0)))
    y = np.arange(len(rates))[::-1]
    ax.barh(y, rates.to_numpy(dtype=float), color=RAW, height=0.6)
    ax.set_yticks(y, [str(i) for i in rates.index])
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(axis="y", visible=False)
    return fig


def as_wide(table: pd.DataFrame, *, index: str, columns: str, values: str,
            index_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Pivot a long table to the model x factor grid :func:`heatmap` draws."""
    wide = table.pivot(index=index, columns=columns, values=values)
    if index_order is not None:
        wide = wide.reindex([i for i in index_order if i in wide.index])
    return wide


#: Model x model heatmaps annotate their cells up to this many models (beyond it a cell is too small for a number).
ANNOTATED_MODELS = 20


def pair_heatmaps(panels: Mapping[str, pd.DataFrame], *, groups: Sequence[str]) -> Figure:
    """Symmetric model x model heatmaps one above the other (e.g. raw agreement and Cohen's kappa).

    ``panels`` maps a colour-bar label to a square table (rows and columns in the same order);
    ``groups`` gives each row's group (developer, family), and black rules separate the groups, so
    same-group blocks sit on the diagonal. Each panel has its own sequential colour scale. Panels take the report's
    text width, so the cell numbers print at their size in the page, and each colour bar is as tall as its heatmap
    (cells are made about square by the figure's height, not by shrinking the axes).
    """
    n = len(next(iter(panels.values())))
    names = max((len(str(m)) for m in next(iter(panels.values())).index), default=1)
    label_room = 0.065 * names  # inches a tick label takes (rotated labels below, plain ones on the left)
    cell = min(0.45, (WIDTH - label_room - 1.4) / n)
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH, len(panels) * (cell * n + 0.75 * label_room + 0.4)),
                             squeeze=False)
    cuts = [i for i in range(1, n) if groups[i] != groups[i - 1]]
    for ax, (label, table) in zip(axes[:, 0], panels.items(), strict=True):
        sns.heatmap(table.astype(float), ax=ax, cmap="viridis", annot=n <= ANNOTATED_MODELS, fmt=".2f",
                    annot_kws={"fontsize": 8 if n <= 12 else 7}, cbar_kws={"label": label},
                    linewidths=0.3, linecolor="white")
        for cut in cuts:
            ax.axhline(cut, color="black", linewidth=1.6)
            ax.axvline(cut, color="black", linewidth=1.6)
        ax.grid(False)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=45)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
        ax.tick_params(axis="y", rotation=0)
    return fig


def paired_p_values(tests: pd.DataFrame, *, alpha: float = 0.05) -> Figure:
    """Per pair of models: -log10 p of the unpaired chi-square (x) against McNemar's paired test (y).

    ``tests`` has ``chi2_p`` and ``mcnemar_p`` (``paired_tests.csv``); points above the diagonal
    are pairs the paired test finds clearer than the unpaired one. Dashed lines: ``alpha``.
    """
    floor = np.finfo(float).tiny  # a p-value that underflowed to 0 is drawn at the smallest double
    x = -np.log10(np.clip(tests["chi2_p"].to_numpy(dtype=float), floor, 1))
    y = -np.log10(np.clip(tests["mcnemar_p"].to_numpy(dtype=float), floor, 1))
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    top = max(np.nanmax(x), np.nanmax(y), 2.0) * 1.05
    ax.plot([0, top], [0, top], color=REFERENCE, linewidth=1, label="equal p-values")
    ax.scatter(x, y, color=POSTERIOR, s=22, zorder=3, label="pair of models")
    ax.axvline(-np.log10(alpha), color=REFERENCE, linestyle="--", linewidth=0.8)
    ax.axhline(-np.log10(alpha), color=REFERENCE, linestyle="--", linewidth=0.8, label=f"p = {alpha:g}")
    ax.set_xscale("symlog", linthresh=2)
    ax.set_yscale("symlog", linthresh=2)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("unpaired chi-square: -log10 p")
    ax.set_ylabel("paired McNemar (exact): -log10 p")
    ax.legend(loc="upper left")
    return fig


def rank_intervals(ranks: pd.DataFrame, *, interval: float, names: tuple[str, str] = ("P(best)", "P(worst)"),
                   xlabel: str = "rank by design-averaged rate (1 = highest)") -> Figure:
    """Posterior ranks per level: mean rank with its central rank interval, and P(rank 1) and P(last rank)
    beside each row, called ``names`` (the benchmark's words: "P(lowest MR)"). ``ranks`` has the
    ``ranks.csv`` columns, rows in drawing order (top to bottom)."""
    n = len(ranks)
    fig, ax = plt.subplots(figsize=(WIDTH, _height(n)))
    y = np.arange(n)[::-1].astype(float)
    # The mean rank can lie outside a rank interval of whole numbers (mean 1.02, interval 1-1).
    ax.hlines(y, ranks["rank_low"].astype(float), ranks["rank_high"].astype(float), color=POSTERIOR,
              linewidth=1.6, label=f"{interval:.0%} rank interval")
    ax.plot(ranks["mean_rank"].astype(float), y, "o", color=POSTERIOR, markersize=5, label="mean rank")
    for yi, best, worst in zip(y, ranks["p_best"], ranks["p_worst"], strict=True):
        ax.text(1.01, yi, f"{names[0]} {best:.2f}  {names[1]} {worst:.2f}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8, color=REFERENCE)
    ax.set_yticks(y, ranks["level"].astype(str))
    ax.set_xticks(np.arange(1, n + 1))
    ax.set_xlim(0.5, n + 0.5)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    fig.legend(*_legend_entries(ax), loc="outside lower center", ncol=2)
    return fig


def odds_ratios(estimates: pd.DataFrame, *, reference: pd.Series | None = None) -> Figure:
    """Odds ratios per term from several analyses, on a log axis with OR = 1 marked.

    ``estimates`` has ``term, analysis, odds_ratio, low, high`` (one row per term and analysis, drawn
    in order); ``reference`` maps a term to a published point value, drawn as a diamond.
    """
    terms = list(dict.fromkeys(estimates["term"]))
    analyses = list(dict.fromkeys(estimates["analysis"]))
    colours = [POSTERIOR, RAW, OKABE_ITO["green"], OKABE_ITO["purple"]]
    fig, ax = plt.subplots(figsize=(WIDTH, _height(2 * len(terms))))
    y = np.arange(len(terms))[::-1].astype(float)
    offsets = np.linspace(0.2, -0.2, len(analyses))
    for analysis, offset, colour in zip(analyses, offsets, colours, strict=False):
        rows = estimates[estimates["analysis"] == analysis].set_index("term").reindex(terms)
        _interval_rows(ax, y + offset, rows["odds_ratio"].astype(float), rows["low"].astype(float),
                       rows["high"].astype(float), color=colour, label=analysis)
    if reference is not None:
        ref = reference.reindex(terms)
        ax.plot(ref.to_numpy(dtype=float), y, "D", color=OKABE_ITO["black"], markersize=6, label="published",
                linestyle="none")
    ax.axvline(1.0, color=REFERENCE, linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ends = estimates[["low", "high"]].to_numpy(dtype=float)
    ticks = np.arange(np.floor(np.nanmin(ends) * 10), np.ceil(np.nanmax(ends) * 10) + 1) / 10
    ax.set_xticks(ticks, [f"{x:.1f}" for x in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y, terms)
    ax.set_ylim(-0.7, len(terms) - 0.3)
    ax.set_xlabel("odds ratio per rating point (log scale)")
    ax.grid(axis="y", visible=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=len(analyses) + 1)
    return fig
