"""Reading harness dumps and cell tables: parsing, outcome coding, validation, reconciliation."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest

from dvbstats.input import files, schema
from dvbstats.input.ingest import (
    RECONCILIATION_SCHEMA,
    IngestError,
    TrialTable,
    is_cell_table,
    load,
    parse_pairs,
    read_cells,
    read_dumps,
)
from dvbstats.input.registry import ModelTable, UnknownModelWarning

GPT4O = "gpt-4o-2024-08-06"
LLAMA8 = "replicate/meta/meta-llama-3-8b-instruct"
PAIR = "non_maleficence_Tech-savvy_vs_self_improvement_plain language - customer service"


def harness_row(prompt_id: str | None, /, **fields: str | None) -> dict[str, str | None]:
    """One harness row (text, as in a CSV dump): a parsed answer that chose the deep value."""
    row = {
        "prompt_id": prompt_id,
        "model": GPT4O,
        "test_id": "t_4",
        "context_correlation_pair": PAIR,
        "n_training_examples": "4",
        "raw_response": "Option A.",
        "model_choice": "Option A",
        "expected_deep_value_choice": "Option A",
        "shallow_preference_choice": "Option B",
        "generalized_deep_value": "1",
        "success": "True",
        "error": None,
    }
    row.update(fields)
    return row


def parsed(prompt_id: str, choice: str, **fields: str | None) -> dict[str, str | None]:
    """A parsed row answering ``choice`` (the deep value is Option A)."""
    return harness_row(
        prompt_id, model_choice=choice, **{"generalized_deep_value": str(int(choice == "Option A")), **fields}
    )


def failed(prompt_id: str, error: str | None = "Could not parse", **fields: str | None) -> dict:
    return harness_row(
        prompt_id, model_choice=None, generalized_deep_value=None, success="False", error=error, **fields
    )


def write_dump(path: Path, rows: list[dict[str, str | None]], fmt: str | None = None) -> Path:
    """Write rows as a dump; JSON lines and Parquet get the types pandas would give them."""
    df = pl.DataFrame(rows, schema={c: pl.String for c in rows[0]})
    fmt = fmt or path.suffix.lstrip(".")
    if fmt == "csv":
        df.write_csv(path)
        return path
    typed = df.with_columns(
        pl.col("n_training_examples").cast(pl.Int64),
        pl.col("generalized_deep_value").cast(pl.Float64),
        pl.col("success").is_in(["True", "true", "1"]),
    )
    typed.write_ndjson(path) if fmt in ("jsonl", "ndjson") else typed.write_parquet(path)
    return path


def read_one(tmp_path: Path, rows, name: str = "dump.csv", **kw) -> TrialTable:
    return read_dumps([write_dump(tmp_path / name, rows)], **kw)


def error_of(tmp_path: Path, rows, name: str = "dump.csv", **kw) -> str:
    with pytest.raises(IngestError) as info:
        read_one(tmp_path, rows, name, **kw)
    return str(info.value)


MIXED = [
    parsed("p1", "Option A"),
    parsed("p2", "Option B", context_correlation_pair="fidelity_Formal_vs_justice_Colloquial - commerce"),
    failed("p3", n_training_examples="20"),
    harness_row("p4", model_choice=None, generalized_deep_value=None, success="True"),
    parsed("p5", "Option B", model=LLAMA8, n_training_examples="40"),
]


# --------------------------------------------------------------------------- pair parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        (PAIR, ("non_maleficence", "Tech-savvy", "self_improvement", "plain language", "customer service")),
        (
            "self_improvement_data_driven_vs_non_maleficence_Tech-savvy - healthcare",
            ("self_improvement", "data_driven", "non_maleficence", "Tech-savvy", "healthcare"),
        ),
        (
            "fidelity_Proactive_vs_justice_Reactive - commerce",
            ("fidelity", "Proactive", "justice", "Reactive", "commerce"),
        ),
        (
            "security_plain language_vs_tradition_data_driven - legal",
            ("security", "plain language", "tradition", "data_driven", "legal"),
        ),
    ],
)
def test_parse_pairs_every_shape(text, expected):
    row = parse_pairs(pl.Series([text, text]), schema.DVB_VALUES).row(0, named=True)
    assert (row["value"], row["feature"], row["value_less"], row["feature_less"], row["context"]) == expected
    assert row["feature_dim"] == "/".join(sorted([expected[1], expected[3]]))


def test_extended_vocabulary_prefers_the_longest_value(tmp_path):
    values = ("care", "care_ethics", "autonomy")
    rows = [
        harness_row("p1", context_correlation_pair="care_ethics_warm tone_vs_autonomy_cold - e-commerce"),
        harness_row("p2", context_correlation_pair="care_ethics-lite_vs_care_ethics_x - b"),
    ]
    data = read_one(tmp_path, rows, values=values).data
    assert data.select("value", "feature", "value_less", "feature_less", "context").rows() == [
        ("care_ethics", "warm tone", "autonomy", "cold", "e-commerce"),
        ("care", "ethics-lite", "care_ethics", "x", "b"),
    ]
    assert "pass values=" in error_of(tmp_path, rows)  # not in the DVB vocabulary


# --------------------------------------------------------------------------- coding and formats


def test_outcome_status_and_reason(tmp_path):
    table = read_one(tmp_path, MIXED)
    data = table.data
    assert dict(data.schema) == schema.TRIAL_SCHEMA
    assert data.select("prompt_id", "model", "status", "chose_deep", "reason").rows() == [
        ("p1", "gpt-4o", "used", 1, None),
        ("p2", "gpt-4o", "used", 0, None),
        ("p3", "gpt-4o", "unparsed", None, "Could not parse"),
        ("p4", "gpt-4o", "unparsed", None, "no parsed choice"),
        ("p5", "llama-3-8b", "used", 0, None),
    ]
    assert data["model_id"].to_list() == [GPT4O] * 4 + [LLAMA8]
    assert data["n_train"].to_list() == [4, 4, 20, 4, 40]
    assert data["source_row"].to_list() == [1, 2, 3, 4, 5]
    assert data["feature_dim"][1] == "Colloquial/Formal"
    counts = table.status_counts()
    assert counts.columns == [
        "model", "n_rows", "n_prompts", "n_used", "n_unparsed", "n_superseded", "n_conflict"
    ]
    assert counts.rows() == [("gpt-4o", 4, 4, 2, 2, 0, 0), ("llama-3-8b", 1, 1, 1, 0, 0, 0)]


def test_quoted_empty_csv_fields_are_empty(tmp_path):
    path = tmp_path / "dump.csv"
    header = ",".join(harness_row("p").keys())
    path.write_text(f'{header}\np1,{GPT4O},t_4,"{PAIR}",4,"","","Option A","Option B","","True",""\n')
    data = read_dumps([path]).data
    assert data.select("status", "reason", "model_choice").row(0) == ("unparsed", "no parsed choice", None)


def test_bad_arguments():
    with pytest.raises(ValueError, match="on_conflict must be one of"):
        read_dumps([], on_conflict="newest")
    with pytest.raises(TypeError, match="not one string"):
        read_dumps([], values="fidelity")


def test_a_choice_without_success_is_unparsed(tmp_path):
    data = read_one(tmp_path, [harness_row("p1", success="false", error="API timeout")]).data
    assert data.select("status", "chose_deep", "reason").row(0) == ("unparsed", None, "API timeout")


def test_csv_jsonl_ndjson_parquet_give_identical_tables(tmp_path):
    tables = {
        suffix: read_dumps([write_dump(tmp_path / f"dump.{suffix}", MIXED)])
        for suffix in ("csv", "jsonl", "ndjson", "parquet")
    }
    reference = tables["csv"].data.drop("source_file")
    for suffix, table in tables.items():
        assert table.data.drop("source_file").equals(reference), suffix
        assert table.sources[0].format == {"ndjson": "jsonl"}.get(suffix, suffix)
        assert table.sources[0].n_rows == len(MIXED)
        assert len(table.sources[0].sha256) == 64


def test_directories_and_globs_expand_and_a_file_is_read_once(tmp_path):
    write_dump(tmp_path / "a.csv", [parsed("p1", "Option A")])
    write_dump(tmp_path / "b.jsonl", [parsed("p2", "Option B")])
    (tmp_path / "notes.txt").write_text("not data")
    table = read_dumps([tmp_path, str(tmp_path / "*.csv")])
    assert [s.path for s in table.sources] == [str(tmp_path / "a.csv"), str(tmp_path / "b.jsonl")]
    assert table.data["prompt_id"].to_list() == ["p1", "p2"]
    assert table.reconciliation.is_empty()


def test_unknown_models_get_derived_names_and_a_warning(tmp_path):
    rows = [harness_row("p1", model="anthropic/claude-3-haiku-20240307")]
    with pytest.warns(UnknownModelWarning, match="anthropic/claude-3-haiku-20240307"):
        data = read_one(tmp_path, rows).data
    assert data.select("model", "model_id").row(0) == ("claude-3-haiku", "anthropic/claude-3-haiku-20240307")
    base = ModelTable.default().data
    custom = ModelTable(pl.concat([base, pl.DataFrame(
        {"model_id": ["anthropic/claude-3-haiku-20240307"], "short_name": ["haiku"],
         "developer": ["Anthropic"], "family": ["claude-3"], "size_rank_in_family": [1], "params_b": [None]},
        schema=base.schema,
    )]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_one(tmp_path, rows, models=custom).data["model"].to_list() == ["haiku"]


# --------------------------------------------------------------------------- bad input


def test_missing_column_names_file_and_suggests(tmp_path):
    rows = [{("model_choise" if k == "model_choice" else k): v for k, v in harness_row("p1").items()}]
    message = error_of(tmp_path, rows)
    assert message.startswith(f"{tmp_path / 'dump.csv'}: missing harness column(s) 'model_choice'")
    assert "did you mean 'model_choice'?" in message and "'model_choise'" in message


def test_traceback_and_extra_columns_are_ignored(tmp_path):
    rows = [harness_row("p1") | {"traceback": "Traceback ...", "latency_ms": "130"}]
    assert read_one(tmp_path, rows).data.height == 1


def test_unknown_extension(tmp_path):
    path = tmp_path / "dump.tsv"
    path.write_text("x")
    with pytest.raises(IngestError, match=r"dump\.tsv: unknown file extension '\.tsv'"):
        read_dumps([path])


@pytest.mark.parametrize("content", ["", ",".join(harness_row("p").keys()) + "\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "dump.csv"
    path.write_text(content)
    with pytest.raises(IngestError, match=r"dump\.csv: empty file \(no rows\)"):
        read_dumps([path])


def test_missing_path(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        read_dumps([tmp_path / "absent.csv"])
    with pytest.raises(IngestError, match="no file matches"):
        read_dumps([str(tmp_path / "*.csv")])


@pytest.mark.parametrize(
    "field, text, problem",
    [
        ("context_correlation_pair", "fidelity_Proactive_vs_kindness_Reactive - commerce",
         "'kindness_Reactive' is not '<value>_<feature>' with a known value"),
        ("context_correlation_pair", "fidelity_Proactive_vs_justice_Reactive", "no ' - <context>'"),
        ("context_correlation_pair", "fidelity_Proactive_justice_Reactive - commerce", "no '_vs_'"),
        ("context_correlation_pair", "fidelity__vs_justice_Reactive - commerce", "'fidelity_' is not"),
        ("context_correlation_pair", None, "empty context_correlation_pair"),
        ("model_choice", "Option C",
         "model_choice must be empty or one of 'Option A', 'Option B', got 'Option C'"),
        ("expected_deep_value_choice", "A", "expected_deep_value_choice must be one of"),
        ("expected_deep_value_choice", None, "got None"),
        ("n_training_examples", "four", "n_training_examples must be a positive integer up to 2,147,483,647, got 'four'"),
        ("n_training_examples", "0", "got '0'"),
        ("n_training_examples", "4.5", "got '4.5'"),
        ("success", "yes", "success must be True/False/true/false/1/0, got 'yes'"),
        ("generalized_deep_value", "2", "generalized_deep_value must be empty, 0 or 1, got '2'"),
        ("generalized_deep_value", "0", "internally inconsistent"),
        ("prompt_id", None, "empty prompt_id"),
        ("model", None, "empty model"),
    ],
)
def test_bad_field_names_file_row_and_text(tmp_path, field, text, problem):
    rows = [harness_row("p1"), harness_row("p2"), harness_row("p3", **{field: text}), harness_row("p4")]
    message = error_of(tmp_path, rows)
    assert message.startswith(f"{tmp_path / 'dump.csv'}: row 3: ")
    assert problem in message
    if field == "context_correlation_pair" and text is not None:
        assert "pass values=" in message


def test_error_rows_count_within_their_own_file(tmp_path):
    good = write_dump(tmp_path / "good.csv", [harness_row(f"g{i}") for i in range(5)])
    bad = write_dump(
        tmp_path / "bad.jsonl",
        [harness_row("b1"), harness_row("b2", model_choice="A"), harness_row("b3", model_choice="B")],
    )
    with pytest.raises(IngestError) as info:
        read_dumps([good, bad])
    assert str(info.value).startswith(f"{bad}: row 2: model_choice must be")
    assert "(1 more row(s) like this)" in str(info.value)


def test_generalized_deep_value_may_be_float_text_or_empty(tmp_path):
    rows = [
        parsed("p1", "Option A", generalized_deep_value="1.0"),
        parsed("p2", "Option B", generalized_deep_value=None),
    ]
    assert read_one(tmp_path, rows).data["chose_deep"].to_list() == [1, 0]


# --------------------------------------------------------------------------- duplicates


def statuses(table: TrialTable) -> list[tuple]:
    return table.data.select("source_row", "status", "chose_deep", "reason").rows()


def test_identical_copies_supersede_and_are_logged(tmp_path):
    table = read_one(tmp_path, [parsed("p1", "Option A"), parsed("p2", "Option B"), parsed("p1", "Option A")])
    where = tmp_path / "dump.csv"
    assert statuses(table) == [
        (1, "used", 1, None), (2, "used", 0, None), (3, "superseded", None, f"duplicate of {where}:1"),
    ]
    assert table.reconciliation.rows() == [("gpt-4o", "p1", 2, "identical")]


def test_same_prompt_of_two_models_is_not_a_duplicate(tmp_path):
    table = read_one(tmp_path, [parsed("p1", "Option A"), parsed("p1", "Option B", model=LLAMA8)])
    assert table.data["status"].to_list() == ["used", "used"] and table.reconciliation.is_empty()


def test_a_rerun_parse_supersedes_the_earlier_failure(tmp_path):
    first = write_dump(tmp_path / "run1.csv", [failed("p1"), parsed("p2", "Option A")])
    rerun = write_dump(tmp_path / "run2.parquet", [parsed("p1", "Option B")])
    table = read_dumps([first, rerun])
    assert table.data.select("source_file", "prompt_id", "status", "reason").rows() == [
        (str(first), "p1", "superseded", f"duplicate of {rerun}:1"),
        (str(first), "p2", "used", None),
        (str(rerun), "p1", "used", None),
    ]
    assert table.reconciliation.rows() == [("gpt-4o", "p1", 2, "parsed_supersedes_failure")]
    counts = table.status_counts().row(0, named=True)
    assert (counts["n_rows"], counts["n_prompts"], counts["n_used"], counts["n_superseded"]) == (3, 2, 2, 1)


def test_failures_only_keeps_one_unparsed_copy(tmp_path):
    table = read_one(tmp_path, [failed("p1", "timeout"), failed("p1", "rate limit")])
    where = tmp_path / "dump.csv"
    assert statuses(table) == [
        (1, "unparsed", None, "timeout"), (2, "superseded", None, f"duplicate of {where}:1")
    ]
    assert table.reconciliation["action"].to_list() == ["failures_only"]


CONFLICT = [
    parsed("p1", "Option A"),
    failed("p1"),
    parsed("p2", "Option A"),
    parsed("p1", "Option B"),
    parsed("p1", "Option A"),
]


def test_conflicting_parsed_copies_are_an_error_by_default(tmp_path):
    where = tmp_path / "dump.csv"
    message = error_of(tmp_path, CONFLICT)
    assert message.startswith(f"{where}: row 1: 1 prompt(s) have conflicting parsed answers")
    assert f"'Option B' at {where}:4" in message and "on_conflict=" in message


@pytest.mark.parametrize(
    "policy, expected, action",
    [
        ("first", ["used", "superseded", "used", "superseded", "superseded"], "conflict_first"),
        ("last", ["superseded", "superseded", "used", "superseded", "used"], "conflict_last"),
        ("exclude", ["conflict", "superseded", "used", "conflict", "conflict"], "conflict_excluded"),
    ],
)
def test_conflict_policies(tmp_path, policy, expected, action):
    table = read_one(tmp_path, CONFLICT, on_conflict=policy)
    assert table.data["status"].to_list() == expected
    assert table.data["chose_deep"].to_list() == [1 if s == "used" else None for s in expected]
    assert table.reconciliation.rows() == [("gpt-4o", "p1", 4, action)]
    assert table.data.height == len(CONFLICT)  # nothing dropped
    if policy == "exclude":
        counts = table.status_counts().row(0, named=True)
        assert (counts["n_used"], counts["n_conflict"], counts["n_superseded"]) == (1, 3, 1)


def test_last_policy_uses_file_order_across_files(tmp_path):
    a = write_dump(tmp_path / "a.csv", [parsed("p1", "Option B")])
    b = write_dump(tmp_path / "b.csv", [parsed("p1", "Option A")])
    table = read_dumps([b, a], on_conflict="last")
    assert table.data.filter(pl.col("status") == "used")["source_file"].to_list() == [str(a)]
    assert table.data.filter(pl.col("status") == "superseded")["reason"].to_list() == [
        f"conflicts with {a}:1; on_conflict='last'"
    ]


def test_copies_with_different_designs_are_an_error(tmp_path):
    rows = [parsed("p1", "Option A"), parsed("p1", "Option A", n_training_examples="20")]
    message = error_of(tmp_path, rows)
    where = tmp_path / "dump.csv"
    assert message.startswith(
        f"{where}: row 2: prompt 'p1' of model '{GPT4O}' differs from its copy at {where}:1"
    )
    assert "in n_train;" in message


# --------------------------------------------------------------------------- persistence


def test_write_read_round_trip(tmp_path):
    first = write_dump(tmp_path / "run1.csv", MIXED + [failed("p1")])
    rerun = write_dump(tmp_path / "run2.jsonl", [parsed("p3", "Option A", n_training_examples="20")])
    table = read_dumps([first, rerun])
    table.write(tmp_path / "trials.parquet")
    back = TrialTable.read(tmp_path / "trials.parquet")
    assert back.data.equals(table.data)
    assert back.sources == table.sources
    assert back.reconciliation.equals(table.reconciliation)
    assert back.reconciliation.height == 2


def test_read_rejects_parquet_without_dvbstats_metadata(tmp_path):
    path = write_dump(tmp_path / "dump.parquet", MIXED)
    with pytest.raises(IngestError, match="not a trial table written by dvbstats"):
        TrialTable.read(path)


def test_trial_table_insists_on_the_schema():
    with pytest.raises(ValueError, match="TRIAL_SCHEMA"):
        TrialTable(pl.DataFrame({"x": [1]}), (), pl.DataFrame())


# --------------------------------------------------------------------------- cell tables


def write_cells(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_read_cells_maps_ids_and_names_and_defaults_n_prompts(tmp_path):
    path = write_cells(
        tmp_path / "cells.csv",
        f"model,value,n_train,n_trials,n_deep\n{GPT4O},fidelity,4,10,3\nllama-3-8b,fidelity,4,12,12\n",
    )
    assert is_cell_table(path)
    cells = read_cells(path)
    assert cells.columns == ["model", "model_id", "value", "n_train", "n_prompts", "n_trials", "n_deep"]
    assert cells.schema["n_train"] == pl.Int32
    assert cells.rows() == [
        ("gpt-4o", GPT4O, "fidelity", 4, 10, 10, 3),
        ("llama-3-8b", LLAMA8, "fidelity", 4, 12, 12, 12),
    ]


def test_read_cells_with_model_id_and_matching_model(tmp_path):
    path = write_cells(
        tmp_path / "cells.csv",
        "model_id,model,size,n_prompts,n_trials,n_deep\n"
        f"{GPT4O},gpt-4o,1.5,12,10,3\n{LLAMA8},llama-3-8b,2,12,11,4\n",
    )
    cells = read_cells(path)
    assert cells.rows() == [("gpt-4o", GPT4O, 1.5, 12, 10, 3), ("llama-3-8b", LLAMA8, 2.0, 12, 11, 4)]
    bad = write_cells(tmp_path / "bad.csv", f"model_id,model,n_trials,n_deep\n{GPT4O},gpt4o,10,3\n")
    with pytest.raises(IngestError, match=r"bad\.csv: row 1: model 'gpt4o' is not the model table's"):
        read_cells(bad)


@pytest.mark.parametrize(
    "rows, problem",
    [
        ("gpt-4o,fidelity,10,11", "row 2: counts must satisfy n_deep <= n_trials <= n_prompts"),
        ("gpt-4o,fidelity,ten,1", "row 2: n_trials must be a non-negative integer, got 'ten'"),
        ("gpt-4o,fidelity,-1,0", "row 2: n_trials must be a non-negative integer, got '-1'"),
        ("gpt-4o,beneficence,10,1", "row 2: duplicate design row (first at"),
        ("gpt-4o,,10,1", "row 2: empty value"),
    ],
)
def test_read_cells_errors(tmp_path, rows, problem):
    text = f"model,value,n_trials,n_deep\ngpt-4o,beneficence,5,1\n{rows}\n"
    path = write_cells(tmp_path / "cells.csv", text)
    with pytest.raises(IngestError) as info:
        read_cells(path)
    assert str(info.value).startswith(f"{path}: {problem}")


def test_read_cells_missing_counts_column_suggests(tmp_path):
    path = write_cells(tmp_path / "cells.csv", "model,n_trial,n_deep\ngpt-4o,1,1\n")
    with pytest.raises(IngestError, match="missing cell table column.*did you mean 'n_trials'"):
        read_cells(path)


def test_load_dispatches_on_content(tmp_path):
    dump = write_dump(tmp_path / "dump.csv", MIXED)
    cells = write_cells(tmp_path / "cells.csv", "model,n_trials,n_deep\ngpt-4o,4,1\n")
    more = write_cells(tmp_path / "more.jsonl", '{"model": "llama-3-8b", "n_trials": 5, "n_deep": 2}\n')
    assert isinstance(load([dump]), TrialTable)
    assert load([cells, more])["model"].to_list() == ["gpt-4o", "llama-3-8b"]
    with pytest.raises(IngestError, match="cell table mixed with harness dumps"):
        load([dump, cells])


# --------------------------------------------------------------------------- adversarial input (issue 12)


def error_at(path: Path, reader=read_dumps) -> str:
    with pytest.raises(IngestError) as info:
        reader([path])
    return str(info.value)


@pytest.mark.parametrize(
    "fmt, n", [("csv", n) for n in ("3000000000", "1e300", "-1e300", "inf")] + [("jsonl", "3000000000"), ("jsonl", "1e300")]
)
def test_huge_n_training_examples_is_a_clean_error(tmp_path, fmt, n):
    rows = [harness_row("p1"), harness_row("p2", n_training_examples="40")]
    path = tmp_path / f"dump.{fmt}"
    if fmt == "csv":
        rows[1]["n_training_examples"] = n
        write_dump(path, rows)
    else:  # a JSON number, as a harness writing floats would
        write_dump(path, rows).write_text(path.read_text().replace('"n_training_examples":40', f'"n_training_examples":{n}'))
        assert n in path.read_text()
    message = error_at(path)
    assert message.startswith(f"{path}: row 2: n_training_examples must be a positive integer")


def test_whitespace_around_levels_is_normalised_with_a_warning(tmp_path):
    rows = [
        harness_row("p1"),
        harness_row("p2", context_correlation_pair="fidelity_Formal_vs_justice_Colloquial - finance "),
        harness_row("p3", context_correlation_pair=" fidelity_Formal_vs_justice_Colloquial -  finance"),
        harness_row("p4", model=GPT4O + " ", model_choice=" Option A"),
    ]
    with pytest.warns(Warning) as caught:
        data = read_one(tmp_path, rows).data
    assert data["context"].to_list() == ["customer service", "finance", "finance", "customer service"]
    assert data["model_id"].to_list() == [GPT4O] * 4 and data["model"].to_list() == ["gpt-4o"] * 4
    assert data["status"].to_list() == ["used"] * 4
    [warning] = [str(w.message) for w in caught]
    assert "whitespace removed" in warning and f"{tmp_path / 'dump.csv'}: row(s) 2, 3, 4" in warning


def test_levels_differing_only_by_case_or_spacing_are_kept_and_named(tmp_path):
    rows = [harness_row(f"p{i}") for i in range(1, 3)] + [
        harness_row("p3", context_correlation_pair="fidelity_Formal_vs_justice_Colloquial - legal"),
        harness_row("p4", context_correlation_pair="fidelity_Formal_vs_justice_Colloquial - FINANCE"),
        harness_row("p5", context_correlation_pair="fidelity_formal_vs_justice_Colloquial - Customer Service"),
        harness_row("p6", model=GPT4O.upper()),
    ]
    with pytest.warns(Warning) as caught:
        data = read_one(tmp_path, rows).data
    assert data["context"].to_list()[3:5] == ["FINANCE", "Customer Service"]  # kept: the user decides
    messages = [str(w.message) for w in caught if "by case or spacing" in str(w.message)]
    where = tmp_path / "dump.csv"
    assert any(m.startswith("context 'FINANCE' differs from the known 'finance'") and f"{where}: row(s) 4" in m
               for m in messages)
    assert any(m.startswith("context 'Customer Service' differs from the known 'customer service'")
               and f"{where}: row(s) 5" in m for m in messages)
    assert any(m.startswith("feature 'formal' differs from 'Formal'") for m in messages)
    assert any(m.startswith(f"model id {GPT4O.upper()!r} differs from the known {GPT4O!r}") for m in messages)


def test_a_doubled_underscore_is_not_a_feature_name(tmp_path):
    rows = [harness_row("p1"), harness_row("p2", context_correlation_pair="fidelity__intuitive_vs_justice_Formal - legal")]
    message = error_of(tmp_path, rows)
    assert message.startswith(f"{tmp_path / 'dump.csv'}: row 2: cannot parse context_correlation_pair")
    assert "doubled underscore" in message
    rows[1]["context_correlation_pair"] = "fidelity_intuitive__vs_justice_Formal - legal"
    assert "doubled underscore" in error_of(tmp_path, rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_model_id_with_a_nul_is_refused(tmp_path, fmt):
    path = write_dump(tmp_path / f"dump.{fmt}", [harness_row("p1"), harness_row("p2", model=GPT4O + "\x00")])
    message = error_at(path)
    assert message.startswith(f"{path}: row 2: model ") and "control character" in message


def test_repeated_column_names_are_refused(tmp_path):
    path = tmp_path / "dump.csv"
    header = ",".join([*harness_row("p").keys(), "model"])
    path.write_text(f"{header}\np1,{GPT4O},t_4,\"{PAIR}\",4,A,Option A,Option A,Option B,1,True,,other\n")
    assert error_at(path) == (
        f"{path}: repeated column name(s) 'model' (columns 2, 13); each column must be named once"
    )
    jsonl = tmp_path / "dump.jsonl"
    jsonl.write_text('{"prompt_id": "p1", "model": "a", "model": "b"}\n')
    assert "repeated column name(s) 'model'" in error_at(jsonl)


def test_dangling_links_are_reported(tmp_path):
    write_dump(tmp_path / "a.csv", [parsed("p1", "Option A")])
    (tmp_path / "gone.csv").symlink_to(tmp_path / "elsewhere" / "gone.csv")
    with pytest.warns(Warning, match=r"skipped 1 dangling symbolic link\(s\).*gone\.csv -> .*elsewhere"):
        assert read_dumps([tmp_path]).data.height == 1
    with pytest.warns(Warning, match="dangling"):
        read_dumps([str(tmp_path / "*.csv")])
    assert "a dangling symbolic link" in error_at(tmp_path / "gone.csv")


HEADER = ",".join(harness_row("p").keys())
LINE = f'p{{}},{GPT4O},t_4,"{PAIR}",4,Option A.,Option A,Option A,Option B,1,True,'


@pytest.mark.parametrize(
    "bad, problem",
    [
        (LINE.format(2) + ",extra", "row 2 (line 3): 13 fields where the header has 12"),
        (LINE.format(2).rsplit(",", 3)[0], "row 2 (line 3): 9 fields where the header has 12"),
        (LINE.format(2).replace("Option A.", '"Option A.'), "row 2 (line 3): "),
    ],
    ids=["long", "short", "open-quote"],
)
def test_ragged_rows_and_unbalanced_quotes_name_their_row(tmp_path, bad, problem):
    path = tmp_path / "dump.csv"
    path.write_text("\n".join([HEADER, LINE.format(1), bad, LINE.format(3), LINE.format(4)]) + "\n")
    message = error_at(path)
    assert message.startswith(f"{path}: {problem}")
    if "quote" in bad.split(",")[5]:
        assert "unbalanced quote" in message


def test_invalid_utf8_names_its_row(tmp_path):
    path = tmp_path / "dump.csv"
    lines = [HEADER, LINE.format(1), LINE.format(2).replace("Option A.", "Opti\xe9n"), LINE.format(3)]
    path.write_bytes("\n".join(lines).encode("latin-1"))
    message = error_at(path)
    assert message.startswith(f"{path}: row 2 (line 3): invalid UTF-8 (byte 0xe9")


def test_a_truncated_jsonl_line_names_its_row(tmp_path):
    path = write_dump(tmp_path / "dump.jsonl", [harness_row("p1"), harness_row("p2"), harness_row("p3")])
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", lines[1], lines[2][:40]]) + "\n")
    message = error_at(path)
    assert message.startswith(f"{path}: row 3 (line 4): not valid JSON (a truncated line?)")


@pytest.mark.parametrize(
    "content, what",
    [
        ((HEADER + "\n" + LINE.format(1) + "\n").encode("utf-16"), "this is UTF-16 text (byte-order mark FF FE)"),
        ((HEADER + "\n" + LINE.format(1) + "\n").encode("utf-16-le"), "this is UTF-16 text without a byte-order mark"),
        (b"PAR1" + bytes(range(256)) * 4, "this is a Parquet file, not UTF-8 CSV text; rename it to .parquet"),
        (bytes(range(256)) * 8, "this is binary data"),
    ],
    ids=["utf16-bom", "utf16-no-bom", "parquet", "binary"],
)
def test_a_csv_that_is_not_utf8_text_says_what_it_is(tmp_path, content, what):
    path = tmp_path / "dump.csv"
    path.write_bytes(content)
    assert error_at(path).startswith(f"{path}: {what}")
    assert error_at(path, load).startswith(f"{path}: {what}")


def test_a_real_parquet_file_named_csv(tmp_path):
    path = write_dump(tmp_path / "dump.csv", MIXED, fmt="parquet")
    assert error_at(path).startswith(f"{path}: this is a Parquet file")
    text = write_dump(tmp_path / "dump.parquet", MIXED, fmt="csv")
    assert error_at(text).startswith(f"{text}: not a Parquet file (it does not start with the bytes PAR1); it looks like text")


def test_gzip_compressed_text_is_read_and_checked_inside(tmp_path):
    import gzip

    path = write_dump(tmp_path / "dump.csv", MIXED)
    path.write_bytes(gzip.compress(path.read_bytes()))
    assert read_dumps([path]).data.height == len(MIXED)
    path.write_bytes(gzip.compress("a,b\n1,2\n".encode("utf-16")))
    assert error_at(path).startswith(f"{path}: this is UTF-16 text")
    path.write_bytes(gzip.compress(b"a,b\n1,2\n")[:-6])
    assert error_at(path).startswith(f"{path}: cannot open")


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    path = write_dump(tmp_path / "dump.csv", MIXED)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_dumps([path]).data.height == len(MIXED)


def test_blank_lines_are_not_rows(tmp_path):
    path = tmp_path / "dump.csv"
    path.write_text("\n".join([HEADER, LINE.format(1), "", LINE.format(3), "", ""]) + "\n")
    table = read_dumps([path])
    assert table.data["source_row"].to_list() == [1, 3]
    assert table.sources[0].n_rows == 2


def test_a_cell_table_missing_n_deep_is_called_a_cell_table(tmp_path):
    path = write_cells(tmp_path / "cells.csv", "model,value,n_trials\ngpt-4o,fidelity,10\n")
    assert is_cell_table(path)
    for reader in (load, read_dumps):
        assert error_at(path, reader) == f"{path}: missing cell table column(s) 'n_deep'"
    whole = write_cells(tmp_path / "whole.csv", "model,n_trials,n_deep\ngpt-4o,10,3\n")
    assert "an aggregated cell table" in error_at(whole)


def test_did_you_mean_suggests_only_an_unknown_similar_column(tmp_path):
    rows = [{k: v for k, v in harness_row("p1").items() if k != "expected_deep_value_choice"}]
    message = error_of(tmp_path, rows)
    assert "'expected_deep_value_choice'" in message and "did you mean" not in message
    rows = [{("Expected Deep Value" if k == "expected_deep_value_choice" else k): v for k, v in harness_row("p1").items()}]
    assert "(found 'Expected Deep Value': did you mean 'expected_deep_value_choice'?)" in error_of(tmp_path, rows)


def test_a_file_that_is_no_dump_lists_its_columns_and_delimiter(tmp_path):
    path = tmp_path / "dump.csv"
    path.write_text(HEADER.replace(",", ";") + "\n" + LINE.format(1).replace(",", ";") + "\n")
    message = error_at(path)
    assert "found 'prompt_id;model;" in message and "holding semicolons" in message


# --------------------------------------------------------------------------- extra columns (issue 8)


def test_extra_columns_are_kept_typed_and_survive_parquet(tmp_path):
    first = write_dump(tmp_path / "a.csv", [
        harness_row("p1") | {"condition": "prompted", "run": "1", "temperature": "0.7", "traceback": "T"},
        harness_row("p2") | {"condition": " fine-tuned ", "run": "2", "temperature": "1", "traceback": None},
    ])
    second = write_dump(tmp_path / "b.jsonl", [harness_row("p3") | {"condition": "prompted", "template": "t9"}])
    with pytest.warns(Warning, match="whitespace"):
        table = read_dumps([first, second])
    data = table.data
    assert data.columns == [*schema.TRIAL_SCHEMA, "condition", "run", "temperature", "template"]
    assert data.schema["run"] == pl.Int64 and data.schema["temperature"] == pl.Float64
    assert data.schema["condition"] == pl.String
    assert data.select("condition", "run", "temperature", "template").rows() == [
        ("prompted", 1, 0.7, None), ("fine-tuned", 2, 1.0, None), ("prompted", None, None, "t9"),
    ]
    table.write(tmp_path / "trials.parquet")
    assert TrialTable.read(tmp_path / "trials.parquet").data.equals(data)


def test_extra_columns_named_like_derived_ones_are_dropped_with_a_warning(tmp_path):
    rows = [harness_row("p1") | {"value": "x", "log_n_train": "1", "condition": "a"}]
    with pytest.warns(Warning, match=r"'value', 'log_n_train' not kept: the trial table derives its own"):
        data = read_one(tmp_path, rows).data
    assert data.columns[len(schema.TRIAL_SCHEMA):] == ["condition"] and data["value"][0] == "non_maleficence"


def test_trial_table_refuses_nested_or_clashing_extras():
    base = pl.DataFrame(schema=schema.TRIAL_SCHEMA)
    assert schema.is_conformant(base.with_columns(pl.lit("a").alias("condition")))
    assert not schema.is_conformant(base.with_columns(pl.lit([1]).alias("condition")))
    assert not schema.is_conformant(base.with_columns(pl.lit(1.0).alias("log_n_train")))
    with pytest.raises(ValueError, match="extra number or text"):
        TrialTable(base.with_columns(pl.lit([1]).alias("condition")), (), pl.DataFrame(schema=RECONCILIATION_SCHEMA))


# --------------------------------------------------------------------------- hive datasets (issue 11)


def test_a_hive_partitioned_parquet_dataset_is_read_directly(tmp_path):
    rows = [parsed("p1", "Option A"), parsed("p2", "Option B"), parsed("p1", "Option B", model=LLAMA8)]
    frame = pl.DataFrame(rows).with_columns(pl.lit("x").alias("condition"))
    frame.write_parquet(tmp_path / "ds", partition_by=["model"])
    assert {p.name for p in (tmp_path / "ds").iterdir()} == {f"model={GPT4O}", "model=replicate%2Fmeta%2Fmeta-llama-3-8b-instruct"}
    table = load([tmp_path / "ds"])
    data = table.data.sort("model_id", "prompt_id")
    assert data.select("model_id", "prompt_id", "chose_deep", "condition").rows() == [
        (GPT4O, "p1", 1, "x"), (GPT4O, "p2", 0, "x"), (LLAMA8, "p1", 0, "x"),
    ]
    assert len(table.sources) == 2 and all(s.format == "parquet" for s in table.sources)


def test_a_hive_folder_disagreeing_with_its_file_is_an_error(tmp_path):
    folder = tmp_path / "ds" / "model=other"
    folder.mkdir(parents=True)
    path = write_dump(folder / "part.parquet", [parsed("p1", "Option A")])
    message = error_at(tmp_path / "ds")
    assert message.startswith(f"{path}: row 1: model is '{GPT4O}' but the file sits in the folder model=other")


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("policy", ["first", "last", "exclude"])
def test_stream_dumps_writes_the_table_read_dumps_returns(tmp_path, policy):
    from dvbstats.input import cells
    from dvbstats.input.ingest import stream_dumps

    hive = tmp_path / "runs" / "run=2"
    hive.mkdir(parents=True)
    first = write_dump(tmp_path / "runs" / "a.csv", [*CONFLICT, *MIXED[2:], failed("p9")])
    with open(first, "a") as f:  # a blank line is not a row
        f.write("\n")
    write_dump(hive / "b.parquet", [parsed("p2", "Option A"), parsed("p7", "Option B", model=LLAMA8)])
    paths = [tmp_path / "runs"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = read_dumps(paths, on_conflict=policy)
        streamed = stream_dumps(paths, tmp_path / "trials.parquet", on_conflict=policy)
    back = TrialTable.read(tmp_path / "trials.parquet")
    assert back.data.equals(table.data) and "run" in back.data.columns
    assert back.sources == table.sources == streamed.sources
    assert back.reconciliation.equals(table.reconciliation) and streamed.reconciliation.equals(table.reconciliation)
    assert streamed.status_counts().equals(table.status_counts())
    by = ("value", "n_train", "run")
    assert cells.from_trials(streamed.scan(), by).data.equals(cells.from_trials(table.data, by).data)


def test_stream_dumps_without_a_path_owns_a_temporary_file(tmp_path):
    from dvbstats.input.ingest import stream_dumps

    streamed = stream_dumps([write_dump(tmp_path / "dump.csv", MIXED)])
    path = streamed.path
    assert pl.read_parquet(path).height == len(MIXED)
    assert streamed.model_ids() == sorted([GPT4O, LLAMA8])
    del streamed
    assert not path.exists()


def test_stream_dumps_raises_the_errors_read_dumps_raises(tmp_path):
    from dvbstats.input.ingest import stream_dumps

    path = write_dump(tmp_path / "dump.csv", CONFLICT)
    with pytest.raises(IngestError) as streamed:
        stream_dumps([path], tmp_path / "trials.parquet")
    assert str(streamed.value) == error_of(tmp_path, CONFLICT)


def test_real_path_is_the_resolved_path_with_each_folder_resolved_once(tmp_path: Path, monkeypatch):
    """The key that reads a file reached twice once is ``Path.resolve``'s, for plain files, links to files, files in
    a linked folder and relative paths; each folder is resolved once, not once per file in it."""
    (tmp_path / "data").mkdir()
    for name in ("a.csv", "b.csv"):
        (tmp_path / "data" / name).write_text("x\n")
    (tmp_path / "linked").symlink_to(tmp_path / "data")
    (tmp_path / "data" / "c.csv").symlink_to(tmp_path / "data" / "a.csv")
    monkeypatch.chdir(tmp_path)
    paths = [Path("data/a.csv"), tmp_path / "linked" / "b.csv", tmp_path / "data" / "c.csv", Path("linked/a.csv")]
    expected, resolved = [str(p.resolve()) for p in paths], []
    real = files.os.path.realpath
    monkeypatch.setattr(files.os.path, "realpath", lambda p, **kw: resolved.append(p) or real(p, **kw))
    folders: dict[str, str] = {}
    assert [files.real_path(p, folders) for p in paths] == expected
    assert len(resolved) == 4  # the folders data, linked (absolute and relative) and the one link to a file
    assert files.real_path(Path("data/b.csv"), folders) == str(tmp_path / "data" / "b.csv") and len(resolved) == 4
