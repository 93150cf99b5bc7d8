"""Fixtures shared by the run layer's tests."""

import pytest

from tests.fakes import cache_at


@pytest.fixture
def use_cache(tmp_path, monkeypatch):
    """setup(size): the cache at tmp_path/cache.db with that limit, for the test (setup() done: 1 MB)."""
    setup = cache_at(monkeypatch, tmp_path / "cache.db")
    setup()
    return setup
