"""Run notebooks with papermill and gather their results into ``figures/RESULTS.md``.

``python -m facelab run 05 --profile smoke -p lam=4`` executes ``notebooks/05_*.ipynb``
into ``runs/<notebook>/<profile>/``, then stamps the total wall time into the notebook's
``figures/<notebook>/metrics.json``. ``python -m facelab run all`` runs every notebook,
keeps going past a failure (papermill leaves its error cell in the executed copy) and says
which failed.
"""
from __future__ import annotations

import json
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import atomic_write_bytes
from .config import ConfigError, PROFILE_CHOICES, dataset_root, repo_root, resolve_profile


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def list_notebooks() -> list[str]:
    """Names like ``00_tour``, sorted by number."""
    return sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def resolve_notebook(ref: str | int) -> str:
    """``5``, ``"05"``, ``"05_au_guided_fer"`` or ``"au_guided_fer"`` -> ``"05_au_guided_fer"``."""
    names = list_notebooks()
    ref = str(ref).strip()
    if ref.endswith(".ipynb") or ref.endswith(".py"):
        ref = Path(ref).stem
    for name in names:
        num, _, rest = name.partition("_")
        if ref in (name, rest) or (ref.isdigit() and int(ref) == int(num)):
            return name
    raise ConfigError(f"unknown notebook {ref!r}: expected a number or name among {', '.join(names) or '(none)'}")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["lam=4", "name=x", "flag=true", "ks=[1,2]"]`` -> typed dict (JSON when it parses)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"parameter {pair!r}: expected key=value")
        k, v = pair.split("=", 1)
        if not re.fullmatch(r"[A-Za-z_]\w*", k):
            raise ConfigError(f"parameter name {k!r}: expected a Python identifier")
        low = v.strip().lower()
        if low in ("none", "null"):
            out[k] = None
        elif low in ("true", "false"):
            out[k] = low == "true"
        else:
            try:
                out[k] = json.loads(v)
            except json.JSONDecodeError:
                out[k] = v
    return out


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and defaults of the notebook's ``parameters`` cell."""
    import papermill as pm

    return {k: v.get("default") for k, v in pm.inspect_notebook(str(path)).items()}


@dataclass
class RunResult:
    notebook: str
    profile: str
    ok: bool
    wall_s: float
    output: Path
    error: str = ""


def run(ref: str | int, profile: str = "auto", params: dict[str, Any] | None = None,
        kernel: str | None = None, progress: bool = True) -> RunResult:
    """Execute one notebook with papermill; never raises for a failing notebook."""
    import papermill as pm

    name = resolve_notebook(ref)
    if profile not in PROFILE_CHOICES:
        raise ConfigError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILE_CHOICES)}")
    resolved = resolve_profile(profile)
    src = notebooks_dir() / f"{name}.ipynb"
    params = dict(params or {})
    known = notebook_parameters(src)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"{name} has no parameter {', '.join(unknown)}: expected some of {', '.join(known)}")
    dataset_root(params.get("data_root"))  # a path that does not exist fails here, in one line
    params["profile"] = resolved
    out_dir = repo_root() / "runs" / name / resolved
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.ipynb"
    t0 = time.time()
    ok, err = True, ""
    try:
        pm.execute_notebook(str(src), str(output), parameters=params, kernel_name=kernel,
                            cwd=str(notebooks_dir()), progress_bar=progress, log_output=False)
    except pm.PapermillExecutionError as e:
        ok, err = False, f"{e.ename}: {e.evalue}"
    except Exception as e:  # a kernel that died, a timeout: still report and go on
        ok, err = False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
    wall = time.time() - t0
    if ok:
        failed = _failed_checks(name)
        if failed:  # the notebook ran, but did not show what it must: that is a failure too
            ok, err = False, f"checks failed: {', '.join(failed)}"
    _stamp_wall_time(name, wall, ok, err)
    _keep_metrics_with_run(name, out_dir)
    return RunResult(name, resolved, ok, wall, output, err)


