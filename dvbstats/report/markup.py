"""Text from data, names, paths and manifests made inert in the report's markdown.

A report is HTML that people mail around, and its ``.qmd`` is assembled from strings that come
from outside dvbstats: run names, file names, model ids, level and factor names, formulas and
every field of a run's ``manifest.json``. Each of them enters the markdown through one of these
functions, which make it show exactly as given (one line; control characters become spaces) and
never become markup: no raw HTML, link, image, emphasis, code span, math, citation or
cross-reference, attribute block, table cell break or new block. Pandoc and Quarto read the
result as plain text whatever the string holds.
"""

from __future__ import annotations

import json
import re

#: Control characters (C0 with tab and line breaks, DEL, C1) and Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: ASCII punctuation Pandoc's markdown gives a meaning to, anywhere in a line: backslash escapes,
#: code, emphasis, attributes, links and spans, raw HTML and autolinks, entities, headings, math,
#: citations and cross-references, sub/superscript and strikeout, table cells. Quotes are left to
#: Pandoc's typography (``it's`` shows as ``it’s``), as in the report's own prose.
_SPECIAL = re.compile(r"""([\\`*_{}\[\]<>&#$@~^|!])""")
#: Smart punctuation: ``--`` and ``---`` become dashes, ``...`` an ellipsis.
_SMART = re.compile(r"-(?=-)|(?<=-)-|\.(?=\.)|(?<=\.)\.")
_BACKTICKS = re.compile(r"`+")


def one_line(value: object) -> str:
    """``value`` as text on one line: every control character (newline, tab, NUL, ...) a space."""
    return _CONTROL.sub(" ", str(value))


def text(value: object) -> str:
    """``value`` as inline markdown that renders as exactly its text (on one line; spaces at its ends, which
    could break the line or start a code block, removed)."""
    escaped = _SPECIAL.sub(r"\\\1", one_line(value).strip())
    return _SMART.sub(lambda m: "\\" + m.group(0), escaped)


def code(value: object) -> str:
    """``value`` as an inline code span that shows it verbatim (one line), whatever backticks it holds."""
    body = one_line(value)
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def code_block(value: object) -> str:
    """``value`` (lines kept) as a fenced code block no line of it can close."""
    lines = [_CONTROL.sub(" ", line) for line in str(value).splitlines()] or [""]
    longest = max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence, *lines, fence])


def attribute(value: object) -> str:
    """``value`` for a quoted attribute (``fig-alt="..."``), spaces collapsed (Pandoc drops an attribute
    block whose value starts with one): it cannot end the quotes or the attribute block."""
    return " ".join(one_line(value).split()).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def yaml_text(value: object) -> str:
    """``value`` as a YAML scalar of the header (title, date): Pandoc reads those as markdown too."""
    return json.dumps(text(value), ensure_ascii=False)
