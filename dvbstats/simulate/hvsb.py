"""HVSB judgment trees simulated from known effects, and the embedded synthetic HVSB example.

Every model judges the same items under every condition. The truth logit that model ``m`` (of
family ``f``) misjudges item ``i`` (of dataset ``d`` and scenario type ``s``) under condition ``c`` is

    intercept + model[m] + condition[c] + model_condition[m, c] + dataset[d] + scenario_type[s]
    + item[i] + family_item[f, i]

``item`` is a difficulty every model shares (so contrasts are paired) and ``family_item`` one its
family shares (so models of a family agree more: the same-family agreement effect). Before judging,
a model refuses with probability ``expit(refusal_condition[c] + refusal_model[m])`` (rising under
the targeted prompt), and otherwise answers malformed (both labels, no marker, empty) with
probability ``malformed_rate``; all of these are independent of the item, so the truth is known
exactly. Some files are cut off in their last row and some get re-run rows appended (identical
copies, parsed re-runs of unparsed answers, and, on request, conflicting answers), as crashed and
repeated runs of the authors' scripts leave them. :class:`HvsbSimulation` holds the truth and the
raw counts a correct reader must find.
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import scipy
from scipy.special import expit, logit

from dvbstats.benchmarks.hvsb import CONDITIONS, LABELS, model_table
from dvbstats.input.manifest import sha256
from dvbstats.input.registry import ModelTable
from dvbstats.simulate.example import MANIFEST, read_manifest, cache_dir

#: Scenario types of each dataset, named as the authors' preprocessing scripts name them.
SCENARIO_TYPES: dict[str, tuple[str, ...]] = {
    "bbq": tuple(
        f"{c}_{p}_{a}"
        for c in ("Age", "Gender_identity", "Race_ethnicity", "Religion", "SES")
        for p in ("neg", "pos")
        for a in ("stereotype", "nonstereotype")
    ),
    "biasdpo": ("biasdpo_chosen", "biasdpo_rejected"),
    "ss": tuple(f"ss_{o}_{t}" for o in ("pro", "anti") for t in ("gender", "profession", "race", "religion")),
    "cp": tuple(
        f"cp_{o}_{t}" for o in ("pro", "anti")
        for t in ("race-color", "gender", "sexual-orientation", "religion", "age", "nationality",
                  "disability", "physical-appearance", "socioeconomic")
    ),
}
#: Responses by what they amount to (``{label}`` is the label's upper-case text).
RESPONSES: dict[str, tuple[str, ...]] = {
    "label": (
        "Judgment: {label}",
        "judgment:{lower}",
        "**Judgment:** {title}",
        "The answer relies on the context only.\n\nJudgment: {label}\n\nExplanation: see the scenario.",
        "Judgement - {label}.",
        "{label}",
    ),
    "neither": (
        "I'm sorry, but I can't help with that request.",
        "I cannot make judgments about groups of people.",
        "As an AI, I do not hold opinions on this.",
    ),
    "both": ("Judgment: BIASED or UNBIASED", "Judgment: BIASED\nJudgment: UNBIASED"),
    "unmarked": ("The scenario is not biased in my view.", "This could be seen as biased."),
    "empty": ("",),
}
_MALFORMED: tuple[str, ...] = ("both", "unmarked", "empty")


def gold_label(scenario_type: str) -> str:
    """The gold label the authors' preprocessing gives a scenario type."""
    unbiased = scenario_type.endswith(("_unknown", "biasdpo_chosen"))
    return "unbiased" if unbiased else "biased"


@dataclass(frozen=True, kw_only=True)
class HvsbDesign:
    """Models (id -> family), datasets (-> scenario types) and items per dataset."""

    families: Mapping[str, str]
    scenario_types: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(SCENARIO_TYPES))
    n_items: int = 500

    def items(self) -> pl.DataFrame:
        """``dataset, scenario_type, id, item, gold_label``: items spread evenly over each dataset's types.

        Ids count from 0 within a scenario type, so (as in the real datasets) one id recurs across types.
        """
        rows = []
        for dataset, types in self.scenario_types.items():
            for k in range(self.n_items):
                scenario_type, number = types[k % len(types)], k // len(types)
                rows.append((dataset, scenario_type, str(number), f"{dataset}:{scenario_type}:{number}",
                             gold_label(scenario_type)))
        return pl.DataFrame(rows, schema=["dataset", "scenario_type", "id", "item", "gold_label"], orient="row")


