"""Giving each running job its own GPU: Snakemake counts GPUs but assigns none to a local job.

A job takes the first device of `gpu_available` whose lock file it can flock without waiting;
the kernel drops the lock when the process ends, even on kill -9, so a slot is never leaked.
"""

import fcntl
import os
import subprocess
import time

from mosaic.errors import MosaicError

LOCK_DIR = os.environ.get("MOSAIC_GPU_LOCK_DIR", "/tmp/mosaic-gpu-locks")


def try_lock(path):
    """An open file holding an exclusive flock on `path`, or None if another process holds it."""
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def acquire_slot(devices, lock_dir=LOCK_DIR, poll=0.2, timeout=None):
    """(device, lock handle) for the first free device; waits for one when all are busy.

    Keep the handle open for as long as the device is used.
    """
    os.makedirs(lock_dir, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for device in devices:
            name = device.replace(":", "_").replace("/", "_")
            handle = try_lock(os.path.join(lock_dir, f"{name}.lock"))
            if handle is not None:
                return device, handle
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no free device among {', '.join(devices)}")
        time.sleep(poll)


def visible_gpus():
    """['cuda:0', ...] for the GPUs nvidia-smi lists (no CUDA initialisation in this process)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [f"cuda:{line.strip()}" for line in out.splitlines() if line.strip().isdigit()]


def cuda_index(device):
    _, _, index = device.partition(":")
    if not index.isdigit():
        raise MosaicError(f"[MONITOR] gpu_available: '{device}' is not of the form cuda:N")
    return index


def select_device(monitor, run_label):
    """The torch device string for this job, and the lock handle to keep (or None).

    On SLURM, the scheduler already set CUDA_VISIBLE_DEVICES for the job: use its first device.
    Locally, take a free device of gpu_available and make it the only visible one, so that user
    code calling .cuda() lands on it too. Must run before CUDA is initialised in this process.
    """
    if not monitor.need_gpu:
        return "cpu", None, "cpu"
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("CUDA_VISIBLE_DEVICES"):
        return "cuda:0", None, f"cuda:{os.environ['CUDA_VISIBLE_DEVICES'].split(',')[0]}"
    devices = list(monitor.gpu_available or visible_gpus())
    if not devices:
        raise MosaicError(f"{run_label} needs a GPU (need_gpu = True) but no GPU is visible on this machine")
    device, handle = acquire_slot(devices)
    index = cuda_index(device)
    inherited = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    physical = inherited[int(index)] if int(index) < len(inherited) else index
    os.environ["CUDA_VISIBLE_DEVICES"] = physical
    return "cuda:0", handle, device
