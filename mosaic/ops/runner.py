"""Running Snakemake: the one module that builds the snakemake command and runs it (runs, dry runs, the
report, --unlock), each under the folder's session lock, shows its progress and says what became of every run.

The commands (mosaic_run, mosaic_rerun, mosaic_rekey, mosaic_resume) describe what they want in a
Plan and get an Outcome back; the command line turns the Outcome into an exit status. The report
(mosaic_run --report, mosaic/ops/report.py) asks for snakemake_report.
The default Snakemake settings (keep going, rerun incomplete jobs, scheduler, threads) live in one
place: the workflow profile profiles/default/config.yaml, which this module names explicitly.
"""

import contextlib
import os
import selectors
import signal
import subprocess
import sys
from dataclasses import dataclass, field

from mosaic import runfiles
from mosaic.errors import BusyError, DatabaseError, PausedError, RunError, UsageError
from mosaic.experiment import load_experiment
from mosaic.ops import progress, session
from mosaic.ops.paths import config_default, refuse_overwriting, relative, snakefile, workflow_root
from mosaic.results.status import states_of

PR_SET_PDEATHSIG = 1
TICK_S = 1.0  # how often the display and the pause request are refreshed


@dataclass
class Plan:
    """What a command asks of Snakemake."""

    ini: str
    database: str
    plots: str
    cores: int | None = None  # parallel runs (default: nb_processus, at most the CPU count)
    profile: str | None = None  # a Snakemake profile (folder, or one shipped: profiles/slurm)
    dry_run: bool = False
    extra: tuple = ()  # arguments handed to snakemake as they are
    retrain: tuple = ()  # runs to train again (mosaic_rerun); no other run is trained
    prepare: object = None  # called with the folder's lock held, before Snakemake: returns the files to force
    rebuild_only: bool = False  # train nothing, rebuild the database and plots (mosaic_rekey)
    preflight: bool | None = None  # mosaic_run's checks before launching (mosaic/run/preflight.py); False: warn only


@dataclass
class Outcome:
    """What became of the runs of a Plan."""

    total: int
    done: int
    failed: list = field(default_factory=list)  # run ids
    paused: bool = False
    snakemake_status: int = 0
    log_path: str = ""
    trains_all: bool = False  # the plan asked for every run (not a rerun of some, not a rebuild)

    @property
    def remaining(self):
        return self.total - self.done

    def error(self):
        """The error this outcome is for the command line (see errors.EXIT_CODES), or None."""
        if self.failed:
            return RunError(f"{len(self.failed)} of {self.total} runs failed", run_ids=self.failed)
        if self.snakemake_status != 0 and not self.paused:
            return RunError(f"Snakemake failed (exit {self.snakemake_status}); full log: {self.log_path}")
        if self.paused and self.remaining:
            return PausedError(self.remaining, f"paused; {self.remaining} runs remain")
        if self.trains_all and self.remaining:  # a job killed before it could say why, say
            return RunError(f"{self.remaining} of {self.total} runs were not trained; full log: {self.log_path}")
        return None


# ---------------------------------------------------------------- the folder's locks


@contextlib.contextmanager
def session_lock():
    """One command that changes run files per folder at a time; the kernel drops the lock if we are killed."""
    os.makedirs(runfiles.STATE_DIR, exist_ok=True)
    handle = runfiles.try_lock(runfiles.SESSION_LOCK)
    if handle is None:
        raise BusyError(os.getcwd(), "another mosaic_run is running in this folder")
    with handle:
        yield


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def is_snakemake(argv):
    """`snakemake ...`, `python .../snakemake ...` or `python -m snakemake ...` (not a job's script)."""
    head = argv[:3]
    return any(os.path.basename(part) == "snakemake" for part in head) or "-m snakemake" in " ".join(head)


def live_snakemake_in(workdir):
    """The pid of a live Snakemake (not ours) working in `workdir`, or None (Linux: reads /proc)."""
    workdir = os.path.realpath(workdir)
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if os.path.realpath(cwd) == workdir and is_snakemake(command_line(entry)):
            return int(entry)
    return None


def clear_stale_snakemake_lock(workdir, config_file):
    """After a kill -9, Snakemake's lock stays behind. It is stale unless a live Snakemake works here:
    then refuse rather than unlock under it."""
    locks = os.path.join(workdir, ".snakemake", "locks")
    if not (os.path.isdir(locks) and os.listdir(locks)):
        return
    pid = live_snakemake_in(workdir)
    if pid is not None:
        raise BusyError(workdir, f"a snakemake process (pid {pid}) is working in this folder")
    command = snakemake_command(workdir, config_file, 1, logger=False, extra=["--unlock"])
    unlocked = subprocess.run(command, capture_output=True, text=True, check=False)
    if unlocked.returncode != 0:
        raise BusyError(workdir, "cannot remove Snakemake's stale lock: "
                        + (unlocked.stderr.strip().splitlines() or ["snakemake --unlock failed"])[-1])


