"""What Numba compiles during ``python -m dvbstats.fit``, and the CPU seconds each compilation costs.

Runs the command in a fresh process with a Numba event listener, first with an empty Numba cache
(a first run) and then again on the cache that run left (a warm run, which should compile nothing).
Per compiled function: its specialisations (argument types), the thread that compiled it, and CPU
seconds of that thread inclusive and exclusive of the nested compilations it triggered (a callee
compiled inside its caller counts once, as the callee's). CPU time, not wall time: the machine may
be shared. The process's total CPU seconds give the share of compilation.

    python benchmarks/bench_compile.py [--extra "--no-report --no-scaling"] [--warm-runs 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import stamp

ROOT = Path(__file__).resolve().parents[1]

_PROBE = r"""
import json, resource, sys, threading, time
import numba.core.event as ev

rows, local = [], threading.local()


class Listener(ev.Listener):
    def on_start(self, event):
        if not hasattr(local, "stack"):
            local.stack = []
        local.stack.append([time.thread_time(), 0.0])

    def on_end(self, event):
        c0, child = local.stack.pop()
        cpu = time.thread_time() - c0
        if local.stack:
            local.stack[-1][1] += cpu
        fn = getattr((event.data or {}).get("dispatcher"), "py_func", None)
        rows.append({"function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}",
                     "args": str((event.data or {}).get("args")), "cpu_s": cpu, "self_cpu_s": cpu - child,
                     "thread": threading.current_thread().name, "at_s": time.perf_counter() - T0})


ev.register("numba:compile", Listener())
T0 = time.perf_counter()
from dvbstats.cli.fit import main

rc = main(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_SELF)
with open(sys.argv[1], "w") as f:
    json.dump({"returncode": rc, "wall_s": time.perf_counter() - T0, "cpu_s": u.ru_utime + u.ru_stime,
               "compiles": rows}, f)
"""


def profile(cmd_args: list[str], cache: Path, out: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-c", _PROBE, str(out), *cmd_args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def report(label: str, res: dict) -> None:
    rows = res["compiles"]
    total = sum(r["self_cpu_s"] for r in rows)
    print(f"\n{label}: wall {res['wall_s']:.1f} s, process CPU {res['cpu_s']:.1f} s, exit {res['returncode']}; "
          f"{len(rows)} compilations, {total:.2f} CPU s in Numba compilation")
    by_fn = collections.defaultdict(list)
    for r in rows:
        by_fn[r["function"]].append(r)
    ours = {k: v for k, v in by_fn.items() if k.startswith("dvbstats.")}
    others = {k: v for k, v in by_fn.items() if not k.startswith("dvbstats.")}
    print(f"  {'function':60s} {'n':>2s} {'self CPU s':>10s} {'incl CPU s':>10s}  thread, at (s)")
    for name, rs in sorted(ours.items(), key=lambda kv: -sum(r["self_cpu_s"] for r in kv[1])):
        print(f"  {name:60s} {len(rs):2d} {sum(r['self_cpu_s'] for r in rs):10.2f} "
              f"{max(r['cpu_s'] for r in rs):10.2f}  {rs[0]['thread']}, {rs[0]['at_s']:.1f}")
        if len(rs) > 1:
            for r in rs:
                print(f"      {r['self_cpu_s']:.2f} s  {r['args'][:140]}")
    lib = collections.Counter()
    for name, rs in others.items():
        lib[name.split(".")[0]] += sum(r["self_cpu_s"] for r in rs)
    for name, s in lib.most_common():
        n = sum(len(rs) for k, rs in others.items() if k.split(".")[0] == name)
        print(f"  {name + ' (overloads and helpers)':60s} {n:2d} {s:10.2f}")
    for name, rs in others.items():
        if not name.startswith("numba."):
            print(f"      {name}: {sum(r['self_cpu_s'] for r in rs):.2f} s ({rs[0]['thread']}, {rs[0]['at_s']:.1f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--extra", default="--no-report --no-scaling", help="arguments of python -m dvbstats.fit")
    p.add_argument("--warm-runs", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write every run's records here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cmd = ["--quiet", "--out", str(tmp / "run"), *shlex.split(args.extra)]
        print(f"[{stamp()}] python -m dvbstats.fit {' '.join(cmd)}", flush=True)
        runs = {"cold": profile(cmd, tmp / "numba-cache", tmp / "cold.json")}
        report("first run (empty Numba cache)", runs["cold"])
        for i in range(args.warm_runs):
            runs[f"warm{i + 1}"] = profile(cmd, tmp / "numba-cache", tmp / f"warm{i}.json")
            report(f"warm run {i + 1}", runs[f"warm{i + 1}"])
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"[{stamp()}] benchmark took {time.perf_counter() - t:.0f} s")
