"""The report's markdown: number formats, pipe tables, callouts, sections, figures; every string from the run
enters through :mod:`dvbstats.report.markup`.

The ``.qmd`` is plain Quarto markdown: a YAML header, numbered sections with ``{#sec-...}`` ids, figures
``![caption](figures/x.png){#fig-x}``, pipe tables with ``: caption {#tbl-x}``, ``@fig-x`` / ``@tbl-x`` /
``@sec-x`` cross-references and ``::: {.callout-...}`` callouts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from dvbstats.input.runfolder import RunFolder
from dvbstats.report import markup
from dvbstats.report import plots
from dvbstats.report.markup import text as escape
from dvbstats.results import bounds


FIGURES = "figures"


def fmt_p(p: float) -> str:
    """A p-value: three decimals, scientific below 0.001, a bound where it underflowed to 0."""
    if math.isnan(p):
        return "–"
    if p == 0:
        return "<1e-300"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_int(x: float) -> str:
    """A count with thousands separators (``–`` when missing)."""
    return "–" if pd.isna(x) else f"{int(x):,}"


def fmt_num(x: float, digits: int = 2) -> str:
    """A number with ``digits`` decimals (``–`` when missing)."""
    return "–" if pd.isna(x) else f"{float(x):.{digits}f}"


def fmt_date(stamp: object) -> str:
    """An ISO 8601 time stamp for readers: ``23 November 2026, 11:25 UTC`` (as given when not ISO).

    A stamp with a UTC offset is converted to UTC; one without an offset is printed without a zone.
    """
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    zone = ""
    if when.tzinfo is not None:
        when, zone = when.astimezone(UTC), " UTC"
    return f"{when.day} {when:%B %Y, %H:%M}{zone}"


def fmt_timing(timing: dict) -> str:
    """Stage timings ``{"sample_s": 41.49, ...}`` as ``sample 41.5 s · ...`` (other values as given)."""
    return " · ".join(
        f"{escape(k.removesuffix('_s'))} {v:.1f} s" if k.endswith("_s") and isinstance(v, int | float)
        else f"{escape(k)} {escape(v)}" for k, v in timing.items()
    )


def md_table(rows: pd.DataFrame, *, caption: str, label: str, align: str | None = None) -> str:
    """A pipe table with a Quarto table caption ``: caption {#tbl-label}``.

    ``rows`` holds the cell texts (already formatted); ``align`` gives one of ``l r c`` per column
    (default: first column left, the rest right).
    """
    align = align or "l" + "r" * (rows.shape[1] - 1)
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(escape(c) for c in rows.columns) + " |",
        "|" + "|".join(rule[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows.itertuples(index=False)]
    return "\n".join(lines) + f"\n\n: {caption} {{#tbl-{label}}}"


def callout(kind: str, title: str, body: str) -> str:
    """A Quarto callout block (``note``, ``warning``, ``important``, ``tip``, ``caution``)."""
    return f"::: {{.callout-{kind}}}\n## {title}\n\n{body}\n:::"


def absent(what: str) -> str:
    """The one line a section shows when its inputs are not in the run."""
    return f"*Not available for this run: {what}.*"


def bounded(what: str, shown: int, total: int, where: str) -> str:
    """The line that says a table lists only ``shown`` of ``total`` rows, and where the rest are."""
    return (f"*{escape(what)}: {shown:,} of {total:,} rows shown (a report lists at most "
            f"{bounds.MAX_PAIR_ROWS} pairs); every row is in {where}.*")


def section(title: str, label: str, *blocks: str) -> str:
    """A top-level section ``# title {#sec-label}`` followed by its blocks."""
    return "\n\n".join([f"# {title} {{#sec-{label}}}", *[b for b in blocks if b]])


class Figures:
    """Saves figures under ``<report>/figures`` and returns their Quarto markdown."""

    def __init__(self, report_dir: Path) -> None:
        self.report_dir = report_dir

    def __call__(self, draw: Callable[[], plots.Figure], label: str, caption: str, alt: str) -> str:
        with plots.style():
            fig = draw()
        plots.save(fig, self.report_dir / FIGURES / f"{label}.png")
        return f'![{caption}]({FIGURES}/{label}.png){{#fig-{label} fig-alt="{markup.attribute(alt)}"}}'


def frame(run: RunFolder, name: str) -> pd.DataFrame | None:
    """The run's table ``name`` as pandas (what the plots and the markdown tables take), or None if absent."""
    table = run.table(name)
    return None if table is None else table.to_pandas()


def plural(noun: str) -> str:
    """``family`` -> ``families``, ``developer`` -> ``developers``."""
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def safe_label(text: str) -> str:
    """A cross-reference label from any level name."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"
