"""mosaic_run and friends: validate, run Snakemake, and report what became of every run."""

import os
import subprocess
import sys

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.ops import runner, session
from mosaic.results.status import states_of


def say(line):
    print(line, flush=True)


def hold_session_lock():
    """One mosaic_run per folder at a time; the kernel drops the lock if we are killed."""
    os.makedirs(session.STATE_DIR, exist_ok=True)
    handle = runfiles.try_lock(os.path.join(session.STATE_DIR, "run.lock"))
    if handle is None:
        raise MosaicError(f"another mosaic_run is running in {os.getcwd()}")
    return handle


def clear_stale_snakemake_lock(state):
    """After a kill -9, Snakemake's lock stays behind; we hold the folder's lock, so it is stale."""
    locks = os.path.join(state["workdir"], ".snakemake", "locks")
    if os.path.isdir(locks) and os.listdir(locks):
        command = runner.snakemake_command(state, 1, extra=["--unlock"])
        subprocess.run(command, capture_output=True, check=False)


def default_cores(experiment):
    """nb_processus, but no more CPU-bound runs than cores: more would only slow each one down."""
    cpus = os.cpu_count() or 1
    wanted = experiment.monitor.nb_processus or cpus
    return wanted if experiment.monitor.need_gpu else min(wanted, cpus)


def resolve_profile(profile):
    """A profile folder here, else one shipped with the workflow (`profiles/slurm`), else as given."""
    if not profile or os.path.isdir(profile):
        return os.path.abspath(profile) if profile else None
    from mosaic.ops.paths import workflow_root

    shipped = os.path.join(workflow_root(), profile)
    return shipped if os.path.isdir(shipped) else profile


def gpu_count(experiment, profile):
    """--resources gpu=N for local runs; a cluster profile's scheduler counts GPUs itself."""
    if not experiment.monitor.need_gpu or profile:
        return 0
    from mosaic.ops.workflow_helpers import local_gpu_count

    return local_gpu_count(experiment)


def run_experiment(ini, database, plots, cores=None, profile=None, dry_run=False, extra=(),
                   forcerun=(), selected=None, partial=False):
    """Run the workflow for `ini`; returns the exit status (0: every run done).

    selected: train only these runs (forced), then rebuild the database and plots from the runs
    done. partial: train nothing, rebuild the database and plots (mosaic_rekey).
    """
    experiment = load_experiment(ini)
    _lock = hold_session_lock()
    state = session.save(ini, database, plots, cores=cores, profile=profile)
    if os.path.exists(session.PAUSE_FILE):
        os.remove(session.PAUSE_FILE)
    clear_stale_snakemake_lock(state)
    cores = cores or default_cores(experiment)
    profile = resolve_profile(profile)
    gpus = gpu_count(experiment, profile)
    also = None
    if selected is not None:
        partial = True
        also = write_run_list([run.run_hash for run in selected])
    command = runner.snakemake_command(
        state, cores, forcerun=forcerun, partial=partial, also=also, profile=profile, gpus=gpus,
        extra=[*(["--dry-run"] if dry_run else []), *extra],
    )
    if dry_run:
        return subprocess.run(command).returncode

    before = states_of(experiment)
    if selected is not None:
        to_train = list(selected)
    elif partial:
        to_train = []
    else:
        to_train = [run for run in experiment.runs if before[run.run_hash].status != "done"]
    say(f"mosaic: {len(experiment.runs)} runs, {len(to_train)} to train, {cores} at a time"
        + (f" on {gpus} GPUs" if gpus else ""))
    log_path = os.path.join(session.STATE_DIR, "logs", "snakemake.log")
    # Watch every run: Snakemake also retrains done runs whose class file changed.
    watcher = runner.Watcher(experiment, selected or experiment.runs, say, total=len(to_train))
    watcher.start()
    if to_train and not profile:
        from mosaic.run.warm import prestart

        prestart()  # the warm-start server imports torch while Snakemake starts
    returncode, tail = runner.run_snakemake(command, log_path, say, on_interrupt=request_pause,
                                            watcher=watcher)
    watcher.finish()

    after = states_of(experiment)
    failed = [run for run in experiment.runs if after[run.run_hash].status == "error"]
    if selected is not None:
        failed = [run for run in selected if after[run.run_hash].status == "error"]
    remaining = [run for run in experiment.runs if after[run.run_hash].status != "done"]
    if runner.pause_requested(state["workdir"]):
        say(f"mosaic: paused; {len(remaining)} runs remain: mosaic_resume (or mosaic_run) finishes them")
        return 0
    if failed:
        say(f"mosaic: building the database and plots from the {len(experiment.runs) - len(remaining)} runs done")
        partial = runner.snakemake_command(state, cores, forcerun=["database"], partial=True,
                                           profile=profile, extra=list(extra))
        runner.run_snakemake(partial, log_path, say)
        say(f"mosaic: {len(failed)} of {len(experiment.runs)} runs failed: "
            + ", ".join(str(run.run_id) for run in failed) + " (mosaic_status shows the tracebacks)")
        return 1
    if returncode != 0:
        for line in tail[-20:]:
            print(line, file=sys.stderr)
        say(f"mosaic: Snakemake failed (exit {returncode}); full log: {os.path.abspath(log_path)}")
        return 1
    if remaining:
        say(f"mosaic: {len(experiment.runs) - len(remaining)} of {len(experiment.runs)} runs done"
            f" ({len(remaining)} not trained); database {state['database']}, plots in {state['plots']}")
        return 0
    say(f"mosaic: all {len(experiment.runs)} runs done; database {state['database']}, plots in {state['plots']}")
    return 0


def write_run_list(hashes):
    path = os.path.join(session.STATE_DIR, "selected_runs.txt")
    runfiles.write_atomic(path, "".join(f"{h}\n" for h in hashes))
    return os.path.abspath(path)


def request_pause():
    os.makedirs(session.STATE_DIR, exist_ok=True)
    open(session.PAUSE_FILE, "w").close()
    say("mosaic: pausing; the running runs finish, no new run starts (Ctrl-C again to stop them now)")
