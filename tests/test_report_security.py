"""Reports are HTML people mail around (issue 18 §1): nothing from data, names, paths, ids, formulas or a
manifest is live in them, and they carry no byte of a file outside their run.

A security corpus (HTML tags and handlers, markdown links, images, emphasis, code, math, citations,
attribute blocks, raw blocks, entities, table pipes, line breaks, NUL, ``..``, absolute paths, path
separators, very long names) is fed through the run name, the manifest's fields, every text cell of
the run's tables, section files and, end to end, through input file names and model ids of a real
fit. The HTML is parsed: no element or attribute may come from the corpus, every construct must show
as its literal text, and the bytes of a secret file the corpus points at must not be in the page.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from dvbstats.cli import fit as fit_cli
from dvbstats.report import RunFolderError, markup, render

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_run  # noqa: E402

#: The secret's bytes: what must never reach a report.
SECRET = b"dvbstatsSecretToken8p2QzK"

#: Markdown and HTML constructs, each carrying its own marker: the marker may appear in the page only
#: inside the construct's literal text (else the construct became markup).
CONSTRUCTS = [
    "<img src={secret} onerror=alert(1)>MKimg", "<b>MKraw</b>", "<script>alert(1)</script>MKscript",
    "![MKimage]({secret})", "[MKlink](javascript:alert(1))", "<{secret}>MKauto", "*MKem*", "**MKstrong**",
    "`MKcode`", "$MKmath$", "~MKsub~", "^MKsup^", "~~MKdel~~", "[MKspan]{{onclick=alert(1)}}",
    "`MKic`{{onmouseover=alert(1)}}", "@MKcite", "[@sec-MKref]", "&lt;i&gt;MKentity", "| MKpipe |",
    "MKdash--x", "MKdots...",
]
MARKER = re.compile(r"MK[a-z]+", re.IGNORECASE)
#: Lines of their own (newlines are shown as spaces, never start a block).
BLOCKS = "\n# MKhead {{#sec-MKid onclick=alert(1)}}\n::: {{.callout-note}}\n```{{=html}}\n<i>MKblock</i>\n```\n:::\n"
PATHS = " ../../etc/passwd {secret} C:\\Windows\\x a/b "


def corpus(secret: Path, *, blocks: bool = True, nul: bool = True, long: int = 0) -> str:
    """The corpus as one string pointing at ``secret``."""
    text = " ".join(CONSTRUCTS) + PATHS + (BLOCKS if blocks else "") + ("\x00" if nul else "") + "L" * long
    return text.format(secret=secret)


def name_corpus() -> str:
    """The corpus for a run name: one folder name (no separator, newline or leading dot)."""
    return ('<img src=x onerror=alert(1)>MKnimg *MKem* **MKstrong** `MKcode` $MKmath$ ~MKsub~ @MKcite '
            '[MKlink](javascript:alert(1)) &lt;i&gt;MKentity | MKpipe | MKdash--x')


def literals(secret: Path) -> dict[str, str]:
    """Each marker and the literal text of its construct, as the page must show it."""
    out: dict[str, str] = {}
    for construct in [*CONSTRUCTS, "# MKhead {{#sec-MKid onclick=alert(1)}}", "<i>MKblock</i>",
                      "<img src=x onerror=alert(1)>MKnimg"]:
        text = construct.format(secret=secret)
        for marker in MARKER.findall(text):
            out.setdefault(marker.casefold(), _norm(text))
    return out


# --- the page ------------------------------------------------------------------------------


class Page(HTMLParser):
    """Tags, attributes and text runs (the text between two tags) of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str, str]] = []
        self.runs: list[str] = []
        self.stack: list[str] = []
        self.title_text = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        self.stack.append((tag, dict(attrs).get("class", "")))

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        self.runs.append(data)
        if self.stack and self.stack[-1] == ("h1", "title"):
            self.title_text += data


def _norm(text: str) -> str:
    return " ".join(markup.one_line(text).split()).casefold()


