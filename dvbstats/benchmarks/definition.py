"""The :class:`Benchmark` record: what the rest of the pipeline needs to know about one benchmark."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any


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
    benchmark's design, on data about as deep (``results.fitted.first_form``; thinner data and other
    formulas: the package's rule); a fit that fails its checks is still refitted in another form.
    ``size_codings`` names sets of big models the scaling tests compare with the rest (DVB: the
    paper's two codings of its nine models).
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_by_condition", MappingProxyType(dict(self.rate_by_condition)))
        object.__setattr__(self, "wording", MappingProxyType(dict(self.wording)))
        object.__setattr__(self, "forms", MappingProxyType(dict(self.forms)))
        object.__setattr__(self, "size_codings", MappingProxyType(dict(self.size_codings)))
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
