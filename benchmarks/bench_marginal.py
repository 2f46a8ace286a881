"""Item-effect fits end to end: the item effects integrated out (this checkout) against a reference checkout.

Issue 22's targets, each a ``python -m dvbstats.fit ... --no-report`` in a fresh process, this checkout and
the reference (the sampler of the full density, e.g. ``/work/main``) alternating, ``--runs`` pairs:

* ``hvsb``: the embedded HVSB example, default formula with ``(1|item)`` (target <= 20 s);
* ``dvb-items``: the embedded DVB example at published scale with ``+ (1|prompt)`` (target <= 45 s);
* ``binary``: a simulated complete binary matrix of ``--models`` x ``--items`` (Rasch: model ability
  N(0, 1), item difficulty N(0, 1.5), intercept 0.3), the binary benchmark's default formula
  ``outcome ~ 1 + (1|model) + (1|item)`` (25 x 3,000: <= 15 s and <= 3x lme4's ``glmer`` on the same
  CSV, timed right after each pair when ``Rscript`` with lme4 is installed; 1,000 x 10,000: <= 10 min,
  peak <= 8 GB, ``--no-reference``: the full density at 10 M cells is hours).

``--gradients``: instead of fitting, the design's profiles and the CPU time of one log-density gradient of
the marginal density against the full one (the layout ``fit`` would choose), in this process; says whether
``fit`` would integrate the items out (``itemmarginal.MIN_SHARING``).

Prints per run wall and CPU seconds (all threads, children included), peak RSS, the manifest's
sampling seconds, diagnostics and whether the items were integrated out; then medians and the
per-pair ratio against the reference. The machine may be shared: read CPU seconds and ratios.

    python benchmarks/bench_marginal.py hvsb --runs 3 --reference /work/main
    python benchmarks/bench_marginal.py binary --models 25 --items 3000 --runs 3 --reference /work/main
    python benchmarks/bench_marginal.py binary --models 1000 --items 10000 --runs 1 --no-reference
    python benchmarks/bench_marginal.py hvsb --gradients
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

from benchmarks._common import describe, stamp, timed  # noqa: E402
from benchmarks.bench_items import gradient_ms  # noqa: E402
from dvbstats.benchmarks.hvsb import ITEM_FORMULA  # noqa: E402
from dvbstats.model import fastlogp, formula, itemmarginal  # noqa: E402
from dvbstats.model.design import design  # noqa: E402
from dvbstats.model.plan import term_parametrizations  # noqa: E402
from dvbstats.model.formula import DEFAULT_FORMULA  # noqa: E402
from dvbstats.model.priors import Priors  # noqa: E402

GLMER = ("suppressMessages(library(lme4)); d <- read.csv(commandArgs(TRUE)[1]); "
         "t <- system.time(m <- glmer(outcome ~ 1 + (1|model) + (1|item), family = binomial, data = d)); "
         "cat(t[['elapsed']], fixef(m)[[1]], attr(VarCorr(m)$item, 'stddev'), '\\n')")


def write_rasch(path: Path, n_models: int, n_items: int, seed: int) -> None:
    """A complete models x items matrix of 0/1 outcomes from a Rasch model, as the binary reader's CSV."""
    rng = np.random.default_rng(seed)
    ability, difficulty = rng.normal(0, 1, n_models), rng.normal(0, 1.5, n_items)
    with open(path, "w") as f:
        f.write("model,item,outcome\n")
        for m in range(n_models):  # one model at a time: 10 M rows never sit in memory as text
            p = 1 / (1 + np.exp(-(0.3 + ability[m] - difficulty)))
            y = (rng.random(n_items) < p).astype(int)
            f.write("".join(f"m{m},i{i},{v}\n" for i, v in enumerate(y)))


def fit_command(case: str, data: Path | None, out: Path) -> list[str]:
    common = ["--no-report", "--out", str(out), "--overwrite", "--quiet", "--allow-warnings"]
    if case == "hvsb":
        return [sys.executable, "-m", "dvbstats.fit", "--benchmark", "hvsb", *common]
    if case == "dvb-items":
        return [sys.executable, "-m", "dvbstats.fit", "--formula", DEFAULT_FORMULA + " + (1|prompt)", *common]
    return [sys.executable, "-m", "dvbstats.fit", str(data), "--benchmark", "binary", *common]


