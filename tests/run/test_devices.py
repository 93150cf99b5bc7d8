"""Tests for mosaic.run.devices' choice of a device (select_device, visible_gpus; its lock files are in
test_gpu_locks.py) and the device plumbing of the training path. No GPU is needed: the devices are names in
lists, the locks are real.
"""

import json
import os
import re
import types
from pathlib import Path

import pytest
import torch

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.run import devices
from mosaic.run.batches import batch_source, to_device
from mosaic.run.devices import acquire_slot, select_device, visible_gpus
from mosaic.run.training import Pipeline, train_run
from tests.fakes import Experiment, gpu_is_free, small_settings

# ---------------------------------------------------------------------------------------------------------
# select_device and visible_gpus


def monitor(need_gpu=True, gpu_available=("cuda:1",), runs_per_gpu=1):
    return types.SimpleNamespace(need_gpu=need_gpu, gpu_available=gpu_available, runs_per_gpu=runs_per_gpu)


def unset(monkeypatch, name):
    """Remove `name` from the environment; what the code under test sets there is undone too."""
    monkeypatch.setenv(name, "")
    monkeypatch.delenv(name)


@pytest.fixture
def local(tmp_path, monkeypatch):
    """A local (not SLURM) job with its own lock folder and no inherited CUDA_VISIBLE_DEVICES."""
    monkeypatch.setenv("MOSAIC_GPU_LOCK_DIR", str(tmp_path / "locks"))
    unset(monkeypatch, "SLURM_JOB_ID")
    unset(monkeypatch, "CUDA_VISIBLE_DEVICES")
    return tmp_path / "locks"


