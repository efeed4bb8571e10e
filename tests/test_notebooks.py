"""Notebook hygiene: py:percent twins in sync, outputs stripped, one parameters cell, a check cell,
code cells short enough to read.

Execution itself: ``make test`` runs every notebook once with papermill, then
tests/test_executed_notebooks.py reads each executed copy (every check printed True) and the book
is built from the same copies. ``python -m facelab nbval-prepare`` still makes nbval copies.
"""
from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import nbformat
import pytest

from facelab import export, runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED_PARAMS = {"profile", "data_root", "seed", "out_dir"}
MAX_CELL_LINES = 40   # a code cell's lines, outside cells tagged `export` (issue 22)


def test_there_are_notebooks():
    assert any(p.stem == "00_tour" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_py_percent_twin_in_sync(path):
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{path.name} has no py:percent twin {twin.name}"
    nb, py = nbformat.read(path, as_version=4), jupytext.read(twin)
    a = [(c.cell_type, c.source.strip()) for c in nb.cells]
    b = [(c.cell_type, c.source.strip()) for c in py.cells]
    assert a == b, f"{path.name} and {twin.name} differ: run `jupytext --sync {twin}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_stripped(path):
    nb = nbformat.read(path, as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{path.name} cell {i} has stored output"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name.startswith("0")], ids=lambda p: p.stem)
def test_code_cells_are_short_outside_export_cells(path):
    """A notebook is a paper walkthrough: a code cell holds one step (at most 40 lines), and a longer
    one is split at its next equation or step with a markdown cell saying what the next part does.
    Cells tagged ``export`` (a model's classes, written to ``facelab.papers``) may be longer."""
    nb = nbformat.read(path, as_version=4)
    long = [(i, len(c.source.splitlines())) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and export.TAG not in c.metadata.get("tags", [])
            and len(c.source.splitlines()) > MAX_CELL_LINES]
    assert not long, (f"{path.name}: code cells over {MAX_CELL_LINES} lines outside `export` cells, as "
                      f"(cell index, lines): {long}; split each in {path.with_suffix('.py').name}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_of_plain_values(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    tree = ast.parse(cells[0].source)
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{path.name}: the parameters cell only assigns values (derived ones go next)"
        ast.literal_eval(node.value)  # raises for anything computed
        names |= {t.id for t in node.targets}
    assert REQUIRED_PARAMS <= names, f"{path.name}: parameters cell lacks {REQUIRED_PARAMS - names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_check_cell_is_last_and_lists_checks(path):
    nb = nbformat.read(path, as_version=4)
    names = runner.check_names(nb)
    assert len(names) == len(set(names)) >= 1
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "NBVAL_CHECK_OUTPUT" in code[-1].source, f"{path.name}: the check cell must be the last code cell"


def test_nbval_copies_expect_all_true(tmp_path):
    paths = runner.prepare_nbval(tmp_path, ["00_tour"])
    nb = nbformat.read(paths[0], as_version=4)
    cell = [c for c in nb.cells if "NBVAL_CHECK_OUTPUT" in c.source][0]
    text = cell.outputs[0]["text"]
    assert text.splitlines() and all(line.endswith(": True") for line in text.splitlines())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_only_public_library_names(path):
    """Notebooks are read by learners: they call the library's public API (``viz.pyplot()``,
    not ``viz._plt()``), which keeps working when the library's internals move."""
    import re

    text = path.with_suffix(".py").read_text()
    private = sorted(set(re.findall(r"\b(?:viz|config|synth|faces|train|metrics|cache)\._[a-z]\w*", text)))
    assert not private, f"{path.name} uses private library names {private}"
