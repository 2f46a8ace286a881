"""Shared helpers for the benchmark scripts: timing a command over several runs."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time


def timed_runs(cmd: list[str], runs: int, cwd: str | None = None) -> list[dict]:
    """Run ``cmd`` ``runs`` times in fresh processes; wall seconds and peak RSS (MiB) of each."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'returncode': r.returncode, 'stderr': r.stderr[-2000:],\n"
        "                  'peak_rss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,\n"
        "                  'cpu_seconds': (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN))}))\n"
    )
    out = []
    for i in range(runs):
        res = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, cwd=cwd, check=True)
        row = json.loads(res.stdout)
        print(f"  run {i + 1}/{runs}: {row['seconds']:.1f} s ({row['cpu_seconds']:.1f} s CPU), peak RSS {row['peak_rss_mib']:.0f} MiB, exit {row['returncode']}",
              flush=True)
        out.append(row)
    return out


def describe(values: list[float], unit: str) -> str:
    return (f"median {statistics.median(values):.2f} {unit} (min {min(values):.2f}, max {max(values):.2f}, "
            f"n={len(values)})")


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
