"""Random slopes at published scale: ``python -m dvbstats.fit`` end to end on the embedded example with

    chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value) + (1|feature) + (1|context)

against the default formula in the same run (the default must not become slower with the grammar).
Target (issue 8): the slope fit <= 90 s median with every diagnostic passing.
Usage: python benchmarks/bench_slopes.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _common import describe, stamp, timed_runs

ROOT = Path(__file__).resolve().parents[1]
SLOPES = "chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value) + (1|feature) + (1|context)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", choices=["default", "slopes"], help="time one formula only")
    args = p.parse_args()
    from dvbstats import example, formula

    example.write_example(ROOT / "data/raw/example")  # generate once, outside the timed runs
    medians = {}
    for label, text in (("default", formula.DEFAULT_FORMULA), ("slopes", SLOPES)):
        if args.only not in (None, label):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [sys.executable, "-m", "dvbstats.fit", "--formula", text, "--no-report", "--no-scaling",
                   "--quiet", "--allow-warnings", "--out", str(out)]
            print(f"[{stamp()}] {label}: {text}", flush=True)
            rows = timed_runs(cmd, args.runs, cwd=str(ROOT))
            if any(r["returncode"] not in (0, 3) for r in rows):
                sys.exit(f"the fit failed: {rows[-1]['stderr']}")
            manifest = json.loads((out / "manifest.json").read_text())
        wall = [r["seconds"] for r in rows]
        medians[label] = statistics.median(wall)
        d = manifest["diagnostics"]
        print(f"  wall time: {describe(wall, 's')}; stages of the last run: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in manifest["timing"].items()))
        print(f"  diagnostics of the last run: ok={d['ok']}, max R-hat {d['max_r_hat']:.4f}, min bulk ESS "
              f"{d['min_ess_bulk']:.0f}, min tail ESS {d['min_ess_tail']:.0f}, divergences {d['divergences']}; "
              f"parametrisation {manifest['parametrization']['terms']}")
    if len(medians) == 2:
        print(f"slopes / default median wall time: {medians['slopes'] / medians['default']:.2f}  (target: slopes <= 90 s)")


if __name__ == "__main__":
    main()
