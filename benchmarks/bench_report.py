"""Time ``dvbstats.report.render`` on a finished run folder (no refit).

    python benchmarks/bench_report.py [RUN_DIR] [--repeat N] [--engine pandoc|quarto|auto]

RUN_DIR defaults to ``runs/default`` (the no-argument ``python -m dvbstats.fit`` run). Reports go
to a temporary folder; prints the median, min and max wall time over the repeats. The target is
under 20 s per render on the project machine (2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dvbstats.report import ENGINES, render


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", type=Path, default=Path("runs/default"))
    p.add_argument("--repeat", type=int, default=3, help="renders to time (>= 3; default 3)")
    p.add_argument("--engine", choices=ENGINES, default="pandoc")
    args = p.parse_args(argv)
    if args.repeat < 3:
        p.error("--repeat must be at least 3")
    seconds = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeat):
            start = time.perf_counter()
            html = render(args.run_dir, Path(out), engine=args.engine)
            seconds.append(time.perf_counter() - start)
        size = html.stat().st_size
    print(f"render {args.run_dir} ({args.engine}), {args.repeat} runs: median {statistics.median(seconds):.2f} s, "
          f"min {min(seconds):.2f} s, max {max(seconds):.2f} s; report.html {size / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
