"""Import time of the fit path, this checkout against a reference checkout, alternating in one run.

    python benchmarks/bench_import.py --ref /tmp/ref-main [--runs 5] [--module dvbstats.fit]

Each run is a fresh ``python -X importtime -c "import MODULE"`` with ``PYTHONPATH`` set to the checkout; the
figure is the cumulative import time Python reports for ``MODULE`` (microseconds, shown in seconds) and the
CPU seconds of the process. Runs alternate between the two checkouts, so load on the machine falls on both;
the ratio of the medians (reference / this checkout) is what to compare. Also lists which of the heavy
optional modules (PyMC, PyTensor, nutpie, pypandoc) the import loaded.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = ("pymc", "pytensor", "nutpie", "pypandoc")


def once(tree: Path, module: str) -> tuple[float, float, list[str]]:
    """Cumulative import seconds of ``module`` from ``tree``, the process's CPU seconds, heavy modules loaded."""
    code = f"import {module}, sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules) + '|' + {module}.__file__)"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True)  # -c: cwd first
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(ln for ln in reversed(done.stderr.splitlines()) if ln.rstrip().endswith(f"| {module}"))
    cumulative = int(line.split("|")[1]) / 1e6
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    heavy, where = done.stdout.strip().split("|")
    if not where.startswith(str(tree)):
        raise RuntimeError(f"{module} was imported from {where}, not from {tree}")
    return cumulative, cpu, [m for m in heavy.split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", type=Path, required=True, help="the reference checkout (git worktree add --detach)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--module", default="dvbstats.fit")
    args = parser.parse_args()
    trees = {"reference": args.ref.resolve(), "this": Path(__file__).resolve().parents[1]}
    results = {name: [] for name in trees}
    for i in range(args.runs):
        for name, tree in trees.items():
            results[name].append(once(tree, args.module))
            seconds, cpu, heavy = results[name][-1]
            print(f"run {i + 1}/{args.runs} {name}: import {seconds:.3f} s, CPU {cpu:.2f} s, loaded {heavy or 'none'}",
                  flush=True)
    medians = {}
    for name, rows in results.items():
        medians[name] = (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        print(f"{name} ({trees[name]}): median import {medians[name][0]:.3f} s, median CPU {medians[name][1]:.2f} s, "
              f"heavy modules loaded: {sorted(set().union(*(r[2] for r in rows))) or 'none'}")
    print(f"ratio reference / this: import {medians['reference'][0] / medians['this'][0]:.3f}, "
          f"CPU {medians['reference'][1] / medians['this'][1]:.3f}")


if __name__ == "__main__":
    main()
