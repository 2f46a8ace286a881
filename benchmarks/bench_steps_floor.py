"""The leapfrog steps per draw nutpie needs on a perfectly conditioned posterior of a given dimension: an iid
standard normal in ``d`` dimensions, sampled with the package's settings (4 chains, 500 tuning, 1,000 draws,
target acceptance 0.8, diagonal mass matrix). NUTS's step size shrinks as d^(-1/4) at a fixed acceptance rate
while the trajectory to a U-turn keeps its length, so this is the floor of the steps per draw of any density of
that dimension; a fit's steps per draw (bench_breakdown.py) against it says how much is geometry (funnels,
correlations: what a reparametrisation could remove) and how much is dimension (what only removing
parameters, e.g. integrating item effects out, removes).

    python benchmarks/bench_steps_floor.py [--dims 1350 2130 12000] [--tune 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

from dvbstats.model.fastlogp import pyfunc_model  # noqa: E402
from dvbstats.model.sample import SamplerSettings, run_nutpie  # noqa: E402


class StandardNormal:
    """An iid standard normal in ``ndim`` dimensions, as a hand-written density for ``pyfunc_model``."""

    def __init__(self, ndim: int):
        self.ndim = ndim

    def logp_and_grad(self, x):
        return -0.5 * float(x @ x), -x

    def expand(self, x):
        return {"x0": np.array(x[:1], dtype=np.float64)}  # one coordinate kept: a small trace at any dimension

    def variables(self):
        return ["x0"], [(1,)], {"x0": ("first",)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=[1350, 2130, 12000])
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    print(f"{'dimension':>10}{'steps per draw':>16}{'tree depth':>12}{'step size':>11}")
    for d in args.dims:
        idata = run_nutpie(pyfunc_model(StandardNormal(d), {"first": ["0"]}),
                           SamplerSettings(seed=args.seed, tune=args.tune, target_accept=0.8), progress=False)
        s = idata.sample_stats
        print(f"{d:>10,}{float(s['n_steps'].mean()):>16.1f}{float(s['depth'].mean()):>12.2f}"
              f"{float(s['step_size'].mean()):>11.3f}", flush=True)


if __name__ == "__main__":
    main()
