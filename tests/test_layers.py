"""The package's layers hold without deferred imports: no module imports a higher layer (at module level,
inside a function, under ``TYPE_CHECKING`` or by name through :func:`dvbstats.model.lazy.module`) except
the exceptions listed here with their reason, and no import sits inside a function unless listed. No module
imports another module's private (``_x``) names: what modules share is public and documented.

A static check over the source (:mod:`ast`), so it runs in the fast suite and in CI. A package's
``__init__`` counts as a module of its layer: importing ``dvbstats.benchmarks.definition`` runs
``dvbstats/benchmarks/__init__.py``, whose own imports are checked like any other module's.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dvbstats"

#: Top to bottom; a module belongs to the layer of its longest listed prefix (``dvbstats`` itself: exactly).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("dvbstats", "dvbstats.fit", "dvbstats.compare", "dvbstats.design", "dvbstats.cli", "dvbstats.paper2025",
     "dvbstats.planning", "dvbstats.report.__main__"),  # entry points, command lines, studies over fits
    ("dvbstats.pipeline",),  # the analyses after a fit, shared by the CLI, the API and the reanalysis
    ("dvbstats.api",),  # load, Model, report
    ("dvbstats.report",),  # a run folder -> report (reads run folders only): build, render
    ("dvbstats.report.sections.conditions", "dvbstats.report.sections.sizes"),  # sections built on the rate sections
    ("dvbstats.report.sections.rates", "dvbstats.report.sections.checks", "dvbstats.report.sections.agreement",
     "dvbstats.report.sections.contrasts", "dvbstats.report.methods"),  # the report's sections, its methods
    ("dvbstats.report.sections",),  # the section registry
    ("dvbstats.report.markdown",),  # formats, tables, callouts, figures
    ("dvbstats.report.markup", "dvbstats.report.narrative", "dvbstats.report.plots", "dvbstats.report.wording"),
    ("dvbstats.input.runfolder",),  # the run folder's writer and reader: above results
    ("dvbstats.benchmarks.results", "dvbstats.benchmarks.scenarios", "dvbstats.benchmarks.consistency",
     "dvbstats.benchmarks.first_look"),  # a benchmark's own analyses of a fit
    ("dvbstats.results",),  # Fit and what a posterior says
    ("dvbstats.data",),  # ingested input of any benchmark
    ("dvbstats.benchmarks.inputs",),  # reading any benchmark's input, the embedded examples included
    ("dvbstats.simulate",),  # data with known truth
    ("dvbstats.benchmarks",),  # the registry, the definitions and their readers
    ("dvbstats.model",),  # formula -> design -> posterior
    ("dvbstats.input.ingest",),  # DVB parsing: harness dumps and cell tables
    ("dvbstats.input.trials",),  # the trial table in memory and on disk
    ("dvbstats.input.reconcile",),  # copies of a trial reconciled (every benchmark)
    ("dvbstats.input.tidy",),  # text columns tidied and typed
    ("dvbstats.input.files",),  # files found, sniffed, read as text; bad rows named
    ("dvbstats.input", "dvbstats.constants"),  # schema, model table, cells, manifest, folders
)

#: Imports of a higher layer that stay, each with its reason: (importer, imported module) -> why. None: a
#: definition names its analyses (``Benchmark.agreement``, ``extra_tables``) and ``Fit`` spells its run-folder
#: and report methods, implemented and provided by the layers above.
UPWARD: dict[tuple[str, str], str] = {}


#: Imports inside functions that stay, each with its reason: (importer, imported module) -> why.
DEFERRED = {
    ("dvbstats.results.fitted", "dvbstats.model.pymcmodel"):
        "model.lazy: PyMC and PyTensor (2.5 s of import) only when the PyMC backend samples; the fit path samples "
        "the hand-written densities, so whatever builds a PyMC model is reached through this one seam per caller",
    ("dvbstats.results.tables", "dvbstats.model.pymcmodel"): "model.lazy: PyMC for the prior predictive check only",
    ("dvbstats.results.agreement", "dvbstats.results.agreement_pymc"):
        "model.lazy: PyMC only when the Bayesian agreement model is sampled with sampler='pymc'",
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The index of ``module``'s layer in :data:`LAYERS` (0 = top)."""
    best = None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix if prefix == "dvbstats" else module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > len(best[1])):
                best = (i, prefix)
    if best is None:
        raise LookupError(f"{module}: in no layer of tests/test_layers.py; place it")
    return best[0]