def leaks(html: str) -> list[str]:
    """Where the secret's bytes are in ``html``: as text, base64 (any alignment) or inside a data: URI."""
    found = [] if SECRET.decode() not in html else ["as text"]
    for shift in range(3):
        chunk = base64.b64encode(b"x" * shift + SECRET).decode()[4:-4]
        if chunk in html:
            found.append(f"base64 (shift {shift})")
    for uri in re.findall(r"data:[^\"')\s]+", html):
        head, _, data = uri.partition(",")
        raw = base64.b64decode(data + "===", validate=False) if head.endswith(";base64") else urllib.parse.unquote_to_bytes(data)
        if SECRET in raw:
            found.append(f"in a data URI ({head})")
    return found


def assert_inert(html: Path, clean: Page, secret: Path, *, shown: list[str] = ()) -> Page:
    """No element, attribute or secret in ``html`` came from the corpus; every text in ``shown`` is in the page."""
    text = html.read_text(encoding="utf-8")
    page = Page(text)
    assert not leaks(text), leaks(text)
    assert page.tags <= clean.tags, f"elements the clean report does not have: {page.tags - clean.tags}"
    kinds = {(t, k) for t, k, _ in clean.attrs}
    assert {(t, k) for t, k, _ in page.attrs} <= kinds, {(t, k) for t, k, _ in page.attrs} - kinds
    for tag, key, value in page.attrs:
        assert not key.startswith("on"), (tag, key, value)
        if key == "src":
            assert value.startswith("data:image/png;base64,"), value[:80]
        if key == "href":
            assert value.startswith("#") or value.startswith("http"), value[:80]
        if key not in ("alt", "aria-label", "data-fig-alt", "title", "src"):
            assert not MARKER.search(value), (tag, key, value[:120])
    literal = literals(secret)
    for run in page.runs:
        for marker in MARKER.findall(run):
            assert literal[marker.casefold()] in _norm(run), f"{marker} lost its literal text: {run[:300]!r}"
    body = _norm("".join(page.runs))
    for expected in shown:
        assert _norm(expected) in body, f"not shown verbatim: {expected[:80]!r}"
    return page


# --- tampering a run folder ------------------------------------------------------------------


def tamper_tables(run: Path, payload: str) -> None:
    """Every text cell of every table of ``run`` gets ``payload`` appended (the same everywhere, so ids still join)."""
    def hostile(v):
        return v if not isinstance(v, str) or v == "overall" else f"{v} {payload}"

    for path in run.glob("*.csv"):
        table = pd.read_csv(path)
        table.map(hostile).to_csv(path, index=False)
    cells = pd.read_parquet(run / "cells.parquet")
    for column in ("model", "value", "feature", "context"):
        cells[column] = cells[column].map(hostile)
    cells.to_parquet(run / "cells.parquet")


def tamper_manifest(run: Path, payload: str, name: str, **extra) -> dict:
    """Every text of ``run``'s manifest gets ``payload``; the run name becomes ``name``; failed checks."""
    meta = json.loads((run / "manifest.json").read_text())
    meta.update({
        "run_name": name, "created": payload, "command": ["python", "-m", "dvbstats.fit", payload],
        "inputs": [{"path": payload, "sha256": payload, "format": payload, "n_rows": 10}],
        "formula": f"chose_deep ~ 1 + (1|model)\n```\n{payload}\n````",
        "priors": {payload: payload}, "versions": {payload: payload}, "timing": {payload: 1.0, "x_s": payload},
        "sampler": {**meta["sampler"], payload: payload},
        "parametrization": {"requested": "auto", "terms": {payload: payload}},
        "diagnostics": {**meta["diagnostics"], "ok": False, "failures": [payload]},
        "empty_models": {"models": [payload], "in_fit": False, "note": payload},
        **extra,
    })
    (run / "manifest.json").write_text(json.dumps(meta))
    return meta


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("elsewhere") / "secret.txt"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Page:
    """The fixture run's report untampered, with failed checks and a model without trials (every callout)."""
    root = tmp_path_factory.mktemp("clean")
    run = make_run(root / "runs", name="clean", ok=False)
    meta = json.loads((run / "manifest.json").read_text())
    meta["empty_models"] = {"models": ["m"], "in_fit": False, "note": "left out"}
    (run / "manifest.json").write_text(json.dumps(meta))
    return Page(render(run, root / "reports", engine="pandoc").read_text(encoding="utf-8"))


