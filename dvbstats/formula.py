"""R-style model formulas: ``chose_deep ~ 1 + log_n_train + (1|model) + (1|model:value)``.

The grammar is the lme4/brms subset a DVB analysis needs:

* ``1`` / ``0`` / ``-1`` — keep or drop the intercept (kept by default, as in R);
* ``x`` — a numeric fixed effect (a column of the cell table);
* ``(1|g)`` — a random intercept for each level of factor ``g``;
* ``(1|g1:g2)`` — a random intercept for each combination of ``g1`` and ``g2``.

Parsing knows nothing about PyMC; :mod:`dvbstats.model` turns the terms into a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The package's default model (see ``docs/model.md`` for why ``feature`` is the preferred pole).
DEFAULT_FORMULA = "chose_deep ~ 1 + log_n_train + (1|model) + (1|value) + (1|feature) + (1|context)"

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_TOKEN = re.compile(rf"\s*(?:(?P<name>{_NAME})|(?P<num>\d+)|(?P<op>[~+\-()|:]))")


class FormulaError(ValueError):
    """A formula that does not parse, with the position of the problem."""


@dataclass(frozen=True)
class RandomIntercept:
    """``(1|g1:g2:...)``: one intercept per observed combination of the factors."""

    factors: tuple[str, ...]

    @property
    def label(self) -> str:
        return ":".join(self.factors)

    @property
    def var_name(self) -> str:
        """The name used for its parameters (netCDF-safe)."""
        return "__".join(self.factors)


@dataclass(frozen=True)
class Formula:
    response: str
    intercept: bool
    fixed: tuple[str, ...]
    random: tuple[RandomIntercept, ...]
    text: str

    @property
    def variables(self) -> tuple[str, ...]:
        """Design columns the formula reads, in order of appearance, without repeats."""
        seen: dict[str, None] = {}
        for name in (*self.fixed, *(f for r in self.random for f in r.factors)):
            seen.setdefault(name)
        return tuple(seen)

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Formula:
    """Parse an R-style formula; raise :class:`FormulaError` saying where it goes wrong."""
    tokens = _tokenize(text)
    pos = 0

    def peek() -> tuple[str, str, int]:
        return tokens[pos] if pos < len(tokens) else ("end", "", len(text))

    def expect(kind: str, value: str | None = None) -> str:
        nonlocal pos
        k, v, at = peek()
        if k != kind or (value is not None and v != value):
            want = repr(value) if value is not None else f"a {kind}"
            got = repr(v) if k != "end" else "the end of the formula"
            raise FormulaError(f"formula {text!r}: expected {want} at position {at}, found {got}")
        pos += 1
        return v

    response = expect("name")
    expect("op", "~")
    intercept, fixed, random = True, [], []
    sign = "+"
    while True:
        kind, value, at = peek()
        if (kind, value) == ("op", "("):
            pos += 1
            if peek()[:2] != ("num", "1"):
                raise FormulaError(
                    f"formula {text!r}: only random intercepts (1|g) are supported, "
                    f"at position {peek()[2]}"
                )
            pos += 1
            expect("op", "|")
            factors = [expect("name")]
            while peek()[:2] == ("op", ":"):
                pos += 1
                factors.append(expect("name"))
            expect("op", ")")
            if sign == "-":
                raise FormulaError(f"formula {text!r}: cannot subtract a random term")
            term = RandomIntercept(tuple(factors))
            if term in random:
                raise FormulaError(f"formula {text!r}: (1|{term.label}) appears twice")
            random.append(term)
        elif kind == "num" and value in ("0", "1"):
            pos += 1
            intercept = value == "1" and sign == "+"
        elif kind == "name":
            pos += 1
            if peek()[:2] == ("op", ":"):
                raise FormulaError(
                    f"formula {text!r}: fixed interactions are not supported; "
                    f"use a random intercept such as (1|{value}:...)"
                )
            if sign == "-":
                raise FormulaError(f"formula {text!r}: cannot subtract the term {value!r}")
            if value == response:
                raise FormulaError(f"formula {text!r}: the response {value!r} is also a predictor")
            if value not in fixed:
                fixed.append(value)
        else:
            got = repr(value) if kind != "end" else "the end of the formula"
            raise FormulaError(f"formula {text!r}: expected a term at position {at}, found {got}")
        kind, value, at = peek()
        if kind == "end":
            break
        sign = expect("op")
        if sign not in "+-":
            raise FormulaError(f"formula {text!r}: expected '+' or '-' at position {at}, found {sign!r}")
    return Formula(response, intercept, tuple(fixed), tuple(random), " ".join(text.split()))


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"formula {text!r}: cannot read {text[pos:].strip()[:10]!r} at position {pos}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens
