"""Tests for mosaic.run.devices' GPU slots: one run per device (or runs_per_gpu) through flock'ed lock files in a
folder private to the user. No GPU is needed: the devices are names in lists, the locks are real."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mosaic.errors import MosaicError
from mosaic.run import devices
from mosaic.run.devices import acquire_slot
from tests.fakes import ROOT, gpu_is_free

TWO = ["cuda:0", "cuda:1"]


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
    assert not gpu_is_free("cuda:1", tmp_path) and not gpu_is_free("cuda:0", tmp_path)
    got["handle"].close()
    h1.close()
    assert gpu_is_free("cuda:0", tmp_path) and gpu_is_free("cuda:1", tmp_path)


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
# Slots: [MONITOR] runs_per_gpu runs per device, spread over the devices before they share one


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


# ---------------------------------------------------------------------------------------------------------
# The lock folder is the user's own


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