# ---------------------------------------------------------------- the command


def default_cores(experiment):
    """nb_processus, but no more CPU-bound runs than cores: more would only slow each one down."""
    cpus = os.cpu_count() or 1
    wanted = experiment.monitor.nb_processus or cpus
    return wanted if experiment.monitor.need_gpu else min(wanted, cpus)


def resolve_profile(profile):
    """A profile folder here, else one shipped with the workflow (`profiles/slurm`), else as given."""
    if not profile or os.path.isdir(profile):
        return os.path.abspath(profile) if profile else None
    shipped = os.path.join(workflow_root(), profile)
    return shipped if os.path.isdir(shipped) else profile


def gpu_count(experiment, profile):
    """--resources gpu=N for local runs; a cluster profile's scheduler counts GPUs itself."""
    if not experiment.monitor.need_gpu or profile:
        return 0
    from mosaic.ops.workflow_jobs import local_gpu_count

    return local_gpu_count(experiment)


def run_config(state, partial=False, also=None):
    """The workflow's config for this experiment (see config/README.md)."""
    config = {"ini": state["ini"], "database": state["database"], "plots": state["plots"], "partial": partial}
    if also:
        config["also"] = also
    return config


def write_config_file(config, path):
    """The config as a YAML file for --configfile: any path works (`--config k=v` reads `#`, `: `
    and braces as YAML)."""
    import yaml

    runfiles.write_atomic(path, yaml.safe_dump(config, default_flow_style=False))
    return os.path.abspath(path)


def snakemake_command(workdir, config_file, cores, profile=None, gpus=0, forcerun=(), extra=(), logger=True):
    """The snakemake command line; the workflow profile holds the default flags."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", snakefile(), "--directory", workdir]
    command += ["--workflow-profile", os.path.join(workflow_root(), "profiles", "default")]
    command += ["--cores", str(cores)]
    if profile:
        command += ["--profile", profile]
    if gpus:
        command += ["--resources", f"gpu={gpus}"]
    if forcerun:
        command += ["--forcerun", *forcerun]
    if logger:
        command += ["--logger", "mosaic"]
    return [*command, *extra, "--configfile", config_file]


# ---------------------------------------------------------------- running it


def die_with_parent():
    """In the child: die when mosaic_run dies, even by kill -9 (Linux). SIGKILL, as Snakemake on
    SIGTERM waits for its running jobs; the jobs stop when their Snakemake is gone (mosaic/run/job.py),
    and the next mosaic_run clears the stale lock."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def plugin_environment(events_fd):
    from mosaic.ops.snakemake_plugins import FOLDER

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [FOLDER, env.get("PYTHONPATH", "")] if p)
    env["MOSAIC_EVENTS_FD"] = str(events_fd)
    return env


def pause_requested(workdir):
    return os.path.exists(os.path.join(workdir, runfiles.PAUSE_FILE))


def request_pause():
    os.makedirs(runfiles.STATE_DIR, exist_ok=True)
    open(runfiles.PAUSE_FILE, "w").close()


