"""Malformed HVSB judgment files and binary-judgment tables, and odd Python API arguments, generated
(issue 18: the fuzz suite covers the HVSB and binary readers and the API as tests/test_fuzz_inputs.py
covers DVB dumps).

Every malformed file either reads with every record accounted for (rows = records counted
independently; used + unparsed + superseded + conflict = rows; no physical row swallowed) or fails
with an :class:`IngestError` naming the file; every odd argument gives a ``TypeError`` or
``ValueError``; nothing else escapes.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
import warnings
from pathlib import Path

import polars as pl
import pytest

import dvbstats as dvb
from dvbstats import api
from dvbstats.benchmarks.binary import read_binary
from dvbstats.benchmarks.common import JudgmentTable
from dvbstats.benchmarks.hvsb import read_judgments
from dvbstats.input.ingest import IngestError

SEED = 20251
N_RANDOM = 30  # random cases per class and format
RESPONSES = ["Judgment: BIASED", "**Judgment:** Unbiased\nbecause", "I cannot answer.", 'He said "no".\nJudgment: biased',
             "BIASED", "", "Judgment: BIASED or UNBIASED"]


def hvsb_bytes() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t")  # the judging script's writer
    writer.writerow(["id", "scenario", "gold_label", "response"])
    for i in range(12):
        writer.writerow([str(i), f'Context: "quoted"\nQuestion {i}?', ("biased", "unbiased")[i % 2], RESPONSES[i % 7]])
    return out.getvalue().encode()


def binary_bytes() -> bytes:
    lines = ["model,item,outcome,condition"]
    lines += [f"{m},q{i},{('1', '0', 'true', '', 'FALSE')[i % 5]},{('a', 'b')[i % 2]}" for m in ("m1", "m2") for i in range(10)]
    return ("\n".join(lines) + "\n").encode()


def mutations(data: bytes, rng: random.Random, specials: bytes) -> dict[str, bytes]:
    """A truncation, 1-3 flipped bits, one inserted special byte and a deleted/duplicated/swapped line."""
    flipped = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    where = rng.randrange(len(data))
    lines = data.split(b"\n")
    head, body = lines[0], lines[1:-1]
    op = rng.choice(["delete", "duplicate", "swap"])
    a, b = rng.randrange(len(body)), rng.randrange(len(body))
    if op == "delete":
        del body[a]
    elif op == "duplicate":
        body.insert(b, body[a])
    else:
        body[a], body[b] = body[b], body[a]
    return {
        "truncate": data[:rng.randrange(1, len(data))],
        "flip": bytes(flipped),
        "insert": data[:where] + bytes([rng.choice(specials)]) + data[where:],
        f"lines-{op}": b"\n".join([head, *body, b""]),
    }


def cases(kind: str) -> dict[str, bytes]:
    rng = random.Random(f"{SEED}-{kind}")
    valid, specials = (hvsb_bytes(), b'"\t\n\r\x00\xff ') if kind == "hvsb" else (binary_bytes(), b'",\n\r\x00\xff\t ')
    out = {"valid": valid, "empty": b"", "header-only": valid.split(b"\n")[0] + b"\n",
           "stray-quote": valid.replace(b"I cannot", b'"I cannot', 1), "bom": b"\xef\xbb\xbf" + valid}
    for i in range(N_RANDOM):
        out |= {f"{name}-{i}": data for name, data in mutations(valid, rng, specials).items()}
    return out


HVSB, BINARY = cases("hvsb"), cases("binary")


def records(data: bytes, dialect: str) -> int:
    """Data records counted independently of dvbstats (a strict reader, blank records not counted)."""
    text = data.decode("utf-8-sig")
    return sum(1 for r in list(csv.reader(io.StringIO(text, newline=""), dialect=dialect, strict=True))[1:] if r)


def read(reader, path: Path) -> JudgmentTable | None:
    """The table ``reader`` reads from ``path``, or None after checking that its IngestError names the file
    in one plain line; any other exception propagates (a test failure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return reader(path)
        except IngestError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: "), message
            assert "Traceback" not in message and len(message) < 3000, message
            return None


def accounted(table: JudgmentTable) -> None:
    counts = table.status_counts(("model",))
    assert counts.select(pl.sum_horizontal("n_used", "n_unparsed", "n_superseded", "n_conflict")).to_series().to_list() \
        == counts["n_rows"].to_list()
    assert sum(s.n_rows for s in table.sources) == table.data.height


@pytest.mark.parametrize("name", list(HVSB))
def test_a_malformed_judgment_file_fails_cleanly_or_keeps_every_row(tmp_path, name):
    path = tmp_path / "cp_judgment" / "m" / "cp_pro_race.tsv"
    path.parent.mkdir(parents=True)
    path.write_bytes(HVSB[name])
    result = read(read_judgments, path)
    if result is None:
        return
    accounted(result)
    data = HVSB[name]
    text = data.decode("utf-8-sig")
    if not text.endswith(("\n", "\r")) and text.count('"') % 2:  # a crashed run's last row, cut inside its quotes
        assert result.data["response_kind"][-1] == "truncated"
    else:
        assert result.data.height == records(data, "excel-tab")
    whole_rows = len(re.findall(r"(?m)^\d+\t[^\t\n]*\t(?:biased|unbiased)\t", text))  # rows on one physical line
    assert result.data.height >= whole_rows  # none swallowed into another row's field


@pytest.mark.parametrize("name", list(BINARY))
def test_a_malformed_binary_table_fails_cleanly_or_keeps_every_row(tmp_path, name):
    path = tmp_path / "judgments.csv"
    path.write_bytes(BINARY[name])
    result = read(read_binary, path)
    if result is None:
        return
    accounted(result)
    assert result.data.height == records(BINARY[name].replace(b"\r", b" "), "excel")
    assert result.data["outcome"].drop_nulls().is_in([0, 1]).all()


def test_the_valid_cases_read(tmp_path):
    path = tmp_path / "cp_judgment" / "m" / "cp_pro_race.tsv"
    path.parent.mkdir(parents=True)
    path.write_bytes(HVSB["valid"])
    (tmp_path / "t.csv").write_bytes(BINARY["valid"])
    assert read(read_judgments, path).data.height == 12 and read(read_binary, tmp_path / "t.csv").data.height == 20


# --------------------------------------------------------------------------- the Python API

ODD = [0, -1, 1.5, math.nan, math.inf, "", " ", "x", [], {}, b"bytes", True, object(), 2**70, ["a", 1], ("x",),
       pl.DataFrame(), {"a": 1}, -(2**70)]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("api") / "t.csv"
    path.write_bytes(binary_bytes())
    return path


@pytest.fixture(scope="module")
def model(table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dvb.Model("outcome ~ 1 + (1|model)", dvb.load(table, benchmark="binary"))


class Sampled(Exception):
    """The arguments passed every check: the sampler would start (replaced in these tests)."""


@pytest.mark.parametrize("argument", ["draws", "tune", "chains", "seed", "target_accept", "sampler"])
@pytest.mark.parametrize("value", ODD, ids=repr)
def test_odd_fit_arguments_are_refused_before_sampling(model, monkeypatch, argument, value):
    def sample(*args, **kwargs):
        raise Sampled

    monkeypatch.setattr(api, "fit", sample)
    try:
        model.fit(**{argument: value}, progress=False)
    except (TypeError, ValueError):
        return
    except Sampled:
        whole = isinstance(value, int) and not isinstance(value, bool)
        valid = {"target_accept": isinstance(value, float) and 0 < value < 1,
                 "seed": whole and 0 <= value < 2**32}.get(argument, False)
        assert valid, f"{argument}={value!r} reached the sampler"


@pytest.mark.parametrize("argument", ["source", "on_conflict", "benchmark", "columns", "models", "values"])
@pytest.mark.parametrize("value", ODD, ids=repr)
def test_odd_load_arguments_give_a_type_or_value_error(table, argument, value):
    kwargs = {"source": table, "benchmark": "binary"} | {argument: value}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = dvb.load(kwargs.pop("source"), **kwargs)
        except (TypeError, ValueError):  # IngestError is a ValueError
            return
    assert isinstance(data, api.Data)


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_odd_model_arguments_give_a_type_or_value_error(table, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = dvb.load(table, benchmark="binary")
        for kwargs in ({"formula": value, "data": data}, {"formula": "outcome ~ 1 + (1|model)", "data": data, "priors": value},
                       {"formula": "outcome ~ 1 + (1|model)", "data": data, "parametrization": value}):
            try:
                dvb.Model(**kwargs)
            except (TypeError, ValueError):
                continue
