"""R-style model formulas: the lme4/brms grammar of a binomial GLMM.

``chose_deep ~ 1 + condition * log_n_train + (1 + log_n_train | model) + (1|value) + (1|family/model)``

* ``1`` / ``0`` / ``- 1`` — keep or drop the intercept (kept by default, as in R);
* ``x`` — a column: numeric columns enter as they are, strings and booleans as factors;
* ``log(x)``, ``log2(x)``, ``scale(x)`` (trial-weighted) — transformed numeric columns;
* ``C(x)``, ``C(x, ref="level")``, ``C(x, sum)`` — a factor with treatment coding against a chosen
  reference level (the first by default) or sum coding;
* ``a:b`` — an interaction; ``a*b`` = ``a + b + a:b``;
* ``(1|g)``, ``(1|g1:g2)``, ``(1|g1/g2)`` = ``(1|g1) + (1|g1:g2)`` — random intercepts;
* ``(1 + x|g)`` — correlated random intercepts and slopes; ``(0 + x|g)`` slopes only;
  ``(1 + x||g)`` uncorrelated.

Parsing knows nothing about data or PyMC: :mod:`dvbstats.model.design` decides, from the columns' types,
how each term is coded, and turns the terms into a model. The table in ``docs/model.md`` lists every
construct with its lme4 equivalent and what is refused.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

#: The package's default model (see ``docs/model.md`` for why ``feature`` is the preferred pole).
DEFAULT_FORMULA = "chose_deep ~ 1 + log_n_train + (1|model) + (1|value) + (1|feature) + (1|context)"

TRANSFORMS: tuple[str, ...] = ("log", "log2", "scale")
CODINGS: tuple[str, ...] = ("treatment", "sum")
#: At most this many fixed terms (or slopes of one random term): ``a*b*...`` with k factors expands
#: to 2^k - 1 terms, so 13 factors already give 8,191 and 30 would never finish; refused with the count.
MAX_TERMS = 4096

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_TOKEN = re.compile(
    rf"\s*(?:(?P<name>{_NAME})|(?P<num>\d+(?:\.\d+)?)|(?P<str>\"[^\"]*\"|'[^']*')|(?P<op>\|\||[~+\-()|:*/,=]))"
)


class FormulaError(ValueError):
    """A formula that does not parse or is not a valid model, saying where and why."""


@dataclass(frozen=True)
class Variable:
    """A column of the data, possibly transformed (``log(x)``) or declared a factor (``C(x, ...)``)."""

    name: str
    transform: str | None = None  # one of TRANSFORMS
    factor: bool = False  # C(x): a factor whatever the column's type
    coding: str = "treatment"  # one of CODINGS
    ref: str | None = None  # the reference level of treatment coding (first level when None)

    @property
    def label(self) -> str:
        if self.transform:
            return f"{self.transform}({self.name})"
        if not self.factor:
            return self.name
        args = [self.name] + (["sum"] if self.coding == "sum" else []) + ([f'ref="{self.ref}"'] if self.ref else [])
        return f"C({', '.join(args)})"


#: A fixed term: one variable, or the interaction of several (``a:b``).
FixedTerm = tuple[Variable, ...]


def term_label(term: FixedTerm) -> str:
    return ":".join(v.label for v in term)


def safe_name(label: str) -> str:
    """A label as a parameter name that netCDF and ``--prior`` accept: ``condition[B]:x`` -> ``condition_B__x``."""
    return "__".join(re.sub(r"[^A-Za-z0-9_]+", "_", part).strip("_") for part in label.split(":"))


@dataclass(frozen=True)
class RandomTerm:
    """``(1 + x|g1:g2)``: per observed combination of the grouping factors, an intercept and/or slopes."""

    factors: tuple[str, ...]
    intercept: bool = True
    slopes: tuple[FixedTerm, ...] = ()
    correlated: bool = True  # False for ``||``

    @property
    def intercept_only(self) -> bool:
        return self.intercept and not self.slopes

    @property
    def group_label(self) -> str:
        return ":".join(self.factors)

    @property
    def label(self) -> str:
        """``model:value`` for a random intercept (as the ``sd`` table names it), else the term as written."""
        if self.intercept_only:
            return self.group_label
        parts = ["1" if self.intercept else "0"] + [term_label(s) for s in self.slopes]
        return f"{' + '.join(parts)} {'|' if self.correlated else '||'} {self.group_label}"

    @property
    def group_var(self) -> str:
        return "__".join(self.factors)

    @property
    def var_name(self) -> str:
        """The name used for its parameters (netCDF-safe): ``model__value``, ``model__log_n_train``."""
        if self.intercept_only:
            return self.group_var
        return "__".join([self.group_var, *(safe_name(term_label(s)) for s in self.slopes)])


#: The name earlier versions gave the intercept-only term; kept so that ``RandomIntercept(("g",))`` still reads.
RandomIntercept = RandomTerm


@dataclass(frozen=True)
class Formula:
    response: str
    intercept: bool
    fixed: tuple[FixedTerm, ...]
    random: tuple[RandomTerm, ...]
    text: str

    @property
    def variables(self) -> tuple[str, ...]:
        """Data columns the formula reads, in order of appearance, without repeats."""
        seen: dict[str, None] = {}
        for term in self.fixed:
            for v in term:
                seen.setdefault(v.name)
        for r in self.random:
            for term in r.slopes:
                for v in term:
                    seen.setdefault(v.name)
            for f in r.factors:
                seen.setdefault(f)
        return tuple(seen)

    def __str__(self) -> str:
        return self.text


class _Parser:
    """Recursive descent over the tokens; every error names the formula and the position."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> FormulaError:
        where = f" at position {at}" if at is not None else ""
        return FormulaError(f"formula {self.text!r}: {message}{where}")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "", len(self.text))

    def at(self, kind: str, value: str | None = None) -> bool:
        k, v, _ = self.peek()
        return k == kind and (value is None or v == value)

    def expect(self, kind: str, value: str | None = None) -> str:
        k, v, at = self.peek()
        if k != kind or (value is not None and v != value):
            want = repr(value) if value is not None else f"a {kind}"
            raise self.fail(f"expected {want}, found {_show(k, v)}", at)
        self.pos += 1
        return v

    def formula(self) -> Formula:
        response = self.expect("name")
        self.expect("op", "~")
        intercept, fixed, random = self.sum(allow_random=True, stop=())
        if not self.at("end"):
            k, v, at = self.peek()
            raise self.fail(f"expected '+' or '-', found {_show(k, v)}", at)
        return Formula(response, intercept, tuple(fixed), tuple(random), " ".join(self.text.split()))

    def sum(self, allow_random: bool, stop: tuple[str, ...]):
        """Terms joined by + and -: (intercept, fixed terms, random terms)."""
        intercept, fixed, random = True, {}, []
        sign = "+"
        if self.at("op", "-") or self.at("op", "+"):  # a leading sign: y ~ -1 + x
            sign = self.expect("op")
        while True:
            k, v, at = self.peek()
            if k == "num":
                self.pos += 1
                if v not in ("0", "1"):
                    raise self.fail(f"a number in a formula is 0 or 1 (the intercept), not {v}", at)
                if sign == "-" and v == "0":
                    raise self.fail("'- 0' is not a term; write '+ 0' or '- 1' to drop the intercept", at)
                intercept = v == "1" and sign == "+"
            elif (k, v) == ("op", "(") and allow_random:
                if sign == "-":
                    raise self.fail("cannot subtract a random term", at)
                random.extend(self.random_term())
            else:
                terms = self.product(at)
                if sign == "-":
                    raise self.fail(f"cannot subtract the term {', '.join(map(term_label, terms))!r}", at)
                for term in terms:
                    self.add_fixed(fixed, term, at)
            k, v, at = self.peek()
            if k == "end" or (k == "op" and v in stop):
                return intercept, list(fixed.values()), random
            if (k, v) not in (("op", "+"), ("op", "-")):
                raise self.fail(f"expected '+' or '-', found {_show(k, v)}", at)
            sign = v
            self.pos += 1

    def add_fixed(self, fixed: dict[frozenset, FixedTerm], term: FixedTerm, at: int) -> None:
        """Add ``term`` to ``fixed`` (keyed by its variables, whatever their order) once."""
        if frozenset(term) in fixed:
            raise self.fail(f"the term {term_label(term)!r} appears twice (note that a*b already includes a, b and a:b)", at)
        if len(fixed) >= MAX_TERMS:
            raise self.fail(f"more than {MAX_TERMS:,} terms; at most {MAX_TERMS:,} are allowed", at)
        fixed[frozenset(term)] = term

    def product(self, at: int) -> list[FixedTerm]:
        """``a*b*c`` expanded to every non-empty interaction; ``a:b`` is one term."""
        factors = [self.interaction()]
        while self.at("op", "*"):
            self.pos += 1
            factors.append(self.interaction())
        if len(factors) == 1:
            return factors
        if 2 ** len(factors) - 1 > MAX_TERMS:
            raise self.fail(f"{len(factors)} factors joined by '*' expand to {2 ** len(factors) - 1:,} terms "
                            f"(2^{len(factors)} - 1); at most {MAX_TERMS:,} terms are allowed: write the "
                            "interactions wanted with ':' and '+'", at)
        terms = []
        for size in range(1, len(factors) + 1):
            for combo in itertools.combinations(factors, size):
                merged = tuple(dict.fromkeys(v for part in combo for v in part))
                if len(merged) < sum(len(p) for p in combo):
                    raise self.fail(f"a variable appears on both sides of '*' in {term_label(merged)!r}", at)
                terms.append(merged)
        return terms

    def interaction(self) -> FixedTerm:
        k, v, at = self.peek()
        variables = [self.variable()]
        while self.at("op", ":"):
            self.pos += 1
            variables.append(self.variable())
        if len(set(variables)) < len(variables):
            raise self.fail(f"a variable is repeated in the interaction {term_label(tuple(variables))!r}", at)
        return tuple(variables)

    def variable(self) -> Variable:
        k, v, at = self.peek()
        if k != "name":
            if (k, v) == ("op", "("):
                raise self.fail("parentheses only enclose random terms such as (1|g) or (1 + x|g)", at)
            raise self.fail(f"expected a term, found {_show(k, v)}", at)
        self.pos += 1
        if not self.at("op", "("):
            return Variable(v)
        if v not in (*TRANSFORMS, "C"):
            raise self.fail(f"unknown function {v}(); the formula knows {', '.join(TRANSFORMS)} and C", at)
        self.pos += 1
        k2, column, at2 = self.peek()
        self.expect("name")
        if self.at("op", "("):
            raise self.fail(f"{v}() takes a column name (functions do not nest)", at2)
        if v in TRANSFORMS:
            self.expect("op", ")")
            return Variable(column, transform=v)
        coding, ref = "treatment", None
        while self.at("op", ","):
            self.pos += 1
            k3, arg, at3 = self.peek()
            self.expect("name")
            if arg in CODINGS:
                coding = arg
            elif arg == "ref":
                self.expect("op", "=")
                k4, level, _ = self.peek()
                if k4 not in ("str", "name", "num"):
                    raise self.fail(f"ref= takes a level, found {_show(k4, level)}", self.peek()[2])
                self.pos += 1
                ref = level.strip("\"'")
            else:
                raise self.fail(f"C() takes sum, treatment or ref=\"level\", not {arg!r}", at3)
        self.expect("op", ")")
        if coding == "sum" and ref is not None:
            raise self.fail(f"C({column}, sum, ref=...): sum coding has no reference level", at)
        return Variable(column, factor=True, coding=coding, ref=ref)

    def random_term(self) -> list[RandomTerm]:
        _, _, at = self.peek()
        self.expect("op", "(")
        intercept, slopes, _ = self.sum(allow_random=False, stop=("|", "||", ")"))
        k, bar, bar_at = self.peek()
        if bar not in ("|", "||"):
            raise self.fail("a term in parentheses is a random term and needs a grouping factor: (1|g)", bar_at)
        self.pos += 1
        if not intercept and not slopes:
            raise self.fail("a random term needs an intercept or a slope: (0|g) estimates nothing", at)
        levels = [[self.expect("name")]]
        while self.at("op", ":") or self.at("op", "/"):
            op = self.expect("op")
            name = self.expect("name")
            if op == "/":
                levels.append([name])
            else:
                levels[-1].append(name)
        self.expect("op", ")")
        # (x|g1/g2) nests: (x|g1) + (x|g1:g2), as lme4 expands it.
        prefix, out = [], []
        for names in levels:
            prefix = prefix + names
            out.append(RandomTerm(tuple(prefix), intercept, tuple(slopes), correlated=bar == "|"))
        return out