def run_snakemake(command, log_path, display, tracker, workdir):
    """Run snakemake, its output kept in `log_path`, its job events shown by `display`.

    Snakemake runs in its own session, so that Ctrl-C reaches only us. A pause (mosaic_pause, or the
    first Ctrl-C) sends SIGTERM to Snakemake alone: it starts no new job, lets the running ones
    finish and exits. A second Ctrl-C stops Snakemake and its jobs at once. Returns (status, tail).
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    events_read, events_write = os.pipe()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=die_with_parent, pass_fds=(events_write,), env=plugin_environment(events_write),
    )
    os.close(events_write)
    interrupts = []
    paused = []

    def pause():
        if not paused:
            paused.append(True)
            display.message("mosaic: pausing; the running runs finish, no new run starts"
                            " (Ctrl-C again to stop them now)")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)

    def interrupt(signum, frame):
        interrupts.append(signum)
        if len(interrupts) == 1:
            request_pause()
            pause()
        else:
            display.message("mosaic: stopping Snakemake and the running jobs")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, interrupt)
    tail, pending_output, pending_events = [], b"", ""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, "output")
    selector.register(events_read, selectors.EVENT_READ, "events")
    try:
        with open(log_path, "ab") as log:
            output_open = True
            while output_open:  # Snakemake's output ends when it exits
                for key, _ in selector.select(TICK_S):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        output_open = key.data != "output" and output_open
                    elif key.data == "output":
                        log.write(chunk)
                        *lines, pending_output = (pending_output + chunk).split(b"\n")
                        tail = (tail + [line.decode(errors="replace") for line in lines])[-40:]
                    else:
                        pending_events = show_events(pending_events + chunk.decode(), display, tracker)
                if pause_requested(workdir):
                    pause()
                display.show([], tracker)
            process.wait()
            os.set_blocking(events_read, False)  # the last events, without waiting on a job that kept the pipe
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(events_read, 65536):
                    pending_events = show_events(pending_events + chunk.decode(), display, tracker)
    finally:
        signal.signal(signal.SIGINT, previous)
        selector.close()
        os.close(events_read)
    return process.returncode, tail


def check_outputs(plan, experiment):
    """No output may overwrite an input, and Snakemake reads braces in its file patterns as wildcards."""
    refuse_overwriting(plan.database, [plan.ini])
    if os.path.isdir(plan.database):  # Snakemake would take the folder for a built database and train nothing
        raise DatabaseError(plan.database, "is a folder; give a database file path")
    refuse_overwriting(plan.plots, [plan.ini, plan.database])
    for path in (plan.database, plan.plots, experiment.process.run_files_path):
        for character in "{}":
            if character in str(path):
                raise UsageError(f"{path}: Snakemake reads '{character}' in a file path as a wildcard;"
                                 " choose a path without braces")


def show_events(text, display, tracker):
    """Show the complete event lines of `text`; returns the incomplete rest."""
    events, rest = progress.parse_events(text)
    for event in events:
        display.show(tracker.handle(event), tracker)
    return rest


def run(plan, out=None):
    """Carry out `plan`: take the folder's lock, prepare, run Snakemake, report. Returns an Outcome."""
    out = out or sys.stdout
    experiment = load_experiment(plan.ini)
    check_outputs(plan, experiment)
    with session_lock():
        state = session.save(plan.ini, plan.database, plan.plots, cores=plan.cores, profile=plan.profile)
        if os.path.exists(runfiles.PAUSE_FILE):
            os.remove(runfiles.PAUSE_FILE)
        clear_stale_snakemake_lock(state["workdir"], write_config_file(run_config(state), runfiles.WORKFLOW_CONFIG))
        forcerun = list(plan.prepare(experiment)) if plan.prepare else []
        if plan.rebuild_only:
            forcerun.append("database")
        rounds = experiment.monitor.adaptive and not (plan.dry_run or plan.retrain or plan.rebuild_only)
        outcome = run_locked(plan, experiment, state, forcerun, out, summary=not rounds)
        if rounds:  # multiplicity = auto: the workflow asks for more rounds of replicates; the summary once, at the end
            from mosaic.ops.rounds import decision_lines, run_rounds

            outcome = run_rounds(experiment, outcome,
                                 lambda grown: run_locked(plan, grown, state, [], out, summary=False), out)
            if not outcome.paused and (outcome.snakemake_status == 0 or outcome.failed):
                print_summary(state, out)
            if outcome.error() is None and (lines := decision_lines(plan.ini)):
                print("\n" + "\n".join(lines), file=out, flush=True)
        return outcome


