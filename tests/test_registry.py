"""The model table: the shipped published models, user tables, unknown ids, size pairs."""

from __future__ import annotations

import warnings

import polars as pl
import pytest

from dvbstats.input.registry import (
    IDS_SHOWN,
    MODEL_SCHEMA,
    ModelTable,
    ModelTableError,
    UnknownModelWarning,
    short_name_from_id,
)

HEADER = "model_id,short_name,developer,family,size_rank_in_family,params_b\n"


def write(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "models.csv"
    path.write_text(header + body)
    return path


def test_default_has_the_nine_published_models():
    table = ModelTable.default()
    assert dict(table.data.schema) == MODEL_SCHEMA
    assert table.data.height == 9
    llama = pl.col("model_id") == "replicate/meta/meta-llama-3-70b-instruct"
    row = table.data.filter(llama).row(0, named=True)
    assert row == {
        "model_id": "replicate/meta/meta-llama-3-70b-instruct",
        "short_name": "llama-3-70b",
        "developer": "Meta",
        "family": "llama-3",
        "size_rank_in_family": 2,
        "params_b": 70.0,
    }


def test_default_adjacent_pairs_are_the_papers_five_size_comparisons():
    table = ModelTable.default()
    assert table.families_with_sizes() == ["gemini-2.0", "gpt-4.1", "gpt-4o", "llama-3"]
    assert table.adjacent_pairs(table.data["short_name"].to_list()) == [
        ("gemini-2.0-flash-lite", "gemini-2.0-flash"),
        ("gpt-4.1-nano", "gpt-4.1-mini"),
        ("gpt-4.1-mini", "gpt-4.1"),
        ("gpt-4o-mini", "gpt-4o"),
        ("llama-3-8b", "llama-3-70b"),
    ]


def test_adjacent_pairs_only_among_present_models():
    table = ModelTable.default()
    # gpt-4.1-mini absent: nano pairs with the next present size; llama-3-70b absent: no llama pair.
    assert table.adjacent_pairs(["gpt-4.1", "gpt-4.1-nano", "llama-3-8b", "not-a-model"]) == [
        ("gpt-4.1-nano", "gpt-4.1")
    ]


@pytest.mark.parametrize(
    "model_id, expected",
    [
        ("replicate/meta/meta-llama-3-8b-instruct", "meta-llama-3-8b-instruct"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("anthropic/claude-3-haiku-20240307", "claude-3-haiku"),
        ("gemini/gemini-2.0-flash", "gemini-2.0-flash"),
        ("o3-mini", "o3-mini"),
        ("model-2024", "model-2024"),  # a year alone is not a release date
    ],
)
def test_short_name_from_id(model_id, expected):
    assert short_name_from_id(model_id) == expected


def test_resolve_keeps_known_rows_and_derives_unknown_ones_with_one_warning():
    table = ModelTable.default()
    ids = ["x/claude-3-haiku-20240307", "gpt-4o-2024-08-06", "mistral-large-2411", "gpt-4o-2024-08-06"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = table.resolve(ids)
    assert [w.category for w in caught] == [UnknownModelWarning]
    message = str(caught[0].message)
    assert "x/claude-3-haiku-20240307" in message and "mistral-large-2411" in message
    assert "gpt-4o-2024-08-06" not in message
    assert resolved.data["model_id"].to_list() == ids[:3]
    assert resolved.data.rows() == [
        ("x/claude-3-haiku-20240307", "claude-3-haiku", None, "claude-3-haiku", None, None),
        ("gpt-4o-2024-08-06", "gpt-4o", "OpenAI", "gpt-4o", 2, None),
        ("mistral-large-2411", "mistral-large-2411", None, "mistral-large-2411", None, None),
    ]
    assert issubclass(UnknownModelWarning, UserWarning)


def test_the_warning_names_the_first_unknown_ids_and_counts_the_rest():
    """A leaderboard of 1,000 unknown models gets a warning of a few lines, not 1,000 ids."""
    ids = [f"m{i:04d}" for i in range(1000)]
    with pytest.warns(UnknownModelWarning) as caught:
        ModelTable.default().resolve(ids)
    message = str(caught[0].message)
    assert message.startswith("1000 model id(s) not in the model table")
    assert f"m{IDS_SHOWN - 1:04d} and {1000 - IDS_SHOWN} more." in message and f"m{IDS_SHOWN:04d}" not in message


def test_resolve_known_ids_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ModelTable.default().resolve(["gpt-4o-2024-08-06"]).data.height == 1


def test_resolve_rejects_short_name_collisions():
    with pytest.warns(UnknownModelWarning), pytest.raises(ModelTableError, match="both be called 'gpt-4o'"):
        ModelTable.default().resolve(["gpt-4o-2024-08-06", "openai/gpt-4o"])


def test_read_user_table_ignores_extra_columns_and_fills_family(tmp_path):
    path = write(
        tmp_path,
        "org/small-v1,small,Org,,1,1.5,x\norg/big-v1,big,Org,fam,2,,y\norg/mid-v1,mid,,fam,1,7,z\n",
        header=HEADER.rstrip("\n") + ",note\n",
    )
    table = ModelTable.read(path)
    assert table.data.rows() == [
        ("org/small-v1", "small", "Org", "small", 1, 1.5),
        ("org/big-v1", "big", "Org", "fam", 2, None),
        ("org/mid-v1", "mid", None, "fam", 1, 7.0),
    ]
    assert table.families_with_sizes() == ["fam"]
    assert table.adjacent_pairs(["small", "big", "mid"]) == [("mid", "big")]


@pytest.mark.parametrize(
    "header, body, message",
    [
        ("model_id,short_name,family\n", "a,a,a\n",
         "missing column(s) developer, size_rank_in_family, params_b"),
        (HEADER, "a,a,,f,1,\nb,b,,f,2,\na,c,,g,1,\n", "row 3: duplicate model_id 'a' (first at row 1)"),
        (HEADER, "a,w,,f,1,\nb,x,,g,1,\nb,y,,h,1,\na,z,,k,1,\n", "row 3: duplicate model_id 'b' (first at row 2)"),
        (HEADER, "a,x,,f,1,\nb,x,,g,1,\n", "row 2: duplicate short_name 'x'"),
        (HEADER, "a,a,,f,1,\nb,b,,f,1,\n", "row 2: duplicate size_rank_in_family within a family"),
        (HEADER, "a,a,,f,1,\nb,b,,f,2.5,\n", "row 2: size_rank_in_family must be an integer, got '2.5'"),
        (HEADER, "a,a,,f,big,\n", "row 1: size_rank_in_family must be an integer, got 'big'"),
        (HEADER, "a,a,,f,0,\n", "row 1: size_rank_in_family must be >= 1"),
        (HEADER, "a,a,,f,1,seven\n", "row 1: params_b must be a number, got 'seven'"),
        (HEADER, "a,,,f,1,\n", "row 1: empty short_name"),
    ],
)
def test_read_bad_tables_name_file_row_and_problem(tmp_path, header, body, message):
    path = write(tmp_path, body, header)
    with pytest.raises(ModelTableError) as info:
        ModelTable.read(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