def parse(text: str) -> Formula:
    """Parse an R-style formula; raise :class:`FormulaError` saying what and where goes wrong."""
    f = _Parser(text).formula()
    _check(f)
    return f


def _check(f: Formula) -> None:
    """Rules no single token breaks: the response used as a predictor, repeated or empty terms."""
    def fail(message: str) -> FormulaError:
        return FormulaError(f"formula {f.text!r}: {message}")

    for term in f.fixed:
        if any(v.name == f.response for v in term):
            raise fail(f"the response {f.response!r} is also a predictor")
    seen: dict[tuple[str, ...], list[RandomTerm]] = {}
    for r in f.random:
        if f.response in r.factors:
            raise fail(f"the response {f.response!r} cannot be a grouping factor, as in ({r.label})")
        if any(v.name == f.response for s in r.slopes for v in s):
            raise fail(f"the response {f.response!r} cannot be a random slope, as in ({r.label})")
        if len(set(r.factors)) < len(r.factors):
            raise fail(f"a grouping factor is repeated in ({r.label})")
        for other in seen.get(tuple(sorted(r.factors)), []):
            if r.intercept and other.intercept:
                raise fail(f"{r.group_label!r} has an intercept in two random terms, ({other.label}) and ({r.label}); "
                           "one intercept per grouping (write (1|g) + (0 + x|g) for uncorrelated slopes)")
            shared = {frozenset(s) for s in r.slopes} & {frozenset(s) for s in other.slopes}
            if shared:
                raise fail(f"the slope on {term_label(tuple(next(iter(shared))))!r} by {r.group_label!r} "
                           "appears in two random terms")
        seen.setdefault(tuple(sorted(r.factors)), []).append(r)
    if not f.intercept and not f.fixed and not f.random:
        raise fail("the formula has no terms, so there is nothing to estimate; "
                   f"write '{f.response} ~ 1' for a single rate")


def _show(kind: str, value: str) -> str:
    return "the end of the formula" if kind == "end" else repr(value)


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
