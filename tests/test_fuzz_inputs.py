"""Malformed inputs, generated: every one either ingests with every row accounted for, or fails
with an :class:`IngestError` that names the file; none escapes as another exception.

The cases are the classes of issue 12 (encodings, files that are not what their extension says,
ragged rows, stray quotes, invalid UTF-8, truncated JSON lines, repeated headers, huge fields and
numbers, control characters, whitespace and case variants, dangling links, cell tables missing a
count) plus seeded random truncations, byte flips and line shuffles of a valid dump. The bulk goes
through :func:`dvbstats.input.ingest.load` (no sampling); failing cases also go through the CLI's
``main`` in-process, and one bad file through ``python -m dvbstats.fit`` in a subprocess.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import polars as pl
import pytest

from dvbstats.cli import fit as cli
from dvbstats.input.ingest import IngestError, TrialTable, load

ROOT = Path(__file__).resolve().parents[1]
csv.field_size_limit(sys.maxsize)  # rows_in counts rows holding 2 MB fields
SEED = 20251
N_RANDOM = 40  # random cases per random class
GPT4O = "gpt-4o-2024-08-06"
LLAMA = "replicate/meta/meta-llama-3-8b-instruct"
PAIRS = (
    "fidelity_Proactive_vs_justice_Reactive - commerce",
    "non_maleficence_Tech-savvy_vs_self_improvement_plain language - customer service",
    "security_data_driven_vs_tradition_intuitive - finance",
)


def base_rows() -> list[dict[str, str]]:
    """A valid dump: 2 models x 8 prompts, one unparsed row and one re-run copy."""
    rows = []
    for model in (GPT4O, LLAMA):
        for i in range(8):
            pair, n = PAIRS[i % 3], (4, 20, 40)[i % 3]
            choice = ("Option A", "Option B")[i % 2]
            test_id = f"{pair.replace(' ', '_')}_{n}"
            rows.append({
                "prompt_id": f"{test_id}_{i}", "model": model, "test_id": test_id,
                "context_correlation_pair": pair, "n_training_examples": str(n),
                "raw_response": f"{choice}, because \"reasons\", and more", "model_choice": choice,
                "expected_deep_value_choice": "Option A", "shallow_preference_choice": "Option B",
                "generalized_deep_value": str(int(choice == "Option A")), "success": "True", "error": "",
            })
    rows[3] |= {"model_choice": "", "generalized_deep_value": "", "success": "False", "error": "timeout"}
    rows.append(dict(rows[3]) | {"model_choice": "Option B", "generalized_deep_value": "0", "success": "True", "error": ""})
    return rows


def csv_bytes(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header or list(rows[0]))
    writer.writerows([list(r.values()) for r in rows])
    return out.getvalue().encode()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parquet_bytes(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame(rows).write_parquet(buffer)
    return buffer.getvalue()


def with_row(change: dict[str, str], at: int = 5) -> list[dict[str, str]]:
    rows = base_rows()
    rows[at] = rows[at] | change
    return rows


def zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("dump.csv", data)
    return buffer.getvalue()


VALID = csv_bytes(base_rows())
VALID_LINES = VALID.decode().splitlines(keepends=True)
HUGE = "x" * 2_000_000

#: name -> (file name, content). Deterministic cases.
CASES: dict[str, tuple[str, bytes]] = {
    # encodings
    "utf16-bom": ("dump.csv", VALID.decode().encode("utf-16")),
    "utf16-le-no-bom": ("dump.csv", VALID.decode().encode("utf-16-le")),
    "utf16-be-no-bom": ("dump.csv", VALID.decode().encode("utf-16-be")),
    "utf32": ("dump.csv", VALID.decode().encode("utf-32")),
    "utf8-bom": ("dump.csv", b"\xef\xbb\xbf" + VALID),
    "crlf": ("dump.csv", VALID.replace(b"\n", b"\r\n")),
    "latin1-field": ("dump.csv", csv_bytes(with_row({"raw_response": "d\xe9j\xe0 vu"})).decode().encode("latin-1")),
    "utf16-jsonl": ("dump.jsonl", jsonl_bytes(base_rows()).decode().encode("utf-16")),
    "utf8-bom-jsonl": ("dump.jsonl", b"\xef\xbb\xbf" + jsonl_bytes(base_rows())),
    # files that are not what their name says
    "parquet-named-csv": ("dump.csv", parquet_bytes(base_rows())),
    "csv-named-parquet": ("dump.parquet", VALID),
    "jsonl-named-csv": ("dump.csv", jsonl_bytes(base_rows())),
    "csv-named-jsonl": ("dump.jsonl", VALID),
    "gzip-named-csv": ("dump.csv", gzip.compress(VALID)),
    "gzip-jsonl": ("dump.jsonl", gzip.compress(jsonl_bytes(base_rows()))),
    "gzip-utf16": ("dump.csv", gzip.compress(VALID.decode().encode("utf-16"))),
    "gzip-corrupt": ("dump.csv", gzip.compress(VALID)[:-30]),
    "gzip-cut-after-64k": ("dump.csv", gzip.compress(VALID + "".join(VALID_LINES[1:]).encode() * 40)[:-30]),
    "zip-named-csv": ("dump.csv", zipped(VALID)),
    "random-binary": ("dump.csv", random.Random(SEED).randbytes(4096)),
    "empty": ("dump.csv", b""),
    "header-only": ("dump.csv", VALID_LINES[0].encode()),
    "empty-jsonl": ("dump.jsonl", b"\n\n"),
    "truncated-parquet": ("dump.parquet", parquet_bytes(base_rows())[:-40]),
    # structure
    "long-row": ("dump.csv", "".join(VALID_LINES[:4] + [VALID_LINES[4].rstrip("\n") + ",x\n"] + VALID_LINES[5:]).encode()),
    "short-row": ("dump.csv", "".join(VALID_LINES[:4] + [",".join(VALID_LINES[4].split(",")[:4]) + "\n"] + VALID_LINES[5:]).encode()),
    "open-quote": ("dump.csv", "".join(VALID_LINES[:4] + [VALID_LINES[4].replace("Option", '"Option', 1)] + VALID_LINES[5:]).encode()),
    "stray-quote": ("dump.csv", "".join(VALID_LINES[:4] + [VALID_LINES[4].replace('"', "", 1)] + VALID_LINES[5:]).encode()),
    "blank-lines": ("dump.csv", "".join(VALID_LINES[:3] + ["\n"] + VALID_LINES[3:] + ["\n", "\n"]).encode()),
    "commas-only-line": ("dump.csv", "".join(VALID_LINES[:3] + [",,,,,,,,,,,\n"] + VALID_LINES[3:]).encode()),
    "repeated-header": ("dump.csv", csv_bytes(base_rows(), [*base_rows()[0]][:-1] + ["model"])),
    "header-twice": ("dump.csv", "".join(VALID_LINES + [VALID_LINES[0]]).encode()),
    "missing-column": ("dump.csv", csv_bytes([{k: v for k, v in r.items() if k != "expected_deep_value_choice"} for r in base_rows()])),
    "semicolons": ("dump.csv", VALID.replace(b",", b";")),
    "tabs": ("dump.csv", VALID.replace(b",", b"\t")),
    "truncated-jsonl": ("dump.jsonl", jsonl_bytes(base_rows())[:-30]),
    "jsonl-not-object": ("dump.jsonl", jsonl_bytes(base_rows()) + b"[1, 2]\n"),
    "jsonl-list-first": ("dump.jsonl", b'["prompt_id", "model"]\n' + jsonl_bytes(base_rows())),
    "jsonl-repeated-key": ("dump.jsonl", b'{"prompt_id": "a", "prompt_id": "b"}\n'),
    "jsonl-nested-model": ("dump.jsonl", jsonl_bytes(with_row({"model": {"id": GPT4O}}))),
    # values
    "n-train-3e9": ("dump.csv", csv_bytes(with_row({"n_training_examples": "3000000000"}))),
    "n-train-1e300": ("dump.csv", csv_bytes(with_row({"n_training_examples": "1e300"}))),
    "n-train-nan": ("dump.csv", csv_bytes(with_row({"n_training_examples": "nan"}))),
    "n-train-negative": ("dump.csv", csv_bytes(with_row({"n_training_examples": "-4"}))),
    "n-train-1e300-jsonl": ("dump.jsonl", jsonl_bytes(base_rows()).replace(b'"n_training_examples": "20"', b'"n_training_examples": 1e300', 1)),
    "n-train-huge-int-jsonl": ("dump.jsonl", jsonl_bytes(base_rows()).replace(b'"n_training_examples": "20"', b'"n_training_examples": ' + b"9" * 40, 1)),
    "nul-in-model": ("dump.csv", csv_bytes(with_row({"model": GPT4O + "\x00"}))),
    "nul-in-model-jsonl": ("dump.jsonl", jsonl_bytes(with_row({"model": GPT4O + "\x00"}))),
    "control-in-prompt": ("dump.csv", csv_bytes(with_row({"prompt_id": "p\x07"}))),
    "huge-raw-response": ("dump.csv", csv_bytes(with_row({"raw_response": HUGE}))),
    "huge-model-id": ("dump.csv", csv_bytes(with_row({"model": "m" + HUGE}))),
    "huge-pair": ("dump.csv", csv_bytes(with_row({"context_correlation_pair": HUGE}))),
    "huge-header": ("dump.csv", csv_bytes([r | {HUGE: "1"} for r in base_rows()])),
    "many-columns": ("dump.csv", csv_bytes([r | {f"extra_{i}": str(i) for i in range(300)} for r in base_rows()])),
    "context-spaces": ("dump.csv", csv_bytes(with_row({"context_correlation_pair": PAIRS[0] + " ", "model": GPT4O + " "}))),
    "context-case": ("dump.csv", csv_bytes(with_row({"context_correlation_pair": "fidelity_PROACTIVE_vs_justice_Reactive - COMMERCE"}))),
    "doubled-underscore": ("dump.csv", csv_bytes(with_row({"context_correlation_pair": "fidelity__Proactive_vs_justice_Reactive - commerce"}))),
    "choice-lowercase": ("dump.csv", csv_bytes(with_row({"model_choice": "option a"}))),
    "success-yes": ("dump.csv", csv_bytes(with_row({"success": "yes"}))),
    "inconsistent-verdict": ("dump.csv", csv_bytes(with_row({"generalized_deep_value": "0", "model_choice": "Option A"}))),
    "conflicting-copy": ("dump.csv", csv_bytes(base_rows() + [base_rows()[0] | {"model_choice": "Option B", "generalized_deep_value": "0"}])),
    "copy-other-design": ("dump.csv", csv_bytes(base_rows() + [base_rows()[0] | {"n_training_examples": "40"}])),
    # cell tables
    "cells-missing-n-deep": ("cells.csv", b"model,value,n_trials\ngpt-4o,fidelity,10\n"),
    "cells-huge-count": ("cells.csv", b"model,value,n_trials,n_deep\ngpt-4o,fidelity,1e300,1\n"),
    "cells-huge-n-train": ("cells.csv", b"model,n_train,n_trials,n_deep\ngpt-4o,3000000000,10,1\n"),
    "cells-utf16": ("cells.csv", "model,n_trials,n_deep\ngpt-4o,10,1\n".encode("utf-16")),
    "cells-ragged": ("cells.csv", b"model,n_trials,n_deep\ngpt-4o,10\nllama-3-8b,5,1\n"),
}


def random_cases() -> dict[str, tuple[str, bytes]]:
    """Seeded truncations, byte flips, inserted bytes and line deletions/duplications/swaps of valid dumps."""
    rng = random.Random(SEED)
    cases = {}
    sources = {"csv": VALID, "jsonl": jsonl_bytes(base_rows()), "parquet": parquet_bytes(base_rows())}
    for i in range(N_RANDOM):
        for fmt, data in sources.items():
            cut = rng.randrange(1, len(data))
            cases[f"truncate-{fmt}-{i}"] = (f"dump.{fmt}", data[:cut])
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            cases[f"flip-{fmt}-{i}"] = (f"dump.{fmt}", bytes(flipped))
        where = rng.randrange(len(VALID))
        cases[f"insert-csv-{i}"] = ("dump.csv", VALID[:where] + bytes([rng.choice(b'",\n\r\x00\xff\t ')]) + VALID[where:])
        lines = list(VALID_LINES[1:])
        op = rng.choice(["delete", "duplicate", "swap"])
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        if op == "delete":
            del lines[a]
        elif op == "duplicate":
            lines.insert(b, lines[a])
        else:
            lines[a], lines[b] = lines[b], lines[a]
        cases[f"lines-{op}-{i}"] = ("dump.csv", (VALID_LINES[0] + "".join(lines)).encode())
    return cases


ALL = CASES | random_cases()


def rows_in(path: Path) -> int:
    """Data rows of a file counted independently of dvbstats (blank CSV/JSON lines are not rows)."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path).height
    data = path.read_bytes()
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8-sig")
    text = re.sub("\r(?!\n)", " ", text)  # a lone carriage return is data to polars, a line end to csv
    if path.suffix == ".jsonl":
        return sum(1 for line in text.split("\n") if line.strip())
    return sum(1 for record in list(csv.reader(io.StringIO(text, newline="")))[1:] if any(record))