def _resolve(name: str) -> str:
    """The dvbstats module an imported name lives in (``dvbstats.results.tables.rate_table`` -> its module)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _from(module: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` in ``module`` names, a relative one resolved against its package."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    if not node.level:
        return node.module or ""
    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(parent + ([node.module] if node.module else []))


def imports(module: str, source: str | None = None) -> list[tuple[str, bool]]:
    """Every module ``module`` imports (its file, or ``source``), with whether the import sits inside a
    function; a ``lazy.module("...")`` call counts as an import inside a function (it imports on first use)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, inside) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _from(module, child)
                for a in child.names:
                    target = f"{base}.{a.name}"
                    found.append((target if _resolve(target) in MODULES else base, inside))
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr == "module"
                  and isinstance(child.func.value, ast.Name) and child.func.value.id == "lazy"
                  and child.args and isinstance(child.args[0], ast.Constant)):
                found.append((child.args[0].value, True))
            visit(child, inside)

    visit(ast.parse(source if source is not None else MODULES[module].read_text(encoding="utf-8")), False)
    return found


def upward(module: str, source: str | None = None) -> set[tuple[str, str]]:
    """The (module, imported module) pairs by which ``module`` imports a higher layer."""
    targets = {_resolve(name) for name, _ in imports(module, source) if name.startswith("dvbstats")}
    return {(module, t) for t in targets if layer(t) < layer(module)}


#: Modules whose private names other modules use, each with those importers and the reason: module ->
#: (importers, why). An importer not in the package (not yet, or no longer) is skipped.
SHARED_PRIVATE = {
    "dvbstats.model.fastlogp": (
        ("dvbstats.model.itemmarginal", "dvbstats.model.crossed", "dvbstats.results.agreement_logp",
         "dvbstats.results.estimands"),
        "fastlogp's Numba kernels (priors, transforms, the clipped exponential), which the other hand-written "
        "densities extend; left private while issue 22 rewrites them (owned by another change): to be made "
        "public, with docstrings, once that work is merged"),
}


def private_imports(module: str, source: str | None = None) -> set[tuple[str, str, str]]:
    """The (module, other module, name) of every private name ``module`` takes from another dvbstats module:
    ``from other import _x`` and ``other._x`` of an imported module (dunders such as ``__version__`` are not
    private)."""
    tree = ast.parse(source if source is not None else MODULES[module].read_text(encoding="utf-8"))
    modules = {}  # local name -> dvbstats module, for imported modules
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _from(module, node)
            for a in node.names:
                if f"{base}.{a.name}" in MODULES:
                    modules[a.asname or a.name] = f"{base}.{a.name}"
                elif (base.startswith("dvbstats") and base != module and a.name.startswith("_")
                      and not a.name.startswith("__")):
                    found.add((module, base, a.name))
        elif isinstance(node, ast.Import):
            modules.update({a.asname or a.name: a.name for a in node.names if a.name in MODULES})
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and modules[node.value.id] != module):
            found.add((module, modules[node.value.id], node.attr))
    return found


def test_no_module_imports_another_modules_private_names():
    found = set().union(*(private_imports(module) for module in MODULES))
    unlisted = sorted((a, b, n) for a, b, n in found if a not in SHARED_PRIVATE.get(b, ((), ""))[0])
    assert not unlisted, "private names of another module: " + "; ".join(f"{a} uses {b}.{n}" for a, b, n in unlisted)
    listed = {(a, b) for b, (importers, _) in SHARED_PRIVATE.items() for a in importers if a in MODULES}
    stale = sorted(listed - {(a, b) for a, b, _ in found})
    assert not stale, f"listed exceptions no longer needed: {stale}"


