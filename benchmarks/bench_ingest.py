"""Time ``read_dumps`` + ``TrialTable.write`` on a 1,000,000-row harness CSV.

The input is generated once (in a child process, so it does not count towards peak RSS) and cached
under ``benchmarks/results/``: 9 models, a few hundred distinct context_correlation_pair texts,
three training sizes, 3% unparsed responses. Prints the median, min and max wall time over the runs,
the CPU time (all threads; the wall time depends on what else the machine runs), the time of a bare
``pl.read_csv`` of the same file for scale, and the peak RSS of this process.

    /tmp/venv/bin/python benchmarks/bench_ingest.py [--runs 5] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package
FEATURE_DIMS = (
    ("Formal", "Colloquial"),
    ("Tech-savvy", "Traditional"),
    ("plain language", "jargon"),
    ("data_driven", "intuitive"),
    ("Proactive", "Reactive"),
    ("Concise", "Verbose"),
)
N_PAIRS = 300
UNPARSED_RATE = 0.03


def generate(path: Path, n_rows: int, seed: int = 2025) -> None:
    """Write a harness-format CSV of ``n_rows`` rows (9 models x the same prompts)."""
    from dvbstats.registry import ModelTable
    from dvbstats.schema import DVB_CONTEXTS, DVB_VALUE_SETS

    rng = np.random.default_rng(seed)
    value_pairs = [(a, b) for vs in DVB_VALUE_SETS.values() for a in vs for b in vs if a != b]
    pairs: set[str] = set()
    while len(pairs) < N_PAIRS:
        v, w = value_pairs[rng.integers(len(value_pairs))]
        f, g = FEATURE_DIMS[rng.integers(len(FEATURE_DIMS))][:: rng.choice([1, -1])]
        pairs.add(f"{v}_{f}_vs_{w}_{g} - {DVB_CONTEXTS[rng.integers(len(DVB_CONTEXTS))]}")
    model_ids = ModelTable.default().data["model_id"].to_list()
    n_prompts = n_rows // len(model_ids) + 1
    prompts = pl.DataFrame({
        "pair": pl.Series(sorted(pairs))[rng.integers(len(pairs), size=n_prompts)],
        "n": pl.Series(rng.choice([4, 20, 40], size=n_prompts)).cast(pl.String),
        "uid": pl.Series(rng.integers(16**12, size=n_prompts)).cast(pl.String),
        "expected": pl.Series(rng.choice(["Option A", "Option B"], size=n_prompts)),
    }).with_columns(
        test_id=pl.format("{}_{}", pl.col("pair").str.replace_all(" ", "_"), "n"),
    ).with_columns(prompt_id=pl.format("{}_{}", "test_id", "uid"))
    trials = prompts.join(pl.DataFrame({"model": model_ids}), how="cross").head(n_rows)
    n = trials.height
    parsed = rng.random(n) >= UNPARSED_RATE
    deep = rng.random(n) < 0.3
    other = pl.when(pl.col("expected") == "Option A").then(pl.lit("Option B")).otherwise(pl.lit("Option A"))
    choice = pl.when(pl.col("_deep")).then(pl.col("expected")).otherwise(other)
    dump = trials.with_columns(_parsed=pl.Series(parsed), _deep=pl.Series(deep)).select(
        "prompt_id",
        "model",
        "test_id",
        pl.col("pair").alias("context_correlation_pair"),
        pl.col("n").alias("n_training_examples"),
        pl.when(pl.col("_parsed")).then(pl.format("{}. It keeps with the person's earlier choices.", choice))
        .otherwise(pl.lit("I cannot choose between these options.")).alias("raw_response"),
        pl.when(pl.col("_parsed")).then(choice).alias("model_choice"),
        pl.col("expected").alias("expected_deep_value_choice"),
        other.alias("shallow_preference_choice"),
        pl.when(pl.col("_parsed")).then(pl.col("_deep").cast(pl.Int8)).alias("generalized_deep_value"),
        pl.col("_parsed").alias("success"),
        pl.when(~pl.col("_parsed")).then(pl.lit("Could not parse a choice from the response")).alias("error"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    dump.write_csv(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.rows)
        return

    from dvbstats.ingest import read_dumps

    dump = RESULTS / f"harness_{args.rows}.csv"
    if not dump.exists():
        command = [sys.executable, __file__, "--rows", str(args.rows), "--generate", str(dump)]
        subprocess.run(command, check=True)
    size_mb = dump.stat().st_size / 1e6

    times, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trials.parquet"
        for _ in range(args.runs):
            table = None  # free the previous run's table first
            start, start_cpu = time.perf_counter(), time.process_time()
            table = read_dumps([dump])
            table.write(out)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        parquet_mb = out.stat().st_size / 1e6
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    baseline = []
    for _ in range(args.runs):
        start = time.perf_counter()
        pl.read_csv(dump, infer_schema=False)
        baseline.append(time.perf_counter() - start)

    counts = table.status_counts()
    pair_parts = ("value", "feature", "value_less", "feature_less", "context")
    n_pairs = table.data.select(pl.struct(pair_parts).n_unique())
    print(f"input: {dump.name}, {table.data.height:,} rows, {size_mb:.0f} MB CSV, {counts.height} models, "
          f"{n_pairs.item()} distinct pairs, {counts['n_unparsed'].sum() / table.data.height:.1%} unparsed")
    print(f"read_dumps + write, {args.runs} runs: median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s, max {max(times):.2f} s "
          f"(CPU time, all threads: median {statistics.median(cpu):.2f} s)")
    print(f"bare pl.read_csv (all text), median {statistics.median(baseline):.2f} s "
          f"(ratio {statistics.median(times) / statistics.median(baseline):.1f}x)")
    print(f"output Parquet {parquet_mb:.0f} MB; peak RSS of the read_dumps + write runs {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
