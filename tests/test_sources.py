"""Evaluation logs and wide matrices as binary judgments (dvbstats.benchmarks.sources).

Real files (tests/data/real, PROVENANCE.md) read with exactly the counts their source states;
malformed and ambiguous inputs give errors naming the file and record.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest

import dvbstats as dvb
from dvbstats.benchmarks import detect, load, sources
from dvbstats.benchmarks.sources import Options
from dvbstats.benchmarks.sources.helm import task_name
from dvbstats.benchmarks.sources.records import code_score
from dvbstats.input.ingest import IngestError, IngestWarning
from dvbstats.input.registry import UnknownModelWarning
from dvbstats.model.formula import parse

if sys.version_info >= (3, 14):
    import zipfile
else:
    from backports.zstd import zipfile

REAL = Path(__file__).parent / "data" / "real"
INSPECT = REAL / "logs" / "inspect"
SCORED = INSPECT / "2025-02-11T15-18-04-05-00_popularity_mj7khqpMM4GBCfVQozKgzB.eval"
UNSCORED = INSPECT / "2025-02-11T15-17-00-05-00_popularity_dPiJifoWeEQBrfWsAopzWr.eval"
MATH500 = REAL / "wide" / "math500_lart.csv"
CONDITION = "(?P<model>.+)_(?P<condition>zero_shot|one_shot)"


@pytest.fixture(autouse=True)
def _quiet_unknown_models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownModelWarning)
        yield


def outcomes(table) -> dict:
    """{outcome: rows} of a judgment table (None: unparsed)."""
    return dict(table.data.group_by("outcome").len().iter_rows())


def adds_up(table, by=("model",)) -> None:
    counts = table.status_counts(by)
    assert (counts["n_rows"] == counts["n_used"] + counts["n_unparsed"] + counts["n_superseded"]
            + counts["n_conflict"]).all()
    assert counts.select(pl.exclude(*by).min()).min_horizontal().item() >= 0
    assert counts["n_rows"].sum() == table.data.height == sum(s.n_rows for s in table.sources)


# --------------------------------------------------------------------------- real files: Inspect


@pytest.mark.parametrize(("name", "model", "task", "correct", "incorrect"), [
    (SCORED.name, "openai/gpt-4o-mini", "popularity", 8, 2),
    ("mmlu-summary-choices.eval", "openai/gpt-4o", "inspect_evals/mmlu_0_shot", 0, 1),
    ("2025-05-12T20-28-13-04-00_popularity.json", "openai/gpt-4o-mini", "popularity", 2, 1),
    ("2025-05-12T20-28-26-04-00_security-guide.json", "openai/gpt-4o-mini", "security_guide", 3, 0),
    ("data_pubmedqa_gpt4o_mini.json", "openai/azure/gpt-4o-mini", "inspect_evals/pubmedqa", 2, 0),
])
def test_real_inspect_logs_read_with_their_stated_counts(name, model, task, correct, incorrect):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IngestWarning)  # the popularity .json log was cancelled
        table = sources.read(INSPECT / name)
    data = table.data
    assert data["model_id"].unique().to_list() == [model] and data["task"].unique().to_list() == [task]
    assert outcomes(table) == {k: v for k, v in {1: correct, 0: incorrect}.items() if v}
    assert data["epoch"].unique().to_list() == [1] and (data["status"] == "used").all()
    assert data["item"].str.starts_with(f"{task}:").all()
    adds_up(table)


def test_a_nested_provider_path_stays_the_id_and_gives_a_short_name():
    table = sources.read(INSPECT / "data_pubmedqa_gpt4o_mini.json")
    assert table.data["model_id"][0] == "openai/azure/gpt-4o-mini" and table.data["model"][0] == "gpt-4o-mini"
    assert sorted(table.data["item"]) == ["inspect_evals/pubmedqa:12377809", "inspect_evals/pubmedqa:26163474"]


def test_an_unscored_log_is_an_error_that_says_so():
    with pytest.raises(IngestError, match=r"dPiJ.*\.eval: an unscored log: none of its 10 sample\(s\) has a score"):
        sources.read(UNSCORED)
    with pytest.raises(IngestError, match="an unscored log"):
        sources.read(INSPECT)  # a folder holding it among scored logs


def test_a_cancelled_log_is_read_with_a_warning():
    with pytest.warns(IngestWarning, match="status is 'cancelled'; its 3 recorded sample"):
        sources.read(INSPECT / "2025-05-12T20-28-13-04-00_popularity.json")


def rewrite(archive: Path, out: Path, compression: int, leave_out: tuple[str, ...] = ()) -> Path:
    """The same members (but those whose names start with ``leave_out``), written with another compression."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for info in src.infolist():
            if not info.filename.startswith(leave_out):
                dst.writestr(info.filename, src.read(info.filename))
    return out


