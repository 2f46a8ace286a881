"""Harness-format DVB result dumps simulated from known effects.

A design fixes the benchmark's categorical vocabulary (value sets, shallow-feature dimensions,
contexts, numbers of in-context examples). :func:`draw_prompts` draws the test prompts once from a
seed; every model answers the same prompts. The truth logit of a prompt for model ``m`` is

    intercept + log_n_train * log(n_train) + model[m] + value[v_pref] + feature[f_pref]
    + context[c] + model_value[(m, v_pref)]

and the model chooses the deep value with probability ``expit`` of it. Each answer independently
fails to parse with the model's unparsed rate (missing completely at random), so the truth is
known exactly and the dumps exercise every path of ingestion: unparsed rows, both option letters,
feature names with spaces and hyphens, several dump formats, and re-runs of failed prompts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit

from dvbstats.input import schema

FileFormat = Literal["csv", "jsonl", "parquet"]
FILE_FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")

#: Separators of ``context_correlation_pair``; no value, feature or context may contain them.
_SEPARATORS: tuple[str, ...] = ("_vs_", " - ")

#: Effect terms drawn by :func:`draw_effects`; ``model_value`` is optional.
EFFECT_TERMS: tuple[str, ...] = ("model", "value", "feature", "context")

#: Parsed answers as (prefix, suffix) around the chosen option, as models write them.
_ANSWERS: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("", "."),
    ("I would choose ", "."),
    ("**", "**"),
    ("", "\n\nThis option best matches the choices in the examples."),
)
#: Failed attempts as (raw_response, error): unparseable answers and API failures.
_PARSE_ERROR = "could not parse a choice (Option A or Option B) from the response"
_FAILURES: tuple[tuple[str, str], ...] = (
    ("Both options have merit; it depends on the person's priorities.", _PARSE_ERROR),
    ("I can't tell which option this person would prefer without more context.", _PARSE_ERROR),
    ("Option A or Option B could both fit here.", _PARSE_ERROR),
    ("", "APIError: request timed out after 60 seconds"),
    ("", "RateLimitError: rate limit exceeded; retries exhausted"),
)
#: Dump time stamps: first runs start here, one run after another; re-runs a day later.
_RUN_START = datetime(2025, 5, 12, 9, 0, 0)
_RUN_SPACING = timedelta(minutes=47)
_RERUN_DELAY = timedelta(days=1)


@dataclass(frozen=True, kw_only=True)
class StudyDesign:
    """The benchmark's categorical design.

    ``value_sets``: values by set (ordered value pairs stay within one set); ``feature_dims``:
    shallow-feature dimensions as (pole, pole); ``n_prompts`` prompts per model, in test
    configurations of ``prompts_per_test`` prompts each; ``value_weights``: relative frequency of
    each value as the preferred value (None: uniform).
    """

    value_sets: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(schema.DVB_VALUE_SETS))
    feature_dims: Sequence[tuple[str, str]]
    contexts: Sequence[str] = schema.DVB_CONTEXTS
    n_train: Sequence[int] = (4, 20, 40)
    n_prompts: int = 12000
    prompts_per_test: int = 5
    value_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        bad_dims = [dim for dim in self.feature_dims if isinstance(dim, str) or len(dim) != 2]
        if bad_dims:
            raise ValueError(f"StudyDesign: feature dimensions must be (pole, pole) pairs, got {bad_dims}")
        normalised = {
            "value_sets": {s: tuple(vs) for s, vs in self.value_sets.items()},
            "feature_dims": tuple((str(a), str(b)) for a, b in self.feature_dims),
            "contexts": tuple(self.contexts),
            "n_train": tuple(int(n) for n in self.n_train),
            "value_weights": None if self.value_weights is None else dict(self.value_weights),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # the dataclass is frozen
        if not self.value_sets or not self.feature_dims or not self.contexts or not self.n_train:
            raise ValueError("StudyDesign: value_sets, feature_dims, contexts and n_train must each be non-empty")
        for s, vs in self.value_sets.items():
            if len(vs) < 2:
                raise ValueError(f"StudyDesign: value set {s!r} needs at least two values to form pairs, has {list(vs)}")
        _check_names("value", self.values)
        _check_names("feature pole", self.features)
        _check_names("context", self.contexts)
        if any(n < 1 for n in self.n_train):
            raise ValueError(f"StudyDesign: n_train must be positive integers, got {list(self.n_train)}")
        if self.n_prompts < 1 or self.prompts_per_test < 1:
            raise ValueError(
                f"StudyDesign: n_prompts and prompts_per_test must be >= 1, got {self.n_prompts} and {self.prompts_per_test}"
            )
        if self.value_weights is not None:
            _check_levels("StudyDesign.value_weights", self.value_weights, self.values)
            if not all(math.isfinite(w) and w > 0 for w in self.value_weights.values()):
                raise ValueError(f"StudyDesign.value_weights: weights must be positive and finite, got {self.value_weights}")

    @property
    def values(self) -> tuple[str, ...]:
        """All values, set by set."""
        return tuple(v for vs in self.value_sets.values() for v in vs)

    @property
    def features(self) -> tuple[str, ...]:
        """All feature poles, dimension by dimension."""
        return tuple(pole for dim in self.feature_dims for pole in dim)


@dataclass(frozen=True)
class Effects:
    """True effects on the logit scale; ``log_n_train`` is the slope per unit of uncentred log(n_train).

    ``feature`` is keyed by the preferred feature pole (f_pref); ``model_value`` is an optional
    model_id x preferred-value interaction (missing pairs are 0).
    """

    intercept: float
    log_n_train: float
    model: Mapping[str, float]
    value: Mapping[str, float]
    feature: Mapping[str, float]
    context: Mapping[str, float]
    model_value: Mapping[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True)
class Simulation:
    """Dumps written and the truth behind them.

    ``trials``: one row per model x prompt in its final (reconciled) state: ``chose_deep`` is null
    when the last attempt did not parse. ``truth``: per model the true design-averaged DVGR
    (``dvgr_true``, mean of ``p_true`` over all its prompts, parsed or not) and the realised
    counts ``n_prompts, n_trials`` (parsed), ``n_deep``, ``raw_dvgr``.
    """

    paths: tuple[Path, ...]
    trials: pl.DataFrame
    effects: Effects
    truth: pl.DataFrame


def draw_effects(
    design: StudyDesign,
    model_ids: Sequence[str],
    *,
    intercept: float,
    log_n_train: float,
    sd: Mapping[str, float],
    seed: int,
) -> Effects:
    """Effects with levels drawn iid Normal(0, sd[term]) for each term of ``sd``.

    ``sd`` must give model, value, feature and context; giving ``model_value`` also draws the
    model x value interaction.
    """
    unknown = set(sd) - {*EFFECT_TERMS, "model_value"}
    missing = set(EFFECT_TERMS) - set(sd)
    if unknown or missing:
        raise ValueError(
            f"draw_effects: sd needs the terms {list(EFFECT_TERMS)} (+ optional 'model_value'); "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    if any(not (math.isfinite(s) and s >= 0) for s in sd.values()):
        raise ValueError(f"draw_effects: standard deviations must be finite and >= 0, got {dict(sd)}")
    if len(set(model_ids)) != len(model_ids) or not model_ids:
        raise ValueError(f"draw_effects: model_ids must be non-empty and distinct, got {list(model_ids)}")
    rng = np.random.default_rng(seed)

    def draw(levels: Sequence, term: str) -> dict:
        return dict(zip(levels, rng.normal(0.0, sd[term], len(levels)).tolist()))

    interaction = [(m, v) for m in model_ids for v in design.values]
    return Effects(
        intercept=float(intercept),
        log_n_train=float(log_n_train),
        model=draw(model_ids, "model"),
        value=draw(design.values, "value"),
        feature=draw(design.features, "feature"),
        context=draw(design.contexts, "context"),
        model_value=draw(interaction, "model_value") if "model_value" in sd else {},
    )


def draw_prompts(design: StudyDesign, seed: int) -> pl.DataFrame:
    """The test prompts every model answers, drawn from ``seed`` (the stream :func:`simulate` uses).

    A test configuration is an ordered value pair within one set (preferred value by
    ``value_weights``, the other uniform among its set), an ordered pole pair of one feature
    dimension, a context and a number of training examples. Each factor is balanced (every level
    in proportion to its weight, in random order) and the factors are crossed at random, so a
    configuration can recur (one ``test_id`` with more prompts). The deep value is behind
    Option A or Option B at random.
    """
    rng = np.random.default_rng(_streams(seed)[0])
    values = design.values
    weights = np.array([design.value_weights[v] if design.value_weights else 1.0 for v in values])
    n_tests = math.ceil(design.n_prompts / design.prompts_per_test)

    v_pref = _balanced(rng, n_tests, weights)
    partners = [[values.index(w) for w in vs if w != v] for vs in design.value_sets.values() for v in vs]
    n_partners = np.array([len(p) for p in partners])
    partner_table = np.array([p + [-1] * (n_partners.max() - len(p)) for p in partners])
    v_less = partner_table[v_pref, rng.integers(0, n_partners[v_pref])]
    dim = _balanced(rng, n_tests, np.ones(len(design.feature_dims)))
    flip = _balanced(rng, n_tests, np.ones(2))
    context = _balanced(rng, n_tests, np.ones(len(design.contexts)))
    n_train = np.array(design.n_train)[_balanced(rng, n_tests, np.ones(len(design.n_train)))]

    test = np.repeat(np.arange(n_tests), design.prompts_per_test)[: design.n_prompts]
    poles = np.array(design.feature_dims, dtype=object)
    deep_option = rng.integers(0, 2, size=design.n_prompts)
    width = len(str(design.n_prompts - 1))
    prompts = pl.DataFrame(
        {
            "value": _labels(values, v_pref[test]),
            "value_less": _labels(values, v_less[test]),
            "feature": _labels(poles[dim, flip].tolist(), test),
            "feature_less": _labels(poles[dim, 1 - flip].tolist(), test),
            "context": _labels(design.contexts, context[test]),
            "n_train": pl.Series(n_train[test], dtype=pl.Int64),
            "uid": pl.Series([f"{i:0{width}d}" for i in range(design.n_prompts)], dtype=pl.String),
            "expected_deep_value_choice": _labels(schema.OPTIONS, deep_option),
            "shallow_preference_choice": _labels(schema.OPTIONS, 1 - deep_option),
        }
    )
    pair = pl.format("{}_{}_vs_{}_{} - {}", "value", "feature", "value_less", "feature_less", "context")
    test_id = pl.format("{}_{}", pl.col("context_correlation_pair").str.replace_all(" ", "_", literal=True), "n_train")
    return (
        prompts.with_columns(context_correlation_pair=pair)
        .with_columns(test_id=test_id)
        .with_columns(prompt_id=pl.format("{}_{}", "test_id", "uid"))
        .select(
            "prompt_id",
            "test_id",
            "context_correlation_pair",
            "value",
            "value_less",
            "feature",
            "feature_less",
            "context",
            "n_train",
            "expected_deep_value_choice",
            "shallow_preference_choice",
        )
    )


def linear_predictor(effects: Effects, prompts: pl.DataFrame) -> np.ndarray:
    """Truth logits, shape (models in ``effects.model`` order, prompts)."""
    mapped = prompts.select(
        pl.col("value").replace_strict(dict(effects.value), return_dtype=pl.Float64),
        pl.col("feature").replace_strict(dict(effects.feature), return_dtype=pl.Float64),
        pl.col("context").replace_strict(dict(effects.context), return_dtype=pl.Float64),
        pl.col("n_train").cast(pl.Float64).log().alias("log_n_train"),
    )
    shared = (
        effects.intercept
        + effects.log_n_train * mapped["log_n_train"].to_numpy()
        + mapped["value"].to_numpy()
        + mapped["feature"].to_numpy()
        + mapped["context"].to_numpy()
    )
    models = list(effects.model)
    values = prompts["value"].unique(maintain_order=True).to_list()
    interaction = np.array([[effects.model_value.get((m, v), 0.0) for v in values] for m in models])
    value_index = prompts["value"].replace_strict({v: i for i, v in enumerate(values)}, return_dtype=pl.Int64)
    model_effect = np.array([effects.model[m] for m in models])
    return shared[None, :] + model_effect[:, None] + interaction[:, value_index.to_numpy()]


def simulate(
    effects: Effects,
    design: StudyDesign,
    *,
    seed: int,
    unparsed_rate: float | Mapping[str, float] = 0.03,
    out_dir: Path | None = None,
    file_format: FileFormat = "csv",
    rerun: Mapping[str, float] | None = None,
    item_sd: float = 0.0,
) -> Simulation:
    """Simulate every model of ``effects`` on the design's prompts; write one dump per model to ``out_dir``.

    ``unparsed_rate``: probability that an attempt fails (one rate, or one per model id).
    ``rerun``: {model id: fraction}; that fraction of the model's failed prompts is run again
    (each attempt fails again with the model's unparsed rate) and written to a second, later dump
    of the same model. The truth does not depend on ``rerun``; ``trials`` give the final state.
    ``item_sd``: SD of a per-prompt effect shared by every model (item difficulty), drawn iid
    Normal(0, item_sd) from its own stream; the truth (``p_true``, ``dvgr_true``) includes it.
    """
    if not (math.isfinite(item_sd) and item_sd >= 0):
        raise ValueError(f"simulate: item_sd must be finite and >= 0, got {item_sd}")
    _check_effects(effects, design)
    if file_format not in FILE_FORMATS:
        raise ValueError(f"simulate: file_format must be one of {list(FILE_FORMATS)}, got {file_format!r}")
    models = list(effects.model)
    rates = _per_model("unparsed_rate", unparsed_rate, models, required=True)
    fractions = _per_model("rerun", rerun or {}, models, required=False)

    prompts = draw_prompts(design, seed)
    _, outcome_stream, rerun_stream, item_stream = _streams(seed)
    item = np.random.default_rng(item_stream).normal(0.0, item_sd, prompts.height) if item_sd else 0.0
    p_true = expit(linear_predictor(effects, prompts) + item)
    first = _Attempt.draw(np.random.default_rng(outcome_stream), p_true, np.array([rates[m] for m in models]))
    final = _Attempt(*(a.copy() for a in (first.parsed, first.deep, first.failure, first.answer)))

    dumps: list[tuple[str, datetime, pl.DataFrame]] = []
    rerun_rng = np.random.default_rng(rerun_stream)
    for i, m in enumerate(models):
        when = _RUN_START + i * _RUN_SPACING
        dumps.append((m, when, _harness_rows(prompts, m, first.row(i))))
        if m not in fractions:
            continue
        failed = np.flatnonzero(~first.parsed[i])
        again = np.sort(rerun_rng.choice(failed, size=round(fractions[m] * failed.size), replace=False))
        second = _Attempt.draw(rerun_rng, p_true[i, again], np.full(again.size, rates[m]))
        for name in ("parsed", "deep", "failure", "answer"):
            getattr(final, name)[i, again] = getattr(second, name)
        dumps.append((m, when + _RERUN_DELAY, _harness_rows(prompts[again], m, second)))

    paths: tuple[Path, ...] = ()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        dumps.sort(key=lambda dump: dump[1])  # first runs in model order, then re-runs
        paths = tuple(_write(rows, out_dir / _dump_name(m, when, file_format), file_format) for m, when, rows in dumps)

    design_columns = prompts.drop("context_correlation_pair", "expected_deep_value_choice", "shallow_preference_choice")
    trials = (
        pl.DataFrame({"model_id": models})
        .join(design_columns, how="cross")
        .with_columns(
            p_true=pl.Series(p_true.ravel()),
            parsed=pl.Series(final.parsed.ravel()),
            deep=pl.Series(final.deep.ravel()),
        )
        .with_columns(chose_deep=pl.when("parsed").then(pl.col("deep").cast(pl.Int8)))
        .select(pl.exclude("deep", "parsed"), "parsed")
    )
    truth = (
        trials.group_by("model_id", maintain_order=True)
        .agg(
            dvgr_true=pl.col("p_true").mean(),
            n_prompts=pl.len().cast(pl.Int64),
            n_trials=pl.col("parsed").sum().cast(pl.Int64),
            n_deep=pl.col("chose_deep").sum().cast(pl.Int64),
        )
        .with_columns(raw_dvgr=pl.col("n_deep") / pl.col("n_trials"))
    )
    return Simulation(paths=paths, trials=trials, effects=effects, truth=truth)


@dataclass(frozen=True)
class _Attempt:
    """One attempt at each prompt: parsed?, latent deep choice, failure kind, answer wording."""

    parsed: np.ndarray
    deep: np.ndarray
    failure: np.ndarray
    answer: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, p_true: np.ndarray, rate: np.ndarray) -> _Attempt:
        """Attempts for ``p_true`` (models x prompts, or prompts) with per-row failure ``rate``."""
        rate = rate.reshape(rate.shape + (1,) * (p_true.ndim - rate.ndim))
        return cls(
            parsed=rng.random(p_true.shape) >= rate,
            deep=rng.random(p_true.shape) < p_true,
            failure=rng.integers(0, len(_FAILURES), size=p_true.shape),
            answer=rng.integers(0, len(_ANSWERS), size=p_true.shape),
        )

    def row(self, i: int) -> _Attempt:
        return _Attempt(self.parsed[i], self.deep[i], self.failure[i], self.answer[i])


def _harness_rows(prompts: pl.DataFrame, model_id: str, attempt: _Attempt) -> pl.DataFrame:
    """The harness dump rows of one model's attempts at ``prompts``, columns as the harness writes them."""
    parsed = pl.col("success")
    choice = pl.when(pl.col("deep")).then("expected_deep_value_choice").otherwise("shallow_preference_choice")
    return (
        prompts.with_columns(
            model=pl.lit(model_id),
            success=pl.Series(attempt.parsed),
            deep=pl.Series(attempt.deep),
            prefix=_labels([prefix for prefix, _ in _ANSWERS], attempt.answer),
            suffix=_labels([suffix for _, suffix in _ANSWERS], attempt.answer),
            failed_response=_labels([response for response, _ in _FAILURES], attempt.failure),
            failure=_labels([error for _, error in _FAILURES], attempt.failure),
        )
        .with_columns(model_choice=pl.when(parsed).then(choice))
        .with_columns(
            raw_response=pl.when(parsed)
            .then(pl.concat_str("prefix", "model_choice", "suffix"))
            .otherwise("failed_response"),
            generalized_deep_value=pl.when(parsed).then(pl.col("deep").cast(pl.Int64)),
            error=pl.when(~parsed).then("failure"),
            n_training_examples="n_train",
        )
        .select(schema.HARNESS_COLUMNS)
    )


def _write(rows: pl.DataFrame, path: Path, file_format: str) -> Path:
    """Write a dump as the harness does (pandas-style ``True``/``False`` in CSV)."""
    if file_format == "csv":
        success = pl.when("success").then(pl.lit("True")).otherwise(pl.lit("False")).alias("success")
        rows.with_columns(success).write_csv(path)
    elif file_format == "jsonl":
        rows.write_ndjson(path)
    else:
        rows.write_parquet(path)
    return path


def _dump_name(model_id: str, when: datetime, file_format: str) -> str:
    return f"dvb_results_{when:%Y%m%d-%H%M%S}_{model_id.replace('/', '_')}_full.{file_format}"


def _streams(seed: int) -> list[np.random.SeedSequence]:
    """Independent streams: prompts, first attempts, re-runs (so re-runs never change the rest), items."""
    return np.random.SeedSequence(seed).spawn(4)  # the 4th: item effects (spawned children do not shift)


def _labels(labels: Sequence[str], index: np.ndarray) -> pl.Series:
    """``labels[index]`` as a string Series."""
    return pl.Series(np.asarray(labels, dtype=object)[index], dtype=pl.String)


def _balanced(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    """``n`` level indices in random order, each level ``n * weight`` times (largest remainders rounded up)."""
    share = n * weights / weights.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share, kind="stable")[: n - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(weights.size), counts))


