"""mosaic_status: what the run files say of every run, in the format of the tutorial (README.md). No server needed."""

from mosaic import runfiles


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
    run_files_path = experiment.process.run_files_path
    return {run.run_hash: runfiles.read_state(run_files_path, run.run_hash) for run in experiment.runs}