def _keep_metrics_with_run(name: str, out_dir: Path) -> None:
    """A copy of metrics.json beside the executed notebook: figures/ holds the last run's only,
    and the book shows each notebook's richest run with that run's own numbers."""
    src = repo_root() / "figures" / name / "metrics.json"
    if src.exists():
        atomic_write_bytes(out_dir / "metrics.json", src.read_bytes())


def _failed_checks(name: str) -> list[str]:
    path = repo_root() / "figures" / name / "metrics.json"
    try:
        checks = json.loads(path.read_text()).get("checks", {})
    except (OSError, json.JSONDecodeError):
        return []
    return [k for k, v in checks.items() if not v]


def _stamp_wall_time(name: str, wall: float, ok: bool, err: str) -> None:
    """Record the papermill wall time (and a failure) in the notebook's metrics.json."""
    path = repo_root() / "figures" / name / "metrics.json"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    data.setdefault("notebook", name)
    data["run_wall_s"] = round(wall, 1)
    data["ok"] = ok
    if err:
        data["error"] = err.splitlines()[0][:300]
    atomic_write_bytes(path, json.dumps(data, indent=2).encode())


def run_all(profile: str = "auto", params: dict[str, Any] | None = None,
            fail_fast: bool = False) -> list[RunResult]:
    """Every notebook in order; a failure is reported and the rest still run, unless
    ``fail_fast`` (``make test``): then the first failure stops the run."""
    results = []
    for name in list_notebooks():
        print(f"=== {name} ({profile})", flush=True)
        r = run(name, profile, params)
        status = "ok" if r.ok else f"FAILED: {r.error.splitlines()[0] if r.error else ''}"
        print(f"    {status}  [{r.wall_s:.0f} s]  executed copy: {r.output}", flush=True)
        results.append(r)
        if fail_fast and not r.ok:
            print(f"    stopping at the first failure (--fail-fast); the error cell is in {r.output}", flush=True)
            break
    write_results_md()
    return results


def executed_check_problems(path: str | Path) -> list[str]:
    """What is wrong with an executed copy: an error output in any cell, or a check cell
    (``# NBVAL_CHECK_OUTPUT``) that did not print exactly ``name: True`` for every listed check.
    Empty when the notebook ran and showed everything it must. This is ``make test``'s check
    of each notebook, read from the copy papermill left (the book renders the same copy)."""
    import nbformat

    path = Path(path)
    if not path.exists():
        return [f"{path}: no executed copy (run `python -m facelab run {path.stem} --profile smoke`)"]
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                problems.append(f"{path.name} cell {i}: {out.get('ename')}: {str(out.get('evalue'))[:200]}")
    try:
        names = check_names(nb)
    except ConfigError as e:
        return problems + [f"{path.name}: {e}"]
    cell = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source][0]
    printed = "".join(o.get("text", "") for o in cell.get("outputs", [])
                      if o.get("output_type") == "stream" and o.get("name") == "stdout")
    lines = [ln.strip() for ln in printed.splitlines() if ln.strip()]
    expected = [f"{n}: True" for n in names]
    if lines != expected:
        bad = [ln for ln in lines if ln not in expected] + [f"{e} (not printed)" for e in expected if e not in lines]
        problems.append(f"{path.name}: the check cell printed {len(lines)} lines, expected every check True; "
                        f"wrong: {'; '.join(bad) or 'order'}")
    return problems


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def headline_metric(d: dict[str, Any]) -> str | None:
    """The metric a notebook puts first: the one declared with ``metric(..., headline=True)``,
    else the first metric that has a paper value, else the first metric (None when there is none)."""
    metrics = d.get("metrics") or {}
    if d.get("headline") in metrics:
        return d["headline"]
    paper = d.get("paper") or {}
    return next((k for k in metrics if k in paper), next(iter(metrics), None))