def test_select_device_takes_a_listed_gpu_and_makes_it_the_only_visible_one(local):
    device, handle, name = select_device(monitor(), "run 1 (p)")
    assert (device, name) == ("cuda:0", "cuda:1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert not gpu_is_free("cuda:1", local)  # the handle holds the lock
    handle.close()
    assert gpu_is_free("cuda:1", local)


def test_select_device_maps_into_an_inherited_cuda_visible_devices(local, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    device, handle, name = select_device(monitor(), "run 1 (p)")
    assert (device, name) == ("cuda:0", "cuda:1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    handle.close()


def test_select_device_skips_a_busy_gpu(local):
    _, held = acquire_slot(["cuda:0"], lock_dir=local, timeout=1)
    device, handle, name = select_device(monitor(gpu_available=("cuda:0", "cuda:1")), "run 1 (p)")
    assert (device, name, os.environ["CUDA_VISIBLE_DEVICES"]) == ("cuda:0", "cuda:1", "1")
    handle.close()
    held.close()


def test_select_device_without_need_gpu_is_cpu(local, monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: pytest.fail("no GPU lookup for a CPU run"))
    assert select_device(monitor(need_gpu=False), "run 1 (p)") == ("cpu", None, "cpu")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not local.exists()


def test_select_device_on_slurm_spreads_a_group_over_the_jobs_gpus(local, monkeypatch):
    """A SLURM job running a group of 2 runs got 2 GPUs: one run on each, not both on the first."""
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    first = select_device(monitor(gpu_available=None), "run 1 (p)")
    assert first[0::2] == ("cuda:0", "cuda:2") and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the second run's process sees the job's GPUs
    second = select_device(monitor(gpu_available=None), "run 2 (p)")
    assert second[0::2] == ("cuda:0", "cuda:3") and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert sorted(os.listdir(local / "slurm-123")) == ["2.lock", "3.lock"]  # this SLURM job's own locks
    first[1].close()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    third = select_device(monitor(gpu_available=None), "run 3 (p)")
    assert third[2] == "cuda:2"
    second[1].close()
    third[1].close()


def test_select_device_without_any_gpu_names_the_run(local, monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: [])
    message = r"^run 7 \(funnel\) needs a GPU \(need_gpu = True\) but no GPU is visible on this machine$"
    with pytest.raises(MosaicError, match=message):
        select_device(monitor(gpu_available=None), "run 7 (funnel)")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_select_device_uses_the_visible_gpus_when_none_are_listed(local, monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: ["cuda:0", "cuda:1"])
    _, held = acquire_slot(["cuda:0"], lock_dir=local, timeout=1)
    device, handle, name = select_device(monitor(gpu_available=None), "run 1 (p)")
    assert (device, name, os.environ["CUDA_VISIBLE_DEVICES"]) == ("cuda:0", "cuda:1", "1")
    handle.close()
    held.close()


def test_select_device_rejects_a_bad_name_before_locking(local):
    with pytest.raises(MosaicError, match=r"gpu_available: 'gpu1' is not of the form cuda:N"):
        select_device(monitor(gpu_available=("cuda:0", "gpu1")), "run 1 (p)")
    assert not local.exists() or gpu_is_free("cuda:0", local)


@pytest.mark.parametrize("inherited, expected", [
    (None, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
    ("2,3", ["cuda:0", "cuda:1"]),  # torch's numbering of the GPUs this process may use
    ("5,-1,6", ["cuda:0"]),  # CUDA ignores the entries after an invalid one
    ("", []),  # all hidden
])
def test_visible_gpus_follows_nvidia_smi_and_cuda_visible_devices(monkeypatch, inherited, expected):
    smi = types.SimpleNamespace(stdout="0\n1\n2\n3\n")  # a machine with 4 GPUs
    monkeypatch.setattr(devices.subprocess, "run", lambda *args, **kwargs: smi)
    unset(monkeypatch, "CUDA_VISIBLE_DEVICES")
    if inherited is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", inherited)
    assert visible_gpus() == expected


def test_visible_gpus_without_nvidia_smi_is_empty(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(devices.subprocess, "run", missing)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert visible_gpus() == []


# ---------------------------------------------------------------------------------------------------------
# The training path: device names, moving batches and modules


def tutorial_experiment(folder, epochs=1):
    exp = Experiment(folder, small_settings(epochs=epochs))
    return load_experiment(str(exp.ini))


def test_train_run_records_the_device_name(tmp_path):
    experiment = tutorial_experiment(tmp_path / "exp")
    run = experiment.runs[0]
    result = train_run(experiment, run, device="cpu", device_name="cuda:7", log=lambda line: None)
    assert result["device"] == "cuda:7"
    folder = Path(runfiles.run_dir(experiment.process.run_files_path, run.run_hash))
    assert json.loads((folder / runfiles.RESULT).read_text())["device"] == "cuda:7"
    other = train_run(experiment, experiment.runs[1], device="cpu", log=lambda line: None)
    assert other["device"] == "cpu"  # without a name: the torch device


def test_to_device_moves_nested_batches():
    meta = torch.device("meta")
    batch = [torch.ones(2), (torch.zeros(3, 1), [torch.arange(4)]), "label", 3]
    moved = to_device(batch, meta)
    assert type(moved) is list and type(moved[1]) is tuple and type(moved[1][1]) is list
    assert [moved[0].device, moved[1][0].device, moved[1][1][0].device] == [meta] * 3
    assert moved[1][0].shape == (3, 1) and moved[1][1][0].dtype == torch.int64
    assert moved[2:] == ["label", 3]
    assert batch[0].device.type == "cpu"  # the original is left where it was
    same = to_device(batch, "cpu")
    assert same[0] is batch[0]  # already there: not copied


@pytest.mark.parametrize("shuffle", [False, True])  # cached once, or moved batch by batch
def test_batch_source_gives_batches_on_the_device(shuffle):
    data = torch.utils.data.TensorDataset(torch.randn(10, 2), torch.randn(10))
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=shuffle)
    batches = batch_source(loader, torch.device("meta"))
    for _ in range(2):  # two epochs
        epoch = list(batches())
        assert len(epoch) == 3
        assert all(x.device.type == "meta" and y.device.type == "meta" for x, y in epoch)


def test_pipeline_moves_its_models_to_the_device(tmp_path):
    experiment = tutorial_experiment(tmp_path / "exp")
    pipeline = Pipeline(experiment.runs[0], experiment, torch.device("meta"))
    assert pipeline.parameters and all(p.device.type == "meta" for p in pipeline.parameters)
    assert pipeline.run_info["device"] == torch.device("meta")


# ---------------------------------------------------------------------------------------------------------
# End to end: a GPU experiment on a machine without one


@pytest.mark.slow
@pytest.mark.skipif(bool(visible_gpus()), reason="this machine has a GPU")
def test_need_gpu_without_a_gpu_fails_each_run_before_training(tmp_path):
    settings = {("MONITOR", "need_gpu"): "True", ("MONITOR", "gpu_available"): "None", **small_settings()}
    exp = Experiment(tmp_path / "exp", settings)
    result = exp.run(check=1)
    out = result.stdout
    assert "mosaic: 4 of 4 runs failed: 1, 2, 3, 4" in out, out
    for run_id in range(1, 5):  # one line per run, naming it
        assert re.search(
            rf"^ \[run failed\] {run_id}: \S*MosaicError: run {run_id} \(dataset_OR\S* \| mlp_\w+\(4,\d\)\) "
            r"needs a GPU \(need_gpu = True\) but no GPU is visible on this machine$", out, re.M), out
    rows = exp.query("SELECT run_id, status, error FROM runs ORDER BY run_id")
    assert [r[:2] for r in rows] == [(i, "error") for i in range(1, 5)]
    for run_id, _, error in rows:
        assert f"run {run_id} (" in error and "needs a GPU" in error
    assert exp.query("SELECT COUNT(*) FROM losses") == [(0,)]
    assert not list(exp.runs_dir().glob("*/" + runfiles.RESULT))
    status = exp.command("mosaic_status", check=0).stdout
    errors = status.split("\nError\n")[1].split("\nRunning")[0]
    assert re.findall(r"^\t\[(\d)\] ", errors, re.M) == ["1", "2", "3", "4"]
    last_lines = re.findall(r"MosaicError: run \d \(.*\) needs a GPU \(need_gpu = True\) but no GPU", errors)
    assert len(last_lines) == 4


# ---------------------------------------------------------------------------------------------------------
# [MONITOR] runs_per_gpu: K slots per device


def test_select_device_shares_a_gpu_between_runs_per_gpu_runs(local):
    shared = monitor(gpu_available=("cuda:0",), runs_per_gpu=2)
    first = select_device(shared, "run 1 (p)")
    second = select_device(shared, "run 2 (p)")
    assert first[::2] == second[::2] == ("cuda:0", "cuda:0")
    with pytest.raises(TimeoutError):
        acquire_slot(["cuda:0"], lock_dir=local, poll=0.01, timeout=0.05, slots_per_device=2)
    first[1].close()
    second[1].close()


def test_runs_per_gpu_is_read_from_the_ini_and_multiplies_the_local_gpu_slots(tmp_path):
    from mosaic.ops.workflow_jobs import local_gpu_count

    experiment = Experiment(tmp_path / "exp", {**small_settings(), ("MONITOR", "gpu_available"): "cuda:0, cuda:1"})
    assert load_experiment(str(experiment.ini)).monitor.runs_per_gpu == 1
    experiment.edit("MONITOR", "runs_per_gpu", 4)
    loaded = load_experiment(str(experiment.ini))
    assert loaded.monitor.runs_per_gpu == 4
    assert ("runs_per_gpu", 4) not in loaded.monitor.extra
    assert local_gpu_count(loaded) == 8
    experiment.edit("MONITOR", "runs_per_gpu", 0)
    with pytest.raises(MosaicError, match="runs_per_gpu.*>= 1"):
        load_experiment(str(experiment.ini))
