"""Cost of one log-density gradient on the published-scale example: nutpie's PyMC-compiled model
(the default formula's PyMC graph, Numba backend) against ``dvbstats.model.fastlogp``, interleaved in one
process so that both see the same load. Also times the one-off compilation of each.

    python benchmarks/bench_gradient.py [--evals 2000] [--rounds 5]
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
from dvbstats.model.design import design, pymc_model, term_parametrizations
from dvbstats.model.priors import Priors
from dvbstats.simulate import example


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--evals", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    import nutpie

    f = formula.parse(formula.DEFAULT_FORMULA)
    d = design(f, cells.from_trials(load(example.write_example()).data, f.variables))
    t = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model(d, Priors({})))
    t_pymc = time.perf_counter() - t
    t = time.perf_counter()
    ours = fastlogp.CellModel(d, Priors({}), term_parametrizations(d, "auto"))
    x = np.random.default_rng(0).normal(0, 0.1, ours.ndim)
    ours.logp_and_grad(x)
    t_ours = time.perf_counter() - t
    fn = compiled.compiled_logp_func.ctypes
    grad, logp = np.empty(ours.ndim), np.empty(1)
    ptr = ctypes.POINTER(ctypes.c_double)

    def pymc_eval():
        fn(ours.ndim, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), logp.ctypes.data_as(ptr),
           ctypes.c_void_p(compiled.user_data.ctypes.data))

    pymc_eval()
    lp_ours, g_ours = ours.logp_and_grad(x)
    print(f"same point: logp PyMC {logp[0]:.6f}, fastlogp {lp_ours:.6f}; max |grad diff| {np.abs(grad - g_ours).max():.2e}")
    rows = []
    for _ in range(args.rounds):
        row = {}
        for name, call in (("pymc", pymc_eval), ("fastlogp", lambda: ours.logp_and_grad(x))):
            t = time.process_time()
            for _ in range(args.evals):
                call()
            row[name] = (time.process_time() - t) / args.evals
        rows.append(row)
    n = int(d.observed.sum())
    for name in ("pymc", "fastlogp"):
        s = statistics.median(r[name] for r in rows)
        print(f"{name:>9}: {s * 1e6:.0f} us CPU per gradient = {s / n * 1e9:.1f} ns per cell ({n:,} cells)")
    print(f"ratio fastlogp / pymc (median of rounds): {statistics.median(r['fastlogp'] / r['pymc'] for r in rows):.3f}")
    print(f"compilation: PyMC model via nutpie {t_pymc:.1f} s wall; fastlogp set-up (Numba cache warm) {t_ours:.2f} s")


if __name__ == "__main__":
    main()