def _status(d: dict[str, Any]) -> str:
    status = "ok" if d.get("ok", True) else f"failed: {d.get('error', '')}"
    checks = d.get("checks", {})
    if checks and not all(checks.values()):
        status += " (checks failed: " + ", ".join(k for k, v in checks.items() if not v) + ")"
    return status


def _cell(v: Any) -> str:
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def results_markdown(figures: Path | None = None, notebooks: list[str] | None = None,
                     sources: dict[str, Path] | None = None) -> str:
    """The results page: one headline row per notebook, then each notebook's full metric list.

    ``notebooks`` (default: every notebook under ``notebooks/``) get a row even without a
    ``metrics.json`` ("not run yet"); a ``metrics.json`` of a notebook not listed still counts.
    ``sources`` maps a notebook to the metrics.json to use instead of ``figures/<nb>/`` (the book:
    the one kept beside the executed copy it shows).
    """
    figures = figures or repo_root() / "figures"
    found: dict[str, dict[str, Any]] = {}
    paths = {p.parent.name: p for p in sorted(figures.glob("*/metrics.json"))} | dict(sources or {})
    for key, path in paths.items():
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError:
            d = {"ok": False, "error": f"{path} is not valid JSON"}
        found[d.get("notebook", key)] = d
    names = sorted(set(list_notebooks() if notebooks is None else notebooks) | set(found))
    lines = ["# Results", "",
             "Written by `make run` from every `figures/<notebook>/metrics.json`. The paper's numbers are",
             "on the paper's dataset; ours on the dataset and profile named. **A smoke row is a check that",
             "the pipeline runs and learns on synthetic data, not a reproduction.**", "",
             "## Headline per notebook", "",
             "Each notebook's headline metric (declared with `report.metric(..., headline=True)`; else its",
             "first metric with a paper number). The full lists follow below.", "",
             "| notebook | headline metric | ours | paper | paper dataset | our dataset | profile | device | wall time (s) | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for nb in names:
        d = found.get(nb)
        if d is None:
            lines.append(f"| {nb} | - | - | - | - | - | - | - | - | not run yet |")
            continue
        h = headline_metric(d)
        caps = d.get("caps") or {}
        profile = d.get("profile", "-") + (" (capped)" if caps else "")
        lines.append("| " + " | ".join(_cell(x) for x in (
            nb, h or "-", (d.get("metrics") or {}).get(h), (d.get("paper") or {}).get(h),
            (d.get("paper_dataset") or {}).get(h, "-"), d.get("dataset", "-"), profile, d.get("device", "-"),
            d.get("run_wall_s", d.get("wall_s")), _status(d))) + " |")
    for nb in names:
        d = found.get(nb)
        if d is None:
            continue
        caps = d.get("caps") or {}
        lines += ["", f"## {nb}", "",
                  f"Dataset: {d.get('dataset', '-')}; profile: {d.get('profile', '-')}; device: {d.get('device', '-')}; "
                  f"wall time: {_fmt(d.get('run_wall_s', d.get('wall_s')))} s; status: {_status(d)}."]
        if caps:
            lines.append("Caps: " + ", ".join(f"`{k}={v}`" for k, v in caps.items()) + ".")
        checks = d.get("checks") or {}
        if checks:
            lines.append("Checks: " + ", ".join(f"{k} {'✓' if v else '✗ FAILED'}" for k, v in checks.items()) + ".")
        metrics = d.get("metrics") or {}
        if not metrics:
            lines.append("")
            lines.append("No metrics recorded.")
            continue
        lines += ["", "| metric | ours | paper | paper dataset |", "|---|---|---|---|"]
        for k, v in metrics.items():
            name = f"**{k}**" if k == headline_metric(d) else k
            lines.append(f"| {name} | {_cell(v)} | {_cell((d.get('paper') or {}).get(k))} | "
                         f"{_cell((d.get('paper_dataset') or {}).get(k, '-'))} |")
    return "\n".join(lines) + "\n"


def write_results_md(figures: Path | None = None) -> Path:
    """``figures/RESULTS.md``: :func:`results_markdown`, written atomically."""
    figures = figures or repo_root() / "figures"
    out = figures / "RESULTS.md"
    atomic_write_bytes(out, results_markdown(figures).encode())
    return out


def check_names(nb: dict) -> list[str]:
    """The literal ``CHECKS = [...]`` list of the notebook's ``# NBVAL_CHECK_OUTPUT`` cell."""
    import ast

    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    if len(cells) != 1:
        raise ConfigError(f"expected exactly one '# NBVAL_CHECK_OUTPUT' cell, found {len(cells)}")
    tree = ast.parse("".join(cells[0]["source"]))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CHECKS" for t in node.targets):
            names = ast.literal_eval(node.value)
            if names and all(isinstance(n, str) for n in names):
                return list(names)
    raise ConfigError("the NBVAL_CHECK_OUTPUT cell must assign a literal list of names: CHECKS = ['learned', ...]")


def prepare_nbval(dest: Path, names: list[str] | None = None) -> list[Path]:
    """Copies of the (output-free) notebooks whose check cell expects every check to be True.

    The committed notebooks carry no outputs; nbval compares a ``# NBVAL_CHECK_OUTPUT`` cell
    with stored output, so we store the only acceptable one: ``name: True`` per check.
    """
    import nbformat

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names or list_notebooks():
        nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
        expected = "".join(f"{n}: True\n" for n in check_names(nb))
        for cell in nb.cells:
            if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=expected)]
                cell.execution_count = 1  # nbval rejects stored output on a cell marked unrun
        path = dest / f"{name}.ipynb"
        nbformat.write(nb, path)
        out.append(path)
    return out


