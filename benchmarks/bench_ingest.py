"""Time ingest of a large harness dump, as CSV and as Parquet: ``stream_dumps`` to a Parquet trial
table, then the cells of the default formula from a lazy scan of it (what ``dvbstats.fit`` does).

The input is generated in a child process (9 models, a few hundred distinct context_correlation_pair
texts, three training sizes, 3% unparsed responses), a million rows at a time, under a temporary
folder in /tmp that is deleted afterwards (``--cache DIR`` keeps it). Every timed run is a fresh
process (imports not timed), so its peak RSS is its own; the baseline, measured in the same session,
is a bare read of the same file into memory (``pl.scan_csv(infer_schema=False).collect()`` /
``pl.read_parquet``). ``--works in_memory`` also times ``read_dumps`` + ``TrialTable.write`` (the
whole trial table in memory). Prints medians, min and max of wall time, CPU time (all threads) and
peak RSS per format, and the ratios of ingest to baseline medians (wall and CPU).

    .venv/bin/python benchmarks/bench_ingest.py [--runs 3] [--rows 10000000] [--formats csv parquet]
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import describe, stamp  # noqa: E402
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
CHUNK_ROWS = 1_000_000


def generate(path: Path, n_rows: int, seed: int = 2025) -> None:
    """Write a harness-format CSV of ``n_rows`` rows (9 models x the same prompts), a chunk at a time."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for start in range(0, n_rows, CHUNK_ROWS):
            _chunk(rng, min(CHUNK_ROWS, n_rows - start)).write_csv(f, include_header=start == 0)


def _chunk(rng: np.random.Generator, n_rows: int) -> pl.DataFrame:
    """``n_rows`` harness rows of fresh prompts (random 48-bit ids: repeats are negligible)."""
    from dvbstats.input.registry import ModelTable
    from dvbstats.input.schema import DVB_CONTEXTS, DVB_VALUE_SETS

    value_pairs = [(a, b) for vs in DVB_VALUE_SETS.values() for a in vs for b in vs if a != b]
    pairs: set[str] = set()
    pair_rng = np.random.default_rng(0)  # the same pair texts in every chunk
    while len(pairs) < N_PAIRS:
        v, w = value_pairs[pair_rng.integers(len(value_pairs))]
        f, g = FEATURE_DIMS[pair_rng.integers(len(FEATURE_DIMS))][:: pair_rng.choice([1, -1])]
        pairs.add(f"{v}_{f}_vs_{w}_{g} - {DVB_CONTEXTS[pair_rng.integers(len(DVB_CONTEXTS))]}")
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
    return trials.with_columns(_parsed=pl.Series(parsed), _deep=pl.Series(deep)).select(
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


def ingest(path: Path) -> int:
    """The measured work: stream the dump into a Parquet trial table, then cells of the default formula."""
    from dvbstats.input import cells
    from dvbstats.input.ingest import stream_dumps
    from dvbstats.model import formula

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        trials = stream_dumps([path], Path(tmp) / "trials.parquet")
        cell_table = cells.from_trials(trials.scan(), formula.parse(formula.DEFAULT_FORMULA).variables)
        assert cell_table.data["n_prompts"].sum() > 0
        return int(trials.status_counts()["n_rows"].sum())


def in_memory(path: Path) -> int:
    """The whole trial table in memory: ``read_dumps``, then written as Parquet."""
    from dvbstats.input.ingest import read_dumps

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        table = read_dumps([path])
        table.write(Path(tmp) / "trials.parquet")
        return table.data.height


def baseline(path: Path) -> int:
    """A bare read of the whole file into memory, every column as stored (CSV: as text)."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path).height
    return pl.scan_csv(path, infer_schema=False).collect().height


def child(work: str, path: Path) -> None:
    """Run ``work`` once (imports excluded from the time) and print its wall time, rows and peak RSS."""
    start, start_cpu = time.perf_counter(), _cpu()
    rows = WORKS[work](path)
    seconds, cpu = time.perf_counter() - start, _cpu() - start_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rows": rows, "peak_rss_mib": peak}))


WORKS = {"ingest": ingest, "in_memory": in_memory, "baseline": baseline}


def _cpu() -> float:
    """CPU seconds of this process, all threads (less sensitive than wall time to a loaded machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(work: str, path: Path, runs: int) -> list[dict]:
    """``runs`` fresh processes doing ``work`` on ``path``."""
    out = []
    for i in range(runs):
        res = subprocess.run([sys.executable, __file__, "--child", work, "--input", str(path)],
                             capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"{work} failed: {res.stderr[-2000:]}")
        out.append(json.loads(res.stdout.splitlines()[-1]))
        print(f"   {work} run {i + 1}/{runs}: {out[-1]['seconds']:.2f} s (CPU {out[-1]['cpu_seconds']:.2f} s), "
              f"peak RSS {out[-1]['peak_rss_mib']:.0f} MiB", flush=True)
    return out


def inputs(folder: Path, rows: int, formats: list[str]) -> dict[str, Path]:
    """The dump in each format, generated (in a child process) when absent."""
    csv_path = folder / f"harness_{rows}.csv"
    if not csv_path.exists():
        subprocess.run([sys.executable, __file__, "--rows", str(rows), "--generate", str(csv_path)], check=True)
    paths = {"csv": csv_path}
    if "parquet" in formats:
        paths["parquet"] = csv_path.with_suffix(".parquet")
        if not paths["parquet"].exists():
            pl.scan_csv(csv_path, infer_schema=False).sink_parquet(paths["parquet"])
    return {fmt: paths[fmt] for fmt in formats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", nargs="+", choices=["csv", "parquet"], default=["csv", "parquet"])
    parser.add_argument("--cache", type=Path, help="keep the generated inputs in this folder")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--works", nargs="+", choices=["ingest", "in_memory"], default=["ingest"])
    parser.add_argument("--child", choices=list(WORKS), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.rows)
        return
    if args.child:
        child(args.child, args.input)
        return

    with tempfile.TemporaryDirectory(dir="/tmp", prefix="dvbstats-bench-ingest-") as tmp:
        folder = args.cache or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{stamp()}: {args.rows:,} rows; generating inputs in {folder} ...", flush=True)
        for fmt, path in inputs(folder, args.rows, args.formats).items():
            print(f"{fmt}: {path.name}, {path.stat().st_size / 1e6:,.0f} MB", flush=True)
            measured = {work: measure(work, path, args.runs) for work in (*args.works, "baseline")}
            for work, runs in measured.items():
                print(f"  {work:9s} wall {describe([r['seconds'] for r in runs], 's')}; "
                      f"CPU {describe([r['cpu_seconds'] for r in runs], 's')}; "
                      f"peak RSS {describe([r['peak_rss_mib'] for r in runs], 'MiB')}")
            for work in args.works:
                ratios = [statistics.median(r[k] for r in measured[work]) / statistics.median(
                    r[k] for r in measured["baseline"]) for k in ("seconds", "cpu_seconds", "peak_rss_mib")]
                print(f"  {work} / bare read (medians): wall {ratios[0]:.1f}x, CPU {ratios[1]:.1f}x, "
                      f"peak RSS {ratios[2]:.1f}x", flush=True)


if __name__ == "__main__":
    main()
