"""Many models x many items end to end (issue 22): 1,000 models x 10,000 items, 10 M trials, Rasch default.

Target: ``python -m dvbstats.fit MATRIX --benchmark binary --no-report`` (ingest from one Parquet or CSV file,
fit of ``outcome ~ 1 + (1|model) + (1|item)``, every table) <= 10 minutes wall on 2 idle cores, peak RSS
<= 8 GB, every sampler check passing.

The matrix is simulated once (Rasch: ability N(0, 1), difficulty N(0, 1.5), intercept 0.3; one 0/1 trial
per cell) into ``--data`` (kept between invocations: ``--data`` names the file); each run is a fresh
process (``benchmarks/_common.timed``: wall and CPU seconds of the whole process tree, peak RSS of its
largest member), and the run's manifest gives the stages and the diagnostics. ``--draws``, ``--tune`` and
``--chains`` pass through (fewer draws measure the stages around sampling; they are not the target's run).

``--gradients``: no fit; in this process, the CPU time of one log-density gradient of the complete crossed
design's density (``model/crossed.py``) against the general cell loop's (``fastlogp.CellModel``) on the same
data, their ratio, and the largest relative difference of their values and gradients at that point; and of
the item-marginal density (``model/itemmarginal.py``: the term ``item_term`` picks, whether ``fit`` integrates
it out, and the CPU time of one draw of every item effect), at a point of spread-out model effects (SD 1).

    python benchmarks/bench_big.py --runs 1                       # the target (about 10 M rows; nice -n 10)
    python benchmarks/bench_big.py --gradients [--models 1000 --items 10000]
    python benchmarks/bench_big.py --models 200 --items 2000 --runs 3 --draws 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

from benchmarks._common import describe, stamp, timed  # noqa: E402
from benchmarks.bench_items import gradient_ms  # noqa: E402
import dvbstats as dvb  # noqa: E402
from dvbstats.model import crossed, fastlogp, formula, itemmarginal  # noqa: E402
from dvbstats.model.design import design  # noqa: E402
from dvbstats.model.plan import term_parametrizations  # noqa: E402
from dvbstats.model.priors import Priors  # noqa: E402

FORMULA = "outcome ~ 1 + (1|model) + (1|item)"


def write_matrix(path: Path, n_models: int, n_items: int, seed: int) -> None:
    """A complete models x items matrix of 0/1 outcomes from a Rasch model, one row per trial (Parquet or CSV
    by the file's extension), as the binary reader takes it."""
    rng = np.random.default_rng(seed)
    ability, difficulty = rng.normal(0, 1, n_models), rng.normal(0, 1.5, n_items)
    outcome = np.empty((n_models, n_items), dtype=np.int8)
    for m in range(n_models):  # one model at a time: the probabilities never sit in memory as a float matrix
        outcome[m] = rng.random(n_items) < 1 / (1 + np.exp(-(0.3 + ability[m] - difficulty)))
    table = pl.DataFrame({
        "model": pl.Series([f"m{m:04d}" for m in range(n_models)]).cast(pl.Categorical).gather(
            np.repeat(np.arange(n_models), n_items)).cast(pl.String),
        "item": pl.Series([f"i{i:05d}" for i in range(n_items)]).gather(np.tile(np.arange(n_items), n_models)),
        "outcome": outcome.ravel(),
    })
    (table.write_csv if path.suffix == ".csv" else table.write_parquet)(path)


def fit_command(data: Path, out: Path, args: argparse.Namespace) -> list[str]:
    sampler = [f"--{k}={v}" for k in ("draws", "tune", "chains") if (v := getattr(args, k)) is not None]
    return [sys.executable, "-m", "dvbstats.fit", str(data), "--benchmark", "binary", "--no-report", "--out", str(out),
            "--overwrite", "--quiet", "--allow-warnings", *sampler]


def run_fit(cmd: list[str], out: Path) -> dict:
    row = timed(cmd, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    diag = manifest.get("diagnostics", {})
    row.update(ok=diag.get("ok"), failures=diag.get("failures"), max_r_hat=diag.get("max_r_hat"),
               min_ess_bulk=diag.get("min_ess_bulk"), min_ess_tail=diag.get("min_ess_tail"),
               divergences=diag.get("divergences"), timing=manifest.get("timing"), backend=manifest.get("backend"),
               parametrization=manifest.get("parametrization", {}).get("terms"),
               items_integrated=manifest.get("items_integrated"),
               steps_per_draw=[a.get("steps_per_draw") for a in (manifest.get("sampling") or {}).get("attempts", [])])
    print(f"  {row['seconds']:.1f} s wall, CPU {row['cpu_s']:.1f} s, peak {row['peak_rss_mib']:.0f} MiB, exit "
          f"{row['returncode']}; diagnostics ok={row['ok']} (max R-hat {row['max_r_hat']}, min bulk ESS "
          f"{row['min_ess_bulk']}, min tail ESS {row['min_ess_tail']}, divergences {row['divergences']}); "
          f"forms {row['parametrization']}; items integrated {row['items_integrated']}; leapfrog steps per draw "
          f"{row['steps_per_draw']}; stages {row['timing']}", flush=True)
    if row["returncode"] not in (0, 3):
        print(row["stderr"][-1500:])
    shutil.rmtree(out, ignore_errors=True)
    return row


def _cpu_ms(call, evals: int, rounds: int = 3) -> float:
    """Median over rounds of the CPU time of one ``call()`` (ms), after one call."""
    call()
    times = []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(evals):
            call()
        times.append((time.process_time() - t) / evals * 1e3)
    return sorted(times)[len(times) // 2]


def gradients(data: Path) -> None:
    """CPU ms per gradient of the crossed density and of the cell loop on ``data``, and their agreement."""
    f = formula.parse(FORMULA)
    d = design(f, dvb.load([data], benchmark="binary").cells(f))
    forms = term_parametrizations(d, "auto")
    fast, cells = crossed.CrossedModel(d, Priors({}), forms), fastlogp.CellModel(d, Priors({}), forms)
    x = np.random.default_rng(0).normal(0, 0.3, fast.ndim)
    (lp_a, g_a), (lp_b, g_b) = fast.logp_and_grad(x), cells.logp_and_grad(x)
    row = {"cells": int(d.observed.sum()), "forms": forms, "crossed_ms": gradient_ms(fast, evals=10, rounds=3),
           "cells_ms": gradient_ms(cells, evals=3, rounds=3), "logp_rel_diff": abs(lp_a - lp_b) / abs(lp_b),
           "grad_rel_diff": float(np.max(np.abs(g_a - g_b)) / np.max(np.abs(g_b)))}
    row["ratio"] = row["cells_ms"] / row["crossed_ms"]
    item = itemmarginal.item_term(d)
    row["item_term"] = item and item.name
    if item is not None:
        marginal = itemmarginal.ItemMarginalModel(d, Priors({}), forms, item)
        x = np.random.default_rng(0).normal(0, 1.0, marginal.ndim)
        x[-1] = np.log(1.5)
        u = np.random.default_rng(1).random(marginal.n_items)
        row |= {"integrated_by_fit": marginal.worthwhile, "classes": marginal.n_classes,
                "marginal_ms": _cpu_ms(lambda: marginal.logp_and_grad(x), 20),
                "draw_items_ms": _cpu_ms(lambda: marginal.draw_items(x, u), 5)}
    print(json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=int, default=1000)
    p.add_argument("--items", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--data", type=Path, help="the matrix file (.parquet or .csv); written when absent")
    p.add_argument("--draws", type=int), p.add_argument("--tune", type=int), p.add_argument("--chains", type=int)
    p.add_argument("--gradients", action="store_true", help="gradient cost of both densities instead of fits")
    args = p.parse_args()
    print(f"{stamp()} bench_big {args.models} x {args.items} (load average {os.getloadavg()})", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_big_"))
    data = args.data or tmp / f"rasch_{args.models}x{args.items}.parquet"
    if not data.exists():
        write_matrix(data, args.models, args.items, args.seed)
        print(f"  wrote {data} ({data.stat().st_size / 2**20:.1f} MiB)", flush=True)
    if args.gradients:
        gradients(data)
    else:
        rows = []
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs} (load average {os.getloadavg()})", flush=True)
            rows.append(run_fit(fit_command(data, tmp / "run", args), tmp / "run"))
        print(f"{stamp()} summary (load average {os.getloadavg()})")
        print(f"  wall {describe([r['seconds'] for r in rows], 's')}; CPU {describe([r['cpu_s'] for r in rows], 's')}; "
              f"peak RSS {describe([r['peak_rss_mib'] for r in rows], 'MiB')}")
        print(f"  sampling {describe([r['timing']['sample_s'] for r in rows if r['timing']], 's')}")
        print(f"  diagnostics ok in every run: {all(r['ok'] for r in rows)}")
    if args.data is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
