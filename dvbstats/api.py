"""The Python API: data in, a formula, a fit, its estimands — the CLI's engine.

    import dvbstats as dvb
    data = dvb.load()                               # the SYNTHETIC example; or paths, a DataFrame, a cell table
    fit = dvb.Model("chose_deep ~ 1 + (1|model) + (1|value)", data).fit(seed=1)
    fit.summary(); fit.rates("model"); fit.contrast("gpt-4o", "gpt-4o-mini")
    fit.idata; fit.plot_forest(); fit.save("runs/x", analyses=dvb.Analysis().run(fit))
    dvb.report("runs/x"); dvb.Fit.load("runs/x")
    dvb.compare({"a": fit_a, "b": fit_b})

``python -m dvbstats.fit`` calls exactly these, so a run folder is the same whichever wrote it.
"""

from __future__ import annotations

import numbers
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import polars as pl

from dvbstats.benchmarks import BENCHMARKS, JudgmentTable, inputs, sources
from dvbstats.constants import CHAINS, DRAWS, HDI_PROB, SEED, TUNE
from dvbstats.data import Data
from dvbstats.input import cells as cellmod
from dvbstats.input import schema
from dvbstats.input.ingest import load as ingest
from dvbstats.input.files import IngestError
from dvbstats.input.trials import TrialFile, TrialTable
from dvbstats.input.ingest import sources as ingest_sources
from dvbstats.input.registry import ModelTable
from dvbstats.model.design import design
from dvbstats.model.formula import Formula, parse
from dvbstats.model.plan import PARAMETRIZATIONS
from dvbstats.model.priors import Priors
from dvbstats.model.sample import SamplerSettings
from dvbstats.report import render
from dvbstats.results import tables as summaries
from dvbstats.results.fitted import Fit, fit


def load(
    source: str | Path | Sequence[str | Path] | pl.DataFrame | pd.DataFrame | None = None,
    *,
    models: str | Path | ModelTable | None = None,
    values: Sequence[str] = (),
    on_conflict: str = "error",
    benchmark: str | None = None,
    columns: Mapping[str, str] | None = None,
    stream: bool = False,
    format: str | None = None,  # noqa: A002 (--source on the command line)
    scorer: str | None = None,
    metric: str | None = None,
    filter: str | None = None,  # noqa: A002 (the lm-evaluation-harness word)
    partial: str | None = None,
    wide: str | None = None,
    label_pattern: str | None = None,
) -> Data:
    """Read harness dumps or aggregated cell tables (files, folders, globs) or take a DataFrame.

    ``None`` loads the embedded SYNTHETIC example. ``models``: a model-table CSV (default: the
    published models; unknown ids get a short name derived from the id). ``values``: extra value
    names beyond the DVB vocabulary. ``on_conflict``: what to do when parsed copies of a prompt
    disagree (``error``, ``first``, ``last``, ``exclude``). ``benchmark``: ``dvb``, ``hvsb`` or
    ``binary`` (default: detected from the files; ``None`` with ``hvsb`` loads the embedded SYNTHETIC
    HVSB example); ``columns``: a binary-judgment table's ``model_column``, ``item_column``, ``outcome``.
    ``stream``: DVB dumps are ingested by a streaming plan into a temporary Parquet file read lazily
    (:class:`~dvbstats.input.ingest.TrialFile`) instead of into memory — for dumps of millions of rows; the
    CLI always streams.

    Evaluation logs are detected (Inspect ``.eval``/``.json``, lm-evaluation-harness samples, HELM
    run folders, Every Eval Ever instances) or named by ``format`` (one of
    ``dvbstats.benchmarks.sources.FORMATS``; ``--source`` on the command line); they and wide matrices are
    binary judgments (:mod:`dvbstats.benchmarks.sources`, ``docs/sources.md``). ``scorer``: the
    Inspect scorer; ``metric``: the lm-eval metric or HELM stat; ``filter``: the lm-eval filter;
    ``partial``: partial credit counted as ``exclude``, ``0`` or ``1`` (default: not counted);
    ``wide``: ``model`` or ``item``, what the rows of a wide matrix are; ``label_pattern``: named
    groups splitting its model labels (``(?P<model>.+)_(?P<condition>zero_shot|one_shot)``).
    """
    _check_source(source)
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)} or None (detected), not {benchmark!r}")
    _check_columns(columns)
    reading = sources.Options(format, scorer, metric, filter, partial, wide, label_pattern)
    if BENCHMARKS[benchmark].judgments if benchmark is not None else inputs.judged(source, reading):
        return _judgments(source, benchmark, models, on_conflict, columns, reading)
    if reading.source or reading.given():
        raise ValueError(f"{', '.join(['format'] if reading.source else reading.given())}: options of evaluation "
                         "logs and wide matrices, which this input is not")
    table = models if isinstance(models, ModelTable) else ModelTable.read(models) if models else ModelTable.default()
    vocab = tuple(schema.DVB_VALUES) + tuple(v for v in values if v not in schema.DVB_VALUES)
    if isinstance(source, pd.DataFrame):
        source = pl.from_pandas(source)
    if isinstance(source, pl.DataFrame):
        return _from_frame(source, table, vocab, on_conflict)
    synthetic = source is None
    paths = inputs.embedded(benchmark, judgments=False).paths() if synthetic else source
    if not synthetic:
        example = inputs.example_of(benchmark, judgments=False)
        synthetic = example is not None and example.recognises([paths] if isinstance(paths, (str, Path)) else paths)
    try:
        read = ingest(paths, values=vocab, models=table, on_conflict=on_conflict, stream=stream)
    except IngestError:  # not DVB: binary judgments (model, item, outcome), or another benchmark's files
        found = inputs.judged_as(paths) if benchmark is None else None
        if found is not None:
            return _judgments(source, found, models, on_conflict, columns)
        raise
    if isinstance(read, (TrialTable, TrialFile)):
        return Data(read, None, table.resolve(read.model_ids()),
                    [asdict(s) | {"kind": "trials"} for s in read.sources], synthetic)
    return Data(None, read, table.resolve(read["model_id"].unique().to_list()),
                [asdict(s) | {"kind": "cells"} for s in ingest_sources(paths)], synthetic)


