import math

import polars as pl
import pytest

from dvbstats.input.cells import CellTable, collapse, from_counts, from_trials


def _trials() -> pl.DataFrame:
    return pl.DataFrame({
        "model": ["a", "a", "a", "a", "b", "b"],
        "prompt_id": ["p1", "p2", "p2", "p3", "p1", "p2"],
        "value": ["x", "x", "x", "y", "x", "y"],
        "n_train": [4, 4, 4, 40, 4, 40],
        "chose_deep": [1, None, 0, None, 0, 1],
        "status": ["used", "superseded", "used", "unparsed", "used", "used"],
    })


def test_from_trials_counts_prompts_trials_and_deep_choices():
    c = from_trials(_trials(), ["value"])
    assert c.by == ("model", "value")
    rows = {(r["model"], r["value"]): (r["n_prompts"], r["n_trials"], r["n_deep"]) for r in c.data.iter_rows(named=True)}
    # superseded copies are not counted; unparsed prompts count as prompts but not as trials
    assert rows == {("a", "x"): (2, 2, 1), ("a", "y"): (1, 0, 0), ("b", "x"): (1, 1, 0), ("b", "y"): (1, 1, 1)}
    assert c.n_trials == 4 and c.n_deep == 2


def test_derived_log_n_train():
    c = from_trials(_trials(), ["log_n_train"])
    assert sorted(round(math.exp(v)) for v in c.data["log_n_train"].unique()) == [4, 40]


def test_from_counts_collapses_and_reports_missing_design():
    counts = pl.DataFrame({"model": ["a", "a", "b"], "model_id": ["A", "A", "B"], "value": ["x", "y", "x"],
                           "n_prompts": [10, 10, 10], "n_trials": [9, 10, 8], "n_deep": [3, 4, 5]})
    c = from_counts(counts, [])
    assert c.by_model().to_dicts() == [
        {"model": "a", "n_prompts": 20, "n_trials": 19, "n_deep": 7},
        {"model": "b", "n_prompts": 10, "n_trials": 8, "n_deep": 5},
    ]
    with pytest.raises(ValueError, match="'context'.*available: model, model_id, value"):
        from_counts(counts, ["context"])


def test_collapse_unknown_column():
    c = CellTable(pl.DataFrame({"model": ["a"], "n_prompts": [1], "n_trials": [1], "n_deep": [0]}), ("model",))
    with pytest.raises(KeyError, match="value"):
        collapse(c, ["model", "value"])


def test_model_table_columns_join_by_model():
    from dvbstats.input.registry import ModelTable

    models = ModelTable.default().data.head(2).with_columns(short_name=pl.Series(["a", "b"]))
    c = from_trials(_trials(), ["family", "params_b"], models)
    assert c.by == ("model", "family", "params_b")
    got = {r["model"]: (r["family"], r["params_b"]) for r in c.data.iter_rows(named=True)}
    want = {r["short_name"]: (r["family"], r["params_b"]) for r in models.iter_rows(named=True)}
    assert got == want
    counts = pl.DataFrame({"model": ["a", "b"], "n_prompts": [3, 4], "n_trials": [3, 4], "n_deep": [1, 2]})
    assert from_counts(counts, ["developer"], models).data["developer"].to_list() == models["developer"].to_list()
    with pytest.raises(ValueError, match="'nosuch'.*available: .*developer, family"):
        from_trials(_trials(), ["nosuch"], models)


def test_extra_trial_columns_become_design_variables():
    c = from_trials(_trials().with_columns(condition=pl.Series(["p", "q", "q", "p", "p", "q"])), ["condition"])
    assert c.by == ("model", "condition") and c.n_trials == 4
