"""``make book``: the executed notebooks as a static HTML site (Sphinx + myst-nb + sphinx-book-theme).

The book renders the outputs stored in the executed copies under ``runs/<notebook>/<profile>/``
(myst-nb's execution is off: building never runs a notebook and needs no network). Per notebook
the richest run is taken: ``paper``, else ``demo``, else ``smoke`` (the copy ``make run`` and
``make test`` leave). A notebook with no executed copy still gets its page, without outputs and
with a note saying so. Landing page: the README; then the results page (the same text as
``figures/RESULTS.md``) and ``book/running.md`` (Colab, JupyterHub, several GPUs).

Widgets cannot run without a kernel: a tqdm bar becomes its final line of text, an interactive
widget the image it showed (an ``ipywidgets.Image`` in its saved state) with a note that it is
live in JupyterLab.
"""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, repo_root

#: The richest run first: a demo or paper run replaces its smoke copy in the book.
RUN_PREFERENCE = ("paper", "demo", "smoke")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
LIVE_NOTE = ("*Interactive widget: it is live in JupyterLab (`make lab`, or open the notebook in Colab "
             "or JupyterHub and run it). Shown here: {what}.*")


@dataclass
class Page:
    notebook: str
    source: Path            # the executed copy, or the committed notebook when none exists
    profile: str | None     # None: not executed yet


