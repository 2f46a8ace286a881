"""The benchmark's words for the report: rate names, reference line, title, from the run's manifest.

A run folder records its benchmark under the manifest key ``benchmark``
(:func:`dvbstats.benchmarks.describe`); run folders written before that key existed are DVB runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dvbstats.benchmarks.definition import best_phrase


@dataclass(frozen=True)
class Wording:
    """What the report calls things. ``rate``: the short name in tables and sentences (DVB: DVGR)."""

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
    best: str = ""  # what rank 1 means ("highest DVGR", "lowest misalignment rate (MR)", "highest rate")
    primary: str = ""  # the primary estimands, in words
    primary_condition: str | None = None  # the condition the per-model rate is taken under (HVSB: none)

    @property
    def reference_line(self) -> tuple[float, str] | None:
        """The reference line of rate plots (value, legend name); None when the benchmark has none."""
        return (self.reference, self.reference_short) if self.reference is not None else None

    @property
    def is_dvb(self) -> bool:
        return self.name == "dvb"

    @property
    def below(self) -> str:
        """The column header of P(rate below the reference)."""
        return f"P({self.rate} < {self.reference:g})" if self.reference is not None else ""

    def rate_for(self, condition: str) -> str:
        """The rate's name under a level of ``condition`` (HVSB: MR or ASR)."""
        return self.rate_by_condition.get(condition, self.rate)


def wording(manifest: Mapping) -> Wording:
    """The report's words for the run's benchmark (DVB when the manifest names none)."""
    record = manifest.get("benchmark")
    if not record:
        from dvbstats.benchmarks import describe
        from dvbstats.benchmarks.dvb import DVB

        record = describe(DVB)
    name = record["name"]
    return Wording(
        name=name,
        title=record["title"],
        rate="DVGR" if name == "dvb" else record["rate_name"],
        rate_long=record["rate_long"],
        reference=record.get("reference"),
        reference_label=record.get("reference_label", ""),
        outcome_phrase=(record.get("wording") or {}).get("outcome_phrase", f"{record['outcome']} = 1"),
        rate_by_condition=dict(record.get("rate_by_condition") or {}),
        reference_short=(record.get("wording") or {}).get("reference_short", "chance" if name == "dvb" else "reference"),
        direction=record.get("direction"),
        best=record.get("best") or best_phrase(record.get("direction"), record["rate_name"]),
        primary=record.get("primary", ""),
        primary_condition=record.get("primary_condition"),
    )
