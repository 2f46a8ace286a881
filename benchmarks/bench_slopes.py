"""Random slopes at published scale: ``python -m dvbstats.fit`` end to end on the embedded example with

    chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value) + (1|feature) + (1|context)

against the default formula in the same run (the default must not become slower with the grammar).
Target (issue 8): the slope fit <= 90 s median with every diagnostic passing.

Per formula: median wall and CPU seconds of the whole process (ingest, fit 4 x 1000 draws, tables;
report off), and per run the checks (max R-hat, min bulk/tail ESS of the reported quantities,
divergences), the mean tree depth and the gradient evaluations (leapfrog steps) of the sampler, read
back from the run folder. On a shared machine CPU seconds are the steadier figure.
Usage: python benchmarks/bench_slopes.py [--runs 3] [--only slopes]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _common import describe, stamp, timed

ROOT = Path(__file__).resolve().parents[1]
SLOPES = "chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value) + (1|feature) + (1|context)"


def _sampler_stats(run: Path) -> dict:
    """Mean tree depth and total leapfrog steps of the run's sampler (posterior.nc's sample_stats)."""
    import arviz as az

    stats = az.from_netcdf(str(run / "posterior.nc")).sample_stats
    return {"depth": float(stats["depth"].mean()), "steps": int(stats["n_steps"].sum())}


def bench(label: str, text: str, runs: int) -> dict:
    print(f"[{stamp()}] {label}: {text}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            out = Path(tmp) / f"run{i}"
            cmd = [sys.executable, "-m", "dvbstats.fit", "--formula", text, "--no-report", "--no-scaling",
                   "--quiet", "--allow-warnings", "--out", str(out)]
            row = timed(cmd, cwd=str(ROOT))
            if row["returncode"] not in (0, 3):
                sys.exit(f"the fit failed: {row['stderr']}")
            manifest = json.loads((out / "manifest.json").read_text())
            d = manifest["diagnostics"]
            row |= {"diagnostics": d, **_sampler_stats(out), "forms": manifest["parametrization"]["terms"]}
            print(f"  run {i + 1}/{runs}: wall {row['seconds']:.1f} s, CPU {row['cpu_s']:.1f} s, peak RSS "
                  f"{row['peak_rss_mib']:.0f} MiB; checks {'pass' if d['ok'] else 'FAIL'}: max R-hat "
                  f"{d['max_r_hat']:.4f}, min ESS bulk {d['min_ess_bulk']:.0f} / tail {d['min_ess_tail']:.0f}, "
                  f"divergences {d['divergences']}; mean tree depth {row['depth']:.2f}, "
                  f"{row['steps']:,} leapfrog steps", flush=True)
            rows.append(row)
    wall, cpu = [r["seconds"] for r in rows], [r["cpu_s"] for r in rows]
    print(f"  wall {describe(wall, 's')}; CPU {describe(cpu, 's')}; all checks pass: "
          f"{all(r['diagnostics']['ok'] for r in rows)}; forms {rows[-1]['forms']}")
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", choices=["default", "slopes"], help="time one formula only")
    args = p.parse_args()
    from dvbstats.model import formula
    from dvbstats.simulate import example

    example.write_example(ROOT / "data/raw/example")  # generate once, outside the timed runs
    medians = {label: bench(label, text, args.runs)
               for label, text in (("default", formula.DEFAULT_FORMULA), ("slopes", SLOPES))
               if args.only in (None, label)}
    if len(medians) == 2:
        print(f"slopes / default medians: wall {medians['slopes']['wall'] / medians['default']['wall']:.2f}, "
              f"CPU {medians['slopes']['cpu'] / medians['default']['cpu']:.2f}  (target: slopes <= 90 s wall)")


if __name__ == "__main__":
    main()
