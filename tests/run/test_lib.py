"""mosaic.lib: the original's cache helpers for class files that start with `from mosaic.lib import *`."""

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fakes import BIN, cache_bytes, cache_rows, cache_user_files, command_env

LEGACY = Path(__file__).resolve().parent / "legacy"


def test_star_import_gives_the_three_helpers():
    namespace = {}
    exec("from mosaic.lib import *", namespace)
    assert sorted(name for name in namespace if not name.startswith("__")) == [
        "download_file", "get_path_file", "save_path_file"]


def test_save_path_file_registers_once(tmp_path, use_cache, monkeypatch):
    from mosaic.lib import get_path_file, save_path_file

    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("mine")
    assert get_path_file("notes.txt") is False
    for _ in range(3):
        assert save_path_file("notes.txt") is True
    assert get_path_file("notes.txt") is True
    assert get_path_file(tmp_path / "notes.txt") is True
    assert cache_user_files() == [str(tmp_path / "notes.txt")]  # one row, not three
    assert cache_bytes() == 0  # a user's file takes none of the cache's room


def test_save_path_file_of_a_missing_file_warns_and_returns_false(tmp_path, use_cache, monkeypatch, capsys):
    from mosaic.lib import get_path_file, save_path_file

    monkeypatch.chdir(tmp_path)
    assert save_path_file("setup.py") is False
    assert "setup.py is not a file" in capsys.readouterr().err
    assert get_path_file("setup.py") is False
    assert cache_user_files() == []


def test_registered_files_are_never_evicted(tmp_path, use_cache):
    from mosaic.lib import download_file, save_path_file

    use_cache(150)
    sources = {}
    for name in "abc":
        sources[name] = tmp_path / f"source_{name}"
        sources[name].write_bytes(name.encode() * 100)
    mine = tmp_path / "mine.bin"
    mine.write_bytes(b"m" * 1000)
    save_path_file(mine)
    # a download written over a path the user registered stays the user's file
    download_file(sources["a"].as_uri(), tmp_path / "shared.bin")
    save_path_file(tmp_path / "shared.bin")
    download_file(sources["b"].as_uri(), tmp_path / "b.bin")
    download_file(sources["c"].as_uri(), tmp_path / "c.bin")
    assert mine.read_bytes() == b"m" * 1000
    assert (tmp_path / "shared.bin").read_bytes() == b"a" * 100
    assert not (tmp_path / "b.bin").exists()  # the cache's own files are still evicted, LRU first
    assert (tmp_path / "c.bin").exists()


def test_download_file_through_lib_is_the_cache(tmp_path, use_cache):
    from mosaic.lib import download_file, get_path_file

    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 10)
    path = download_file(source.as_uri(), tmp_path / "data" / "x.bin")
    assert path == str(tmp_path / "data" / "x.bin")
    assert get_path_file(path) is True
    assert [entry["path"] for entry in cache_rows()] == [path]


SEED_INI = """\
[PROCESS]
lr = 1e-2
epochs = 2
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = .runs

[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 2
multiplicity = 1
cache_database_path = ./cache.db
cache_size = 1M

[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./mosaic/share/dataset.py
key = data_{class}
batch_size = 1
data_size = 20
train_prop = 0.8

[mlp_funnel]
type = mlp
class = mlp_funnel
path_to_class = ./mosaic/share/mlp.py
key = mlp_funnel
length = {2-3}
width = 3

[mlp_brick]
type = mlp
class = mlp_brick
path_to_class = ./mosaic/share/mlp.py
key = mlp_brick
length = 2
width = 3
"""


@pytest.mark.slow
def test_original_class_files_run_unchanged_with_the_seed_ini(tmp_path):
    """The original's layout: class files in ./mosaic/share of the project, run from its root."""
    import subprocess

    project = tmp_path / "project"
    share = project / "mosaic" / "share"
    share.mkdir(parents=True)
    for name in ("dataset.py", "mlp.py"):
        shutil.copy(LEGACY / name, share / name)
    (project / "config.ini").write_text(SEED_INI)
    (project / "notes.txt").write_text("registered by the dataset class")
    result = subprocess.run([str(BIN / "mosaic_run"), "config.ini", "database.db"], cwd=project,
                            capture_output=True, text=True, timeout=600, env=command_env())
    assert result.returncode == 0, result.stdout + result.stderr
    results = [json.loads(p.read_text()) for p in (project / ".runs").glob("*/result.json")]
    assert sorted(r["status"] for r in results) == ["done"] * 3
    for log in (project / ".runs").glob("*/train.log"):
        lines = log.read_text().splitlines()
        assert lines[1] == "False"  # get_path_file('no_such_file.txt')
        assert "setup.py is not a file; not registered" in lines[2]
        assert lines[4] == "True"  # get_path_file('notes.txt') after save_path_file('notes.txt')
    assert results[0]["versions"]["mosaic"] != "0+unknown"  # the real package, not ./mosaic of the project
    assert cache_user_files(project / "cache.db") == [str(project / "notes.txt")]
    assert os.path.exists(project / "notes.txt")