def test_a_zstd_eval_log_reads_as_its_deflate_twin(tmp_path: Path):
    zstd = rewrite(SCORED, tmp_path / "zstd.eval", zipfile.ZIP_ZSTANDARD)
    deflate = rewrite(SCORED, tmp_path / "deflate.eval", zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(zstd) as z:
        assert {i.compress_type for i in z.infolist()} == {93}  # Zstandard, as Inspect writes since 0.3.206
    a, b = sources.read(zstd).data, sources.read(deflate).data
    assert a.drop("source_file").equals(b.drop("source_file")) and a.height == 10
    assert a.equals(sources.read(SCORED).data.with_columns(pl.lit(str(zstd)).alias("source_file")))


def test_an_eval_log_without_summaries_reads_its_journal_or_its_samples(tmp_path: Path):
    def key(path):
        return sources.read(path).data.sort("item").select("item", "epoch", "outcome")

    full = key(SCORED)
    journal = rewrite(SCORED, tmp_path / "journal.eval", zipfile.ZIP_DEFLATED, ("summaries.json",))
    samples = rewrite(SCORED, tmp_path / "samples.eval", zipfile.ZIP_DEFLATED, ("summaries.json", "_journal/summaries"))
    unfinished = rewrite(SCORED, tmp_path / "unfinished.eval", zipfile.ZIP_DEFLATED, ("summaries.json", "header.json"))
    assert key(journal).equals(full) and key(samples).equals(full) and key(unfinished).equals(full)


# --------------------------------------------------------------------------- Inspect: built logs


def inspect_log(path: Path, samples: list[dict], model="openai/gpt-4o", task="quiz", status="success") -> Path:
    """A minimal Inspect .json log (the fields the reader uses, in Inspect's order)."""
    log = {"version": 2, "status": status, "eval": {"task": task, "model": model, "config": {}},
           "samples": samples}
    path.write_text(json.dumps(log))
    return path


def sample(sid, epoch=1, **scores) -> dict:
    return {"id": sid, "epoch": epoch, "scores": {k: {"value": v} for k, v in scores.items()}}


def test_epochs_are_repeated_trials_and_scores_are_coded_not_coerced(tmp_path: Path):
    log = inspect_log(tmp_path / "log.json", [
        sample(1, 1, match="C"), sample(1, 2, match="I"), sample(2, 1, match="P"), sample(2, 2, match="N"),
        sample(3, 1, match=True), sample(3, 2, match=0.0), sample(4, 1, match=0.5), sample(4, 2, match=3),
        {"id": 5, "epoch": 1, "scores": {}, "error": {"message": "rate limit"}},
        sample(5, 2, match={"a": 1}), sample(6, 1, match="maybe"), sample(6, 2, match=None),
    ])
    table = sources.read(log)
    data = table.data.sort("source_row")
    assert data["epoch"].to_list() == [1, 2] * 6 and data["item"][0] == "quiz:1"
    assert data["outcome"].to_list() == [1, 0, None, None, 1, 0, None, None, None, None, None, None]
    reasons = data["reason"].to_list()
    assert "partial credit (P): not counted (choose --partial" in reasons[2] and reasons[3] == "no answer (N)"
    assert "partial credit 0.5: not counted" in reasons[6] and "score 3 is not 0 or 1" in reasons[7]
    assert reasons[8] == "no match score (sample error: rate limit)" and "a dict (keys 'a')" in reasons[9]
    assert "'maybe' is not C, I, P, N" in reasons[10] and reasons[11] == "no match score"
    assert dict(table.status_counts().select("n_used", "n_unparsed").row(0, named=True)) == {
        "n_used": 4, "n_unparsed": 8}
    adds_up(table)
    as_one = sources.read(log, Options(partial="1")).data.sort("source_row")
    assert as_one["outcome"].to_list()[2:8] == [1, None, 1, 0, 1, None]
    assert as_one["reason"][2] == "partial credit (P): counted as 1 (--partial 1)"
    excluded = sources.read(log, Options(partial="exclude")).data.sort("source_row")
    assert excluded["outcome"][2] is None and excluded["reason"][6] == "partial credit 0.5: excluded (--partial exclude)"


def test_several_scorers_need_scorer_and_the_error_lists_them(tmp_path: Path):
    log = inspect_log(tmp_path / "log.json", [sample(1, match="C", judge="I"), sample(2, match="I", judge="I")])
    with pytest.raises(IngestError, match=r"log.json: scores from 2 scorers \(match, judge\); choose one with --scorer"):
        sources.read(log)
    assert sources.read(log, Options(scorer="judge")).data["outcome"].to_list() == [0, 0]
    with pytest.raises(IngestError, match="no scorer 'mach'; its scorers: match, judge"):
        sources.read(log, Options(scorer="mach"))


@pytest.mark.parametrize(("content", "problem"), [
    (b"not a zip", "not a zip archive, as an Inspect .eval log is"),
])
def test_a_broken_eval_archive_is_named(tmp_path: Path, content: bytes, problem: str):
    path = tmp_path / "broken.eval"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=f"broken.eval: {problem}"):
        sources.read(path)


