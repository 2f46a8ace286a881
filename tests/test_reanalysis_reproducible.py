"""The committed reanalysis report is what the code produces.

Re-runs ``python -m dvbstats.paper2025.reanalysis`` (its ``main``, in a temporary working directory) with the settings of the committed report (the
package defaults: 4 chains x 1000 draws, 500 tuning, seed 20251; the value audit 2000 x 2000) and
compares the rendered ``report.qmd`` with ``reports/dvb2025_reanalysis/report.qmd`` line by line:
every table, every verdict and every borderline label must be equal; only the render date, the
creation time and the stage timings may differ. A code change that moves a number must re-render the
committed report (``python -m dvbstats.paper2025.reanalysis`` at the repository root) in the same commit.
The sampler is deterministic given the seed on one platform; another BLAS or CPU can move last digits.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "reports" / "dvb2025_reanalysis" / "report.qmd"
SCRIPT = REPO / "dvbstats/paper2025/reanalysis.py"
#: Lines that depend on when and how fast the report was made, not on the code.
VOLATILE = re.compile(r'^(date: ".*"|- \*\*Created\*\*: .*|- \*\*Timing\*\*: .*)$')

pytestmark = pytest.mark.slow


def _stable(text: str) -> list[str]:
    return [line for line in text.splitlines() if not VOLATILE.match(line)]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> tuple[Path, Path]:
    spec = importlib.util.spec_from_file_location("dvb2025_reanalysis", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tmp = tmp_path_factory.mktemp("reproduce")
    here = Path.cwd()
    os.chdir(tmp)  # the command's relative output folders, as at the repository root
    try:
        assert script.main([]) == 0
    finally:
        os.chdir(here)
    return tmp / script.OUT, tmp / script.REPORTS / script.NAME / "report.qmd"


def test_committed_report_uses_the_default_settings():
    text = COMMITTED.read_text(encoding="utf-8")
    for setting, value in (("draws", 1000), ("tune", 500), ("chains", 4), ("seed", 20251)):
        assert f"| {setting} | {value} |" in text


def test_verdicts_equal_the_committed_report(fresh):
    run_dir, _ = fresh
    committed = COMMITTED.read_text(encoding="utf-8")
    claims = pl.read_csv(run_dir / "published_vs_reanalysis.csv")
    for r in claims.iter_rows(named=True):
        heading = f"## {r['claim']}: {r['verdict']}" + (" (borderline)" if r["borderline"] else "")
        assert heading in committed.splitlines(), f"committed report lacks {heading!r}"


def test_committed_report_equals_the_codes_output(fresh):
    _, qmd = fresh
    got, want = _stable(qmd.read_text(encoding="utf-8")), _stable(COMMITTED.read_text(encoding="utf-8"))
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(want, got)) if a != b]
    assert len(got) == len(want) and not diff, (
        f"{len(diff)} lines differ (first: line {diff[0][0] + 1}: committed {diff[0][1]!r}, code {diff[0][2]!r}); "
        "re-render with python -m dvbstats.paper2025.reanalysis" if diff else "line counts differ")
