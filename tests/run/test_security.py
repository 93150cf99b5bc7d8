"""What a shared or copied folder must not let in: code in checkpoints, swapped GPU locks, SQL in arguments."""

import os
import pickle
import sqlite3
import stat

import pytest
import torch

from mosaic.errors import MosaicError, UsageError
from mosaic.run import devices
from mosaic.run.training import train_run
from tests.run.test_training import TOY_DATA, make_experiment, quiet, run_folder, toy


class Payload:
    """Unpickling this runs os.system: what a planted checkpoint would do under weights_only=False."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------- checkpoints are loaded as weights only


def test_checkpoint_and_model_load_as_weights_only(tmp_path):
    experiment = toy(tmp_path, epochs=4, process="checkpoint_every = 2\n")
    run = experiment.runs[0]
    folder = run_folder(experiment, run)

    def stop_after_checkpoint(line):
        if line.startswith("epoch 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(experiment, run, log=stop_after_checkpoint)
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)  # would raise on any other object
    assert checkpoint["epoch"] == 2 and checkpoint["optimizer"]["state"]
    lines = []
    train_run(experiment, run, log=lines.append)
    assert "continuing from the checkpoint at epoch 2" in lines
    model = torch.load(folder / "model.pt", weights_only=True)
    assert model["epoch"] == 4 and model["models"][0]


def test_a_planted_checkpoint_runs_no_code(tmp_path, capfd):
    experiment = toy(tmp_path, epochs=2)
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    with open(folder / "checkpoint.pt", "wb") as handle:
        pickle.dump({"format": 2, "run_hash": run.run_hash, "payload": Payload(marker)}, handle, protocol=2)
    lines = []
    train_run(experiment, run, log=lines.append)
    assert not marker.exists()
    assert not any(line.startswith("continuing") for line in lines)  # trained from scratch
    assert "checkpoint.pt: not used" in capfd.readouterr().err


def test_the_user_load_model_stays_the_users(tmp_path):
    """A class's own load_model decides how it loads its own files (it may need weights_only=False)."""
    source = """
    import torch

    class Own(torch.nn.Module):
        def __init__(self, input_size):
            super().__init__()
            self.lin = torch.nn.Linear(input_size, 1)

        def forward(self, x):
            return self.lin(x)

        def save_model(self, path):
            torch.save(self, path + ".pt")  # the whole object, as the original tutorial did
    """
    section = "\n[model]\ntype = model\nclass = Own\npath_to_class = own.py\n"
    experiment = make_experiment(tmp_path, TOY_DATA + section, files={"own.py": source}, epochs=2)
    train_run(experiment, experiment.runs[0], log=quiet)
    saved = run_folder(experiment, experiment.runs[0]) / "model_0_Own.pt"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(saved, weights_only=True)
    assert torch.load(saved, weights_only=False).lin.in_features == 3


# ---------------------------------------------------------------- GPU locks


def test_default_gpu_lock_folder_is_private_to_the_user(tmp_path, monkeypatch):
    monkeypatch.delenv("MOSAIC_GPU_LOCK_DIR", raising=False)
    assert devices.default_lock_dir() == f"/tmp/mosaic-gpu-locks-{os.getuid()}"
    folder = tmp_path / "locks"
    old = os.umask(0o022)
    try:
        device, handle = devices.acquire_slot(["cuda:0"], lock_dir=str(folder), timeout=0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "cuda_0.lock").stat().st_mode) & 0o002 == 0  # no world write
    handle.close()


def test_world_writable_gpu_lock_folder_is_refused(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    folder.chmod(0o1777)
    with pytest.raises(MosaicError, match="writable by everyone"):
        devices.acquire_slot(["cuda:0"], lock_dir=str(folder), timeout=0)


def test_waiting_for_a_gpu_times_out_with_a_clear_message(tmp_path, monkeypatch):
    folder = str(tmp_path / "locks")
    _, held = devices.acquire_slot(["cuda:0"], lock_dir=folder, timeout=0)
    monkeypatch.setenv("MOSAIC_GPU_WAIT_S", "0.2")
    with pytest.raises(devices.GpuWaitTimeout) as caught:
        devices.acquire_slot(["cuda:0"], lock_dir=folder, poll=0.02)
    message = str(caught.value)
    assert "no free device among cuda:0 after waiting 0.2 s" in message and folder in message
    assert "\n" not in message
    monkeypatch.setenv("MOSAIC_GPU_WAIT_S", "soon")
    with pytest.raises(MosaicError, match="MOSAIC_GPU_WAIT_S: not a number"):
        devices.acquire_slot(["cuda:0"], lock_dir=folder, poll=0.02)
    held.close()


# ---------------------------------------------------------------- no SQL from user strings

INJECTIONS = [
    "3' OR '1'='1",
    "3; DROP TABLE runs; --",
    "x') OR 1=1 --",
    '" OR ""="',
]


@pytest.fixture
def database(tmp_path):
    from mosaic.experiment import load_experiment
    from mosaic.results.database import build
    from tests.fakes import Experiment

    experiment = Experiment(tmp_path / "exp", {("mlp_funnel", "width"): "2", ("mlp_brick", "width"): "2",
                                               ("MONITOR", "multiplicity"): 1})
    # a parameter whose name and value are SQL: stored as data, like any other
    experiment.ini.write_text(experiment.ini.read_text().replace(
        "[mlp_brick]\n", "[mlp_brick]\nx');DROP_TABLE_params;-- = \"'); DROP TABLE runs; --\"\n"))
    build(load_experiment(experiment.ini), str(experiment.db))
    return experiment


def tables(db):
    with sqlite3.connect(db) as connection:
        return sorted(row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"))


@pytest.mark.parametrize("text", INJECTIONS)
def test_selectors_are_never_sql(database, text):
    from mosaic.results.database import select_run_ids

    before = tables(database.db)
    assert select_run_ids(str(database.db), param=("width", text)) == []
    assert select_run_ids(str(database.db), param=(text, "2")) == []
    with pytest.raises(UsageError, match="unknown status"):  # checked against the known statuses, never queried
        select_run_ids(str(database.db), status=text)
    assert select_run_ids(str(database.db), param=("width", "2")) == [1, 2]
    assert tables(database.db) == before


def test_sql_in_ini_keys_and_values_is_stored_as_text(database):
    import mosaic
    from mosaic.results.database import select_run_ids

    runs = mosaic.load(database.db).runs
    column = "mlp.x');DROP_TABLE_params;--"
    assert runs.loc[runs["mlp.class"] == "mlp_brick", column].tolist() == ["'); DROP TABLE runs; --"]
    assert select_run_ids(str(database.db), param=("x');DROP_TABLE_params;--", "'); DROP TABLE runs; --")) == [2]
    assert {"losses", "meta", "params", "runs"} <= set(tables(database.db))


def test_commands_pass_selectors_as_data(database):
    for text in INJECTIONS:
        result = database.command("mosaic_plotloss", "database.db", "out.pdf", "-param", text, text)
        assert result.returncode != 0 and "no runs selected" in result.stderr
        result = database.command("mosaic_metaplot", "database.db", "out.png", text, "test_loss")
        assert result.returncode != 0 and "no finished run with dataset" in result.stderr
    assert {"losses", "meta", "params", "runs"} <= set(tables(database.db))