def test_malformed_inspect_records_are_named(tmp_path: Path):
    with pytest.raises(IngestError, match=r"log.json: sample 2: no 'id'"):
        sources.read(inspect_log(tmp_path / "log.json", [sample(1, match="C"), {"epoch": 1, "scores": {}}]))
    with pytest.raises(IngestError, match=r"log.json: sample 1 \(id 1\): 'epoch' is a str"):
        sources.read(inspect_log(tmp_path / "log.json", [sample(1, epoch="one", match="C")]))
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps({"version": 2, "status": "success", "eval": {}})[:-5])
    with pytest.raises(IngestError, match=r"cut.json: not valid JSON \(line 1"):
        sources.read(truncated)
    no_samples = tmp_path / "header-only.json"
    no_samples.write_text(json.dumps({"version": 2, "status": "success", "eval": {"task": "t", "model": "m"}}))
    with pytest.raises(IngestError, match="no samples: the log was written without them"):
        sources.read(no_samples)
    archive = tmp_path / "empty.eval"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("other.json", "{}")
    with pytest.raises(IngestError, match="empty.eval: no header.json or _journal/start.json"):
        sources.read(archive)


def test_logs_of_two_models_on_one_task_pair_on_shared_items_and_other_tasks_stay_apart(tmp_path: Path):
    a = inspect_log(tmp_path / "a.json", [sample(i, match="C" if i % 2 else "I") for i in range(1, 6)])
    b = inspect_log(tmp_path / "b.json", [sample(i, match="C") for i in range(1, 6)], model="anthropic/claude-3-haiku")
    other = inspect_log(tmp_path / "c.json", [sample(i, match="I") for i in range(1, 6)], task="other")
    table = sources.read(tmp_path)
    items = table.data.group_by("model_id", "task").agg(pl.col("item").sort())
    by = {(m, t): i for m, t, i in items.iter_rows()}
    assert by[("openai/gpt-4o", "quiz")] == by[("anthropic/claude-3-haiku", "quiz")] == [f"quiz:{i}" for i in range(1, 6)]
    assert set(by[("openai/gpt-4o", "other")]).isdisjoint(by[("openai/gpt-4o", "quiz")])  # same ids, other task
    assert table.reconciliation.height == 0  # nothing merged or superseded
    data = dvb.load([a, b])  # through the API: one cell per model and item, paired
    cells = data.cells(parse("outcome ~ 1 + (1|model) + (1|item)")).data
    assert cells.height == 10 and (cells.group_by("item").len()["len"] == 2).all()
    assert dvb.load([a, b, other]).trials.data["item"].n_unique() == 10