#: ``load(columns=...)``: the keys a binary-judgment table's column names are given under.
COLUMN_KEYS: tuple[str, ...] = ("model_column", "item_column", "outcome")
#: ``load(columns=...)``: a binary table's reference rate and direction, given beside its column names.
BINARY_KEYS: tuple[str, ...] = ("reference", "direction")


def _check_source(source) -> None:
    """``load``'s source is None, a path, a sequence of paths or a DataFrame: say so otherwise."""
    frames = (pl.DataFrame, pd.DataFrame)
    if isinstance(source, str) and not source.strip():
        raise ValueError("source is an empty path; give a file, folder or glob (or None for the embedded example)")
    if source is None or isinstance(source, (str, Path, *frames)):
        return
    if isinstance(source, Mapping) or not isinstance(source, Sequence):
        raise TypeError(f"source must be a path, a list of paths, a polars or pandas DataFrame, or None (the "
                        f"embedded example), not {type(source).__name__}")
    if not source:
        raise ValueError("source is an empty list: give at least one path (or None for the embedded example)")
    bad = next((p for p in source if not isinstance(p, (str, Path))), None)
    if bad is not None:
        raise TypeError(f"source must list paths (str or pathlib.Path), not {type(bad).__name__} ({bad!r:.80})")


def _check_columns(columns) -> None:
    """``load``'s ``columns``: a mapping of :data:`COLUMN_KEYS` to column names."""
    if columns is None:
        return
    if not isinstance(columns, Mapping):
        raise TypeError(f"columns must be a mapping of {', '.join(COLUMN_KEYS)} to column names, "
                        f"not {type(columns).__name__}")
    for key, name in columns.items():
        if key in BINARY_KEYS:  # a binary table's reference rate and direction (checked by binary_benchmark)
            continue
        if key not in COLUMN_KEYS:
            raise ValueError(f"columns: unknown key {key!r}; the keys are {', '.join(COLUMN_KEYS + BINARY_KEYS)}")
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"columns[{key!r}] must be a column name (non-empty text), not {name!r}")


