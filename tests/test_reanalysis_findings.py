"""The reanalysis report opens with its findings (issue 24): what the data are, which claims hold and why."""

from __future__ import annotations

from dvbstats.paper2025 import claims as pb
from dvbstats.paper2025 import reanalysis, value_audit
from dvbstats.report import methods

ITEMS = [
    pb.Claim("Mean DVGR 0.30", "0.3024", "0.301 [0.299, 0.304]", pb.AGREES,
             ("The paper's 0.3024 is the pooled raw rate, 0.3024 reproduced. The posterior averages cells.",)),
    pb.Claim("All models below chance", "9 of 9", "9 of 9", pb.AGREES_CAUTIOUS, ("Nine of nine.",),
             caution="Not value by value."),
    pb.Claim("Larger models slightly lower", "5 of 5 pairs p < 0.05", "slope HDI spans 0", pb.NOT_ESTABLISHED,
             ("Pairs disagree in sign. The pooled slope spans 0.",), caution="Models are the units: the slope spans 0."),
]
AUDIT = value_audit.AuditVerdict("reproduced", (value_audit.DimensionVerdict("popularity", "lowers", "not established", True),))


def test_findings_say_what_the_data_are_and_which_claims_hold_and_why():
    text = reanalysis.findings_section(ITEMS, AUDIT, "chose_deep ~ 1 + (1|model)")
    assert text.startswith("# What the reanalysis finds {#sec-findings}")
    data = text.index("counts reconstructed from its published aggregates")
    assert "@sec-reconstruction" in text
    hold, not_hold = text.index("claims that hold:"), text.index("claims that do not hold or are not established:")
    assert data < hold < text.index("Mean DVGR 0.30") < text.index("All models below chance") < not_hold
    assert not_hold < text.index("Larger models slightly lower")
    assert "0.3024 reproduced." in text and "The posterior averages cells" not in text  # the first sentence only
    assert "Not value by value." in text and "Models are the units: the slope spans 0." in text  # the caution is why
    assert "popularity (lowers in the paper): not established" in text and "@sec-published-vs-reanalysis" in text
    assert "hold in part" not in text  # no empty group


def test_findings_lead_the_sections_the_reanalysis_writes():
    assert min(reanalysis.SECTIONS.values()) == reanalysis.SECTIONS["findings"]
    assert reanalysis.SECTIONS["findings"].startswith(methods.LEAD)  # the report opens with it


def _depth(text: str) -> int:
    """How deep parentheses nest in ``text``."""
    depth = deepest = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    return deepest


def test_findings_carry_the_borderline_notes_the_tables_carry():
    """A verdict within 2 MCSE of flipping is labelled borderline in the opening summary too, not only in the tables,
    with the note's numbers; the note's own parentheses follow the verdict rather than sit inside the summary's, so
    no line nests parentheses more than two deep (the published run's note once closed on ``(threshold 0)))``)."""
    note = "borderline: within 2 MCSE of another verdict (HDI upper bound -0.001633, MCSE 0.0026 (threshold 0))"
    near = pb.Claim("Mean DVGR 0.30", "0.3024 (pooled trials)", "0.301 [0.299, 0.304]", pb.AGREES,
                    ("Reproduced.",), borderline=note)
    audit = value_audit.AuditVerdict("reproduced", (value_audit.DimensionVerdict(
        "predictiveness", "n.s.", "credible here, n.s. in the paper", False, borderline=note),))
    text = reanalysis.findings_section([near], audit, "chose_deep ~ 1 + (1|model)")
    assert "- **Mean DVGR 0.30** (agrees, borderline; paper: 0.3024 (pooled trials); " in text
    assert f"Reproduced. The verdict is {note}." in text
    assert f"predictiveness (n.s. in the paper): credible here, n.s. in the paper — {note} (@sec-value-audit)" in text
    assert max(map(_depth, text.splitlines())) == 2