def ingest(path: Path) -> TrialTable | pl.DataFrame | IngestError:
    """``load`` the file; an IngestError is returned, any other exception propagates (a test failure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load([path], on_conflict="error")
        except IngestError as exc:
            return exc


def write_case(tmp_path: Path, name: str) -> Path:
    file_name, content = ALL[name]
    path = tmp_path / file_name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", list(ALL))
def test_malformed_input_fails_cleanly_or_conserves_rows(tmp_path, name):
    path = write_case(tmp_path, name)
    result = ingest(path)
    if isinstance(result, IngestError):
        message = str(result)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message and "Traceback" not in message and len(message) < 3000, message
        return
    if isinstance(result, TrialTable):
        data = result.data
        assert sum(s.n_rows for s in result.sources) == data.height == rows_in(path)
        counts = result.status_counts()
        assert counts.select(pl.sum_horizontal("n_used", "n_unparsed", "n_superseded", "n_conflict")).to_series().to_list() \
            == counts["n_rows"].to_list()
        assert data.filter(pl.col("status") == "used")["chose_deep"].null_count() == 0
    else:
        assert result.height == rows_in(path)


EXPECTED = {  # what some cases must say (the rest: any clean error, or rows conserved)
    "utf16-bom": "this is UTF-16 text",
    "utf16-le-no-bom": "this is UTF-16 text without a byte-order mark",
    "utf16-be-no-bom": "this is UTF-16 text without a byte-order mark",
    "utf32": "this is UTF-32 text",
    "parquet-named-csv": "this is a Parquet file",
    "csv-named-parquet": "not a Parquet file",
    "zip-named-csv": "this is a ZIP archive",
    "gzip-utf16": "this is UTF-16 text",
    "gzip-cut-after-64k": "cannot read",
    "random-binary": "this is binary data",
    "latin1-field": "row 6 (line 7): invalid UTF-8",
    "long-row": "row 4 (line 5): 13 fields where the header has 12",
    "short-row": "row 4 (line 5): 4 fields where the header has 12",
    "open-quote": "row 4 (line 5)",
    "repeated-header": "repeated column name(s) 'model' (columns 2, 12)",
    "truncated-jsonl": "row 17 (line 17): not valid JSON (a truncated line?)",
    "jsonl-not-object": "row 18 (line 18): a JSON list, not an object",
    "jsonl-list-first": "row 1 (line 1): a JSON list, not an object",
    "n-train-3e9": "row 6: n_training_examples must be a positive integer",
    "n-train-1e300": "row 6: n_training_examples must be a positive integer",
    "n-train-1e300-jsonl": "n_training_examples must be a positive integer",
    "nul-in-model": "row 6: model 'gpt-4o-2024-08-06\\x00' contains a control character",
    "nul-in-model-jsonl": "row 6: model 'gpt-4o-2024-08-06\\x00' contains a control character",
    "doubled-underscore": "doubled underscore",
    "missing-column": "missing harness column(s) 'expected_deep_value_choice'",
    "semicolons": "holding semicolons",
    "cells-missing-n-deep": "missing cell table column(s) 'n_deep'",
    "cells-utf16": "this is UTF-16 text",
    "cells-ragged": "row 1 (line 2): 2 fields where the header has 3",
    "cells-huge-n-train": "row 1: n_train must be an integer",
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_named_cases_say_what_is_wrong(tmp_path, name):
    path = write_case(tmp_path, name)
    result = ingest(path)
    assert isinstance(result, IngestError), name
    assert EXPECTED[name] in str(result)


ACCEPTED = ["utf8-bom", "crlf", "gzip-named-csv", "gzip-jsonl", "utf8-bom-jsonl", "blank-lines", "commas-only-line", "huge-raw-response",
            "huge-model-id", "context-spaces", "context-case", "many-columns", "huge-header"]


@pytest.mark.parametrize("name", ACCEPTED)
def test_harmless_oddities_are_accepted(tmp_path, name):
    result = ingest(write_case(tmp_path, name))
    assert isinstance(result, TrialTable), result
    assert result.data.filter(pl.col("status") == "used").height == 16  # 17 rows, one failure superseded


def test_the_case_set_is_what_the_docstring_says():
    assert len(ALL) == len(CASES) + 8 * N_RANDOM
    assert set(EXPECTED) <= set(CASES) and set(ACCEPTED) <= set(CASES) and set(CLI_CASES) <= set(ALL)


def test_a_dangling_link_beside_a_dump_is_reported_not_fatal(tmp_path):
    (tmp_path / "dump.csv").write_bytes(VALID)
    (tmp_path / "lost.csv").symlink_to(tmp_path / "nowhere.csv")
    with pytest.warns(Warning, match=r"dangling symbolic link\(s\).*lost\.csv"):
        assert load([tmp_path]).data.height == rows_in(tmp_path / "dump.csv")


CLI_CASES = ["utf16-bom", "parquet-named-csv", "long-row", "open-quote", "truncated-jsonl", "n-train-1e300",
             "nul-in-model", "repeated-header", "cells-missing-n-deep", "huge-pair", "latin1-field", "truncate-csv-1"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_exits_2_with_one_error_line(tmp_path, monkeypatch, capsys, name):
    path = write_case(tmp_path, name)
    assert isinstance(ingest(path), IngestError)  # (else the CLI would go on to sample)
    monkeypatch.chdir(tmp_path)
    code = cli.main([str(path), "--out", "run", "--quiet", "--no-report", "--no-scaling", "--draws", "10",
                     "--tune", "10", "--chains", "1"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {path}: ") and "Traceback" not in err


@pytest.mark.slow
def test_cli_subprocess_exit_2_without_traceback(tmp_path):
    path = write_case(tmp_path, "utf16-bom")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "dvbstats.fit", str(path), "--draws", "10", "--quiet", "--no-report"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [f"error: {path}: this is UTF-16 text (byte-order mark FF FE), "
                                               "not UTF-8 CSV text; re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"]


@pytest.mark.slow
def test_cli_subprocess_fits_an_odd_but_valid_dump(tmp_path):
    path = write_case(tmp_path, "context-spaces")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "dvbstats.fit", str(path), "--draws", "30", "--tune", "30",
                          "--chains", "1", "--quiet", "--no-report", "--no-scaling", "--allow-warnings",
                          "--formula", "chose_deep ~ 1 + (1|model)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "warning: IngestWarning: whitespace removed" in res.stdout
    quality = pl.read_csv(tmp_path / "runs" / "dump" / "data_quality.csv")
    assert quality["n_rows"].sum() == rows_in(path)