def _per_model(
    name: str, setting: float | Mapping[str, float], models: list[str], *, required: bool
) -> dict[str, float]:
    """A per-model rate in [0, 1] from one number or a {model id: rate} mapping."""
    rates = {m: float(setting) for m in models} if isinstance(setting, (int, float)) else dict(setting)
    unknown = set(rates) - set(models)
    missing = set(models) - set(rates) if required else set()
    if unknown or missing:
        raise ValueError(f"simulate: {name} names unknown model ids {sorted(unknown)} / misses {sorted(missing)}")
    bad = {m: r for m, r in rates.items() if not 0.0 <= r <= 1.0}
    if bad:
        raise ValueError(f"simulate: {name} must lie in [0, 1], got {bad}")
    return rates


def _check_names(kind: str, names: Sequence[str]) -> None:
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if list(names).count(n) > 1})
        raise ValueError(f"StudyDesign: {kind} names must be distinct, repeated: {duplicated}")
    for n in names:
        if not n or any(sep in n for sep in _SEPARATORS):
            raise ValueError(f"StudyDesign: {kind} {n!r} is empty or contains a pair separator {list(_SEPARATORS)}")


def _check_levels(where: str, mapping: Mapping, levels: Sequence) -> None:
    missing = [lvl for lvl in levels if lvl not in mapping]
    unknown = [k for k in mapping if k not in set(levels)]
    if missing or unknown:
        raise ValueError(f"{where}: missing levels {missing}, unknown levels {unknown}")