def test_the_corpus_in_every_manifest_field_and_table_cell_stays_text(tmp_path, secret, clean):
    run = make_run(tmp_path / "runs", name="tampered", ok=False)
    payload = corpus(secret)
    tamper_tables(run, corpus(secret, blocks=False, nul=False, long=300))
    name = name_corpus()
    tamper_manifest(run, payload, name)
    html = render(run, tmp_path / "reports", engine="pandoc")
    page = assert_inert(html, clean, secret, shown=[f"Deep Value Benchmark: {name}", payload, f"gpt-4o {CONSTRUCTS[0].format(secret=secret)}"])
    assert _norm(name) in _norm(page.title_text)  # the title shows the run name as given
    # the formula keeps its lines in its code block, and no fence of the corpus closes it
    pre = html.read_text(encoding="utf-8")
    assert "````" in pre and "MKblock" in pre


def test_other_benchmarks_words_from_the_manifest_stay_text(tmp_path, secret, clean):
    run = make_run(tmp_path / "runs", name="words")
    payload = corpus(secret, blocks=False)
    record = {"name": "binary", "title": payload, "outcome": payload, "rate_name": payload, "rate_long": payload,
              "rate_by_condition": {}, "reference": 0.5, "reference_label": payload, "default_formula": payload,
              "wording": {"outcome_phrase": payload, "reference_short": payload}}
    tamper_manifest(run, payload, "words", benchmark=record)
    assert_inert(render(run, tmp_path / "reports", engine="pandoc"), clean, secret, shown=[payload])


def test_sections_cannot_carry_scripts_links_or_local_files(tmp_path, secret, clean):
    """``sections/*.md`` is markdown dvbstats writes; a tampered one keeps its markup but loses anything live."""
    run = make_run(tmp_path / "runs", name="sections")
    (run / "sections").mkdir()
    hostile = corpus(secret, blocks=False, nul=False)
    (run / "sections" / f"01-{name_corpus()}.md").write_text(
        f"Text with raw HTML <img src=\"{secret}\" onerror=alert(1)> <script>alert(1)</script> <iframe src=x>\n\n"
        f"![an image]({secret}) ![another](../../../{secret.name}) [a link](javascript:alert(1)) "
        f"[data](data:text/html,<script>alert(1)</script>) [ok](https://example.org)\n\n"
        "## A heading {onclick=alert(1) style=\"color:red\"}\n\n"
        "```{=html}\n<script>alert(1)</script>\n```\n\n`<b>x</b>`{=html}\n\n"
        f"---\nheader-includes: '<script>alert(1)</script>'\ncss: {secret}\ninclude-before: '<b>x</b>'\n---\n\n"
        f"{hostile}\n", encoding="utf-8")
    html = render(run, tmp_path / "reports", engine="pandoc")
    text = html.read_text(encoding="utf-8")
    page = Page(text)
    assert not leaks(text) and not ({"script", "iframe"} & page.tags)
    assert not [a for a in page.attrs if a[1].startswith("on") or "color:red" in a[2]]
    assert all(v.startswith("data:image/png;base64,") for _, k, v in page.attrs if k == "src")
    assert all(v.startswith(("#", "https://example.org")) for _, k, v in page.attrs if k == "href")
    assert "callout" in text and '<link rel="stylesheet"' not in text


