"""mosaic_status: what the run files say of every run, in the format of the tutorial (README.md). No server needed.

Reading 100,000 runs' files takes seconds; an index under the run files path (.status-index)
keeps what status shows of each finished (done or failed) run, with the modification time of its
folder. Any change in a folder changes that time (every run file is written by renaming a temporary
file into place, and a job touches its folder when it takes the run's lock), so a run whose folder
time is unchanged is read from the index, the others from their files.
"""

import marshal
import os
import time

from mosaic import runfiles

INDEX = ".status-index"  # Python's marshal format: five times faster to read than JSON
INDEXED_FIELDS = ("train_loss", "test_loss", "duration_s", "diverged", "epochs")  # of result.json
SETTLED_NS = 10 * 10**9  # a folder changed this recently is read again next time (coarse file system clocks)


def scientific(value):
    return "nan" if value is None else f"{value:.3E}"


def render(experiment, states):
    """The Done / Error / Running listing, then a count of the runs not started yet."""
    done, error, running, pending = [], [], [], []
    for run in experiment.runs:
        state = states[run.run_hash]
        if state.status == "done":
            result = state.result
            line = (f"\t[{run.run_id}] train_loss={scientific(result.get('train_loss'))}"
                    f"\ttest_loss={scientific(result.get('test_loss'))}"
                    f"\texecution_time={scientific(result.get('duration_s'))}")
            if result.get("diverged"):
                line += "\tdiverged"
            done.append(line)
        elif state.status == "error":
            error.append(f"\t[{run.run_id}] {run.pipeline}")
            error += [f"\t\t{line}" for line in (state.error or "").rstrip().splitlines()]
        elif state.status == "running":
            progress = state.progress
            epoch = f"\tepoch {progress[0]}/{progress[1]}" if progress else "\tstarting"
            running.append(f"\t[{run.run_id}] {run.pipeline}{epoch}")
        else:
            pending.append(run)
    lines = ["Done", *done, "Error", *error, "Running", *running]
    if pending:
        lines.append(f"Pending: {len(pending)} runs")
    return "\n".join(lines)


def states_of(experiment):
    """{run_hash: RunState} of every run. A done run's `result` holds the INDEXED_FIELDS of its
    result.json (all of them when it was just read)."""
    run_files_path = experiment.process.run_files_path
    index_path = os.path.join(run_files_path, INDEX)
    index = _load_index(index_path)  # other experiments may share the run files path: their entries stay
    edited = False
    settled = time.time_ns() - SETTLED_NS
    states = {}
    prefix = os.path.join(run_files_path, "")
    for run in experiment.runs:
        run_hash = run.run_hash
        try:
            changed = os.stat(prefix + run_hash).st_mtime_ns
        except OSError:  # no folder: never started
            states[run_hash] = runfiles.RunState("pending")
            continue
        entry = index.get(run_hash)
        if entry is not None and entry[0] == changed:
            fields = None if entry[2] is None else dict(zip(INDEXED_FIELDS, entry[2]))
            states[run_hash] = runfiles.RunState(entry[1], result=fields, error=entry[3])
            continue
        state = states[run_hash] = runfiles.read_state(run_files_path, run_hash)
        if state.status in ("done", "error") and changed < settled:
            fields = [state.result.get(name) for name in INDEXED_FIELDS] if state.result else None
            index[run_hash] = [changed, state.status, fields, state.error]
            edited = True
        elif entry is not None:
            del index[run_hash]
            edited = True
    if edited:
        _save_index(index_path, index)
    return states


def _load_index(path):
    try:
        with open(path, "rb") as handle:
            index = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):  # none yet, or damaged: every run is read from its files
        return {}
    return index if isinstance(index, dict) else {}


def _save_index(path, index):
    try:
        with runfiles.replacing(path) as tmp, open(tmp, "wb") as handle:
            marshal.dump(index, handle)
    except OSError:  # a read-only run files path: status still works, without the index
        pass
