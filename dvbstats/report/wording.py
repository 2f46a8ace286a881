"""The benchmark's words for the report: rate names, reference line, direction, title, sections, from the
run's manifest.

A run folder records its benchmark under the manifest key ``benchmark``
(:func:`dvbstats.benchmarks.describe`); the report rebuilds the definition from it
(:func:`dvbstats.benchmarks.from_record`; run folders written before that key existed are DVB runs) and
reads only its fields: no section asks which benchmark it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dvbstats.benchmarks import from_record
from dvbstats.benchmarks.definition import best_phrase, worst_phrase


@dataclass(frozen=True)
class Wording:
    """What the report calls things. ``rate``: the short name in tables and sentences (DVB: DVGR).
    ``texts``: the benchmark's own phrases (``wording`` of its definition: notes, axis labels, captions)."""

    name: str
    title: str
    rate: str
    rate_long: str
    reference: float | None
    reference_label: str
    outcome_phrase: str
    rate_by_condition: Mapping[str, str] = field(default_factory=dict)
    reference_short: str = "chance"  # the reference line's name in plot legends
    direction: str | None = None  # "higher" or "lower": which way the rate is better; None: no order
    primary: str = ""  # the primary estimands, in words
    primary_condition: str | None = None  # the condition the per-model rate is taken under (HVSB: none)
    texts: Mapping[str, str] = field(default_factory=dict)
    sections: tuple[str, ...] = ()  # the report's sections, in order (names of report.sections.SECTIONS)
    estimands: tuple[tuple[str, str], ...] = ()  # the benchmark's own estimand list, when it words one

    @property
    def reference_line(self) -> tuple[float, str] | None:
        """The reference line of rate plots (value, legend name); None when the benchmark has none."""
        return (self.reference, self.reference_short) if self.reference is not None else None

    @property
    def reference_caption(self) -> str:
        """How a caption names the reference line (DVB: chance; HVSB: the random judge)."""
        return self.texts.get("reference_caption", self.reference_label)

    @property
    def below(self) -> str:
        """The column header of P(rate below the reference)."""
        return f"P({self.rate} < {self.reference:g})" if self.reference is not None else ""

    @property
    def quantity(self) -> str:
        """What the report calls the fit's per-model rate quantities (``dvgr[model]``): ``dvgr`` or ``rate``."""
        return self.texts.get("quantity", "rate")

    def rate_for(self, condition: str | None) -> str:
        """The rate's name under a level of ``condition`` (HVSB: MR or ASR; a benchmark that names none:
        ``rate (level)``); the rate itself for None."""
        if not condition:
            return self.rate
        return self.rate_by_condition.get(condition, f"{self.rate} ({condition})")

    def best(self, rate: str) -> str:
        """Rank 1 in words ("lowest misalignment rate (MR)", "highest rate")."""
        return best_phrase(self.direction, rate)

    def worst(self, rate: str) -> str:
        """The last rank in words."""
        return worst_phrase(self.direction, rate)


def wording(manifest: Mapping) -> Wording:
    """The report's words for the run's benchmark (DVB when the manifest names none)."""
    b = from_record(manifest.get("benchmark"))
    texts = dict(b.wording)
    return Wording(
        name=b.name,
        title=b.title,
        rate=b.rate_name,
        rate_long=b.rate_long,
        reference=b.reference,
        reference_label=b.reference_label,
        outcome_phrase=texts.get("outcome_phrase", f"{b.outcome} = 1"),
        rate_by_condition=dict(b.rate_by_condition),
        reference_short=texts.get("reference_short", "reference"),
        direction=b.direction,
        primary=b.primary,
        primary_condition=b.primary_condition,
        texts=texts,
        sections=b.report,
        estimands=b.estimands,
    )