def script_from_twin(name: str, params: dict[str, Any]) -> str:
    """The notebook's py:percent twin as a plain script, with ``params`` set after its
    ``parameters`` cell (what papermill does), for machines without a Jupyter stack."""
    twin = notebooks_dir() / f"{name}.py"
    lines = twin.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    tagged = [i for i in starts if "parameters" in lines[i]]
    if len(tagged) != 1:
        raise ConfigError(f"{twin.name}: expected exactly one '# %% tags=[\"parameters\"]' cell")
    after = next((i for i in starts if i > tagged[0]), len(lines))
    inject = ["# parameters injected by facelab.runner.script_from_twin"] + \
        [f"{k} = {v!r}" for k, v in params.items()]
    prelude = ["try:", "    from IPython.display import display", "except ImportError:",
               "    display = print", "import matplotlib", "matplotlib.use('Agg')"]
    return "\n".join(prelude + lines[:after] + inject + lines[after:]) + "\n"


def run_script(ref: str | int, profile: str, params: dict[str, Any] | None = None,
               timeout_s: float | None = None) -> RunResult:
    """Run a notebook's twin as a script in a subprocess (no Jupyter needed); time-capped."""
    import os
    import subprocess
    import sys

    name = resolve_notebook(ref)
    resolved = resolve_profile(profile)
    out_dir = repo_root() / "runs" / name / resolved
    out_dir.mkdir(parents=True, exist_ok=True)
    script = out_dir / f"{name}.script.py"
    script.write_text(script_from_twin(name, {**(params or {}), "profile": resolved}))
    log = out_dir / f"{name}.log"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    with open(log, "w") as f:
        try:
            proc = subprocess.run([sys.executable, str(script)], stdout=f, stderr=subprocess.STDOUT,
                                  cwd=str(notebooks_dir()), env=env, timeout=timeout_s)
            ok, err = proc.returncode == 0, "" if proc.returncode == 0 else f"exit code {proc.returncode}"
        except subprocess.TimeoutExpired:
            ok, err = False, f"timed out after {timeout_s:.0f} s"
    wall = time.time() - t0
    if not ok:
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        err = f"{err}: {tail[0]}"
    _stamp_wall_time(name, wall, ok, err)
    return RunResult(name, resolved, ok, wall, log, err)
