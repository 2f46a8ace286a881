"""The published-scale fit against a hand-written PyMC + nutpie baseline, in the same run.

Issue 11 §2 targets: ``python -m dvbstats.fit --no-report`` on the embedded example (ingest + fit
4 chains x 1000 draws + tables) <= 15 s warm, <= 30 s on a first run (empty Numba cache), and
<= 0.3x the wall time of ``baseline_pymc.py`` (the same model written by hand in PyMC, compiled
and sampled by nutpie, on the same cells), every diagnostic passing. Runs alternate between the
two commands so that both see the same load; every run is a fresh process. Reports medians, the
ratio of medians and the median of the per-pair ratios.

``--reference DIR`` also times the same command on another checkout of dvbstats (e.g. the commit
before a change), in the same alternation, so that a before/after comparison sees the same load
(its first run too, right after ours, with its own empty Numba cache).

Usage: python benchmarks/bench_speed.py [--runs 3] [--extra "--no-scaling"] [--reference DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from _common import describe, stamp, timed

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--extra", default="--no-scaling", help="extra CLI arguments of the dvbstats run")
    p.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                   help="also time one first run with an empty Numba cache")
    p.add_argument("--reference", type=Path, help="another dvbstats checkout to time in the same alternation")
    args = p.parse_args()
    from dvbstats.input import cells
    from dvbstats.input.ingest import load
    from dvbstats.model import formula
    from dvbstats.simulate import example

    paths = example.write_example(ROOT / "data/raw/example")  # generated once, outside the timed runs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        f = formula.parse(formula.DEFAULT_FORMULA)
        cells.from_trials(load(paths).data, f.variables).write(tmp / "cells.parquet")
        ours = [sys.executable, "-m", "dvbstats.fit", "--no-report", "--quiet", "--out", str(tmp / "run"),
                *shlex.split(args.extra)]
        base = [sys.executable, str(ROOT / "benchmarks/baseline_pymc.py"), str(tmp / "cells.parquet")]
        print(f"[{stamp()}] ours: {' '.join(ours[1:])}\n[{stamp()}] baseline: {' '.join(base[1:])}", flush=True)
        rows = []
        if args.cold:
            env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "numba-cache-cold")}
            cold = timed(ours, str(ROOT), env)
            m = json.loads((tmp / "run/manifest.json").read_text())
            print(f"  first run (empty Numba cache): {cold['seconds']:.1f} s (CPU {cold['cpu_s']:.1f} s), exit {cold['returncode']}, "
                  f"stages {m['timing']}", flush=True)
            if args.reference:
                ref_cmd = list(ours)
                ref_cmd[ref_cmd.index("--out") + 1] = str(tmp / "reference")
                ref_cold = timed(ref_cmd, str(args.reference), {**env, "NUMBA_CACHE_DIR": str(tmp / "numba-cache-cold-ref")})
                print(f"  reference first run (empty Numba cache): {ref_cold['seconds']:.1f} s (CPU {ref_cold['cpu_s']:.1f} s), "
                      f"exit {ref_cold['returncode']}", flush=True)
        for i in range(args.runs):
            b = timed(base, str(ROOT))
            bj = json.loads(b["stdout"].strip().splitlines()[-1]) if b["returncode"] == 0 else {}
            o = timed(ours, str(ROOT))
            if o["returncode"]:
                print(f"  dvbstats run failed:\n{o['stderr']}", flush=True)
            m = json.loads((tmp / "run/manifest.json").read_text())
            if args.reference:
                ref_cmd = list(ours)
                ref_cmd[ref_cmd.index("--out") + 1] = str(tmp / "reference")
                r = timed(ref_cmd, str(args.reference))
                print(f"  reference ({args.reference}): {r['seconds']:.1f} s (CPU {r['cpu_s']:.1f} s), exit {r['returncode']}",
                      flush=True)
                ref = {"ref": r["seconds"], "ref_cpu": r["cpu_s"]}
            else:
                ref = {}
            rows.append({**ref, "ours": o["seconds"], "base": b["seconds"], "ours_cpu": o["cpu_s"], "base_cpu": b["cpu_s"], "ours_rss": o["peak_rss_mib"],
                         "base_rss": b["peak_rss_mib"], "ours_exit": o["returncode"], "stages": m["timing"],
                         "backend": m.get("backend"), "diag": m["diagnostics"], "base_fit": bj})
            print(f"  pair {i + 1}/{args.runs}: baseline {b['seconds']:.1f} s (CPU {b['cpu_s']:.1f} s; {bj}), "
                  f"dvbstats {o['seconds']:.1f} s (CPU {o['cpu_s']:.1f} s, "
                  f"exit {o['returncode']}, {m['timing']}), ratio {o['seconds'] / b['seconds']:.3f}", flush=True)
        diag = pl.read_csv(tmp / "run/diagnostics.csv")
    ours_s, base_s = [r["ours"] for r in rows], [r["base"] for r in rows]
    print(f"dvbstats end to end: {describe(ours_s, 's')}   target <= 15 s warm")
    print(f"baseline (PyMC + nutpie by hand): {describe(base_s, 's')}")
    print(f"ratio of medians: {statistics.median(ours_s) / statistics.median(base_s):.3f}; median per-pair ratio: "
          f"{statistics.median(o / b for o, b in zip(ours_s, base_s)):.3f}   target <= 0.3")
    ours_cpu, base_cpu = [r["ours_cpu"] for r in rows], [r["base_cpu"] for r in rows]
    print(f"CPU seconds: dvbstats {describe(ours_cpu, 's')}; baseline {describe(base_cpu, 's')}; "
          f"ratio of medians {statistics.median(ours_cpu) / statistics.median(base_cpu):.3f}")
    if args.cold:
        print(f"first run (empty Numba cache): {cold['seconds']:.1f} s (CPU {cold['cpu_s']:.1f} s)   target <= 30 s")
        if args.reference:
            print(f"reference first run (empty Numba cache): {ref_cold['seconds']:.1f} s (CPU {ref_cold['cpu_s']:.1f} s)")
    if args.reference:
        ref_s, ref_cpu = [r["ref"] for r in rows], [r["ref_cpu"] for r in rows]
        print(f"reference {args.reference}: {describe(ref_s, 's')}; CPU {describe(ref_cpu, 's')}; "
              f"ratio to baseline (medians) {statistics.median(ref_s) / statistics.median(base_s):.3f}, "
              f"CPU {statistics.median(ref_cpu) / statistics.median(base_cpu):.3f}")
    print(f"peak RSS: dvbstats {describe([r['ours_rss'] for r in rows], 'MiB')}; "
          f"baseline {describe([r['base_rss'] for r in rows], 'MiB')}")
    for k in rows[-1]["stages"]:
        print(f"  stage {k}: {describe([r['stages'][k] for r in rows if k in r['stages']], 's')}")
    print(f"diagnostics of the last dvbstats run: max R-hat {diag['r_hat'].max():.4f}, min bulk ESS "
          f"{diag['ess_bulk'].min():.0f}, min tail ESS {diag['ess_tail'].min():.0f}, "
          f"divergences {rows[-1]['diag']['divergences']}, ok {all(r['diag']['ok'] for r in rows)}")
    print(f"baseline diagnostics: {[r['base_fit'] for r in rows]}")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"[{stamp()}] benchmark took {time.perf_counter() - t:.0f} s")
