"""Tests for mosaic.run.devices (one GPU per local job through flock'ed lock files) and the device plumbing
of the training path. No GPU is needed: the devices are names in lists, the locks are real.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
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
from tests.fakes import Experiment, small_settings

ROOT = Path(__file__).resolve().parents[2]
TWO = ["cuda:0", "cuda:1"]


def is_free(device, lock_dir):
    """Whether `device` can be taken now (taken and given back at once)."""
    try:
        _, handle = acquire_slot([device], lock_dir=lock_dir, poll=0.01, timeout=0)
    except TimeoutError:
        return False
    handle.close()
    return True


def python(code, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# acquire_slot in one process: each open handle is its own lock


def test_holders_get_different_devices_and_a_waiter_gets_the_released_one(tmp_path):
    first, h1 = acquire_slot(TWO, lock_dir=tmp_path, poll=0.01, timeout=1)
    second, h2 = acquire_slot(TWO, lock_dir=tmp_path, poll=0.01, timeout=1)
    assert (first, second) == ("cuda:0", "cuda:1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cuda_0.lock", "cuda_1.lock"]

    got = {}

    def waiter():
        started = time.monotonic()
        got["device"], got["handle"] = acquire_slot(TWO, lock_dir=tmp_path, poll=0.01, timeout=10)
        got["waited"] = time.monotonic() - started

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive() and not got  # both devices are held: it waits
    released = time.monotonic()
    h2.close()  # cuda:1 is free again; cuda:0 stays held
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert got["device"] == "cuda:1"
    assert got["waited"] >= 0.3
    assert time.monotonic() - released < 1.0  # taken as soon as released (polls every 10 ms)
    assert not is_free("cuda:1", tmp_path) and not is_free("cuda:0", tmp_path)
    got["handle"].close()
    h1.close()
    assert is_free("cuda:0", tmp_path) and is_free("cuda:1", tmp_path)


def test_timeout_names_the_devices(tmp_path):
    held = [acquire_slot(TWO, lock_dir=tmp_path, timeout=1)[1] for _ in TWO]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no free device among cuda:0, cuda:1"):
        acquire_slot(TWO, lock_dir=tmp_path, poll=0.02, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    for handle in held:
        handle.close()


def test_lock_dir_is_created_and_read_from_the_environment_at_each_call(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_GPU_LOCK_DIR", str(tmp_path / "a" / "locks"))
    device, handle = acquire_slot(["cuda:3"], timeout=1)
    assert device == "cuda:3" and (tmp_path / "a" / "locks" / "cuda_3.lock").exists()
    monkeypatch.setenv("MOSAIC_GPU_LOCK_DIR", str(tmp_path / "b"))
    assert acquire_slot(["cuda:3"], timeout=0)[0] == "cuda:3"  # another folder: another lock
    handle.close()
    monkeypatch.delenv("MOSAIC_GPU_LOCK_DIR")
    assert devices.default_lock_dir() == devices.DEFAULT_LOCK_DIR


# ---------------------------------------------------------------------------------------------------------
# Across processes

HOLDER = """
    import os, sys, time
    from mosaic.run.devices import acquire_slot
    lock_dir, log, hold, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    time.sleep(max(0.0, go - time.monotonic()))
    def note(event, device):
        with open(log, "a") as f:
            f.write(f"{event} {device} {time.monotonic()!r} {os.getpid()}\\n")
    note("want", "-")
    device, handle = acquire_slot(["cuda:0", "cuda:1"], lock_dir=lock_dir, poll=0.01, timeout=60)
    note("start", device)
    time.sleep(hold)
    note("end", device)  # before the release: a device's next start comes after this
    handle.close()
