"""The one atomic write (runfiles.replacing) and the modes of the files it leaves."""

import os
import stat

import pytest

from mosaic import runfiles
from mosaic.experiment import load_experiment
from mosaic.results.database import build
from tests.fakes import Experiment


def test_replacing_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), runfiles.replacing(target) as tmp:
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left behind


def test_write_atomic_replaces(tmp_path):
    target = tmp_path / "out.json"
    runfiles.write_json(target, {"a": 1})
    runfiles.write_json(target, {"a": 2})
    assert runfiles.read_json(target) == {"a": 2} and os.listdir(tmp_path) == ["out.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_database_follows_the_umask(tmp_path, umask, mode):
    exp = Experiment(tmp_path)
    previous = os.umask(umask)
    try:
        build(load_experiment(exp.ini), exp.db)
        runfiles.write_atomic(tmp_path / "note.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(exp.db.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "note.txt").stat().st_mode) == mode
