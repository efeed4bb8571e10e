"""Shared fixtures."""
from __future__ import annotations

import pytest

from facelab.config import torch_threads


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread and do not fight other jobs for the cores.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    with torch_threads(1):
        yield
