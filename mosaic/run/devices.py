"""Giving each running job its own GPU slot: Snakemake counts GPUs but assigns none to a local job.

A device has [MONITOR] runs_per_gpu slots (default 1), one lock file each. A job takes a slot of the
least busy device of `gpu_available` whose lock file it can flock without waiting;
the kernel drops the lock when the process ends, even on kill -9, so a slot is never leaked.
"""

import os
import subprocess
import time

from mosaic.errors import MosaicError
from mosaic.runfiles import try_lock

DEFAULT_LOCK_DIR = f"/tmp/mosaic-gpu-locks-{os.getuid()}"  # one a user: nobody else can create or replace locks
DEFAULT_WAIT_S = 3600.0


class GpuWaitTimeout(MosaicError, TimeoutError):
    """No device of the list became free in time; the message names them and the lock folder."""


def default_lock_dir():
    """The folder of the lock files: MOSAIC_GPU_LOCK_DIR (read at each call), else DEFAULT_LOCK_DIR.

    A team sharing GPUs sets MOSAIC_GPU_LOCK_DIR to a folder of their common group (see docs/gpus-and-slurm.md).
    """
    return os.environ.get("MOSAIC_GPU_LOCK_DIR") or DEFAULT_LOCK_DIR


def slot_lock_name(device, slot):
    """The lock file of one slot of a device: cuda_0.lock for the first, cuda_0.slot1.lock for the next."""
    name = device.replace(":", "_").replace("/", "_")
    return f"{name}.lock" if slot == 0 else f"{name}.slot{slot}.lock"


def default_wait():
    """Seconds a job waits for a free GPU: MOSAIC_GPU_WAIT_S, else DEFAULT_WAIT_S."""
    value = os.environ.get("MOSAIC_GPU_WAIT_S")
    if not value:
        return DEFAULT_WAIT_S
    try:
        return float(value)
    except ValueError:
        raise MosaicError(f"MOSAIC_GPU_WAIT_S: not a number of seconds: {value!r}") from None


def prepare_lock_dir(lock_dir):
    """Create the lock folder (private to this user) or check the one there: ours or a group's, never
    writable by everyone, so that no other user can swap the lock files."""
    if not os.path.isdir(lock_dir):
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    stat = os.stat(lock_dir)
    if stat.st_mode & 0o002 or stat.st_uid not in (os.getuid(), 0) and not stat.st_mode & 0o020:
        raise MosaicError(f"{lock_dir}: GPU lock folder is writable by everyone or belongs to another user;"
                          " remove it, or set MOSAIC_GPU_LOCK_DIR to a folder of yours or of your group")


def acquire_slot(devices, lock_dir=None, poll=0.2, timeout=None, slots_per_device=1):
    """(device, lock handle) for a free slot of the least busy device; waits for one when all are busy.

    Each device has `slots_per_device` slots ([MONITOR] runs_per_gpu). Slots are tried slot by slot
    across the devices (every device's first slot, then every device's second...), so that runs spread
    over the devices before they share one. Keep the handle open for as long as the device is used.
    lock_dir: default_lock_dir() by default; timeout: seconds to wait (None: default_wait()), then GpuWaitTimeout.
    """
    lock_dir = lock_dir or default_lock_dir()
    prepare_lock_dir(lock_dir)
    timeout = default_wait() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        for slot in range(slots_per_device):
            for device in devices:
                handle = try_lock(os.path.join(lock_dir, slot_lock_name(device, slot)), mode=0o660)
                if handle is not None:
                    return device, handle
        if time.monotonic() > deadline:
            raise GpuWaitTimeout(
                f"no free device among {', '.join(devices)} after waiting {timeout:g} s (another job holds"
                f" them; locks in {lock_dir}; MOSAIC_GPU_WAIT_S sets the wait)")
        time.sleep(poll)


def inherited_devices():
    """The entries of CUDA_VISIBLE_DEVICES (None when unset); CUDA ignores those after an invalid one."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    entries = []
    for entry in value.split(","):
        if not entry.strip() or entry.strip().startswith("-"):
            break
        entries.append(entry.strip())
    return entries


def visible_gpus():
    """['cuda:0', ...] for the GPUs this process may use, numbered as torch numbers them: those
    nvidia-smi lists, narrowed to CUDA_VISIBLE_DEVICES when it is set (no CUDA initialisation here)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = [f"cuda:{line.strip()}" for line in out.splitlines() if line.strip().isdigit()]
    inherited = inherited_devices()
    if inherited is not None and gpus:  # nvidia-smi lists every GPU of the machine
        return [f"cuda:{i}" for i in range(min(len(inherited), len(gpus)))]
    return gpus


def cuda_index(device):
    _, _, index = device.partition(":")
    if not index.isdigit():
        raise MosaicError(f"[MONITOR] gpu_available: '{device}' is not of the form cuda:N")
    return index


def select_device(monitor, run_label):
    """(torch device string, lock handle to keep or None, device name to report) for this job.

    On SLURM, the scheduler set CUDA_VISIBLE_DEVICES for the job; a job running a group of runs
    got the sum of their GPUs (one each): each run takes a free one of them, locked in a folder of
    that SLURM job (its GPUs may be numbered from 0 like another job's on the same node). Locally,
    take a free device of gpu_available. Either way that device becomes the only visible one, so
    that user code calling .cuda() lands on it too. Must run before CUDA is initialised in this process.
    """
    if not monitor.need_gpu:
        return "cpu", None, "cpu"
    granted = inherited_devices()
    if os.environ.get("SLURM_JOB_ID") and granted:
        lock_dir = os.path.join(default_lock_dir(), f"slurm-{os.environ['SLURM_JOB_ID']}")
        slot, handle = acquire_slot(granted, lock_dir=lock_dir)
        os.environ["CUDA_VISIBLE_DEVICES"] = slot
        return "cuda:0", handle, f"cuda:{slot}" if slot.isdigit() else slot
    devices = list(monitor.gpu_available or visible_gpus())
    if not devices:
        raise MosaicError(f"{run_label} needs a GPU (need_gpu = True) but no GPU is visible on this machine")
    # Lock the physical devices (after any inherited CUDA_VISIBLE_DEVICES), so that sessions that
    # number them differently still never share one; a bad name fails before any lock is taken.
    inherited = inherited_devices() or []
    physical = {}
    for device in devices:
        index = int(cuda_index(device))
        physical[f"cuda:{inherited[index] if index < len(inherited) else index}"] = device
    try:
        locked, handle = acquire_slot(list(physical), slots_per_device=monitor.runs_per_gpu)
    except GpuWaitTimeout as error:
        raise GpuWaitTimeout(f"{run_label}: {error}") from None
    os.environ["CUDA_VISIBLE_DEVICES"] = cuda_index(locked)
    return "cuda:0", handle, physical[locked]