def _judgments(source, benchmark: str | None, models, on_conflict: str, columns: Mapping[str, str] | None,
               reading: sources.Options = sources.Options()) -> Data:
    """HVSB or binary judgments (:func:`dvbstats.benchmarks.inputs.read`) as :class:`Data`; a DataFrame
    is read as the same table in a Parquet file would be (binary judgments only)."""
    if isinstance(source, pd.DataFrame):
        source = pl.from_pandas(source)
    if isinstance(source, pl.DataFrame):
        if not BENCHMARKS[benchmark].one_table:
            tables = ", ".join(name for name, b in BENCHMARKS.items() if b.one_table)
            raise ValueError(f"a DataFrame is read as the input of a benchmark whose input is one table ({tables}), "
                             f"not as {benchmark!r}, whose input is a folder of files: give the folder")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "dataframe.parquet"
            source.write_parquet(path)
            data = _judgments(str(path), benchmark, models, on_conflict, columns, reading)
        return _from_dataframe(data)
    b, judged, present, read, synthetic = inputs.read(
        source, benchmark=benchmark, models=models, on_conflict=on_conflict, reading=reading, **(columns or {}))
    return Data(judged, None, present, read, synthetic, b)


def _from_frame(frame: pl.DataFrame, table: ModelTable, vocab, on_conflict) -> Data:
    """A DataFrame is read exactly as the same table in a Parquet file would be (same checks)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataframe.parquet"
        frame.write_parquet(path)
        data = load(path, models=table, values=vocab, on_conflict=on_conflict)
    return _from_dataframe(data)


def _from_dataframe(data: Data) -> Data:
    """``data`` read from a DataFrame's temporary Parquet file, its provenance saying ``<DataFrame>``."""
    inputs = [i | {"path": "<DataFrame>"} for i in data.inputs]
    if data.trials is None:
        return replace(data, inputs=inputs)
    sources = tuple(replace(s, path="<DataFrame>") for s in data.trials.sources)
    trials = replace(data.trials, sources=sources)
    if isinstance(trials, JudgmentTable):
        trials = replace(trials, data=trials.data.with_columns(source_file=pl.lit("<DataFrame>")))
    return replace(data, trials=trials, inputs=inputs)


#: Trial-table columns that are bookkeeping, never an outcome.
_NOT_OUTCOMES = frozenset({"source_row"})


def outcomes(data: Data) -> list[str]:
    """The 0/1 columns a formula's left-hand side may name: the benchmark's outcome first, then any
    other column of a judgment table holding only 0, 1 and empty (HVSB: ``refused``)."""
    found = [data.benchmark.outcome]
    if isinstance(data.trials, JudgmentTable):
        table = data.trials.data
        found += [c for c, t in table.schema.items()
                  if c != data.benchmark.outcome and c not in _NOT_OUTCOMES and (t.is_integer() or t == pl.Boolean)
                  and table[c].drop_nulls().cast(pl.Int64).is_in([0, 1]).all()]
    return found


def for_response(data: Data, formula: Formula) -> Data:
    """``data`` with the formula's left-hand side as the outcome, or a :class:`ValueError` listing the
    outcomes it may name (before any sampling).

    Another 0/1 column of a judgment table (HVSB ``refused``) becomes the outcome: a trial is in the
    likelihood when it is a final copy (used or unparsed) whose column is not empty.
    """
    response, b = formula.response, data.benchmark
    if response == b.outcome:
        return data
    possible = outcomes(data)
    if response not in possible:
        raise ValueError(
            f"formula {formula.text!r} models {response!r}, but the {b.name} data have no 0/1 column of that name; "
            f"the outcomes a formula may model here: {', '.join(possible)} (write '{b.outcome} ~ ...' for the "
            f"{b.rate_name})")
    final = pl.col("status").is_in(["used", "unparsed"])
    status = (pl.when(final & pl.col(response).is_not_null()).then(pl.lit("used"))
              .when(final).then(pl.lit("unparsed")).otherwise(pl.col("status").cast(pl.String)).cast(schema.Status))
    table = data.trials.data.with_columns(status.alias("status"))
    return replace(data, trials=replace(data.trials, data=table), benchmark=b.for_outcome(response))