# --------------------------------------------------------------------------- lm-evaluation-harness


def test_real_lm_eval_samples_read_with_their_stated_counts():
    table = sources.read(REAL / "logs" / "lm_eval")
    data = table.data
    assert data.height == 10 and outcomes(table) == {0: 10}
    assert data["model_id"].unique().to_list() == ["RylanSchaeffer/mem_Qwen3-93M_minerva_math_rep_0_sbst_1.0000_epch_1_ot_1"]
    assert data["task"].unique().to_list() == ["math_perturbed_full"] and data["item"][0] == "math_perturbed_full:0"
    adds_up(table)


def lm_eval_run(folder: Path, lines: list[dict], task="arc", stamp="2026-01-02T03-04-05.000001", model="org/m") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"results_{stamp}.json").write_text(json.dumps({"model_name": model}))
    path = folder / f"samples_{task}_{stamp}.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def doc(doc_id, filt="none", doc_hash=None, **metrics) -> dict:
    return {"doc_id": doc_id, "filter": filt, "metrics": list(metrics), "doc_hash": doc_hash or f"h{doc_id}", **metrics}


def test_lm_eval_filter_and_metric_choice(tmp_path: Path):
    path = lm_eval_run(tmp_path / "run", [
        doc(0, "strict", f1=0.5, acc=1.0), doc(0, "flexible", f1=1.0, acc=1.0),
        doc(1, "strict", f1=0.0, acc=0.0), doc(1, "flexible", f1=0.0, acc=1.0),
    ])
    with pytest.raises(IngestError, match=r"2 filters \(strict, flexible\); choose one with --filter"):
        sources.read(path)
    strict = sources.read(path, Options(filter="strict"))
    assert strict.data["outcome"].to_list() == [1, 0] and strict.data.height == 2  # acc: the first 0/1 metric
    f1 = sources.read(path, Options(filter="strict", metric="f1"))
    assert f1.data["outcome"].to_list() == [None, 0] and "partial credit 0.5" in f1.data["reason"][0]
    with pytest.raises(IngestError, match="no metric 'bleu'; its metrics: f1, acc"):
        sources.read(path, Options(filter="strict", metric="bleu"))
    only_f1 = lm_eval_run(tmp_path / "f1", [doc(0, f1=0.5), doc(1, f1=1.0)])
    with pytest.raises(IngestError, match=r"no metric is 0/1 on every document \(metrics: f1\); choose one with --metric"):
        sources.read(only_f1)


def test_lm_eval_doc_hash_guards_item_identity_and_the_model_comes_from_results(tmp_path: Path):
    lm_eval_run(tmp_path / "a", [doc(0, acc=1), doc(1, acc=0)], model="org/a")
    lm_eval_run(tmp_path / "b", [doc(0, acc=0), doc(1, acc=1)], model="org/b")
    table = sources.read(tmp_path)
    assert sorted(table.data["model_id"].unique()) == ["org/a", "org/b"] and table.data["item"].n_unique() == 2
    lm_eval_run(tmp_path / "c", [doc(0, acc=1), doc(1, doc_hash="other", acc=1)], model="org/c")
    with pytest.raises(IngestError, match=r"c/samples_arc_.*jsonl: line 2: doc_id 1 of arc has doc_hash other, "
                       r"but h1 at .*: different content under one id is not merged"):
        sources.read(tmp_path)
    lonely = tmp_path / "d" / "samples_arc_2026-01-02T03-04-05.000001.jsonl"
    lonely.parent.mkdir()
    lonely.write_text(json.dumps(doc(0, acc=1)) + "\n")
    with pytest.raises(IngestError, match=r"no results_2026-01-02T03-04-05.000001.json beside it"):
        sources.read(lonely)
    bad = lm_eval_run(tmp_path / "e", [doc(0, acc=1)])
    bad.write_text(bad.read_text() + "{oops\n")
    with pytest.raises(IngestError, match=r"samples_arc_.*jsonl: line 2: not valid JSON"):
        sources.read(bad)


# --------------------------------------------------------------------------- HELM


