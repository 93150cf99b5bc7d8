"""One training run, as one Snakemake job: `python -m mosaic.run.job INI RUN_HASH`.

Its output goes to the run's train.log. On failure it writes error.txt (the traceback) and exits 1,
so that Snakemake records a failed job, keeps going with the others, and retries it next time.
"""

import argparse
import os
import sys
import threading
import time
import traceback

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.ops.session import PAUSE_FILE


def target_epochs(folder):
    """The total epochs a continuation asked for (mosaic_rerun -epochs), or None."""
    path = os.path.join(folder, runfiles.CONTINUE)
    if not os.path.exists(path):
        return None
    return int(runfiles.read_json(path)["target_epochs"])


def hold_lock(folder):
    handle = runfiles.try_lock(os.path.join(folder, runfiles.LOCK))
    if handle is None:
        raise MosaicError(f"{folder}: another process is training this run")
    return handle


def process_alive(pid):
    """Whether `pid` runs; a zombie does not (a killed Snakemake stays one while mosaic_run reads its pipe,
    which this job's shell holds open: waiting for it would never end)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def watch_snakemake(interval=2.0):
    """Exit when the Snakemake process that started this job is gone (killed with -9, say):
    an orphan would keep training and hold the run's lock. Its last checkpoint stays for the
    next attempt."""
    pid = int(os.environ.get("MOSAIC_SNAKEMAKE_PID", "0") or 0)
    if pid <= 0:
        return

    def watch():
        while True:
            time.sleep(interval)
            if not process_alive(pid):
                print("mosaic: Snakemake is gone; stopping this run", file=sys.stderr, flush=True)
                os._exit(4)

    threading.Thread(target=watch, daemon=True).start()


def train(experiment, run, threads):
    """Select the device, then train; imports torch only here."""
    from mosaic.run.devices import select_device

    run_label = f"run {run.run_id} ({run.pipeline})"
    # mosaic.download_file (mosaic/cache.py) reads its settings from the ini's [MONITOR].
    os.environ["MOSAIC_CACHE_DB"] = experiment.monitor.cache_database_path
    os.environ["MOSAIC_CACHE_SIZE"] = str(experiment.monitor.cache_size)
    device, gpu_lock, device_name = select_device(experiment.monitor, run_label)
    import torch

    from mosaic.run import training

    torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MosaicError(f"{run_label} needs a GPU but torch sees no CUDA device")
    print(f"run {run.run_id} {run.pipeline} on {device_name}, seed {run.seed}", flush=True)
    folder = runfiles.run_dir(experiment.process.run_files_path, run.run_hash)
    result = training.train_run(
        experiment, run, device=device, target_epochs=target_epochs(folder),
        log=lambda line: print(line, flush=True), device_name=device_name,
    )
    del gpu_lock
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mosaic.run.job", description=__doc__)
    parser.add_argument("ini")
    parser.add_argument("run_hash")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if os.path.exists(PAUSE_FILE):  # mosaic_pause: start no new run; Snakemake retries it later
        print(f"mosaic: paused, run {args.run_hash} not started", file=sys.stderr)
        return 3
    try:
        experiment = load_experiment(args.ini)
        run = experiment.run_by_hash(args.run_hash)
    except (MosaicError, KeyError) as error:
        print(f"mosaic: {error}", file=sys.stderr)
        return 1
    folder = runfiles.run_dir(experiment.process.run_files_path, run.run_hash)
    os.makedirs(folder, exist_ok=True)
    watch_snakemake()
    try:
        lock = hold_lock(folder)
    except MosaicError as error:  # another process trains this run: leave its files alone
        print(f"mosaic: run {run.run_id}: {error}", file=sys.stderr)
        return 1
    try:
        train(experiment, run, args.threads)
    except BaseException as error:  # also KeyboardInterrupt/SystemExit: record, then re-raise
        # A MosaicError is a plain message; anything else keeps its traceback.
        text = f"MosaicError: {error}\n" if isinstance(error, MosaicError) else traceback.format_exc()
        if not isinstance(error, (KeyboardInterrupt, SystemExit)):
            runfiles.write_atomic(os.path.join(folder, runfiles.ERROR), text)
        print(text, file=sys.stderr, flush=True)
        summary = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"mosaic: run {run.run_id} failed: {type(error).__name__}: {summary}", file=sys.stderr)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return 1
    for name in (runfiles.ERROR, runfiles.CHECKPOINT, runfiles.CONTINUE):
        try:
            os.remove(os.path.join(folder, name))
        except FileNotFoundError:
            pass
    del lock
    return 0


if __name__ == "__main__":
    from mosaic.run.warm import run_job

    sys.exit(run_job(sys.argv[1:], main))  # through the warm-start server when one can be used
