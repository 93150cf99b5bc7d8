"""The fixtures the tests of mosaic/results share (their data: fake_database.py)."""

import pytest

from tests.results.fake_database import build_database


@pytest.fixture
def db_path(tmp_path):
    """2 datasets × 2 models × 3 widths × 4 replicates = 48 runs (fake_database.py); run 1 failed, run 2
    never ran, run 3 diverged."""
    return build_database(tmp_path)