@pytest.mark.parametrize("source, expected", [
    ("from dvbstats.input.files import _sniff\n", {("dvbstats.benchmarks.hvsb", "dvbstats.input.files", "_sniff")}),
    ("from dvbstats.input import files\nfiles._sniff('x', 'csv')\n",
     {("dvbstats.benchmarks.hvsb", "dvbstats.input.files", "_sniff")}),
    ("from dvbstats.input import files as f\nf._what(b'')\n",
     {("dvbstats.benchmarks.hvsb", "dvbstats.input.files", "_what")}),
    ("from dvbstats.input.files import check\nfrom dvbstats import __version__\n", set()),
])
def test_the_check_flags_a_private_import(source, expected):
    assert private_imports("dvbstats.benchmarks.hvsb", source) == expected


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_module_imports_a_higher_layer():
    found = set().union(*(upward(module) for module in MODULES))
    unlisted = sorted(found - set(UPWARD))
    assert not unlisted, "imports of a higher layer: " + "; ".join(f"{a} -> {b}" for a, b in unlisted)
    assert not set(UPWARD) - found, f"listed exceptions no longer needed: {sorted(set(UPWARD) - found)}"


def test_imports_inside_functions_are_the_listed_ones():
    deferred = set()
    for module in MODULES:
        for name, inside in imports(module):
            if inside:
                deferred.add((module, _resolve(name) if name.startswith("dvbstats") else name))
    lazy_named = {key for key in UPWARD if key not in DEFERRED}  # named through model.lazy
    unlisted = sorted(deferred - set(DEFERRED) - lazy_named)
    assert not unlisted, "imports inside functions: " + "; ".join(f"{a} -> {b}" for a, b in unlisted)
    assert not set(DEFERRED) - deferred, f"listed deferred imports no longer there: {sorted(set(DEFERRED) - deferred)}"


@pytest.mark.parametrize("module, source, target", [
    ("dvbstats.input.cells", "from dvbstats.input.runfolder import RunFolder\n", "dvbstats.input.runfolder"),
    ("dvbstats.results.tables", "def f():\n    from dvbstats import api\n", "dvbstats.api"),
    ("dvbstats.model.design", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dvbstats.results.fitted import Fit\n",
     "dvbstats.results.fitted"),
    ("dvbstats.input.runfolder", "from dvbstats.pipeline import Analysis\n", "dvbstats.pipeline"),
    ("dvbstats.benchmarks.definition", "x = lazy.module('dvbstats.report.build')\n", "dvbstats.report.build"),
])
def test_the_check_flags_an_upward_import(module, source, target):
    """The check itself: an import of a higher layer, wherever it sits, is flagged; a downward one is not."""
    assert upward(module, source) == {(module, target)}
    assert not upward("dvbstats.cli.fit", source)


def test_the_reanalysis_runs_the_pipeline_not_the_command_line():
    """The paper reanalysis shares the pipeline (:mod:`dvbstats.pipeline`) with the CLI instead of calling it."""
    names = {_resolve(name) for name, _ in imports("dvbstats.paper2025.reanalysis")}
    assert "dvbstats.pipeline" in names and not any(n.startswith("dvbstats.cli") for n in names)


def test_the_methods_fit_spells_for_higher_layers_are_provided_by_them():
    """``Fit.save``/``Fit.load``/``Fit.plot_forest`` are implemented by the run folder and the report, which
    provide them when imported: in a fresh process any import of dvbstats has them all (the package runs first)."""
    code = ("import sys, dvbstats.results.fitted as f; r, p = (sys.modules[f'dvbstats.{m}'] for m in "
            "('input.runfolder', 'report.plots')); "
            "assert f.PROVIDED == {'save': r.write, 'load': r.read_fit, 'plot_forest': p.fit_forest}, f.PROVIDED")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_the_fit_path_imports_neither_pymc_nor_pytensor_nor_pypandoc():
    """``python -m dvbstats.fit`` samples the hand-written densities: importing it loads no PyMC (2 s), PyTensor or
    pypandoc; the modules that build PyMC models are imported by the paths that build one."""
    code = ("import sys, dvbstats, dvbstats.fit, dvbstats.results.agreement; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pymc', 'pytensor', 'pypandoc')))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.strip() == "[]"