def test_real_helm_runs_read_with_their_stated_counts():
    table = sources.read(REAL / "logs" / "helm")
    got = {(m, s, o): n for m, s, o, n in table.data.group_by("model_id", "split", "outcome").len().iter_rows()}
    assert got == {("eleutherai/pythia-1b-v0", "valid", 1): 3, ("eleutherai/pythia-1b-v0", "valid", 0): 7,
                   ("openai/gpt2", "test", 1): 1, ("openai/gpt2", "test", 0): 8, ("openai/gpt2", "valid", 0): 1}
    assert set(table.data["task"]) == {"commonsense:dataset=hellaswag,method=multiple_choice_joint",
                                       "mmlu:subject=philosophy,method=multiple_choice_joint"}
    assert table.data["train_trial_index"].unique().to_list() == [0]
    adds_up(table, ("model", "split"))


def test_helm_metric_choice_and_missing_pieces(tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(next((REAL / "logs" / "helm").iterdir()), run)
    assert sources.read(run, Options(metric="quasi_exact_match")).data.height == 10
    with pytest.raises(IngestError, match="no instance has a 'exact_matsh' stat; its stats: batch_size"):
        sources.read(run, Options(metric="exact_matsh"))
    entries = json.loads((run / "per_instance_stats.json").read_text())
    perturbed = entries[0] | {"perturbation": {"name": "typos", "prob": 0.1}}
    (run / "per_instance_stats.json").write_text(json.dumps([*entries, perturbed, {"instance_id": "id9",
                                                             "train_trial_index": 0, "stats": entries[0]["stats"][:1]}]))
    table = sources.read(run)
    assert table.data["perturbation"].to_list() == ["none"] * 10 + ["typos", "none"]
    assert table.data["item"][10] == table.data["item"][0] and table.reconciliation.height == 0  # its own trial
    assert table.data["reason"][11] == "no exact_match stat" and table.data["split"][11] == "valid"
    (run / "run_spec.json").unlink()
    with pytest.raises(IngestError, match="per_instance_stats.json: no run_spec.json beside it"):
        sources.read(run)
    assert task_name("mmlu:subject=a,method=m,model=openai_gpt2,model_deployment=x") == "mmlu:subject=a,method=m"


# --------------------------------------------------------------------------- Every Eval Ever


def test_real_every_eval_ever_instances_read():
    table = sources.read(REAL / "logs" / "every_eval_ever")  # the aggregate record beside it is not warned about
    assert table.data.select("model_id", "item", "task", "outcome").row(0) == (
        "demo-org/demo-model", "demo-source.demo_bench:demo_0001", "demo-source.demo_bench", 1)


def eee(**override) -> dict:
    record = {"schema_version": "0.3.0", "evaluation_id": "e", "model_id": "org/m", "evaluation_name": "bench",
              "sample_id": "s1", "sample_hash": "h", "evaluation": {"score": 1.0, "is_correct": True}}
    return record | override


def test_every_eval_ever_scores_and_errors(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    lines = [eee(), eee(sample_id="s2", sample_hash="h2", evaluation={"score": 0.0}),
             eee(sample_id="s3", sample_hash="h3", evaluation={"score": 0.25}),
             eee(sample_id="s4", sample_hash="h4", evaluation={}, error="timeout")]
    path.write_text("\n".join(map(json.dumps, lines)))
    table = sources.read(path)
    assert table.data["outcome"].to_list() == [1, 0, None, None]
    assert table.data["reason"][3] == "no is_correct or score (error: timeout)"
    path.write_text("\n".join(map(json.dumps, [eee(), eee(model_id="org/n", sample_hash="other")])))
    with pytest.raises(IngestError, match="x.jsonl: line 2: sample_id s1 of bench has sample_hash other"):
        sources.read(path)
    path.write_text("\n".join(map(json.dumps, [eee(), eee(schema_version="0.2.1")])))
    with pytest.raises(IngestError, match=r"x.jsonl: line 2: schema_version '0.2.1'"):
        sources.read(path)
    path.write_text(json.dumps(eee()) + "\n" + json.dumps({k: v for k, v in eee().items() if k != "model_id"} | {
        "schema_version": "0.3.0"}))
    with pytest.raises(IngestError, match="x.jsonl: line 2: no 'model_id'"):
        sources.read(path, Options(source="every_eval_ever"))


# --------------------------------------------------------------------------- wide matrices


def test_the_math500_matrix_reads_with_its_published_facts():
    with pytest.warns(IngestWarning) as caught:
        table = sources.read(MATH500, Options(wide="model", label_pattern=CONDITION))
    data = table.data
    assert data.height == 70_000 and data["model_id"].n_unique() == 71 and data["item"].n_unique() == 500
    per = data.group_by("condition").agg(pl.col("model_id").n_unique().alias("rows"), pl.col("outcome").mean())
    assert dict(per.select("condition", "rows").iter_rows()) == {"zero_shot": 70, "one_shot": 70}
    means = dict(per.select("condition", "outcome").iter_rows())
    assert round(means["zero_shot"], 3) == 0.566 and round(means["one_shot"], 3) == 0.525
    assert data.select(pl.col("source_row").n_unique()).item() == 140 and (data["status"] == "used").all()
    said = " ".join(str(w.message) for w in caught)
    assert "microsoft_Phi_4_mini_instruct (only one_shot); microsoft_phi_4_mini_instruct (only zero_shot)" in said
    assert "differ only by letter case are kept as different models" in said
    adds_up(table, ("model", "condition"))


def test_wide_matrices_by_rows_or_columns_csv_or_parquet(tmp_path: Path):
    by_model = tmp_path / "m.csv"
    by_model.write_text(",q1,q2,q3\nA_x,1,0,\nA_y,true,FALSE,1.0\nB_x,0,1,1\n")
    by_item = tmp_path / "i.csv"
    by_item.write_text("item,A_x,A_y,B_x\nq1,1,true,0\nq2,0,FALSE,1\nq3,,1.0,1\n")
    pattern = "(?P<model>[A-Z])_(?P<condition>[a-z])"
    with pytest.warns(IngestWarning, match=r"B \(only x\)"):
        a = sources.read(by_model, Options(wide="model", label_pattern=pattern))
        b = sources.read(by_item, Options(wide="item", label_pattern=pattern))
    key = ["model_id", "condition", "item"]
    assert a.data.sort(key).select(*key, "outcome").equals(b.data.sort(key).select(*key, "outcome"))
    assert a.data.filter(pl.col("outcome").is_null())["reason"].to_list() == ["blank cell"]
    assert dict(a.status_counts().select("model", "n_unparsed").iter_rows()) == {"A": 1, "B": 0}
    parquet = tmp_path / "m.parquet"
    pl.DataFrame({"": ["A_x", "A_y", "B_x"], "q1": [1, 1, 0], "q2": [0, 0, 1], "q3": [None, 1, 1]}).write_parquet(parquet)
    with pytest.warns(IngestWarning):
        c = sources.read(parquet, Options(wide="model", label_pattern=pattern))
    assert c.data.sort(key).select(*key, "outcome").equals(a.data.sort(key).select(*key, "outcome"))
    plus_minus = tmp_path / "pm.csv"
    plus_minus.write_text(",q1,q2\nA,-1,+1\nB,1,-1\n")
    assert sources.read(plus_minus, Options(wide="model")).data["outcome"].to_list() == [0, 1, 1, 0]


@pytest.mark.parametrize(("text", "options", "problem"), [
    (",q1,q2\nA,-1,0\n", {}, "cells hold -1 and 0: is 0 incorrect"),
    (",q1,q2\nA,1,0\nB,2,1\n", {}, r"row 2 \('B'\), column 'q1': '2' is not 0/1, -1/\+1, true/false or blank"),
    (",q1,q1\nA,1,0\n", {}, "the header repeats the column label"),
    (",q1\nA_x,1\nB,0\n", {"label_pattern": "(?P<model>.+)_(?P<condition>x)"},
     "model label 'B' does not match the label pattern"),
    (",q1\n,1\n", {}, "row 1: empty row label"),
])
def test_malformed_wide_matrices_are_named(tmp_path: Path, text, options, problem):
    path = tmp_path / "w.csv"
    path.write_text(text)
    with pytest.raises(IngestError, match=f"w.csv: {problem}"):
        sources.read(path, Options(wide="model", **options))


def test_bad_reading_options_are_refused_before_reading():
    with pytest.raises(ValueError, match="needs a named group 'model'"):
        Options(wide="model", label_pattern="(?P<llm>.+)")
    with pytest.raises(ValueError, match="not a regular expression"):
        Options(wide="model", label_pattern="(?P<model>.+")
    with pytest.raises(ValueError, match="give wide"):
        Options(label_pattern="(?P<model>.+)")
    with pytest.raises(ValueError, match="partial must be one of exclude, 0, 1"):
        Options(partial="half")
    with pytest.raises(ValueError, match="label_pattern group\\(s\\) \\['item'\\]"):
        Options(wide="model", label_pattern="(?P<model>.+)_(?P<item>.+)")
    with pytest.raises(ValueError, match="scorer: not an option of lm-evaluation-harness samples"):
        sources.read(REAL / "logs" / "lm_eval", Options(scorer="match"))


# --------------------------------------------------------------------------- detection, API and CLI


def test_logs_are_detected_as_binary_judgments():
    for folder in ("inspect", "lm_eval", "helm", "every_eval_ever"):
        assert detect(REAL / "logs" / folder) == "binary"
        assert sources.detect(REAL / "logs" / folder) == folder
    assert sources.detect(MATH500) is None and detect(MATH500, reading=Options(wide="model")) == "binary"
    with pytest.raises(IngestError, match="Inspect AI log input: binary judgments, but benchmark='hvsb'"):
        detect(SCORED, "hvsb")
    with pytest.raises(IngestError, match=r"math500_lart.csv: not a Inspect AI log .*\(mixed with .*\.eval\)"):
        sources.detect([SCORED, MATH500])


def test_formats_with_the_same_design_read_together_and_others_are_refused():
    both = sources.read([REAL / "logs" / "lm_eval", REAL / "logs" / "every_eval_ever"])
    assert sorted(both.data["model"].unique()) == ["demo-model", "mem_Qwen3-93M_minerva_math_rep_0_sbst_1.0000_epch_1_ot_1"]
    assert {s.format for s in both.sources} == {"lm-eval-samples", "every-eval-ever-instances"}
    with pytest.raises(IngestError, match=r"design columns \['task', 'epoch'\] differ from those of .*samples_math"):
        sources.read([REAL / "logs" / "lm_eval", SCORED])


def test_files_in_a_folder_that_no_format_reads_are_skipped_with_a_warning(tmp_path: Path):
    shutil.copy(SCORED, tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.warns(IngestWarning, match=r"1 file\(s\) that are no Inspect AI log were skipped: .*notes.txt"):
        assert sources.read(tmp_path).data.height == 10


def test_the_api_and_benchmarks_load_take_the_reading_options(tmp_path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IngestWarning)  # the case variants, tested above
        data = dvb.load(MATH500, wide="model", label_pattern=CONDITION)
    assert data.benchmark.name == "binary" and data.trials.data.height == 70_000
    assert data.inputs[0]["n_rows"] == 70_000 and data.inputs[0]["format"] == "wide-csv"
    _, table = load(SCORED, scorer="match")
    assert table.data.height == 10
    long = tmp_path / "long.csv"
    long.write_text("model,item,outcome\na,q1,1\n")
    with pytest.raises(ValueError, match="metric: options of evaluation logs and wide matrices, which this input is not"):
        dvb.load(long, metric="x")
    with pytest.raises(ValueError, match="metric: options of evaluation logs and wide matrices, which this input is not"):
        dvb.load(long, benchmark="binary", metric="x")


def test_the_cli_names_a_bad_label_pattern_before_anything_is_read(tmp_path: Path):
    run = subprocess.run([sys.executable, "-m", "dvbstats.fit", str(MATH500), "--wide", "model", "--label-pattern",
                          "(?P<name>.+)", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert run.returncode == 2 and "needs a named group 'model'" in run.stderr and not (tmp_path / "run").exists()


def test_score_coding_table():
    assert [code_score(v, None)[0] for v in ("C", "I", True, False, 1, 0, 1.0, 0.0)] == [1, 0, 1, 0, 1, 0, 1, 0]
    assert [code_score(v, "0")[0] for v in ("P", 0.3, "N", None, -1, float("nan"))] == [0, 0, None, None, None, None]
