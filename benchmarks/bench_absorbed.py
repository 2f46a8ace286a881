"""CPU seconds of fits whose formula moves interaction margins into the main terms' prior scale
(``(1|model) + (1|value) + (1|model:value)``, ``Design.absorbed``), against another checkout in the same run.

Before ``fastlogp`` implemented absorbed margins these fits fell back to the PyMC graph, compiled by Numba
anew for every data set (14-17 CPU s per fit, docs/calibration.md); now they sample the hand-written density.
Two workloads, each a fresh process, alternating between this tree and ``--reference`` (e.g. main before the
change, ``git archive <commit> | tar -x -C DIR``) so that both see the same load:

* ``dvb-example``: ``python -m dvbstats.fit --formula "chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)"
  --no-report --no-scaling`` on the embedded published-scale DVB example (its backend from the manifest);
* ``calibration-dvb``: ``python analyses/calibration.py cost --classes dvb`` (one default fit of the
  calibration suite's ``dvb`` class: 6 models x 8 values x 60 trials; its fit's own CPU seconds as it prints them).

One unmeasured warm-up run of each per tree fills the Numba caches first (warm runs are what a user sees from
the second run on). Reports per workload and tree the medians of process CPU and wall seconds and the ratio.

    nice -n 10 python benchmarks/bench_absorbed.py --reference /tmp/main-checkout [--runs 3] [--workloads dvb-example]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import describe, stamp, timed

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)"


def workloads(out: Path) -> dict[str, list[str]]:
    return {"dvb-example": [sys.executable, "-m", "dvbstats.fit", "--formula", FORMULA, "--no-report", "--no-scaling",
                            "--quiet", "--overwrite", "--out", str(out)],
            "calibration-dvb": [sys.executable, "analyses/calibration.py", "cost", "--classes", "dvb"]}


def run_one(name: str, cmd: list[str], tree: Path, out: Path) -> dict:
    """One timed run in ``tree``: CPU and wall seconds, the backend, and for the calibration fit its own CPU s."""
    row = timed(cmd, str(tree), {**os.environ, "PYTHONPATH": str(tree)})
    if row["returncode"]:
        raise SystemExit(f"{name} failed in {tree}:\n{row['stderr']}")
    if name == "dvb-example":
        manifest = json.loads((out / "manifest.json").read_text())
        row["backend"], row["fit_cpu_s"] = manifest.get("backend"), None
    else:
        cost = row["stdout"].strip().splitlines()[-1]  # a dict's repr (with nan: not a literal)
        row["backend"] = re.search(r"'backend': '(\w+)'", cost).group(1)
        row["fit_cpu_s"] = float(re.search(r"'fit_cpu_s': ([\d.]+)", cost).group(1))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="another dvbstats checkout (the baseline)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workloads", default="dvb-example,calibration-dvb")
    args = p.parse_args()
    trees = {"ours": ROOT, "reference": args.reference.resolve()}
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads.split(","):
            for label, tree in trees.items():
                out = Path(tmp) / label
                cmd = workloads(out)[name]
                print(f"[{stamp()}] {label} ({tree}): {' '.join(cmd[1:])}", flush=True)
                run_one(name, cmd, tree, out)  # warm-up: fills the Numba cache
            for i in range(args.runs):
                for label, tree in trees.items():
                    out = Path(tmp) / label
                    row = run_one(name, workloads(out)[name], tree, out)
                    rows.setdefault((name, label), []).append(row)
                    print(f"  {name} {label} run {i + 1}: CPU {row['cpu_s']:.1f} s, wall {row['seconds']:.1f} s, "
                          f"backend {row['backend']}, fit CPU {row['fit_cpu_s']}", flush=True)
    for name in args.workloads.split(","):
        ours, ref = rows[(name, "ours")], rows[(name, "reference")]
        cpu = {k: [r["cpu_s"] for r in v] for k, v in (("ours", ours), ("reference", ref))}
        print(f"{name}: ours ({ours[0]['backend']}) CPU {describe(cpu['ours'], 's')}, wall "
              f"{describe([r['seconds'] for r in ours], 's')}")
        print(f"{name}: reference ({ref[0]['backend']}) CPU {describe(cpu['reference'], 's')}, wall "
              f"{describe([r['seconds'] for r in ref], 's')}")
        print(f"{name}: CPU ratio of medians ours / reference {statistics.median(cpu['ours']) / statistics.median(cpu['reference']):.3f}")
        if ours[0]["fit_cpu_s"] is not None:
            print(f"{name}: the fit alone, CPU s: ours {[r['fit_cpu_s'] for r in ours]}, "
                  f"reference {[r['fit_cpu_s'] for r in ref]}")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"[{stamp()}] benchmark took {time.perf_counter() - t:.0f} s")
