"""Every notebook's checks, read from the executed copy that ``make test`` leaves under ``runs/``.

``make test`` executes each notebook once with papermill (``python -m facelab run all --profile
smoke --fail-fast``), builds the book from those copies, then runs these tests (marker
``executed``): no cell raised, and the ``# NBVAL_CHECK_OUTPUT`` cell printed ``name: True`` for
every check it lists. Outside ``make test`` a missing copy skips; with
``FACELAB_REQUIRE_EXECUTED=1`` (``make test`` sets it) it fails.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from facelab import runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.executed
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_smoke_run_printed_every_check_true(name):
    path = ROOT / "runs" / name / "smoke" / f"{name}.ipynb"
    if not path.exists() and os.environ.get("FACELAB_REQUIRE_EXECUTED") != "1":
        pytest.skip(f"no executed copy {path.relative_to(ROOT)} (make test runs the notebooks first)")
    problems = runner.executed_check_problems(path)
    assert not problems, "\n".join(problems)


def _probe(tmp_path: Path, value: bool) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("profile = 'auto'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(
                    "from facelab.results import Report\n"
                    f"report = Report('99_probe', profile='smoke', dataset='synth', out_dir={str(tmp_path)!r}, device='cpu')\n"
                    f"report.check('probe', {value})\nreport.check('other', True)"),
                nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nCHECKS = ['probe', 'other']\nreport.print_checks(CHECKS)")]
    path = tmp_path / f"probe_{value}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("value, should_pass", [(True, True), (False, False)])
def test_harness_fails_when_a_check_is_false(tmp_path, value, should_pass):
    """The harness must be able to fail: a check printing False is reported, naming the check."""
    import papermill as pm

    src = _probe(tmp_path, value)
    out = tmp_path / "executed.ipynb"
    pm.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    problems = runner.executed_check_problems(out)
    assert (not problems) == should_pass, problems
    if not should_pass:
        assert "probe: False" in problems[0]


def test_harness_reports_an_error_cell_and_a_missing_copy(tmp_path):
    nb = nbformat.read(_probe(tmp_path, True), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    nb.cells[2].outputs = []
    nbformat.write(nb, tmp_path / "broken.ipynb")
    problems = runner.executed_check_problems(tmp_path / "broken.ipynb")
    assert any("ValueError: boom" in p for p in problems)
    assert any("probe: True (not printed)" in p for p in problems)
    assert "no executed copy" in runner.executed_check_problems(tmp_path / "missing.ipynb")[0]