"""


def test_processes_share_two_devices_without_overlap_and_in_parallel(tmp_path):
    n, hold = 6, 1.0  # long enough that the processes contend even on a loaded machine
    log = tmp_path / "log.txt"
    go = time.monotonic() + 1.0  # all start together, once Python is up (CLOCK_MONOTONIC is system-wide)
    processes = [python(HOLDER, tmp_path / "locks", log, hold, go) for _ in range(n)]
    for process in processes:
        assert process.wait(timeout=30) == 0

    # per process (O_APPEND writes of one short line each): want, start, end
    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 3 * n
    by_pid = {}
    for event, device, t, pid in events:
        by_pid.setdefault(pid, {})[event] = (float(t), device)
    assert len(by_pid) == n
    intervals = {device: [] for device in TWO}
    for times in by_pid.values():
        (want, _), (start, device), (end, same) = times["want"], times["start"], times["end"]
        assert device == same and want <= start and end - start >= hold * 0.9
        intervals[device].append((start, end))
    for device, uses in intervals.items():
        uses.sort()
        # never held by two processes at once: each use ends before the next begins
        for (_, e1), (s2, _) in zip(uses, uses[1:]):
            assert e1 <= s2, f"{device} held twice: {uses}"

    # Both devices were used, and at once: a process that found one device held took the other.
    # (Ordering only, no durations: the machine may be slow.)
    assert all(intervals.values()), f"a device was never used: {intervals}"
    assert any(s0 < e1 and s1 < e0 for s0, e0 in intervals[TWO[0]] for s1, e1 in intervals[TWO[1]]), intervals


def test_kill_9_releases_the_device(tmp_path):
    locks = tmp_path / "locks"
    holder = python(
        """
        import sys, time
        from mosaic.run.devices import acquire_slot
        device, handle = acquire_slot(["cuda:0"], lock_dir=sys.argv[1], timeout=10)
        print(device, flush=True)
        time.sleep(60)
        """,
        locks, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "cuda:0"
        with pytest.raises(TimeoutError):
            acquire_slot(["cuda:0"], lock_dir=locks, poll=0.01, timeout=0.1)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        holder.stdout.close()
    assert holder.returncode == -signal.SIGKILL
    started = time.monotonic()
    device, handle = acquire_slot(["cuda:0"], lock_dir=locks, poll=0.01, timeout=0.5)
    assert device == "cuda:0" and time.monotonic() - started < 0.5
    handle.close()


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
    assert not is_free("cuda:1", local)  # the handle holds the lock
    handle.close()
    assert is_free("cuda:1", local)


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
    assert not local.exists() or is_free("cuda:0", local)


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
# [MONITOR] runs_per_gpu: K slots per device, runs spread over the devices before they share one


def test_slots_spread_runs_over_devices_before_sharing_one(tmp_path):
    held = [acquire_slot(TWO, lock_dir=tmp_path, poll=0.01, timeout=1, slots_per_device=2) for _ in range(4)]
    assert [device for device, _ in held] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    with pytest.raises(TimeoutError):  # 2 devices x 2 slots are taken
        acquire_slot(TWO, lock_dir=tmp_path, poll=0.01, timeout=0.05, slots_per_device=2)
    held[3][1].close()  # a run on cuda:1 ends: the next run goes there, to the less busy device
    device, handle = acquire_slot(TWO, lock_dir=tmp_path, poll=0.01, timeout=1, slots_per_device=2)
    assert device == "cuda:1"
    held[0][1].close()
    held[2][1].close()  # cuda:0 is now idle, cuda:1 has two runs: the next one takes cuda:0
    device, other = acquire_slot(TWO, lock_dir=tmp_path, poll=0.01, timeout=1, slots_per_device=2)
    assert device == "cuda:0"
    for h in (handle, other, held[1][1]):
        h.close()


def test_one_slot_per_device_keeps_the_lock_names_of_one_run_per_gpu(tmp_path):
    _, handle = acquire_slot(["cuda:0"], lock_dir=tmp_path, timeout=1, slots_per_device=3)
    assert [p.name for p in tmp_path.iterdir()] == ["cuda_0.lock"]
    _, second = acquire_slot(["cuda:0"], lock_dir=tmp_path, timeout=1, slots_per_device=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cuda_0.lock", "cuda_0.slot1.lock"]
    handle.close()
    second.close()


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
    from mosaic.ops.workflow_helpers import local_gpu_count

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