def _check_effects(effects: Effects, design: StudyDesign) -> None:
    """Effects must give every level of the design, and nothing else."""
    if not effects.model:
        raise ValueError("Effects.model: needs at least one model")
    _check_levels("Effects.value", effects.value, design.values)
    _check_levels("Effects.feature", effects.feature, design.features)
    _check_levels("Effects.context", effects.context, design.contexts)
    unknown = [k for k in effects.model_value if k[0] not in effects.model or k[1] not in design.values]
    if unknown:
        raise ValueError(f"Effects.model_value: unknown (model, value) pairs {unknown}")
    terms = [effects.intercept, effects.log_n_train, *effects.model.values(), *effects.value.values()]
    terms += [*effects.feature.values(), *effects.context.values(), *effects.model_value.values()]
    if not all(math.isfinite(t) for t in terms):
        raise ValueError("Effects: every effect must be a finite number")


@dataclass(frozen=True)
class SharedPropensity:
    """Trials of models whose choices share group-level item propensities, and the truth behind them.

    ``trials``: a trial table (:data:`dvbstats.input.schema.TRIAL_SCHEMA`; ``model`` = ``model_id``; unanswered
    items have status ``unparsed``). ``p_true``: models x items probabilities of choosing 1.
    ``effect_logit`` and ``effect_pp``: the same-group effect on pair agreement of *these* pairs, computed
    from ``p_true`` (no sampling noise): the least-squares fit of logit(expected agreement) per pair on a
    same-group indicator and zero-sum multi-membership model effects; ``effect_pp = expit(a + b) - expit(a)``
    in points. ``population_logit`` and ``population_pp``: the same fit over the population of pairs the
    simulator draws from (every model, group and item effect integrated out: :func:`population_agreement_effect`),
    the estimand of :func:`dvbstats.results.agreement_pymc.bayes_model`, whose pair effects are a distribution.
    """

    trials: pl.DataFrame
    p_true: np.ndarray
    effect_logit: float
    effect_pp: float
    population_logit: float
    population_pp: float