def run_fit(cmd: list[str], checkout: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    row = timed(cmd, cwd=str(checkout), env=env)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    diag = manifest.get("diagnostics", {})
    row.update(ok=diag.get("ok"), failures=diag.get("failures"), min_ess_bulk=diag.get("min_ess_bulk"),
               max_r_hat=diag.get("max_r_hat"), items_integrated=manifest.get("items_integrated"),
               timing=manifest.get("timing"))
    print(f"  {checkout}: {row['seconds']:.1f} s wall, CPU {row['cpu_s']:.1f} s, peak {row['peak_rss_mib']:.0f} MiB, "
          f"exit {row['returncode']}, diagnostics ok={row['ok']} (min bulk ESS {row['min_ess_bulk']}, "
          f"max R-hat {row['max_r_hat']}), items integrated: {row['items_integrated']}", flush=True)
    if row["returncode"]:
        print(row["stderr"][-1500:])
    shutil.rmtree(out, ignore_errors=True)
    return row


def gradients(case: str, data: Path | None) -> None:
    """Profiles and gradient cost of the marginal density against the full one, for ``case``'s default data."""
    import dvbstats as dvb

    if case == "hvsb":
        loaded, text = dvb.load(None, benchmark="hvsb"), ITEM_FORMULA
    elif case == "dvb-items":
        loaded, text = dvb.load(None), DEFAULT_FORMULA + " + (1|prompt)"
    else:
        loaded, text = dvb.load([data], benchmark="binary"), "outcome ~ 1 + (1|model) + (1|item)"
    f = formula.parse(text)
    d = design(f, loaded.cells(f))
    per_term = term_parametrizations(d, "auto")
    item = itemmarginal.item_term(d)
    full = fastlogp.CellModel(d, Priors({}), per_term)
    row = {"case": case, "cells": int(d.observed.sum()), "full_ms": gradient_ms(full), "item_term": item and item.name}
    if item is not None:
        marginal = itemmarginal.ItemMarginalModel(d, Priors({}), per_term, item)
        row |= marginal.describe() | {"marginal_ms": gradient_ms(marginal), "integrated_by_fit": marginal.worthwhile}
    print(json.dumps(row), flush=True)


def run_glmer(data: Path) -> dict | None:
    if not shutil.which("Rscript"):
        return None
    row = timed(["Rscript", "-e", GLMER, str(data)])
    if row["returncode"]:
        print("  lme4 failed:", row["stderr"][-500:])
        return None
    elapsed, intercept, sd_item = map(float, row["stdout"].split())
    row.update(glmer_s=elapsed, intercept=intercept, sd_item=sd_item)
    print(f"  lme4 glmer (Laplace): process {row['seconds']:.1f} s (CPU {row['cpu_s']:.1f}), glmer {elapsed:.1f} s; "
          f"intercept {intercept:.3f}, sd_item {sd_item:.3f}", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", choices=["hvsb", "dvb-items", "binary"])
    p.add_argument("--models", type=int, default=25)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reference", type=Path, help="checkout sampling the full density (e.g. /work/main)")
    p.add_argument("--no-reference", dest="reference", action="store_const", const=None)
    p.add_argument("--gradients", action="store_true", help="gradient cost of both densities instead of fits")
    args = p.parse_args()
    print(f"{stamp()} bench_marginal {args.case} (load average {os.getloadavg()})", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_marginal_"))
    data = None
    if args.case == "binary":
        data = tmp / "rasch.csv"
        write_rasch(data, args.models, args.items, args.seed)
        print(f"  {args.models} models x {args.items} items -> {data}", flush=True)
    if args.gradients:
        gradients(args.case, data)
        return
    rows: dict[str, list[dict]] = {"this": [], "reference": [], "lme4": []}
    for i in range(args.runs):
        print(f"pair {i + 1}/{args.runs} (load average {os.getloadavg()})", flush=True)
        out = tmp / "run"
        rows["this"].append(run_fit(fit_command(args.case, data, out), ROOT, out))
        if args.reference:
            rows["reference"].append(run_fit(fit_command(args.case, data, out), args.reference, out))
        if data is not None:
            glmer = run_glmer(data)
            if glmer:
                rows["lme4"].append(glmer)
    print(f"{stamp()} summary (load average {os.getloadavg()})")
    for name, rs in rows.items():
        if rs:
            print(f"  {name}: wall {describe([r['seconds'] for r in rs], 's')}; CPU {describe([r['cpu_s'] for r in rs], 's')}; "
                  f"peak RSS {describe([r['peak_rss_mib'] for r in rs], 'MiB')}")
    if rows["reference"]:
        ratios = [a["seconds"] / b["seconds"] for a, b in zip(rows["this"], rows["reference"])]
        cpu = [a["cpu_s"] / b["cpu_s"] for a, b in zip(rows["this"], rows["reference"])]
        print(f"  this / reference: wall per pair {[round(r, 3) for r in ratios]} (median {statistics.median(ratios):.3f}), "
              f"CPU median {statistics.median(cpu):.3f}")
    if rows["lme4"]:
        ratios = [a["seconds"] / b["seconds"] for a, b in zip(rows["this"], rows["lme4"])]
        print(f"  this / lme4 process: per pair {[round(r, 2) for r in ratios]} (median {statistics.median(ratios):.2f})")
    print(f"  diagnostics ok in every run of this checkout: {all(r['ok'] for r in rows['this'])}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
