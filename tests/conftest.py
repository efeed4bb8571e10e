"""Shared fixtures."""
from __future__ import annotations

import os

import pytest

from facelab.config import torch_threads

# tests/browser_lab.py is a helper module, not a test file: its asserts get pytest's messages too.
pytest.register_assert_rewrite("browser_lab")


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread and do not fight other jobs for the cores.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    with torch_threads(1):
        yield


@pytest.fixture
def learning_seed() -> int:
    """The seed of a test marked ``learning`` (a model must learn): 0, or ``FACELAB_TEST_SEED``.

    Thresholds of learning tests are set from runs over seeds 0-4 and ATEN_CPU_CAPABILITY
    default / avx2 / avx512 (``scripts/learning_sweep.sh``); each test's comment gives the range."""
    return int(os.environ.get("FACELAB_TEST_SEED", "0"))


FER2013_FOLDERS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@pytest.fixture
def write_noise_fer2013():
    """A writer of tiny FER2013 splits in the official layout (``root/fer2013/<split>/<class>/*.jpg``):
    ``per_class`` 48 px images of uniform noise per class, drawn from ``default_rng(seed)``, named as
    FER2013's are (``Training_*`` / ``PublicTest_*``). For tests of the code around a reader, not of
    learning (the images carry no class signal)."""
    import numpy as np
    from PIL import Image

    def write(root, split: str = "publictest", per_class: int = 2, seed: int = 0):
        rng = np.random.default_rng(seed)
        prefix = {"train": "Training", "publictest": "PublicTest"}.get(split, split)
        for k, folder in enumerate(FER2013_FOLDERS):
            (root / "fer2013" / split / folder).mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 255, (48, 48), dtype=np.uint8)
                Image.fromarray(img).save(root / "fer2013" / split / folder / f"{prefix}_{k}{i}.jpg")
        return root
    return write
