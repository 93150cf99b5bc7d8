"""Reading one run's files into what the database holds of it, its record: the runs row (RUN_COLUMNS), the
params rows, the loss columns, the metrics rows and the stamp (what the rows depend on: a run whose stamp
is unchanged is not read again).

Reading a run (its files, parsing the loss file: most of the cost) is separate from writing its rows
(database.py), so that a big build reads with several processes while that one writes, in run order.
Unreadable files make an error run, not a failed build.
"""

import contextlib
import math
import os

from mosaic.results.indicators import indicators
from mosaic.results.selection import module_rows, process_rows
from mosaic.runfiles import (
    ERROR,
    LOCK,
    LOSSES,
    METRICS,
    RESULT,
    RunState,
    file_stamp,
    finite_or_none,
    is_locked,
    read_loss_columns,
    read_metrics,
    read_state,
    run_file,
)

# the columns of the runs table, in order (database.SCHEMA)
RUN_COLUMNS = (
    "run_id run_hash pipeline status replicate seed nb_params epochs train_loss test_loss"
    " overfit trainability slope duration_s error diverged device dataset_key model_key val_loss"
).split()


def run_stamp(experiment, run, shared_rows):
    """What a run's rows depend on: its definition and its files' identities (None while it trains:
    its state is a lock, not a file, so it is read again each time)."""
    import hashlib

    folder = os.path.join(experiment.process.run_files_path, run.run_hash)
    if is_locked(os.path.join(folder, LOCK)):
        return None
    files = [file_stamp(os.path.join(folder, name)) for name in (RESULT, LOSSES, METRICS, ERROR)]
    definition = (run.run_id, run.run_hash, run.pipeline, run.replicate, run.seed, run.dataset_key, run.model_key,
                  module_rows(run), shared_rows, experiment.process.run_files_path)
    return hashlib.sha1(repr((definition, files)).encode()).hexdigest()


RUNS_PER_PROCESS = 1000  # fewer runs than this per reading process: read them here (a fork costs more)


@contextlib.contextmanager
def read_records(experiment, runs, processes=None):
    """A context giving an iterator of the records (see _record) of `runs`, in order, read by a pool of forked
    processes when there are many; `processes` None: the usable CPUs (8 at most)."""
    shared_rows = process_rows(experiment.process)
    if processes is None:
        processes = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    processes = min(processes, len(runs) // RUNS_PER_PROCESS)
    if processes < 2 or not hasattr(os, "fork"):
        yield (_record(experiment, run, shared_rows) for run in runs)
        return
    import multiprocessing

    context = multiprocessing.get_context("fork")  # the workers inherit the experiment: nothing to pickle
    with context.Pool(processes, initializer=_set_reading, initargs=(experiment, runs, shared_rows)) as pool:
        yield pool.imap(_read_nth, range(len(runs)), chunksize=64)


_reading = None  # (experiment, runs, shared_rows) in a reading process


def _set_reading(*work):
    global _reading
    _reading = work


def _read_nth(index):
    experiment, runs, shared_rows = _reading
    return _record(experiment, runs[index], shared_rows)


def _record(experiment, run, shared_rows):
    """Everything written for one run: (runs row, params rows, loss columns, metrics rows, stamp).
    Loss columns: epochs, then train, test, seconds and val (the validation losses, None for a run without
    them) as arrays of doubles (compact to pass between processes) or, when some value is nan or
    infinite, lists with None in its place."""
    from array import array

    run_files_path = experiment.process.run_files_path
    stamp = run_stamp(experiment, run, shared_rows)  # before reading: a change meanwhile is seen next time
    state, columns = _read_run(run_files_path, run.run_hash)
    epochs, *values = columns
    if all(all(map(math.isfinite, column)) for column in values):
        values = [array("d", column) for column in values]
    else:
        values = [[finite_or_none(value) for value in column] for column in values]
    metrics = _read_metrics(run_files_path, run.run_hash) if state.status == "done" else []
    params = [(run.run_id, *row) for row in module_rows(run) + shared_rows]
    losses = (array("q", epochs), *values, *[None] * (5 - len(columns)))  # no validation losses: None
    return _run_row(run, state, columns), params, losses, metrics, stamp


def _read_metrics(run_files_path, run_hash):
    try:
        return read_metrics(run_file(run_files_path, run_hash, METRICS))
    except (OSError, ValueError):
        return []  # a damaged metrics file costs the metrics, not the run


def _read_run(run_files_path, run_hash):
    """(RunState, loss columns: epochs, train, test, seconds[, val]) of one run; unreadable files make it an
    error run, not a failed build."""
    try:
        state = read_state(run_files_path, run_hash)
        if state.status != "done":
            return state, NO_LOSSES
        return state, read_loss_columns(run_file(run_files_path, run_hash, LOSSES))
    except (OSError, ValueError) as exc:
        return RunState("error", error=f"unreadable run files of {run_hash}: {exc}"), NO_LOSSES


NO_LOSSES = ([], [], [], [])


def _run_row(run, state, columns):
    """The runs row of one run: a tuple in RUN_COLUMNS order."""
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(
        run_id=run.run_id,
        run_hash=run.run_hash,
        pipeline=run.pipeline,
        status=state.status,
        replicate=run.replicate,
        seed=run.seed,
        error=state.error,
        dataset_key=run.dataset_key,
        model_key=run.model_key,
    )
    if state.status == "done":
        result = state.result
        epochs, train, test, *_ = columns
        validation = columns[4] if len(columns) == 5 else []
        finite = all(map(math.isfinite, train)) and all(map(math.isfinite, test))
        row.update(
            nb_params=result.get("nb_params"),
            epochs=result.get("epochs", len(epochs)),
            train_loss=finite_or_none(train[-1]) if train else None,
            test_loss=finite_or_none(test[-1]) if test else None,
            val_loss=finite_or_none(validation[-1]) if validation else None,
            duration_s=result.get("duration_s"),
            diverged=int(bool(result.get("diverged")) or not finite),
            device=result.get("device"),
            **indicators(train, test),
        )
    return tuple(row.values())