@pytest.mark.parametrize("kind", ["figure", "section"])
def test_a_section_or_figure_linked_outside_the_run_is_refused(tmp_path, secret, kind):
    run = make_run(tmp_path / "runs", name="linked")
    (run / "sections" / "figures").mkdir(parents=True)
    if kind == "figure":
        (run / "sections" / "figures" / "evil.png").symlink_to(secret)
        (run / "sections" / "01-x.md").write_text("![x](figures/evil.png)\n")
    else:
        (run / "sections" / "01-x.md").symlink_to(secret)
    with pytest.raises(RunFolderError, match="not a file inside the run folder"):
        render(run, tmp_path / "reports", engine="pandoc")
    assert not (tmp_path / "reports" / "linked").exists()


# --- end to end: names of input files, models and runs from the command line -----------------


def test_hostile_input_file_names_and_model_ids_end_to_end(tmp_path, secret, clean, monkeypatch):
    """A real fit of dumps named like ``x`<img src=...>`.csv`` whose model ids hold the corpus, reported."""
    from test_report import _small_simulation

    from dvbstats import simulate

    sim = _small_simulation(simulate, tmp_path / "dumps")
    folder = tmp_path / "dumps" / f"x`<img src={secret.parent}"  # the file name's '/' makes folders
    (folder / secret.parent.name).mkdir(parents=True)
    hostile = name_corpus()  # model ids keep no '/': the short name drops what comes before one
    paths = []
    for i, path in enumerate(sim.paths):
        dump = pd.read_csv(path)
        dump["model"] = dump["model"] + f" {i} {hostile}"
        target = folder / secret.parent.name / f"{secret.name}>`{i}.csv"
        dump.to_csv(target, index=False)
        paths.append(str(target))
    monkeypatch.chdir(tmp_path)
    name = name_corpus()
    assert fit_cli.main([*paths, "--name", name, "--formula", "chose_deep ~ 1 + (1|model)", "--draws", "100",
                         "--tune", "100", "--chains", "2", "--quiet", "--allow-warnings", "--report",
                         "--no-scaling"]) == 0
    html = tmp_path / "reports" / name / "report.html"
    assert_inert(html, clean, secret, shown=[name, f"0 {hostile}", f"{secret.name}>`0.csv"])


def test_an_hvsb_judgment_file_named_like_html_end_to_end(tmp_path, secret, clean, monkeypatch):
    """The issue's case: a judgment file at ``x`<img src=/secret>`.tsv`` inside an HVSB tree (its '/' make folders,
    so the path's folders become the model and the file's stem a scenario type)."""
    from test_hvsb_run import DESIGN, _simulate

    _simulate(tmp_path / "tree", 3)
    model_dir = next((tmp_path / "tree").glob("cp_judgment/*/*"))
    for condition in ("", "untargeted", "targeted"):  # the new model is judged under every condition
        leaked = secret.parent / condition / "cp_pro_age"  # what the img points at (the reader wants cp_<pro|anti>_<x>)
        leaked.parent.mkdir(exist_ok=True)
        leaked.write_bytes(SECRET)
        hostile = model_dir / f"x`<img src={secret.parent}" / condition / f"{leaked.name}>`.tsv"
        hostile.parent.mkdir(parents=True, exist_ok=True)
        hostile.write_bytes(next((model_dir / condition).glob("cp_*.tsv")).read_bytes())
    monkeypatch.chdir(tmp_path)
    assert fit_cli.main(["tree", "--out", "runs/hvsb", "--formula", "misaligned ~ 1 + condition + (1|model)", "--draws", "100",
                         "--tune", "100", "--chains", "2", "--quiet", "--allow-warnings", "--report", "--no-scaling",
                         "--no-agreement"]) == 0
    assert len(DESIGN.families) >= 2
    assert_inert(tmp_path / "reports" / "hvsb" / "report.html", clean, secret,
                 shown=[f"x`<img src={leaked}>`.tsv", "Targeted versus untargeted attack"])