def run_locked(plan, experiment, state, forcerun, out, summary=True):
    """One Snakemake run of `experiment` for `plan`; its lines, then (`summary`) the comparison in plain words."""
    cores = plan.cores or default_cores(experiment)
    profile = resolve_profile(plan.profile)
    gpus = gpu_count(experiment, profile)
    also = write_run_list([run.run_hash for run in plan.retrain]) if plan.retrain else None
    partial = bool(plan.retrain) or plan.rebuild_only
    config_file = write_config_file(run_config(state, partial, also), runfiles.WORKFLOW_CONFIG)

    def command(forced, extra=()):
        return snakemake_command(state["workdir"], config_file, cores, profile=profile, gpus=gpus,
                                 forcerun=forced, extra=extra, logger=not plan.dry_run)

    log_path = os.path.abspath(runfiles.SNAKEMAKE_LOG)
    if plan.dry_run:
        from mosaic.ops.plan import asks_dry_run, dry_run

        status = dry_run(experiment.runs, command(forcerun, ["--dry-run", *plan.extra]), asks_dry_run(plan.extra),
                         log_path, out)
        return Outcome(total=len(experiment.runs), done=len(experiment.runs), snakemake_status=status,
                       log_path=log_path)

    before = states_of(experiment)
    if plan.retrain:
        to_train = list(plan.retrain)
    elif plan.rebuild_only:
        to_train = []
    else:
        to_train = [run for run in experiment.runs if before[run.run_hash].status != "done"]
    print(f"mosaic: {len(experiment.runs)} runs, {len(to_train)} to train, {cores} at a time"
          + (f" on {gpus} GPUs" if gpus else ""), file=out, flush=True)
    if plan.preflight is not None and to_train:
        from mosaic.run.preflight import before_training

        before_training(plan.ini, experiment, to_train, check=plan.preflight, preexec_fn=die_with_parent)
    display = progress.display_for(out)
    tracker = progress.Progress(experiment, to_train, slots=cores)
    if to_train and not profile:
        from mosaic.run.warm import prestart

        prestart()  # the warm-start server imports torch while Snakemake starts
    status, tail = run_snakemake(command(forcerun, plan.extra), log_path, display, tracker, state["workdir"])
    display.close(tracker)

    after = states_of(experiment)
    considered = plan.retrain or experiment.runs
    outcome = Outcome(
        total=len(experiment.runs),
        done=sum(after[run.run_hash].status == "done" for run in experiment.runs),
        failed=[run.run_id for run in considered if after[run.run_hash].status == "error"],
        paused=pause_requested(state["workdir"]),
        snakemake_status=status,
        log_path=log_path,
        trains_all=not (plan.retrain or plan.rebuild_only),
    )
    if outcome.paused:
        print(f"mosaic: paused; {outcome.remaining} runs remain: mosaic_resume (or mosaic_run) finishes them",
              file=out, flush=True)
    elif outcome.failed or (status != 0 and outcome.done):
        print(f"mosaic: building the database and plots from the {outcome.done} runs done", file=out, flush=True)
        partial_config = write_config_file(run_config(state, partial=True), runfiles.WORKFLOW_CONFIG)
        rebuild = snakemake_command(state["workdir"], partial_config, cores, profile=profile,
                                    forcerun=["database"], extra=plan.extra, logger=False)
        with open(log_path, "ab") as log:
            subprocess.run(rebuild, stdout=log, stderr=subprocess.STDOUT, check=False)
        if outcome.failed:
            print(f"mosaic: {len(outcome.failed)} of {outcome.total} runs failed: "
                  + ", ".join(map(str, outcome.failed)) + " (mosaic_status shows the tracebacks)", file=out, flush=True)
        else:
            for line in tail[-20:]:
                print(line, file=sys.stderr)
    elif status != 0:
        for line in tail[-20:]:
            print(line, file=sys.stderr)
    elif outcome.remaining:
        print(f"mosaic: {outcome.done} of {outcome.total} runs done ({outcome.remaining} not trained);"
              f" database {relative(state['database'])}, plots in {relative(state['plots'])}", file=out, flush=True)
    else:
        print(f"mosaic: all {outcome.total} runs done; database {relative(state['database'])},"
              f" plots in {relative(state['plots'])}", file=out, flush=True)
    if summary and not outcome.paused and (status == 0 or outcome.failed):
        print_summary(state, out)
    return outcome


def print_summary(state, out):
    """The comparison in plain words that the workflow's compare (and tune) steps wrote beside the plots,
    where the user looks: at the end of mosaic_run."""
    from mosaic.results.tuning_plots import written_words

    text = written_words(state["plots"], config_default("compare_value"))
    if text:
        print(f"\n{text}\n\nthe statistical tables: mosaic_compare {relative(state['database'])} --detail",
              file=out, flush=True)


def write_run_list(hashes):
    runfiles.write_atomic(runfiles.RUN_LIST, "".join(f"{h}\n" for h in hashes))
    return os.path.abspath(runfiles.RUN_LIST)


def snakemake_report(ini, database, plots, path):
    """`snakemake --report path` for the runs done (partial=True: a failed run leaves no hole), under the
    folder's session lock (BusyError while another command holds it). Returns the finished process, its
    output captured."""
    state = {"ini": os.path.abspath(ini), "database": os.path.abspath(database), "plots": os.path.abspath(plots)}
    with session_lock():
        config_file = write_config_file(run_config(state, partial=True), runfiles.WORKFLOW_CONFIG)
        command = snakemake_command(os.getcwd(), config_file, 1, extra=["--report", path], logger=False)
        return subprocess.run(command, capture_output=True, text=True, check=False)
