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
