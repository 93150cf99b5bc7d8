"""What every benchmark shares: the machine's load, timing commands, tutorial copies, markdown tables, and
the list of checks (target, measured, pass/fail) that the report opens with."""

import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout
from tests.fakes import set_key  # noqa: E402  (one ini editor for the tests and the benchmarks)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE = os.path.join(REPO, "share")

# The tutorial's model for the benchmarks that train one run: mlp_brick, length 4, width 3.
STEP_PIPELINE = "mlp_brick(4,3)"


# ---------------------------------------------------------------------------------------------------------
# Checks: one row of the summary table each


class Check:
    """A measured value against its target; `higher_is_better` flips the comparison (speed-ups)."""

    def __init__(self, name, measured, target, unit="s", higher_is_better=False, note=""):
        self.name, self.measured, self.target, self.unit = name, measured, target, unit
        self.higher_is_better, self.note = higher_is_better, note

    @property
    def ratio(self):
        if self.measured is None or not self.target:
            return None
        return self.measured / self.target

    @property
    def passed(self):
        if self.measured is None:
            return None
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target

    def row(self):
        sign = ">=" if self.higher_is_better else "<="
        measured = "n/a" if self.measured is None else f"{self.measured:.3g} {self.unit}"
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        verdict = {True: "pass", False: "**FAIL**", None: "not measured"}[self.passed]
        return [self.name, f"{sign} {self.target:g} {self.unit}", measured, ratio, verdict, self.note]


CHECKS = []


def check(name, measured, target, unit="s", higher_is_better=False, note=""):
    """Record a check for the summary table; returns it."""
    item = Check(name, measured, target, unit, higher_is_better, note)
    CHECKS.append(item)
    return item


def summary_table():
    return table(["check", "target", "measured", "ratio", "result", "note"], [c.row() for c in CHECKS])


# ---------------------------------------------------------------------------------------------------------
# The machine


def loadavg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def cpu_busy_s():
    """Seconds of CPU time used by the whole machine since boot (all processes, all cores)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s():
    """CPU seconds of this process, of the children it has waited for, and of the warm-start servers
    (detached, so not our children) with the runs they forked and reaped."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total + warm_servers_cpu_s()


def warm_servers_cpu_s():
    """User + system time of the live mosaic.run.server processes and of their reaped children."""
    total = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"mosaic.run.server" not in handle.read():
                    continue
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{fields[1]}/cmdline", "rb") as handle:  # its parent
                if b"mosaic.run.server" in handle.read():
                    continue  # a forked run: counted in its server's children time once reaped
        except (OSError, IndexError):
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


class Contention:
    """What else ran on the machine while a benchmark ran: load average, and the cores used by
    processes other than this one and its children (from /proc/stat)."""

    def __init__(self):
        self.load = loadavg()
        self.busy, self.own, self.wall = cpu_busy_s(), own_cpu_s(), time.perf_counter()

    def report(self, what="benchmark"):
        wall = time.perf_counter() - self.wall
        text = f"Load average before / after: {self.load} / {loadavg()}"
        busy = cpu_busy_s()
        if busy is not None and self.busy is not None and wall > 0:
            other = max(0.0, (busy - self.busy) - (own_cpu_s() - self.own)) / wall
            text += (f"; other processes used {other:.2f} of the {os.cpu_count()} cores on average"
                     f" during this {what}")
            if other > 0.2:
                text += " (**the machine was not idle: timings are pessimistic**)"
        return text + "."


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_description():
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.split("\n")
        changed = [line[3:] for line in dirty if line.strip()]
        return sha + (f" + uncommitted changes in {', '.join(changed)}" if changed else " (clean)")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_lines(mode):
    import torch

    try:
        from importlib.metadata import version

        snakemake_version = version("snakemake")
    except Exception:  # only informative
        snakemake_version = "not installed"
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return [
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {cpu_model()}, **{cores} cores** ({usable} usable), "
        f"{platform.system()} {platform.release()}",
        f"- Software: Python {platform.python_version()}, **torch {torch.__version__}** "
        f"(intra-op threads: 1 per run), snakemake {snakemake_version}",
        f"- Code: git {git_description()}",
        f"- Mode: **{mode}**; command: `{' '.join(['python', 'benchmarks/run_benchmarks.py', *sys.argv[1:]])}`",
        f"- Load average (1, 5, 15 min) at the start: {loadavg()}",
    ]


# ---------------------------------------------------------------------------------------------------------
# Numbers and tables


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values, scale=1.0, digits=0):
    """'min-max' of a list, scaled."""
    if not values:
        return ""
    return f"{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def timed(function, *args, **kwargs):
    tick = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - tick, value


# ---------------------------------------------------------------------------------------------------------
# Experiments and commands


def tutorial_folder(folder, settings):
    """A copy of the tutorial (share/dataset.py, mlp.py, config.ini) with `settings` applied to the ini."""
    os.makedirs(folder, exist_ok=True)
    for name in ("dataset.py", "mlp.py"):
        shutil.copy(os.path.join(SHARE, name), os.path.join(folder, name))
    with open(os.path.join(SHARE, "config.ini")) as handle:
        text = handle.read()
    for (section, key), value in settings.items():
        text = set_key(text, section, key, value)
    ini = os.path.join(folder, "config.ini")
    with open(ini, "w") as handle:
        handle.write(text)
    return ini


def child_env(**extra):
    """The environment of the commands we start: this checkout first on the path."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([REPO, *paths])
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("MOSAIC_SNAKEMAKE_PID", None)
    env.update(extra)
    return env


def timed_command(command, cwd=None, log=None, env=None):
    """(wall seconds, return code, output) of a command; its output goes to `log` when given."""
    env = env or child_env()
    started = time.perf_counter()
    if log:
        with open(log, "w") as handle:
            process = subprocess.run(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        output = None
    else:
        process = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        output = process.stdout + process.stderr
    return time.perf_counter() - started, process.returncode, output


def python_snippet(code, cwd=None):
    """Run `code` in a fresh interpreter; it prints one JSON line; returns (wall s, parsed JSON)."""
    wall, rc, output = timed_command([sys.executable, "-c", code], cwd=cwd)
    if rc != 0:
        raise RuntimeError(f"snippet failed ({rc}):\n{output}")
    return wall, json.loads(output.strip().splitlines()[-1])


def mosaic_command(name):
    script = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "mosaic.ops.cli", name.removeprefix("mosaic_")]


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime
