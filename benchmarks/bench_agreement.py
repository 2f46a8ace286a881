"""Time the agreement step of a fit (pair tables, paired tests, kappa, mixed models, Bayesian model).

    python benchmarks/bench_agreement.py [TRIALS] [--repeat N]

TRIALS defaults to ``data/processed/default_trials.parquet`` (written by the no-argument
``python -m dvbstats.fit``: the synthetic example, 9 models x 12,000 prompts). Each repeat runs
in a fresh process, as in a fit. Prints the median, min and max wall and CPU time (every thread
of the process) of ``agreement.agreement_analysis`` (4 chains x 1000 draws) and, as the baseline measured in the
same session, of the frequentist part alone (``pair_counts`` + ``agreement_table`` +
``paired_tests`` + ``frequentist_models``). ``--cwd DIR`` runs another checkout of dvbstats.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys, time
from dvbstats.results import agreement, paired
from dvbstats.input.ingest import TrialTable
from dvbstats.input.registry import ModelTable
data, models = TrialTable.read(sys.argv[1]).data, ModelTable.default()
start, cpu = time.perf_counter(), time.process_time()
if sys.argv[2] == "all":
    agreement.agreement_analysis(data, models)
else:
    counts = paired.pair_counts(data, agreement.model_order(models, data["model"].unique().to_list()))
    paired.paired_tests(counts)
    agreement.frequentist_models(agreement.agreement_table(counts, models))
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trials", nargs="?", type=Path, default=Path("data/processed/default_trials.parquet"))
    p.add_argument("--repeat", type=int, default=3, help="runs per part (>= 3; default 3)")
    p.add_argument("--cwd", type=Path, help="run the dvbstats checkout in this folder")
    args = p.parse_args(argv)
    if args.repeat < 3:
        p.error("--repeat must be at least 3")
    times: dict[str, list[tuple[float, float]]] = {"all": [], "frequentist": []}
    for _ in range(args.repeat):
        for part, seconds in times.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.trials.resolve()), part], check=True,
                                 capture_output=True, text=True, cwd=args.cwd).stdout
            seconds.append(tuple(float(v) for v in out.strip().splitlines()[-1].split()))
    for part, runs in times.items():
        for i, what in enumerate(("wall", "CPU")):
            values = [r[i] for r in runs]
            print(f"agreement ({part}), {args.repeat} runs, {what}: median {statistics.median(values):.2f} s, "
                  f"min {min(values):.2f} s, max {max(values):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
