"""Time the readers of evaluation logs and the MATH-500 wide matrix end to end.

End to end: ``python -m dvbstats.fit math500_lart.csv --benchmark binary --wide model
--label-pattern '(?P<model>.+)_(?P<condition>zero_shot|one_shot)' --no-report`` (the real LART
MATH-500 matrix, 140 labels x 500 items = 70,000 judgments; the binary benchmark's default
formula; nutpie, 4 chains x 1000 draws), each run a fresh process writing a fresh run folder. The
baseline, timed alternately in the same session, is the same judgments melted by hand into a long
``model,item,condition,outcome`` CSV and fitted with ``--benchmark binary``: the path users had
before the wide reader, so the ratio says what reading the matrix directly costs. Also the ingest
alone of both (``dvb.load``), and each real log format read in process (median of repeats). The
machine may be shared: the load average is printed before and after; CPU time is the
load-independent figure. Target (issue 20): end to end <= 90 s on 2 idle cores.

    .venv/bin/python benchmarks/bench_sources.py [--runs 3] [--skip-fit]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

import polars as pl  # noqa: E402

from benchmarks._common import describe, stamp, timed  # noqa: E402
from dvbstats.benchmarks import sources  # noqa: E402
from dvbstats.benchmarks.sources import Options  # noqa: E402

REAL = ROOT / "tests" / "data" / "real"
MATRIX = REAL / "wide" / "math500_lart.csv"
PATTERN = "(?P<model>.+)_(?P<condition>zero_shot|one_shot)"
WIDE = Options(wide="model", label_pattern=PATTERN)
LOGS = {"inspect": (REAL / "logs" / "inspect" / "mmlu-summary-choices.eval", Options()),
        "lm_eval": (REAL / "logs" / "lm_eval", Options()), "helm": (REAL / "logs" / "helm", Options()),
        "every_eval_ever": (REAL / "logs" / "every_eval_ever", Options()), "wide (MATH-500)": (MATRIX, WIDE)}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def read_times(repeats: int) -> None:
    """Median in-process read time of each real input (after one warm-up read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (path, options) in LOGS.items():
            rows = sources.read(path, options).data.height
            seconds = []
            for _ in range(repeats):
                t = time.perf_counter()
                sources.read(path, options)
                seconds.append(time.perf_counter() - t)
            print(f"  read {name:<16} {rows:>6} rows: median {statistics.median(seconds) * 1000:7.1f} ms")


def melted(folder: Path) -> Path:
    """The matrix melted by hand into a long table (the baseline input)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = sources.read(MATRIX, WIDE).data
    out = folder / "math500_long.csv"
    data.select(pl.col("model_id").alias("model"), "item", "condition", "outcome").write_csv(out)
    return out


def fit_command(inputs: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "dvbstats.fit", *inputs, "--benchmark", "binary", "--no-report", "--quiet",
            "--allow-warnings", "--out", str(out)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="in-process reads of each real input")
    p.add_argument("--skip-fit", action="store_true", help="only the reading times")
    args = p.parse_args()
    print(f"{stamp()}  {load()}")
    read_times(args.repeats)
    if args.skip_fit:
        return
    with tempfile.TemporaryDirectory() as tmp:
        long = melted(Path(tmp))
        ingest = {"wide": [], "long": []}
        fits = {"wide": [], "long": []}
        inputs = {"wide": [str(MATRIX), "--wide", "model", "--label-pattern", PATTERN], "long": [str(long)]}
        loads = {"wide": f"import dvbstats as dvb; dvb.load({str(MATRIX)!r}, wide='model', label_pattern={PATTERN!r})",
                 "long": f"import dvbstats as dvb; dvb.load({str(long)!r}, benchmark='binary')"}
        for i in range(args.runs):
            for kind in ("wide", "long"):  # alternating, so load changes hit both alike
                ingest[kind].append(timed([sys.executable, "-W", "ignore", "-c", loads[kind]], cwd=str(ROOT)))
                out = Path(tmp) / f"{kind}{i}"
                row = timed(fit_command(inputs[kind], out), cwd=str(ROOT))
                meta = json.loads((out / "manifest.json").read_text()) if row["returncode"] == 0 else {}
                row["diagnostics"] = meta.get("diagnostics", {})
                fits[kind].append(row)
                d = row["diagnostics"]
                print(f"  {kind} run {i + 1}: {row['seconds']:.1f} s (CPU {row['cpu_s']:.1f} s), exit "
                      f"{row['returncode']}, formula {meta.get('formula')}, diagnostics ok={d.get('ok')} max R-hat "
                      f"{d.get('max_r_hat', float('nan')):.3f} min bulk ESS {d.get('min_ess_bulk', float('nan')):.0f} "
                      f"divergences {d.get('divergences')}; {load()}", flush=True)
                if row["returncode"] != 0:
                    sys.exit(f"{kind} fit failed: {row['stderr']}")
    for kind in ("wide", "long"):
        print(f"{kind:>4}: ingest {describe([r['seconds'] for r in ingest[kind]], 's')}; end to end "
              f"{describe([r['seconds'] for r in fits[kind]], 's')}, CPU "
              f"{describe([r['cpu_s'] for r in fits[kind]], 's')}, peak RSS "
              f"{describe([r['peak_rss_mib'] for r in fits[kind]], 'MiB')}")
    ratio = statistics.median(r["seconds"] for r in fits["wide"]) / statistics.median(r["seconds"] for r in fits["long"])
    ingest_ratio = (statistics.median(r["seconds"] for r in ingest["wide"])
                    / statistics.median(r["seconds"] for r in ingest["long"]))
    cpu_ratio = statistics.median(r["cpu_s"] for r in fits["wide"]) / statistics.median(r["cpu_s"] for r in fits["long"])
    print(f"ratio wide reader / hand-melted long table: end to end {ratio:.2f} wall, {cpu_ratio:.2f} CPU; ingest "
          f"{ingest_ratio:.2f}; "
          f"diagnostics passed in {sum(bool(r['diagnostics'].get('ok')) for r in fits['wide'])} of "
          f"{len(fits['wide'])} wide runs; {load()}")


if __name__ == "__main__":
    main()