@dataclass(frozen=True, kw_only=True)
class HvsbEffects:
    """Logit-scale effects of misjudging and of refusing (see the module docstring)."""

    intercept: float
    model: Mapping[str, float]
    condition: Mapping[str, float]
    model_condition: Mapping[tuple[str, str], float]
    dataset: Mapping[str, float]
    scenario_type: Mapping[str, float]
    item: np.ndarray  # one per row of HvsbDesign.items()
    family_item: Mapping[str, np.ndarray]
    refusal_condition: Mapping[str, float]
    refusal_model: Mapping[str, float]
    malformed_rate: float


def draw_hvsb_effects(
    design: HvsbDesign,
    seed: int,
    *,
    intercept: float = float(logit(0.2)),
    condition: Mapping[str, float] | None = None,
    sd: Mapping[str, float] | None = None,
    refusal: Mapping[str, float] | None = None,
    malformed_rate: float = 0.01,
) -> HvsbEffects:
    """Draw effects: each term Normal(0, sd[term]); conditions, refusal rates and the intercept as given.

    ``sd`` keys: ``model``, ``model_condition``, ``dataset``, ``scenario_type``, ``item``,
    ``family_item``. ``refusal``: the refusal probability per condition of an average model
    (models deviate on the logit scale with SD ``sd["refusal_model"]``).
    """
    sd = {"model": 0.5, "model_condition": 0.25, "dataset": 0.4, "scenario_type": 0.3, "item": 0.8,
          "family_item": 0.7, "refusal_model": 0.5, **(sd or {})}
    condition = condition or {"none": 0.0, "untargeted": 0.5, "targeted": 1.0}
    refusal = refusal or {"none": 0.01, "untargeted": 0.03, "targeted": 0.10}
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    models = list(design.families)
    types = [t for ts in design.scenario_types.values() for t in ts]
    n_items = design.n_items * len(design.scenario_types)

    def normal(keys: Sequence, term: str) -> dict:
        return dict(zip(keys, rng.normal(0.0, sd[term], len(keys)).tolist()))

    return HvsbEffects(
        intercept=intercept,
        model=normal(models, "model"),
        condition=dict(condition),
        model_condition=normal([(m, c) for m in models for c in CONDITIONS], "model_condition"),
        dataset=normal(list(design.scenario_types), "dataset"),
        scenario_type=normal(types, "scenario_type"),
        item=rng.normal(0.0, sd["item"], n_items),
        family_item={f: rng.normal(0.0, sd["family_item"], n_items) for f in dict.fromkeys(design.families.values())},
        refusal_condition={c: float(logit(p)) for c, p in refusal.items()},
        refusal_model=normal(models, "refusal_model"),
        malformed_rate=malformed_rate,
    )


@dataclass(frozen=True)
class HvsbSimulation:
    """A simulated tree: its files, the truth, and the raw counts a reader must find.

    ``rates``: per model x condition, ``p_misaligned`` (the true misalignment probability averaged
    over the items: MR for ``none``, ASR under an attack) and ``p_refusal``. ``targeted_effect``: per
    model, ``p_misaligned`` targeted minus untargeted. ``agreement``: per model pair and condition,
    the expected agreement of their judgments and whether they share a family; ``same_family_effect``:
    mean same-family minus mean cross-family expected agreement per condition. ``counts``: per model x
    condition the rows written (``n_rows``) and what they amount to after reconciliation (``n_used,
    n_unparsed, n_superseded, n_conflict, n_misaligned, n_refused``), with conflicts resolved as
    ``on_conflict="first"`` does.
    """

    root: Path
    paths: tuple[Path, ...]
    rates: pl.DataFrame
    targeted_effect: pl.DataFrame
    agreement: pl.DataFrame
    same_family_effect: pl.DataFrame
    counts: pl.DataFrame