def empty_models(cells: cellmod.CellTable) -> list[str]:
    """Models in the data without one usable trial (every row failed, was unparsed or conflicted)."""
    return cells.by_model().filter(pl.col("n_trials") == 0)["model"].to_list()


def check_levels(formula: Formula, cells: cellmod.CellTable) -> None:
    """Name, before sampling, models without a used trial at some level of a categorical fixed effect (a
    condition). Their rate there is a prediction from the hierarchy (the population's effect of the condition
    and, with ``(1 + condition|model)``, the spread of per-model effects), labelled as such in every table and
    never shown as data: a warning. Refused only where nothing predicts it: a fixed interaction of ``model``
    with the condition."""
    for term in formula.fixed:
        name = term[0].name if len(term) == 1 else None
        if name in (None, "model") or name not in cells.by or (cells.data[name].dtype.is_numeric() and not term[0].factor):
            continue
        missing = cellmod.missing_levels(cells, name)
        if not missing:
            continue
        listed = "; ".join(f"{m} (no trial at {', '.join(levels)})" for m, levels in list(missing.items())[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        if any({"model", name} <= {v.name for v in t} for t in formula.fixed):
            raise ValueError(f"{len(missing)} model(s) lack a level of {name}: {listed}{more}. The formula's fixed "
                             f"model x {name} interaction cannot estimate them there: leave them out of the input, "
                             f"or fit per-model effects of {name} as a random slope, (1 + {name}|model)")
        slopes = any(r.factors == ("model",) and name in {v.name for t in r.slopes for v in t} for r in formula.random)
        source = (f"the population's effect of {name} and the spread of per-model slopes" if slopes
                  else f"the population's effect of {name} (the same for every model)")
        warnings.warn(f"{len(missing)} model(s) lack a level of {name}: {listed}{more}. Their rates at those levels "
                      f"are predictions from {source}, labelled 'predicted' in the tables, never data "
                      "(raw rates and counts cover their observed levels only)", UserWarning, stacklevel=3)


class Model:
    """A hierarchical logistic model of the benchmark outcome, written as an lme4/brms formula.

    The design is laid out when the model is made, so a formula the data cannot support (a variable
    it lacks, a single-level factor, ...) fails here, before any sampling. Models without one usable
    trial are left out with a warning (they would get the prior as their rate) unless
    ``keep_empty_models``.
    """

    def __init__(
        self,
        formula: str | Formula | None = None,
        data: Data | str | Path | Sequence[str | Path] | pl.DataFrame | pd.DataFrame | None = None,
        *,
        priors: Priors | Mapping[str, str] | Sequence[str] = (),
        parametrization: str = "auto",
        keep_empty_models: bool = False,
    ):
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, not {parametrization!r}")
        if formula is not None and not isinstance(formula, (str, Formula)):
            raise TypeError(f"formula must be a formula text such as 'y ~ 1 + (1|model)' (or None for the "
                            f"benchmark's default), not {type(formula).__name__} ({formula!r:.80})")
        if data is not None and not isinstance(data, Data):
            _check_source(data)
        self.data = data if isinstance(data, Data) else load(data)
        formula = formula or self.data.benchmark.default_formula  # DVB: DEFAULT_FORMULA
        self.formula = parse(formula) if isinstance(formula, str) else formula
        self.data = for_response(self.data, self.formula)
        if isinstance(priors, Mapping):
            priors = [f"{name}={dist}" for name, dist in priors.items()]
        elif isinstance(priors, str):  # one specification, not its characters
            priors = [priors]
        if not isinstance(priors, Priors) and (not isinstance(priors, Sequence)
                                               or not all(isinstance(p, str) for p in priors)):
            raise TypeError("priors must be 'NAME=DIST(args)' texts (a list, or a mapping of names to distributions) "
                            f"or a Priors, not {type(priors).__name__} ({priors!r:.80})")
        self.priors = priors if isinstance(priors, Priors) else Priors.from_specs(priors)
        self.parametrization = parametrization
        same = replace(self.formula, text="")  # the formula, whatever its spelling
        self.measured_form = next((form for text, form in self.data.benchmark.forms.items()  # the benchmark's
                                   if replace(parse(text), text="") == same), None)  # first form for auto, if any
        cells = self.data.cells(self.formula)
        self.empty_models = empty_models(cells)
        if len(self.empty_models) == cells.by_model().height:
            raise ValueError("no usable trials: every row of every model failed or could not be parsed "
                             "(see the status column of the inputs)")
        if self.empty_models and not keep_empty_models:
            warnings.warn(f"left out of the fit: {', '.join(self.empty_models)} (no usable trial); "
                          "keep_empty_models=True fits them on the prior", UserWarning, stacklevel=2)
            cells = cellmod.CellTable(cells.data.filter(~pl.col("model").is_in(self.empty_models)), cells.by)
        self.keep_empty_models = keep_empty_models
        check_levels(self.formula, cells)
        self.design = design(self.formula, cells)
        self.priors.check(self.design.prior_names)

    @property
    def cells(self) -> cellmod.CellTable:
        return self.design.cells

    @property
    def models(self) -> ModelTable:
        """The model-table rows of the models in the fit."""
        fitted = self.cells.by_model()["model"].to_list()
        return ModelTable(self.data.models.data.filter(pl.col("short_name").is_in(fitted)))

    def fit(
        self,
        *,
        draws: int = DRAWS,
        tune: int = TUNE,
        chains: int = CHAINS,
        seed: int = SEED,
        sampler: str = "nutpie",
        target_accept: float | None = None,
        progress: bool = True,
    ) -> Fit:
        """Sample the posterior (nutpie by default); the :class:`~dvbstats.results.fitted.Fit` carries the data."""
        check_sampling(draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept, sampler=sampler)
        settings = SamplerSettings(sampler=sampler, draws=draws, tune=tune, chains=chains, seed=seed,
                                   target_accept=target_accept)
        result = fit(self.formula, self.cells, priors=self.priors, settings=settings,
                     parametrization=self.parametrization, progress=progress, measured_form=self.measured_form)
        return result.with_input(self.data, self.empty_models, self.models)

    def prior_predictive(self, *, draws: int = 500, seed: int = SEED, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Rates per model and per value that the priors alone expect, beside the observed ones."""
        return summaries.prior_predictive_table(self.design, self.priors, self.parametrization, hdi_prob, seed,
                                                draws=draws).to_pandas()

    def __repr__(self) -> str:
        return (f"Model({str(self.formula)!r}: {self.cells.data.height:,} cells, {self.cells.n_trials:,} trials, "
                f"{self.cells.by_model().height} models)")


#: Samplers ``Model.fit`` knows.
SAMPLERS: tuple[str, ...] = ("nutpie", "pymc")


def check_sampling(*, draws, tune, chains, seed, target_accept, sampler) -> None:
    """Refuse sampler arguments no sampler can take, naming the argument and what is allowed."""
    for name, value, least in (("draws", draws, 1), ("tune", tune, 1), ("chains", chains, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be a whole number, not {value!r}")
        if not least <= value < 2**32:
            raise ValueError(f"{name} must be a whole number from {least} to {2**32 - 1:,}, not {value}")
    if target_accept is not None:
        if isinstance(target_accept, bool) or not isinstance(target_accept, numbers.Real):
            raise TypeError(f"target_accept must be a number between 0 and 1 (or None), not {target_accept!r}")
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must be between 0 and 1 (exclusive), not {target_accept}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")


def report(run_dir: str | Path, out_root: str | Path = Path("reports")) -> Path:
    """Render the report of a run folder to ``<out_root>/<run name>/report.html``; return its path."""
    return render(Path(run_dir), Path(out_root))