def pick_pages(root: Path | None = None, profiles: tuple[str, ...] = RUN_PREFERENCE) -> list[Page]:
    """One page per notebook under ``notebooks/``: its executed copy under ``runs/`` of the first
    profile in ``profiles`` that has one (default: the richest run)."""
    root = root or repo_root()
    names = sorted(p.stem for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not names:
        raise ConfigError(f"no notebooks found: expected notebooks/NN_name.ipynb under {root}")
    pages = []
    for name in names:
        for profile in profiles:
            run = root / "runs" / name / profile / f"{name}.ipynb"
            if run.exists():
                pages.append(Page(name, run, profile))
                break
        else:
            pages.append(Page(name, root / "notebooks" / f"{name}.ipynb", None))
    return pages


def _subtree(state: dict[str, Any], model_id: str, seen: set[str] | None = None) -> list[dict[str, Any]]:
    """The widget model and every model it contains (``IPY_MODEL_<id>`` references), depth first."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id]
    out = [model]
    for v in model.get("state", {}).values():
        refs = v if isinstance(v, list) else [v]
        for r in refs:
            if isinstance(r, str) and r.startswith("IPY_MODEL_"):
                out += _subtree(state, r[len("IPY_MODEL_"):], seen)
    return out


def _progress_text(models: list[dict[str, Any]]) -> str | None:
    """A tqdm bar (HBox of HTML, FloatProgress, HTML) as its final text line; None otherwise."""
    bars = [m for m in models if m.get("model_name") == "FloatProgressModel"]
    if len(bars) != 1 or models[0].get("model_name") != "HBoxModel":
        return None
    s = bars[0]["state"]
    htmls = [re.sub(r"<[^>]+>|&nbsp;", " ", m["state"].get("value", "")).strip()
             for m in models if m.get("model_name") == "HTMLModel"]
    total = s.get("max") or 0
    pct = f"{100 * s.get('value', 0) / total:3.0f}%" if total else ""
    left, right = (htmls + ["", ""])[:2]
    return " ".join(x for x in (left, pct, "|", right) if x).strip()


def _images(models: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """(mime, bytes) of every ``ipywidgets.Image`` whose value was saved with the notebook."""
    out = []
    for m in models:
        if m.get("model_name") != "ImageModel":
            continue
        fmt = m.get("state", {}).get("format", "png").lower()
        for b in m.get("buffers", []):
            if b.get("path") == ["value"] and b.get("encoding", "base64") == "base64":
                out.append(("image/jpeg" if fmt in ("jpg", "jpeg") else f"image/{fmt}", base64.b64decode(b["data"])))
    return out


def static_widgets(nb) -> dict[str, int]:
    """Replace every widget view in ``nb`` (an nbformat notebook, changed in place) by static
    output; drop the saved widget state so the page loads no widget JavaScript. Returns counts."""
    import nbformat

    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    counts = {"progress": 0, "image": 0, "note_only": 0}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        new_outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_MIME not in data:
                new_outputs.append(out)
                continue
            models = _subtree(state, data[WIDGET_MIME].get("model_id", ""))
            text = _progress_text(models) if models else None
            if text is not None:
                counts["progress"] += 1
                new_outputs.append(nbformat.v4.new_output("stream", name="stderr", text=text + "\n"))
                continue
            images = _images(models)
            for mime, blob in images:
                payload = base64.b64encode(blob).decode() if mime != "image/svg+xml" else blob.decode()
                new_outputs.append(nbformat.v4.new_output("display_data", data={mime: payload}))
            what = ("the image it showed when the notebook ran" if images else
                    "nothing (the widget holds no saved image)")
            counts["image" if images else "note_only"] += 1
            new_outputs.append(nbformat.v4.new_output("display_data", data={
                "text/markdown": LIVE_NOTE.format(what=what), "text/plain": LIVE_NOTE.format(what=what)}))
        cell.outputs = new_outputs
    nb.metadata.pop("widgets", None)
    return counts


def _note_cell(page: Page, nb) -> str:
    num = page.notebook.split("_", 1)[0]
    if page.profile is None:
        return (f"```{{note}}\nNo executed copy of this notebook yet: the code is shown without outputs. "
                f"Run `python -m facelab run {num} --profile smoke` (or `make run`), then `make book`.\n```")
    pm = nb.metadata.get("papermill", {})
    when = (pm.get("end_time") or "")[:16].replace("T", " ")
    dur = pm.get("duration")
    bits = [f"profile `{page.profile}`"] + ([f"executed {when} UTC"] if when else []) + \
        ([f"in {dur:.0f} s"] if isinstance(dur, (int, float)) else [])
    return (f"```{{note}}\nThe outputs below are stored from `runs/{page.notebook}/{page.profile}/` "
            f"({', '.join(bits)}). Run it yourself: `python -m facelab run {num} --profile smoke`, "
            f"or open it in JupyterLab (`make lab`), Colab or JupyterHub ([how](../running.md)).\n```")


def _render_notebook(page: Page, dest: Path) -> dict[str, int]:
    import nbformat

    nb = nbformat.read(page.source, as_version=4)
    counts = static_widgets(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = offline_badges(cell.source)
    note = nbformat.v4.new_markdown_cell(_note_cell(page, nb))
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                     and c.source.lstrip().startswith("# ")), None)
    nb.cells.insert(0 if first_md is None else first_md + 1, note)
    nbformat.write(nb, dest)
    return counts


def offline_badges(markdown: str) -> str:
    """``[![Open in Colab](https://...svg)](link)`` -> ``[Open in Colab](link)``: a badge image
    comes from the network, which a reader of the book (or its CI) may not have."""
    return re.sub(r"\[!\[([^\]]*)\]\(https?://[^)]*\)\]\(([^)]*)\)", r"[\1](\2)", markdown)


def _landing(readme: str, pages: list[Page]) -> str:
    """The README, with badges as plain links and notebook names linked to their pages."""
    text = offline_badges(readme)
    for p in pages:
        text = text.replace(f"| `{p.notebook}` |", f"| [`{p.notebook}`](notebooks/{p.notebook}.ipynb) |")
    toc = ["", "```{toctree}", ":maxdepth: 1", ":caption: Notebooks", ""] + \
        [f"notebooks/{p.notebook}" for p in pages] + \
        ["```", "", "```{toctree}", ":maxdepth: 1", ":caption: Results and running", "", "results", "running", "```", ""]
    return text.rstrip() + "\n" + "\n".join(toc)


def prepare(root: Path | None = None, src: Path | None = None,
            profiles: tuple[str, ...] = RUN_PREFERENCE) -> tuple[Path, list[Page]]:
    """Write the book's Sphinx source tree (``build/book/src``); returns it and the pages."""
    from .runner import results_markdown

    root = root or repo_root()
    src = src or root / "build" / "book" / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(root / "book", src)          # conf.py, running.md, static assets
    pages = pick_pages(root, profiles)
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    for page in pages:
        _render_notebook(page, src / "notebooks" / f"{page.notebook}.ipynb")
    (src / "index.md").write_text(_landing((root / "README.md").read_text(), pages))
    # each notebook's numbers from the run its page shows, when that run kept its metrics.json
    kept = {p.notebook: p.source.parent / "metrics.json" for p in pages
            if p.profile and (p.source.parent / "metrics.json").exists()}
    results = results_markdown(root / "figures", [p.notebook for p in pages], kept)
    results = results.replace("# Results\n", "# Results\n\nThe same text as `figures/RESULTS.md`.\n", 1)
    (src / "results.md").write_text(results)
    return src, pages


def build(root: Path | None = None, out: Path | None = None, quiet: bool = True,
          profiles: tuple[str, ...] = RUN_PREFERENCE) -> Path:
    """Prepare the source and run sphinx-build; returns the site's ``index.html``. Raises
    :class:`ConfigError` with Sphinx's own message when the build fails."""
    root = root or repo_root()
    out = out or root / "build" / "book"
    src, _ = prepare(root, out / "src", profiles)
    html = out / "html"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-j", "1", str(src), str(html)]
    if quiet:
        cmd.insert(3, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"sphinx-build failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    if proc.stderr.strip():
        print(proc.stderr.strip(), file=sys.stderr)
    index = html / "index.html"
    if not index.exists():
        raise ConfigError(f"sphinx-build wrote no {index}")
    return index


def main_build(root: Path | None = None, profiles: tuple[str, ...] = RUN_PREFERENCE) -> int:
    bad = sorted(set(profiles) - set(RUN_PREFERENCE))
    if bad:
        raise ConfigError(f"unknown profile {', '.join(bad)}: expected some of {', '.join(RUN_PREFERENCE)}")
    t0 = time.time()
    pages = pick_pages(root, profiles)
    index = build(root, profiles=profiles)
    print(f"book: {len(pages)} notebook pages (" +
          ", ".join(f"{p.notebook[:2]}: {p.profile or 'not executed'}" for p in pages) +
          f") in {time.time() - t0:.0f} s\n  open {index}")
    return 0
