"""One full-density gradient of issue 22's two item designs, this checkout against a reference checkout.

The HVSB example with its default formula (``(1|item)``: 67,666 single-trial cells, 1,728 design cells) and the
DVB example with ``+ (1|prompt)`` (104,654 cells, 16,641 design cells), each as ``fit`` builds it
(:class:`dvbstats.model.fastlogp.CellModel`, the layout it chooses, ``auto``'s forms). Each round runs one fresh
process per checkout (``PYTHONPATH`` = the checkout), alternating, which times ``--evals`` gradients ``--repeat``
times at one point (``benchmarks/bench_items.py``'s ``gradient_ms``) and prints the median CPU ms per gradient
and the log density there (the two checkouts must agree to 1e-12: the same density). Then per design the
median over rounds of each checkout and of the per-round ratios this / reference. The machine may be shared:
the ratio is the figure to read.

    python benchmarks/bench_cell_loop.py --reference /tmp/ref --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
import numpy as np
import dvbstats as dvb
sys.path.insert(0, ".")  # the checkout: its own benchmarks/bench_items.py
from benchmarks.bench_items import gradient_ms
from dvbstats.benchmarks.hvsb import ITEM_FORMULA
from dvbstats.model import fastlogp, formula
from dvbstats.model.design import design
from dvbstats.model.formula import DEFAULT_FORMULA
from dvbstats.model.plan import term_parametrizations
from dvbstats.model.priors import Priors

evals, repeat = int(sys.argv[1]), int(sys.argv[2])
out = {}
for case, data, text in (("hvsb", lambda: dvb.load(None, benchmark="hvsb"), ITEM_FORMULA),
                         ("dvb-items", lambda: dvb.load(None), DEFAULT_FORMULA + " + (1|prompt)")):
    f = formula.parse(text)
    d = design(f, data().cells(f))
    model = fastlogp.CellModel(d, Priors({}), term_parametrizations(d, "auto"))
    lp, _ = model.logp_and_grad(np.random.default_rng(0).normal(0, 0.1, model.ndim))  # gradient_ms's point
    out[case] = {"ms": gradient_ms(model, evals, repeat), "logp": lp, "cells": len(model.k), "design_cells": len(model.X)}
print(json.dumps(out))
"""


def child(checkout: Path, evals: int, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    res = subprocess.run([sys.executable, "-c", CHILD, str(evals), str(repeat)], capture_output=True, text=True,
                         env=env, cwd=str(checkout), check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="another checkout of dvbstats")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--evals", type=int, default=300)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    rows: dict[str, list[dict]] = {"this": [], "reference": []}
    for i in range(args.rounds):
        for name, checkout in (("this", ROOT), ("reference", args.reference)):
            rows[name].append(child(checkout, args.evals, args.repeat))
            print(f"round {i + 1} {name}: " + ", ".join(f"{case} {r['ms']:.4f} ms" for case, r in rows[name][-1].items()),
                  flush=True)
    for case in rows["this"][0]:
        this = [r[case] for r in rows["this"]]
        ref = [r[case] for r in rows["reference"]]
        assert abs(this[0]["logp"] - ref[0]["logp"]) <= 1e-12 * abs(ref[0]["logp"]), (this[0]["logp"], ref[0]["logp"])
        ratios = [a["ms"] / b["ms"] for a, b in zip(this, ref)]
        print(f"{case}: {this[0]['cells']:,} cells ({this[0]['design_cells']:,} design cells); CPU ms per gradient "
              f"this {statistics.median(r['ms'] for r in this):.4f}, reference {statistics.median(r['ms'] for r in ref):.4f}; "
              f"ratio this / reference per round {[round(r, 3) for r in ratios]}, median {statistics.median(ratios):.3f}; "
              f"log density {this[0]['logp']:.6f} (reference {ref[0]['logp']:.6f})")


if __name__ == "__main__":
    main()
