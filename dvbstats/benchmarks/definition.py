"""The :class:`Benchmark` record: what the rest of the pipeline needs to know about one benchmark."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from dvbstats.input.registry import ModelTable

#: Which way a rate is better: ``higher`` (DVB's DVGR), ``lower`` (HVSB's MR and ASR), or None (no
#: natural order: ranks then say "highest rate", not "best").
Direction = Literal["higher", "lower"]
DIRECTIONS: tuple[str, ...] = ("higher", "lower")


@dataclass(frozen=True)
class Tree:
    """A benchmark input told by its paths, a folder tree (HVSB: ``<dataset>_judgment/<model>/...``): ``holds(path)``
    says whether an input path is, lies in or holds such a tree; ``files(paths)`` lists the data files behind paths."""

    holds: Callable[[Path], bool]
    files: Callable[[Sequence[str | Path]], list[str]]


@dataclass(frozen=True)
class Example:
    """A benchmark's embedded SYNTHETIC example, written by :mod:`dvbstats.simulate` (above the definitions):
    ``write()`` writes it once (later calls find it) and returns what is read: its folder (HVSB), or its files
    (DVB, whose folder also holds the example's record, which is not input); ``recognises(paths)`` says whether an
    input is or lies in it (any path: a run mixing it with real input is still synthetic), ``models()`` is the
    model table naming its models."""

    write: Callable[[], Path | Sequence[Path]]
    recognises: Callable[[Sequence[str | Path]], bool]
    models: Callable[[], ModelTable]

    def paths(self) -> list[str]:
        """The example written (:attr:`write`), as the input paths to read."""
        written = self.write()
        return [str(p) for p in ([written] if isinstance(written, Path) else written)]


@dataclass(frozen=True, kw_only=True)
class Benchmark:
    """One benchmark: how its files are read and coded, its outcome and the words used for it.

    ``read(paths, **options)`` returns the benchmark's trial table (DVB: an ingest ``TrialTable``
    or a cell table; others: a :class:`~dvbstats.benchmarks.common.JudgmentTable`). ``outcome`` is
    the 0/1 column the likelihood models; ``rate_name`` what P(outcome = 1) is called, with
    ``rate_by_condition`` overriding it per level of a ``condition`` column (HVSB: MR without a
    system prompt, ASR under an attack prompt). ``reference`` is the line results are set against
    (None: no natural line) and ``reference_label`` says what it is. ``design`` lists the variables
    a formula may use; ``item`` names the column identifying a benchmark item shared across models.
    ``wording`` holds the phrases console and report use (keys: ``outcome_phrase``, ``headline``,
    ``below_reference``, ``reference_short``: the reference line's name in a plot legend).
    ``forms`` maps formulas to the parametrisation ``auto`` samples them in first, measured on the
    benchmark's design, on data about as deep (``model.plan.first_form``; thinner data and other
    formulas: the package's rule); a fit that fails its checks still takes the plan's fallbacks.
    ``size_codings`` names sets of big models the scaling tests compare with the rest (DVB: the
    paper's two codings of its nine models).

    ``direction``: which way the rate is better (ranks, P(best) and their words follow it; None: no
    order, ranks by the highest rate). ``primary``: the primary estimands in words.
    ``primary_condition``: when set and the fit has a ``condition``, the per-model rate (model table,
    ranks, headline, scaling) is the rate under that level alone (HVSB: the MR without a system
    prompt), never one pooled over conditions; the other levels' rates are reported per model x
    condition. ``report``: its report's sections, in order, by the names of the report's section registry
    (``dvbstats.report.sections.SECTIONS``); ``estimands``: (name, meaning) pairs the report's methods list, when
    the benchmark words them itself (else the report words the rate, its reference and direction).
    ``condition_pairs``: levels (a, b) of ``condition`` whose paired contrast a - b is reported per model when
    both are in the data (HVSB: targeted minus untargeted), beside each level against the reference.
    ``extra_tables``: the benchmark's own analyses of a fit with a ``condition``, each called as
    ``(benchmark, fit, trials, hdi_prob)`` on its judgments and returning run-folder tables by name, in order (HVSB:
    rates and contrasts by dataset and scenario type; its frequentist first look). ``agreement`` and each of
    ``extra_tables`` are functions, or the names under which the modules that implement them register them
    (:func:`register_analysis`): those modules sit above the definitions (they use fits and the results layer),
    so a shipped definition names them and imports none; :func:`analysis` gives the function.
    ``recognises(file)``: whether a data file (an :class:`~dvbstats.input.files.InputFile`) is the benchmark's
    input, for :func:`dvbstats.benchmarks.detect` (None: never told from a file alone; HVSB is told by its folder
    tree); ``input_files``: what its input files are, in words, for the error naming a file no benchmark
    recognises (DVB: ``a DVB harness dump or cell table``; empty: not named there). ``refusals``: the 0/1 column
    of its judgments marking a refusal among unparsed responses (HVSB: ``refused``), by which the counts per model
    x condition split those into refused and malformed (None: no such split).
    ``agreement(used, models, settings=, hdi_prob=)``: the benchmark's agreement analysis between
    models on the used trial rows (a ``polars.LazyFrame``), returning an object with ``tables()``,
    ``record()`` and ``notes``; None: the benchmark defines none. ``aliases``: extra names the run folder keeps for a neutral table (DVB: ``dvgr.csv``
    beside ``rates.csv``, with the old column names).
    ``judgments``: its reader returns a :class:`~dvbstats.benchmarks.common.JudgmentTable`, which
    :func:`dvbstats.benchmarks.inputs.read` reads (False: DVB, whose harness dumps and cell tables
    :func:`dvbstats.input.ingest.load` reads). ``one_table``: its input may be one table, so a DataFrame handed to
    ``dvbstats.load`` is read as the same table in a Parquet file (False: HVSB, a judgment tree).
    ``example``: what the embedded example the command line fits without an input is (empty: the benchmark
    has none, and the command line asks for an input); ``example_run``: its run folder's name; ``simulated``: the
    example read by :func:`dvbstats.benchmarks.inputs.read` or, for DVB, :func:`dvbstats.api.load` (an
    :class:`Example`, or the name under which the module that writes it registers one, :func:`register_example`;
    None: none there).

    How its input is told and read: ``models()``: the model table naming its models when the caller gives none
    (HVSB: its published models). ``tree``: its input is a folder tree told by its paths (a :class:`Tree`; HVSB),
    which :func:`dvbstats.benchmarks.detect` asks before any file's ``recognises``. ``logs``: evaluation logs and
    wide matrices (:mod:`dvbstats.benchmarks.sources`) are its input, read as its binary judgments. ``columns``:
    the caller names its table's ``model``, ``item`` and ``outcome`` columns, so that, asked for by name, any
    table is its input. ``configure(outcome=, rate_name=, reference=, reference_label=, direction=, design=)``:
    the definition for the caller's outcome, words, reference line, direction and design columns, for a benchmark
    they parametrise (binary judgments: :func:`~dvbstats.benchmarks.binary.binary_benchmark`); None: its own are
    fixed.
    """

    name: str
    title: str
    read: Callable[..., Any]
    outcome: str
    rate_name: str
    rate_long: str
    reference: float | None
    reference_label: str
    default_formula: str
    design: tuple[str, ...]
    item: str
    rate_by_condition: Mapping[str, str] = field(default_factory=dict)
    wording: Mapping[str, str] = field(default_factory=dict)
    forms: Mapping[str, str] = field(default_factory=dict)
    size_codings: Mapping[str, frozenset[str]] = field(default_factory=dict)
    direction: Direction | None = None
    primary: str = ""
    primary_condition: str | None = None
    agreement: Callable[..., Any] | str | None = None
    report: tuple[str, ...] = ()
    condition_pairs: tuple[tuple[str, str], ...] = ()
    extra_tables: tuple[Callable[..., Mapping[str, Any]] | str, ...] = ()
    estimands: tuple[tuple[str, str], ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    recognises: Callable[[Any], bool] | None = None
    input_files: str = ""
    refusals: str | None = None
    judgments: bool = True
    one_table: bool = True
    example: str = ""
    example_run: str = "default"
    simulated: Example | str | None = None
    models: Callable[[], ModelTable] = ModelTable.default
    tree: Tree | None = None
    logs: bool = False
    columns: bool = False
    configure: Callable[..., Benchmark] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_by_condition", MappingProxyType(dict(self.rate_by_condition)))
        object.__setattr__(self, "wording", MappingProxyType(dict(self.wording)))
        object.__setattr__(self, "forms", MappingProxyType(dict(self.forms)))
        object.__setattr__(self, "size_codings", MappingProxyType(dict(self.size_codings)))
        object.__setattr__(self, "aliases", MappingProxyType(dict(self.aliases)))
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: direction must be one of {DIRECTIONS} or None, got {self.direction!r}")
        if not self.default_formula.startswith(f"{self.outcome} ~"):
            raise ValueError(f"{self.name}: default formula must model {self.outcome!r}")

    def for_outcome(self, outcome: str) -> Benchmark:
        """This benchmark with another 0/1 column of its trial table as the outcome (HVSB ``refused``):
        the same reader, design and item, the rate named after the column, no reference line."""
        if outcome == self.outcome:
            return self
        return replace(
            self, outcome=outcome, rate_name=f"{outcome} rate", rate_long=f"{outcome} rate: P({outcome} = 1)",
            reference=None, reference_label="", rate_by_condition={}, forms={},
            default_formula=f"{outcome} ~{self.default_formula.partition('~')[2]}",
            wording={"outcome_phrase": f"{outcome} = 1", "headline": f"posterior {outcome} rate per model",
                     "below_reference": "", "reference_short": ""},
        )

    def rate_label(self, condition: str | None = None) -> str:
        """The rate's name, for a level of ``condition`` when the benchmark names it differently."""
        return self.rate_by_condition.get(condition, self.rate_name) if condition else self.rate_name

    @property
    def ranked_rate(self) -> str:
        """The name of the rate models are ranked by (HVSB: the MR, the rate under ``primary_condition``)."""
        return self.rate_label(self.primary_condition)

    @property
    def best(self) -> str:
        """What rank 1 means, in words: ``highest DVGR``, ``lowest misalignment rate (MR)``, ``highest rate``."""
        return best_phrase(self.direction, self.ranked_rate)


#: A benchmark's own analyses by the names its definition gives them (``Benchmark.agreement``,
#: ``Benchmark.extra_tables``), each registered by the module that implements it (:func:`register_analysis`).
ANALYSES: dict[str, Callable[..., Any]] = {}
#: Embedded examples by the names definitions give them (``Benchmark.simulated``), each registered by a module
#: above :mod:`dvbstats.simulate`, which writes them (:func:`register_example`).
EXAMPLES: dict[str, Example] = {}


def _register(registry: dict[str, Any], what: str, name: str, hook: Any) -> Any:
    """Add ``hook`` to ``registry`` as ``name``; a name taken by another hook is an error, the same one again a
    no-op."""
    known = registry.get(name)
    if known is not None and known is not hook:
        where = f" ({known.__module__})" if callable(known) else ""
        raise ValueError(f"{what} named {name!r} is already registered{where}")
    registry[name] = hook
    return hook


def _registered(registry: dict[str, Any], what: str, name: str) -> Any:
    """The hook registered as ``name``; an unknown name is an error listing the registered ones."""
    if name not in registry:
        raise LookupError(f"no {what} is registered as {name!r} (its module registers it when imported); "
                          f"registered: {', '.join(registry) or 'none'}")
    return registry[name]


def register_analysis(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the analysis ``name`` a definition may name; a name taken by another
    function is an error."""
    return lambda function: _register(ANALYSES, "an analysis", name, function)


def analysis(named: Callable[..., Any] | str) -> Callable[..., Any]:
    """The function of a definition's analysis: itself, or the one registered under its name."""
    return named if callable(named) else _registered(ANALYSES, "analysis", named)


def register_example(name: str, example: Example) -> Example:
    """Register ``example`` as the embedded example ``name`` a definition may name (``Benchmark.simulated``); a
    name taken by another example is an error."""
    return _register(EXAMPLES, "an example", name, example)


def simulated(b: Benchmark) -> Example | None:
    """The embedded example of ``b`` (:attr:`Benchmark.simulated`): its own, the one registered under the name it
    gives, or None."""
    return _registered(EXAMPLES, "example", b.simulated) if isinstance(b.simulated, str) else b.simulated


def best_phrase(direction: str | None, rate: str) -> str:
    """Rank 1 in words for a rate and its direction (None: ``highest <rate>``, with no claim that it is better)."""
    return f"{'lowest' if direction == 'lower' else 'highest'} {rate}"


def worst_phrase(direction: str | None, rate: str) -> str:
    """The last rank in words (the opposite of :func:`best_phrase`)."""
    return f"{'highest' if direction == 'lower' else 'lowest'} {rate}"