def shared_propensity_trials(
    groups: Mapping[str, str],
    *,
    n_items: int,
    seed: int,
    intercept: float = -0.5,
    sd_model: float = 0.4,
    sd_item: float = 1.0,
    sd_group_item: float = 0.8,
    sd_model_item: float = 1.0,
    unparsed_rate: float = 0.05,
) -> SharedPropensity:
    """Each model m of group g answers item i with logit P(1) = intercept + model[m] + item[i] +
    group_item[g, i] + model_item[m, i], all effects independent normal with the given SDs.

    ``group_item`` is what models of one group share beyond the item itself, so it (``sd_group_item``)
    is the knob of the same-group agreement effect; ``sd_group_item = 0`` gives none. Each answer is
    missing (unparsed) with ``unparsed_rate``, independently.
    """
    rng = np.random.default_rng(seed)
    models, labels = list(groups), list(dict.fromkeys(groups.values()))
    g = np.array([labels.index(groups[m]) for m in models])
    eta = (intercept + rng.normal(0, sd_model, len(models))[:, None] + rng.normal(0, sd_item, n_items)[None, :]
           + rng.normal(0, sd_group_item, (len(labels), n_items))[g]
           + rng.normal(0, sd_model_item, (len(models), n_items)))
    p_true = expit(eta)
    choice = (rng.random(p_true.shape) < p_true).astype(np.int8)
    answered = rng.random(p_true.shape) >= unparsed_rate
    width = len(str(n_items - 1))
    trials = pl.DataFrame({
        "model": np.repeat(models, n_items),
        "prompt_id": [f"item_{i:0{width}d}" for i in range(n_items)] * len(models),
        "chose_deep": pl.Series(np.where(answered, choice, -1).ravel()).replace(-1, None),
        "status": np.where(answered, "used", "unparsed").ravel(),
    }).with_columns(model_id="model", source_file=pl.lit("simulated"),
                    source_row=pl.int_range(1, len(models) * n_items + 1, dtype=pl.Int64))
    trials = schema.conform(trials.with_columns(pl.lit(None).alias(c) for c in schema.TRIAL_SCHEMA
                                                if c not in trials.columns))
    # Truth: logit of each pair's expected agreement on a same-group indicator and zero-sum model effects.
    pairs = [(i, j) for i in range(len(models)) for j in range(i + 1, len(models))]
    agree = np.array([np.mean(p_true[i] * p_true[j] + (1 - p_true[i]) * (1 - p_true[j])) for i, j in pairs])
    members = np.zeros((len(pairs), len(models)))
    for row, (i, j) in enumerate(pairs):
        members[row, [i, j]] = 1
    zero_sum = np.vstack([np.eye(len(models) - 1), -np.ones(len(models) - 1)])  # u = zero_sum @ free
    design = np.column_stack([np.ones(len(pairs)), [g[i] == g[j] for i, j in pairs], members @ zero_sum])
    a, b = np.linalg.lstsq(design, np.log(agree / (1 - agree)), rcond=None)[0][:2]
    population = population_agreement_effect(intercept=intercept, sd_model=sd_model, sd_item=sd_item,
                                             sd_group_item=sd_group_item, sd_model_item=sd_model_item)
    return SharedPropensity(trials, p_true, float(b), float(100 * (expit(a + b) - expit(a))), *population)


