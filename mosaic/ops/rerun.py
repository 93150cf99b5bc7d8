"""mosaic_rerun: selecting runs, and preparing each to be retrained or continued."""

import contextlib
import os

from mosaic import runfiles
from mosaic.errors import BusyError
from mosaic.ops.paths import relative
from mosaic.results.selection import parse_ids, select_runs
from mosaic.results.status import states_of


def select(experiment, ids=None, status=None, param=None):
    """The runs matching every selector given (ids of the current ini, live status, a parameter)."""
    wanted = parse_ids(ids) if ids else None
    states = states_of(experiment) if status else None
    return select_runs(experiment, ids=wanted, status=status, param=param, states=states)


def prepare(experiment, runs, epochs=None):
    """Set up each run's folder for the job, and return the files to force.

    epochs given, run done: its final model (a full checkpoint) becomes the checkpoint to continue
    from, to its epochs + `epochs`. Otherwise: from scratch, to `epochs` (or the ini's).
    """
    run_files_path = experiment.process.run_files_path
    with contextlib.ExitStack() as held:
        for run in runs:  # every run's lock first: a run being trained (plain snakemake, say) is left alone
            folder = runfiles.run_dir(run_files_path, run.run_hash)
            os.makedirs(folder, exist_ok=True)
            lock = runfiles.try_lock(os.path.join(folder, runfiles.LOCK))
            if lock is None:
                raise BusyError(folder, f"run {run.run_id} is being trained; nothing was changed")
            held.enter_context(lock)
        return [prepare_run(run_files_path, run, epochs) for run in runs]


def prepare_run(run_files_path, run, epochs):
    """Set up one run's folder (its lock held); returns its result file, to force."""
    folder = runfiles.run_dir(run_files_path, run.run_hash)
    model = os.path.join(folder, runfiles.MODEL)
    checkpoint = os.path.join(folder, runfiles.CHECKPOINT)
    result = os.path.join(folder, runfiles.RESULT)
    request = os.path.join(folder, runfiles.CONTINUE)
    for stale in (checkpoint, request):
        if os.path.exists(stale):
            os.remove(stale)
    if epochs is not None:
        target = epochs
        # done (read from the files: runfiles.read_state would see our own lock as a running run)
        if all(os.path.exists(os.path.join(folder, name)) for name in (runfiles.RESULT, runfiles.LOSSES)) \
                and os.path.exists(model):
            # Snakemake deletes model.pt before the job runs. A copy, never a hard link: model.pt is the user's.
            tmp = f"{checkpoint}.tmp{os.getpid()}"
            runfiles.copy_file(model, tmp)
            os.replace(tmp, checkpoint)
            target += int(runfiles.read_json(result)["epochs"])
        runfiles.write_json(request, {"target_epochs": target})
    return relative(result)
