"""Running the workflow: Snakemake in a subprocess, watched so as to print the seed's lines.

    ---> launch <id> <i>/<N>       when a run starts training
    [run finished] <id>            when it has written its results
    [run failed] <id>: <error>     when it raised (its traceback is in mosaic_status)
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

from mosaic import runfiles
from mosaic.ops import session
from mosaic.ops.paths import snakefile

PROGRESS = re.compile(r"^\d+ of \d+ steps \(.*\) done")
TRAIN_JOBS = re.compile(r"^train\s+(\d+)$")  # Snakemake's job stats table, printed before it starts
PR_SET_PDEATHSIG = 1


def snakemake_command(state, cores, targets=(), forcerun=(), partial=False, also=None, profile=None,
                      gpus=0, extra=()):
    """The snakemake command line for the experiment in `state` (see session.py)."""
    command = [sys.executable, "-m", "snakemake", *targets]
    command += ["--snakefile", snakefile(), "--directory", state["workdir"]]
    command += ["--cores", str(cores), "--keep-going", "--rerun-incomplete"]
    if profile:
        command += ["--profile", profile]
    if gpus:
        command += ["--resources", f"gpu={gpus}"]
    if forcerun:
        command += ["--forcerun", *forcerun]
    command += [*extra, "--config", f"ini={state['ini']}", f"database={state['database']}",
                f"plots={state['plots']}", f"partial={partial}"]
    if also:
        command.append(f"also={also}")
    return command


class Watcher(threading.Thread):
    """Polls the run folders (twice a second) and prints each run's start and end."""

    def __init__(self, experiment, runs, say, total=None, interval=None):
        super().__init__(daemon=True)
        self.rfp = experiment.process.run_files_path
        self.runs = list(runs)
        self.total = total or len(self.runs)  # updated from Snakemake's job stats (see TRAIN_JOBS)
        self.say = say
        # A pass costs ~5 us a run: poll big experiments less often (10,000 runs: 2 s, 2.5% of a core).
        self.interval = interval or max(0.5, len(self.runs) / 5000)
        self.started = time.time()
        self.launched = set()
        self.ended = {}
        self.stop = threading.Event()

    def newer(self, run, name):
        try:
            return os.stat(runfiles.run_file(self.rfp, run.run_hash, name)).st_mtime >= self.started
        except FileNotFoundError:
            return False

    def poll(self):
        for run in self.runs:
            if run.run_hash in self.ended:
                continue
            running = runfiles.is_locked(runfiles.run_file(self.rfp, run.run_hash, runfiles.LOCK))
            done = not running and self.newer(run, runfiles.RESULT)
            failed = not running and not done and self.newer(run, runfiles.ERROR)
            if (running or done or failed) and run.run_hash not in self.launched:
                self.launched.add(run.run_hash)
                self.total = max(self.total, len(self.launched))
                self.say(f" ---> launch {run.run_id} {len(self.launched)}/{self.total}")
            if done:
                self.ended[run.run_hash] = "done"
                self.say(f" [run finished] {run.run_id}")
            elif failed:
                self.ended[run.run_hash] = "error"
                self.say(f" [run failed] {run.run_id}: {last_error_line(self.rfp, run)}")

    def run(self):
        while not self.stop.wait(self.interval):
            self.poll()

    def finish(self):
        self.stop.set()
        self.join()
        self.poll()


def last_error_line(rfp, run):
    try:
        with open(runfiles.run_file(rfp, run.run_hash, runfiles.ERROR)) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return "unknown error"
    return lines[-1] if lines else "unknown error"


def run_snakemake(command, log_path, say, on_interrupt=None, watcher=None):
    """Run snakemake, its output kept in `log_path`; prints progress lines and errors.

    Snakemake runs in its own session, so that Ctrl-C reaches only us: the first Ctrl-C calls
    `on_interrupt` (pause), a second one stops Snakemake and its jobs.
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, bufsize=1, preexec_fn=die_with_parent,
    )
    interrupts = []

    def interrupt(signum, frame):
        interrupts.append(signum)
        if len(interrupts) == 1 and on_interrupt is not None:
            on_interrupt()
        else:
            say("mosaic: stopping Snakemake and the running jobs")
            os.killpg(process.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, interrupt)
    tail = []
    try:
        with open(log_path, "a") as log:
            for line in process.stdout:
                log.write(line)
                line = line.rstrip("\n")
                tail = (tail + [line])[-40:]
                if PROGRESS.match(line):
                    say(f" {line}")
                elif watcher is not None and TRAIN_JOBS.match(line):
                    watcher.total = int(TRAIN_JOBS.match(line).group(1))
            process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return process.returncode, tail


def die_with_parent():
    """In the child: die when mosaic_run dies, even by kill -9 (Linux). SIGKILL, as Snakemake on
    SIGTERM waits for its running jobs; the jobs stop when their Snakemake is gone (mosaic/run/job.py),
    and the next mosaic_run clears the stale lock."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def pause_requested(workdir):
    return os.path.exists(os.path.join(workdir, session.PAUSE_FILE))
