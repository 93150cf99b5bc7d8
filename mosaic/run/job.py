"""One training run, as one Snakemake job: `python -m mosaic.run.job <run folder>/spec.json`.

The job reads only its run's spec and context (written by the workflow, see mosaic/ops/spec_files.py):
its start-up cost does not depend on the size of the ini. `python -m mosaic.run.job INI RUN_HASH`
(by hand) reads the ini instead. Its output goes to the run's train.log. On failure it writes
error.txt (the traceback) and exits 1, so that Snakemake records a failed job, keeps going with
the others, and retries it next time.
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
from mosaic.experiment.spec import describe, experiment_of, identity


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
    os.utime(folder)  # a new folder time: status reads this run's files again (mosaic/results/status.py)
    return handle


def alive(pid):
    """True while process `pid` runs. A killed process whose parent died too stays a zombie where
    nothing reaps orphans (PID 1 of some containers): a zombie is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
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
            if not alive(pid):
                print("mosaic: Snakemake is gone; stopping this run", file=sys.stderr, flush=True)
                os._exit(4)

    threading.Thread(target=watch, daemon=True).start()


class Located:
    """The run a job trains: its one-run experiment, the run, and (from a spec) what result.json
    says of it and the identity its checkpoints carry."""

    def __init__(self, experiment, run, description=None, identity=None):
        self.experiment = experiment
        self.run = run
        self.description = description
        self.identity = identity


def locate(arguments):
    """The run named on the command line: a spec file, or an ini and a run hash."""
    if len(arguments) == 1:
        spec_path = arguments[0]
        try:
            spec = runfiles.read_json(spec_path)
            context = runfiles.read_json(os.path.join(os.path.dirname(spec_path), runfiles.CONTEXT))
        except (OSError, ValueError) as error:
            raise MosaicError(f"{spec_path}: cannot read the run's spec: {error}") from None
        experiment, run = experiment_of(spec, context)
        return Located(experiment, run, describe(spec, context), identity(spec))
    if len(arguments) == 2:
        experiment = load_experiment(arguments[0])
        try:
            run = experiment.run_by_hash(arguments[1])
        except KeyError:
            raise MosaicError(f"{arguments[0]}: no run has the id {arguments[1]}") from None
        return Located(experiment, run)
    raise MosaicError("expected SPEC_FILE, or INI RUN_HASH")


def use_download_cache(monitor):
    """mosaic.download_file (mosaic/run/cache.py) reads its settings from the ini's [MONITOR], through the
    environment."""
    os.environ["MOSAIC_CACHE_DB"] = monitor.cache_database_path
    os.environ["MOSAIC_CACHE_SIZE"] = str(monitor.cache_size)


def train(located, threads):
    """Select the device, then train; imports torch only here."""
    experiment, run = located.experiment, located.run
    from mosaic.run.devices import select_device

    run_label = f"run {run.run_id} ({run.pipeline})"
    use_download_cache(experiment.monitor)
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
        identity=located.identity, description=located.description,
    )
    del gpu_lock
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mosaic.run.job", description=__doc__)
    parser.add_argument("run", nargs="+", metavar="SPEC_FILE | INI RUN_HASH")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if os.path.exists(runfiles.PAUSE_FILE):  # mosaic_pause: start no new run; Snakemake retries it later
        print(f"mosaic: paused, run {args.run[-1]} not started", file=sys.stderr)
        return 3
    try:
        located = locate(args.run)
    except MosaicError as error:
        print(f"mosaic: {error}", file=sys.stderr)
        return 1
    experiment, run = located.experiment, located.run
    folder = runfiles.run_dir(experiment.process.run_files_path, run.run_hash)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        print(f"mosaic: run {run.run_id}: cannot create its folder {folder}: {error.strerror}", file=sys.stderr)
        return 1
    watch_snakemake()
    try:
        lock = hold_lock(folder)
    except MosaicError as error:  # another process trains this run: leave its files alone
        print(f"mosaic: run {run.run_id}: {error}", file=sys.stderr)
        return 1
    runfiles.remove_leftovers(folder)
    try:
        train(located, args.threads)
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
