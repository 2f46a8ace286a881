"""Time the full published reanalysis, ``dvbstats/paper2025/reanalysis.py``, end to end.

Each run is a fresh ``python`` process (imports, reconstruction, fit with the script's default
sampler settings, scaling tests, sections, report rendering), writing into a temporary folder so the
committed report is left alone. Prints the median, min and max wall time, the CPU time of the
children (all threads; the wall time depends on what else the machine runs) and the stage timings
the last run's manifest recorded. The target is under 2 minutes per run on the project machine
(2 cores).

    /tmp/venv/bin/python benchmarks/bench_reanalysis.py [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "dvbstats/paper2025/reanalysis.py"
TARGET_S = 120.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs to time (>= 3)")
    p.add_argument("--quick", action="store_true", help="time the script's --quick settings instead")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3")
    wall, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        command = [
            sys.executable, str(SCRIPT), "--allow-warnings",
            "--processed", str(out / "processed"), "--out", str(out / "run"), "--reports", str(out / "reports"),
            *(["--quick"] if args.quick else []),
        ]
        for i in range(args.runs):
            cpu_before, start = _children_cpu(), time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            wall.append(time.perf_counter() - start)
            cpu.append(_children_cpu() - cpu_before)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                print(f"run {i + 1} failed with exit status {done.returncode}", file=sys.stderr)
                return 1
            print(f"run {i + 1}: {wall[-1]:.1f} s wall, {cpu[-1]:.1f} s CPU", flush=True)
        stages = json.loads((out / "run" / "manifest.json").read_text())["timing"]
        size = (out / "reports" / "dvb2025_reanalysis" / "report.html").stat().st_size
    median = statistics.median(wall)
    print(
        f"dvb2025_reanalysis ({'--quick' if args.quick else 'default settings'}), {args.runs} runs: "
        f"median {median:.1f} s, min {min(wall):.1f} s, max {max(wall):.1f} s wall; "
        f"median CPU {statistics.median(cpu):.1f} s; report.html {size / 2**20:.2f} MiB; "
        f"target < {TARGET_S:.0f} s: {'met' if median < TARGET_S else 'NOT met'}"
    )
    print("last run's stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
