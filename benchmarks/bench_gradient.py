"""Cost of one log-density gradient on the published-scale example: nutpie's PyMC-compiled model
(the default formula's PyMC graph, Numba backend) against ``dvbstats.model.fastlogp`` in its one-level
layout (a row per cell) and in the layout it chooses (two levels, design cells plus the index column
with most levels, where that applies: :func:`dvbstats.model.fastlogp.two_level_layout`), interleaved
in one process so that all see the same load. Also times the one-off compilation of each.

``--item-effects``: the default formula plus ``(1|prompt)`` (108,000 cells of one trial, 16,641
design cells, issue 9 §1) at auto's forms, the fastlogp layouts only (PyMC's graph of 12,000 items
takes minutes to compile).

    python benchmarks/bench_gradient.py [--evals 2000] [--rounds 5] [--item-effects]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time

import numpy as np

from dvbstats.input import cells
from dvbstats.input.ingest import load
from dvbstats.model import fastlogp, formula
from dvbstats.model.design import design
from dvbstats.model.pymcmodel import pymc_model
from dvbstats.model.plan import term_parametrizations
from dvbstats.model.priors import Priors
from dvbstats.simulate import example


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evals", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--item-effects", action="store_true", help="the default formula plus (1|prompt)")
    args = p.parse_args()

    f = formula.parse(formula.DEFAULT_FORMULA + (" + (1|prompt)" if args.item_effects else ""))
    d = design(f, cells.from_trials(load(example.write_example()).data, f.variables))
    forms = term_parametrizations(d, "auto")
    t = time.perf_counter()
    one = fastlogp.CellModel(d, Priors({}), forms, two_level=False)
    x = np.random.default_rng(0).normal(0, 0.1, one.ndim)
    one.logp_and_grad(x)
    t_ours = time.perf_counter() - t
    two = fastlogp.CellModel(d, Priors({}), forms)
    print(f"chosen layout: {len(two.X):,} design cells x {two.idx.shape[1]} index columns, plus the item column"
          if len(two.item) else "chosen layout: one level")
    calls = {"fastlogp one-level": lambda: one.logp_and_grad(x), "fastlogp chosen": lambda: two.logp_and_grad(x)}
    lp, g = one.logp_and_grad(x)
    lp2, g2 = two.logp_and_grad(x)
    print(f"same point: logp one-level {lp:.6f}, chosen layout {lp2:.6f}; max |grad diff| {np.abs(g - g2).max():.2e}")
    if not args.item_effects:
        import nutpie

        t = time.perf_counter()
        compiled = nutpie.compile_pymc_model(pymc_model(d, Priors({})))
        t_pymc = time.perf_counter() - t
        fn = compiled.compiled_logp_func.ctypes
        grad, logp = np.empty(one.ndim), np.empty(1)
        ptr = ctypes.POINTER(ctypes.c_double)

        def pymc_eval():
            fn(one.ndim, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), logp.ctypes.data_as(ptr),
               ctypes.c_void_p(compiled.user_data.ctypes.data))

        pymc_eval()  # at x in fastlogp's order, which is not PyMC's (it creates every SD first): a timing only;
        # tests/test_fastlogp.py checks the two densities equal, coordinates matched by name
        calls = {"pymc": pymc_eval, **calls}
    rows = []
    for _ in range(args.rounds):
        row = {}
        for name, call in calls.items():
            t = time.process_time()
            for _ in range(args.evals):
                call()
            row[name] = (time.process_time() - t) / args.evals
        rows.append(row)
    n = int(d.observed.sum())
    for name in calls:
        s = statistics.median(r[name] for r in rows)
        print(f"{name:>18}: {s * 1e6:.0f} us CPU per gradient = {s / n * 1e9:.1f} ns per cell ({n:,} cells)")
    base = next(iter(calls))
    for name in list(calls)[1:]:
        print(f"ratio {name} / {base} (median of rounds): {statistics.median(r[name] / r[base] for r in rows):.3f}")
    if not args.item_effects:
        print(f"compilation: PyMC model via nutpie {t_pymc:.1f} s wall; fastlogp set-up (Numba cache warm) {t_ours:.2f} s")


if __name__ == "__main__":
    main()
