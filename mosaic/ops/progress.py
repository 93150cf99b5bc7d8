"""What mosaic_run shows while Snakemake works: the runs done, running, failed and pending, the
running runs' epochs and an estimate of the time left.

The job events come from Snakemake's logger-plugin interface (`--logger mosaic`, see
mosaic/ops/snakemake_plugins), one JSON object a line. On a terminal the display is redrawn in
place; otherwise (CI, a log file) it prints plain lines:
     ---> launch <id> <i>/<N>       when a run starts training
     [run finished] <id>            when it has written its results
     [run failed] <id>: <error>     when it raised (its traceback is in mosaic_status)
     <done> of <total> steps (<percent>) done
"""

import json
import time

from mosaic import runfiles

TRAIN_RULE = "train"


def last_error_line(run_files_path, run_hash):
    try:
        with open(runfiles.run_file(run_files_path, run_hash, runfiles.ERROR)) as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return "unknown error"
    return lines[-1] if lines else "unknown error"


def duration_text(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """The state of the runs to train, updated from Snakemake's job events (`handle(event)`)."""

    def __init__(self, experiment, to_train, slots, clock=time.monotonic):
        self.experiment = experiment
        self.run_files_path = experiment.process.run_files_path
        self.total = len(to_train)  # replaced by Snakemake's count of train jobs when it gives it
        self.slots = max(1, slots)
        self.clock = clock
        self.run_of_job = {}  # Snakemake job id -> run hash (train jobs only)
        self.started = {}  # run hash -> clock time, in launch order
        self.running = {}  # run hash -> clock time it started
        self.finished = []  # (run hash, seconds it took)
        self.failed = []  # run hashes
        self.steps = None  # (done, total) of all Snakemake jobs

    def run_id(self, run_hash):
        return self.experiment.run_by_hash(run_hash).run_id

    def handle(self, event):
        """Apply one event; returns the plain lines it gives (launch, finished, failed, steps)."""
        kind = event.get("event")
        if kind == "run_info":
            self.total = int((event.get("stats") or {}).get(TRAIN_RULE, self.total))
        elif kind == "job_info" and event.get("rule_name") == TRAIN_RULE:
            run_hash = (event.get("wildcards") or {}).get("run")
            if run_hash is None:
                return []
            self.run_of_job[event.get("jobid")] = run_hash
            self.running[run_hash] = self.started[run_hash] = self.clock()
            self.total = max(self.total, len(self.started))
            return [f" ---> launch {self.run_id(run_hash)} {len(self.started)}/{self.total}"]
        elif kind == "job_finished" and event.get("job_id") in self.run_of_job:
            run_hash = self.run_of_job[event["job_id"]]
            self.finished.append((run_hash, self.clock() - self.running.pop(run_hash, self.clock())))
            return [f" [run finished] {self.run_id(run_hash)}"]
        elif kind == "job_error" and event.get("jobid") in self.run_of_job:
            run_hash = self.run_of_job[event["jobid"]]
            self.running.pop(run_hash, None)
            self.failed.append(run_hash)
            return [f" [run failed] {self.run_id(run_hash)}: {last_error_line(self.run_files_path, run_hash)}"]
        elif kind == "progress" and event.get("total"):
            done, total = int(event["done"]), int(event["total"])
            self.steps = (done, total)
            return [f" {done} of {total} steps ({done / total:.0%}) done"]
        return []

    def pending(self):
        return max(0, self.total - len(self.started))

    def eta(self):
        """Seconds left, from the mean duration of the runs finished so far; None before the first."""
        if not self.finished:
            return None
        mean = sum(seconds for _, seconds in self.finished) / len(self.finished)
        now = self.clock()
        work = self.pending() * mean + sum(max(0.0, mean - (now - since)) for since in self.running.values())
        return work / self.slots

    def summary(self):
        eta = self.eta()
        return (f"runs: {len(self.finished)} done, {len(self.running)} running, {len(self.failed)} failed,"
                f" {self.pending()} pending; ETA {'?' if eta is None else duration_text(eta)}")

    def running_lines(self):
        """One line per running run: its id, pipeline and epoch (from its train.log)."""
        lines = []
        for run_hash in self.running:
            run = self.experiment.run_by_hash(run_hash)
            epoch = runfiles.progress(runfiles.run_file(self.run_files_path, run_hash, runfiles.LOG))
            where = f"epoch {epoch[0]}/{epoch[1]}" if epoch else "starting"
            lines.append(f"  [{run.run_id}] {run.pipeline}  {where}")
        return lines


class PlainDisplay:
    """Lines for logs and CI: each event's line, as it comes."""

    def __init__(self, stream):
        self.stream = stream

    def show(self, lines, progress):
        for line in lines:
            print(line, file=self.stream, flush=True)

    def message(self, line):
        print(line, file=self.stream, flush=True)

    def close(self, progress):
        pass


class LiveDisplay:
    """On a terminal: finished and failed runs scroll by, and below them a block that is redrawn
    in place (the counts and ETA, then one line per running run)."""

    def __init__(self, stream, width=None):
        self.stream = stream
        self.width = width
        self.drawn = 0  # lines of the block on screen

    def erase(self):
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")  # up to the block's first line, clear below
            self.drawn = 0

    def draw(self, progress):
        block = [progress.summary(), *progress.running_lines()]
        if self.width:
            block = [line[: self.width - 1] for line in block]
        self.stream.write("".join(f"{line}\n" for line in block))
        self.drawn = len(block)

    def show(self, lines, progress):
        self.erase()
        for line in lines:
            if "launch" not in line and "steps" not in line:  # the block shows what is running
                self.stream.write(f"{line.strip()}\n")
        self.draw(progress)
        self.stream.flush()

    def message(self, line):
        self.erase()
        self.stream.write(f"{line}\n")
        self.stream.flush()

    def close(self, progress):
        self.erase()
        self.stream.write(progress.summary() + "\n")
        self.stream.flush()


def display_for(stream):
    """The live display on a terminal, plain lines otherwise."""
    if stream.isatty():
        import shutil

        return LiveDisplay(stream, width=shutil.get_terminal_size().columns)
    return PlainDisplay(stream)


def parse_events(text):
    """The events in a chunk of the plugin's output: complete lines only (returns events, rest)."""
    *lines, rest = text.split("\n")
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, rest