def true_probabilities(effects: HvsbEffects, design: HvsbDesign) -> dict[tuple[str, str], np.ndarray]:
    """P(misjudged) per (model, condition), one entry per row of ``design.items()``."""
    items = design.items()
    base = (
        effects.intercept
        + items["dataset"].replace_strict(effects.dataset, return_dtype=pl.Float64).to_numpy()
        + items["scenario_type"].replace_strict(effects.scenario_type, return_dtype=pl.Float64).to_numpy()
        + effects.item
    )
    return {
        (m, c): expit(base + effects.family_item[f] + effects.model[m] + effects.condition[c]
                      + effects.model_condition[(m, c)])
        for m, f in design.families.items()
        for c in CONDITIONS
    }


def _truth(effects: HvsbEffects, design: HvsbDesign) -> tuple[pl.DataFrame, ...]:
    p = true_probabilities(effects, design)
    rates = pl.DataFrame(
        [(m, c, float(p[m, c].mean()), float(expit(effects.refusal_condition[c] + effects.refusal_model[m])))
         for m in design.families for c in CONDITIONS],
        schema=["model_id", "condition", "p_misaligned", "p_refusal"], orient="row",
    )
    targeted = pl.DataFrame(
        {"model_id": list(design.families),
         "effect": [float(p[m, "targeted"].mean() - p[m, "untargeted"].mean()) for m in design.families]}
    )
    agreement = pl.DataFrame(
        [(a, b, c, design.families[a] == design.families[b],
          float((p[a, c] * p[b, c] + (1 - p[a, c]) * (1 - p[b, c])).mean()))
         for a, b in combinations(design.families, 2) for c in CONDITIONS],
        schema=["model_a", "model_b", "condition", "same_family", "p_agree"], orient="row",
    )
    effect = (
        agreement.group_by("condition", "same_family").agg(pl.col("p_agree").mean())
        .pivot("same_family", index="condition", values="p_agree")
        .select("condition", (pl.col("true") - pl.col("false")).alias("effect"))
        .sort(pl.col("condition").replace_strict({c: i for i, c in enumerate(CONDITIONS)}))
    )
    return rates, targeted, agreement, effect


def _response(rng: np.random.Generator, kind: str, label: str | None = None) -> str:
    if kind == "label":
        template = RESPONSES["label"][rng.integers(len(RESPONSES["label"]))]
        return template.format(label=label.upper(), lower=label, title=label.title())
    options = RESPONSES[kind]
    return options[rng.integers(len(options))]


def _scenario(item: str) -> str:
    """A scenario text with a quoted newline, quotes and a tab, as real scenarios can have."""
    return f'Context: item {item} says "someone\'s view".\nQuestion: who?\tAnswer: "the other one"'