def population_agreement_effect(*, intercept: float, sd_model: float, sd_item: float, sd_group_item: float,
                                sd_model_item: float, nodes: int = 64) -> tuple[float, float]:
    """The same-group agreement effect of :func:`shared_propensity_trials`' population of pairs: (log-odds, points).

    With models drawn independently of their groups, the least-squares fit of logit(expected agreement) on a
    same-group indicator and additive model effects, taken over all pairs of the population, has
    ``a = E[logit A | cross-group]`` and ``b = E[logit A | same group] - a``, where ``A`` is a pair's expected
    agreement over the item population. Given the item's shared part ``Z`` (item effect, plus the group's item
    effect when both models are of one group), the two answers are independent, each with probability
    ``q(m, Z) = E expit(intercept + m + Z + W)`` over its own remaining effects ``W``, so
    ``A = E_Z[q_i q_j + (1 - q_i)(1 - q_j)]``; every expectation is Gauss-Hermite quadrature with ``nodes`` nodes.
    """
    x, w = hermegauss(nodes)
    w = w / w.sum()
    m = sd_model * x

    def mean_logit_agreement(sd_shared: float, sd_own: float) -> float:
        q = expit(intercept + m[:, None, None] + sd_shared * x[None, :, None] + sd_own * x[None, None, :]) @ w
        agree = (q * w) @ q.T + ((1 - q) * w) @ (1 - q).T
        return float(w @ np.log(agree / (1 - agree)) @ w)

    cross = mean_logit_agreement(sd_item, math.hypot(sd_group_item, sd_model_item))
    same = mean_logit_agreement(math.hypot(sd_item, sd_group_item), sd_model_item)
    return same - cross, float(100 * (expit(same) - expit(cross)))
