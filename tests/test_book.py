"""facelab.book without Sphinx: which run a page shows, widgets made static, badges offline;
and the results page's headline table (facelab.runner.results_markdown)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import nbformat
import pytest

from facelab import book, runner
from facelab.results import Report

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")


def _tree(tmp_path: Path) -> Path:
    for name in ("00_a", "01_b", "02_c"):
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / f"{name}.ipynb")
    for name, prof in (("00_a", "smoke"), ("01_b", "smoke"), ("01_b", "demo")):
        d = tmp_path / "runs" / name / prof
        d.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), d / f"{name}.ipynb")
    return tmp_path


def test_pages_prefer_demo_over_smoke_and_keep_unexecuted_notebooks(tmp_path):
    pages = {p.notebook: p for p in book.pick_pages(_tree(tmp_path))}
    assert pages["00_a"].profile == "smoke"
    assert pages["01_b"].profile == "demo"
    assert pages["02_c"].profile is None and pages["02_c"].source.parent.name == "notebooks"
    assert {p.notebook: p.profile for p in book.pick_pages(tmp_path, ("smoke",))}["01_b"] == "smoke"


def test_no_notebooks_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="expected notebooks/NN_name.ipynb"):
        book.pick_pages(tmp_path)


def _widget_nb() -> nbformat.NotebookNode:
    def m(name, **state):
        return {"model_name": name, "state": state}
    state = {
        "bar": m("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]),
        "l": m("HTMLModel", value="epochs"), "p": m("FloatProgressModel", value=3, max=3),
        "r": m("HTMLModel", value=" 3/3 [00:01&lt;00:00]"),
        "ui": m("VBoxModel", children=["IPY_MODEL_s", "IPY_MODEL_img"]), "s": m("FloatSliderModel", value=0.5),
        "img": {**m("ImageModel", format="png"), "buffers": [
            {"path": ["value"], "encoding": "base64", "data": base64.b64encode(PNG).decode()}]},
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {book.WIDGET_STATE: {"state": state}}
    view = lambda mid: nbformat.v4.new_output("display_data", data={  # noqa: E731
        book.WIDGET_MIME: {"model_id": mid, "version_major": 2}, "text/plain": "widget"})
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[view("bar"), view("ui"), view("gone")])]
    return nb


def test_static_widgets_progress_as_text_images_kept_with_a_live_note():
    nb = _widget_nb()
    counts = book.static_widgets(nb)
    assert counts == {"progress": 1, "image": 1, "note_only": 1}
    outs = nb.cells[0].outputs
    assert outs[0]["output_type"] == "stream" and outs[0]["text"].startswith("epochs 100% | 3/3")
    assert base64.b64decode(outs[1]["data"]["image/png"]) == PNG
    assert "live in JupyterLab" in outs[2]["data"]["text/markdown"]
    assert "no saved image" in outs[3]["data"]["text/markdown"]
    assert all(book.WIDGET_MIME not in o.get("data", {}) for o in outs)
    assert "widgets" not in nb.metadata


def test_badges_become_text_links():
    md = "| x | [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab/x.ipynb) |"
    assert book.offline_badges(md) == "| x | [Open in Colab](https://colab/x.ipynb) |"


def _metrics(figures: Path, nb: str, **kw) -> None:  # noqa: D103
    (figures / nb).mkdir(parents=True)
    (figures / nb / "metrics.json").write_text(json.dumps({"notebook": nb, "profile": "smoke", "dataset": "synth",
                                                           "device": "cpu", "run_wall_s": 12.0, "ok": True, **kw}))


def test_results_headline_declared_else_first_with_paper_else_first(tmp_path):
    r = Report("01_b", profile="smoke", dataset="synth", out_dir=tmp_path / "01_b", device="cpu")
    r.metric("loss", 0.5)
    r.metric("acc", 0.7, paper=0.9, paper_dataset="RAF-DB", headline=True)
    with pytest.raises(ValueError, match="headline already set"):
        r.metric("f1", 0.6, headline=True)
    r.save()
    _metrics(tmp_path, "02_c", metrics={"steps": 3, "auroc": 0.61}, paper={"auroc": 0.8})
    _metrics(tmp_path, "03_d", metrics={"steps": 3}, checks={"learned": False})
    md = runner.results_markdown(tmp_path, ["00_a", "01_b", "02_c", "03_d"])
    head = md.split("## Headline per notebook")[1].split("\n## ")[0]
    rows = [ln for ln in head.splitlines() if ln.startswith("| 0")]
    assert rows[0].startswith("| 00_a | - |") and "not run yet" in rows[0]
    assert rows[1].startswith("| 01_b | acc | 0.7 | 0.9 | RAF-DB | synth | smoke | cpu |")
    assert rows[2].startswith("| 02_c | auroc | 0.61 | 0.8 |")
    assert rows[3].startswith("| 03_d | steps | 3 | - |") and "checks failed: learned" in rows[3]
    # then the full list per notebook, the headline in bold
    assert "## 01_b" in md and "| **acc** | 0.7 | 0.9 | RAF-DB |" in md and "| loss | 0.5 | - | - |" in md
    assert md.index("## 01_b") > md.index("| 03_d |")


def test_results_take_a_kept_metrics_json_over_figures(tmp_path):
    _metrics(tmp_path / "figures", "01_b", metrics={"acc": 0.3}, profile="smoke")
    kept = tmp_path / "runs" / "01_b" / "demo"
    _metrics(kept.parent, "demo", metrics={"acc": 0.8}, profile="demo", notebook="01_b")
    md = runner.results_markdown(tmp_path / "figures", ["01_b"], {"01_b": kept / "metrics.json"})
    assert "| 01_b | acc | 0.8 | - | - | synth | demo |" in md