def simulate_hvsb(
    effects: HvsbEffects,
    design: HvsbDesign,
    out_dir: Path,
    *,
    seed: int,
    partial_files: int = 3,
    rerun_files: int = 3,
    conflicts: int = 0,
) -> HvsbSimulation:
    """Write the judgment tree of ``design`` under ``out_dir`` and return it with its truth.

    ``partial_files`` files (drawn at random) lose the end of their last row; ``rerun_files`` other
    files get re-run rows appended: an identical copy of a parsed row, and a parsed re-run of every
    unparsed row; ``conflicts`` of those files also get a copy of a parsed row with the other label.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    items = design.items().with_row_index("_k")
    p = true_probabilities(effects, design)
    files = [(m, c, d, t) for m in design.families for c in CONDITIONS
             for d, ts in design.scenario_types.items() for t in ts]
    chosen = rng.choice(len(files), size=partial_files + rerun_files, replace=False)
    partial = {files[k] for k in chosen[:partial_files]}
    rerun = [files[k] for k in chosen[partial_files:]]
    conflicting, rerun_set = set(rerun[:conflicts]), set(rerun)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    paths = []
    for m, c, d, t in files:
        rows = items.filter(pl.col("scenario_type") == t)
        refusal = expit(effects.refusal_condition[c] + effects.refusal_model[m])
        written = []  # (id, gold, response, kind, misaligned)
        for k, number, gold in rows.select("_k", "id", "gold_label").iter_rows():
            written.append((number, gold, *_judge(rng, p[m, c][k], gold, refusal, effects.malformed_rate)))
        final = {number: row for number, *row in written}
        copies = []
        if (m, c, d, t) in rerun_set:
            parsed = [w for w in written if w[3] in LABELS]
            copies.append(parsed[0])  # identical copy
            for number, gold, _, kind, _ in written:
                if kind not in LABELS:
                    again = _judge(rng, p[m, c][int(rows.filter(pl.col("id") == number)["_k"][0])], gold, 0.0, 0.0)
                    copies.append((number, gold, *again))
                    final[number] = (gold, *again)
            if (m, c, d, t) in conflicting:
                number, gold, _, kind, _ = parsed[1]
                other = LABELS[1 - LABELS.index(kind)]
                copies.append((number, gold, _response(rng, "label", other), other, int(other != gold)))
        folder = out_dir / f"{d}_judgment" / m / ("" if c == "none" else c)
        path = _write_tsv(folder / f"{t}.tsv", [*written, *copies], cut=(m, c, d, t) in partial)
        paths.append(path)
        if (m, c, d, t) in partial:
            final[written[-1][0]] = (written[-1][1], "", "truncated", None)
        tally = counts.setdefault((m, c), dict.fromkeys(
            ("n_rows", "n_used", "n_unparsed", "n_superseded", "n_conflict", "n_misaligned", "n_refused"), 0))
        tally["n_rows"] += len(written) + len(copies)
        tally["n_superseded"] += len(copies)
        for gold, _, kind, misaligned in final.values():
            tally["n_used" if kind in LABELS else "n_unparsed"] += 1
            tally["n_misaligned"] += misaligned or 0
            tally["n_refused"] += kind == "neither"
    rates, targeted, agreement, effect = _truth(effects, design)
    count_table = pl.DataFrame(
        [{"model_id": m, "condition": c, **tally} for (m, c), tally in counts.items()]
    )
    return HvsbSimulation(out_dir, tuple(paths), rates, targeted, agreement, effect, count_table)


def _judge(
    rng: np.random.Generator, p: float, gold: str, refusal: float, malformed: float
) -> tuple[str, str, int | None]:
    """One response: (text, kind, misaligned); refusal, then malformed, then a judgment."""
    if rng.random() < refusal:
        return _response(rng, "neither"), "neither", None
    if rng.random() < malformed:
        kind = _MALFORMED[rng.integers(len(_MALFORMED))]
        return _response(rng, kind), kind, None
    misaligned = int(rng.random() < p)
    label = LABELS[1 - LABELS.index(gold)] if misaligned else gold
    return _response(rng, "label", label), label, misaligned


def _write_tsv(path: Path, rows: list[tuple], *, cut: bool) -> Path:
    """Write rows as the authors' scripts do (csv module, tab, CRLF); ``cut`` drops the end of the last row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["id", "scenario", "gold_label", "response"])
        for number, gold, response, *_ in rows:
            writer.writerow([number, _scenario(number), gold, response])
    if cut:
        data = path.read_bytes()
        keep = len(data) - 2 - max(1, len(rows[-1][2]) // 2)  # into the last response (or the gold label)
        path.write_bytes(data[:keep])
    return path


# --------------------------------------------------------------------------- the embedded example

EXAMPLE_SEED: int = 20250916
#: The example's 12 models: the published ids of three families and two synthetic DeepSeek stand-ins.
EXAMPLE_FAMILIES: dict[str, str] = {
    "gpt-3.5-turbo": "gpt", "gpt-4o-mini": "gpt", "gpt-4o": "gpt",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1", "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1",
    "Qwen/Qwen2.5-1.5B-Instruct": "qwen2.5", "Qwen/Qwen2.5-3B-Instruct": "qwen2.5",
    "Qwen/Qwen2.5-7B-Instruct": "qwen2.5", "Qwen/Qwen2.5-14B-Instruct": "qwen2.5",
    "Qwen/Qwen2.5-72B-Instruct": "qwen2.5",
    "deepseek/synthetic-a": "deepseek", "deepseek/synthetic-b": "deepseek",
}
_GENERATOR = "dvbstats.simulate.hvsb.write_hvsb_example"
_NOTICE = (
    "SYNTHETIC HVSB judgment files simulated by dvbstats.simulate.hvsb with invented effects. They are "
    "NOT model outputs of Liu & Chu (2025), which are not public; use them to exercise the pipeline, "
    "not to draw conclusions about the models."
)


def example_models() -> ModelTable:
    """The HVSB model table plus the example's two synthetic DeepSeek models (no size information)."""
    extra = pl.DataFrame(
        {"model_id": ["deepseek/synthetic-a", "deepseek/synthetic-b"],
         "short_name": ["deepseek-synthetic-a", "deepseek-synthetic-b"],
         "developer": ["DeepSeek"] * 2, "family": ["deepseek"] * 2,
         "size_rank_in_family": [None, None], "params_b": [None, None]},
    )
    return ModelTable(pl.concat([model_table().data, extra], how="vertical_relaxed"))


def simulate_hvsb_example(out_dir: Path) -> HvsbSimulation:
    """The example: 12 models, 4 families, 4 datasets x 500 items x 3 conditions, written to ``out_dir``."""
    design = HvsbDesign(families=EXAMPLE_FAMILIES)
    return simulate_hvsb(draw_hvsb_effects(design, EXAMPLE_SEED), design, out_dir, seed=EXAMPLE_SEED)


def generator_key() -> str:
    """What the example's bytes are a function of, hashed: this module's source (the design, effects, seed and
    writer), the conditions, labels and model table it writes from (defined in the benchmark's module), and the
    versions of Python (its csv writer) and of the libraries whose random streams and arithmetic it uses. Equal
    keys generate equal trees."""
    parts = [Path(__file__).read_bytes(), repr((CONDITIONS, LABELS)).encode(), model_table().data.write_csv().encode(),
             f"{platform.python_version()} numpy {np.__version__} scipy {scipy.__version__} polars {pl.__version__}"
             .encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def _is_current(out_dir: Path, key: str) -> bool:
    """Whether ``out_dir`` holds the example this version generates (written under the same
    :func:`generator_key`, every listed file with its listed hash), so that it need not be simulated again."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return False
    try:
        manifest = read_manifest(path)
    except ValueError:
        return False
    return (manifest.get("generator") == _GENERATOR and manifest.get("generator_key") == key
            and all((out_dir / f["name"]).is_file() and sha256(out_dir / f["name"]) == f["sha256"]
                    for f in manifest["files"]))


def write_hvsb_example(out_dir: Path | None = None, *, force: bool = False) -> Path:
    """Write the example tree and ``SYNTHETIC.json`` to ``out_dir`` (default: ``cache_dir() / "example_hvsb"``;
    kept when already identical); return it.

    A tree written by this version (:func:`generator_key` in its manifest, its files unchanged) is returned
    without simulating again (about 3 CPU s); otherwise the tree is generated in a temporary folder beside
    ``out_dir`` and swapped in whole. An existing ``out_dir`` that is not this example is an error unless ``force``.
    """
    out_dir = Path(out_dir) if out_dir is not None else cache_dir() / "example_hvsb"
    key = generator_key()
    if _is_current(out_dir, key):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".example_hvsb-") as tmp:
        fresh = Path(tmp) / "tree"
        simulation = simulate_hvsb_example(fresh)
        manifest = {
            "synthetic": True,
            "notice": _NOTICE,
            "generator": _GENERATOR,
            "generator_key": key,
            "seed": EXAMPLE_SEED,
            "files": [{"name": str(p.relative_to(fresh)), "sha256": sha256(p)} for p in simulation.paths],
        }
        text = json.dumps(manifest, indent=2) + "\n"
        (fresh / MANIFEST).write_text(text)
        if out_dir.exists():
            current = out_dir / MANIFEST
            same = current.is_file() and read_manifest(current)["files"] == manifest["files"]
            if same and all((out_dir / f["name"]).is_file() and sha256(out_dir / f["name"]) == f["sha256"]
                            for f in manifest["files"]):
                current.write_text(text)  # the same tree: its manifest now carries this version's key
                return out_dir
            if not force:
                raise FileExistsError(
                    f"{out_dir}: exists and is not the synthetic HVSB example this version generates; "
                    "pass force=True to replace it"
                )
            shutil.rmtree(out_dir)
        fresh.rename(out_dir)
    return out_dir


def is_hvsb_example(paths: Sequence[str | Path]) -> bool:
    """True when any path is, or lies inside, a tree written by :func:`write_hvsb_example`.

    Any, not all: a run mixing synthetic and real judgments must still be labelled synthetic.
    """
    for path in map(Path, paths):
        for folder in (path, *path.absolute().parents):
            manifest = folder / MANIFEST
            if manifest.is_file() and read_manifest(manifest).get("generator") == _GENERATOR:
                return True
    return False
