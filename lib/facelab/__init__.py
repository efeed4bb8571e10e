"""facelab: reproducible notebooks for facial expression analysis and face avatars.

Layers (imports point downwards only)::

    notebooks/NN_*.ipynb              one paper each
    facelab.widgets                   ipywidgets front-ends (callbacks are plain functions)
    facelab.train / metrics / viz     training loop, metrics, figures
    facelab.nn                        shared blocks (selective scan, backbones, diffusion helpers)
    facelab.data / synth / faces      real-dataset readers, synthetic face engine, face tools
    facelab.config / assets / mesh    profiles, seeds, devices, paths; package-shipped assets

Submodules are imported on demand so ``import facelab`` stays light.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"config", "assets", "mesh", "synth", "data", "faces", "nn", "train", "metrics",
               "viz", "widgets", "runner", "cache"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"facelab.{name}")
    raise AttributeError(f"module 'facelab' has no attribute {name!r}")
