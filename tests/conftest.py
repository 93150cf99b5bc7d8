"""Shared fixtures (the helpers they use are in tests/fakes.py)."""

import os

import pytest

from tests.fakes import Experiment, small_settings

os.environ.setdefault("MOSAIC_WARM_IDLE", "20")  # the tests' warm-start servers do not linger after them


@pytest.fixture
def small_experiment(tmp_path):
    """4 runs (funnel and brick, widths 2-3), 2 epochs."""
    return Experiment(tmp_path / "exp", small_settings())
