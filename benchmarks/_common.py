"""Shared helpers for the benchmark scripts: timing a command over several runs."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

_PROBE = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'seconds': time.perf_counter() - t, 'returncode': r.returncode, 'stdout': r.stdout[-4000:],\n"
    "                  'stderr': r.stderr[-2000:], 'cpu_s': u.ru_utime + u.ru_stime, 'peak_rss_mib': u.ru_maxrss / 1024}))\n"
)


def timed(cmd: list[str], cwd: str | None = None, env: dict | None = None) -> dict:
    """Run ``cmd`` once in a fresh process: wall and CPU seconds, peak RSS (MiB), exit status, output tails."""
    res = subprocess.run([sys.executable, "-c", _PROBE, *cmd], capture_output=True, text=True, cwd=cwd, env=env,
                         check=True)
    return json.loads(res.stdout)


def timed_runs(cmd: list[str], runs: int, cwd: str | None = None) -> list[dict]:
    """Run ``cmd`` ``runs`` times in fresh processes; wall and CPU seconds and peak RSS (MiB) of each."""
    out = []
    for i in range(runs):
        row = timed(cmd, cwd)
        print(f"  run {i + 1}/{runs}: {row['seconds']:.1f} s (CPU {row['cpu_s']:.1f} s), "
              f"peak RSS {row['peak_rss_mib']:.0f} MiB, exit {row['returncode']}", flush=True)
        out.append(row)
    return out


def describe(values: list[float], unit: str) -> str:
    return (f"median {statistics.median(values):.2f} {unit} (min {min(values):.2f}, max {max(values):.2f}, "
            f"n={len(values)})")


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
