"""original: the tutorial through the original Mosaic (ml-mosaic 0.0.4) and through this one, side by side.

24 runs, batch 1, 2 in parallel, E epochs (100 by default; 400 with --original-epochs 400, the long
mode). The original is installed with pip into a virtual environment, .venv-original in the
repository (made once; torch from the same wheel source as ours), and run as its own tutorial says: its share/ files,
`loss_function`, `run_files_path` and `cache_database_path` set, a dummy setup.py in the folder (its
dataset_OR needs one). Reported: both walls, the ratio, the CPU time of each side (all its processes,
sampled from /proc every half second, the original's busy-looping server included), and the memory
of the run processes (peak RSS, PSS and USS from /proc/PID/smaps_rollup).
"""

import os
import shutil
import subprocess
import sys
import threading
import time

from harness import REPO, Contention, check, child_env, mosaic_command, table, tutorial_folder

NAME = "original"
TARGETS = {100: 0.25, 400: 0.15}  # Mosaic's wall / the original's

ORIGINAL_INI = """[PROCESS]
lr = 1e-2
epochs = {epochs}
loss_function = MSELoss
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = .runs

[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 2
multiplicity = 4
cache_database_path = ./cache.db
cache_size = 1M

[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./mosaic/share/dataset.py
batch_size = 1
data_size = 200
train_prop = 0.8
key = data_{{class}}

[mlp_funnel]
type = mlp
class = mlp_funnel
path_to_class = ./mosaic/share/mlp.py
key = mlp_{{class}}
length = 4
width = {{2-4}}

[mlp_brick]
type = mlp
class = mlp_brick
path_to_class = ./mosaic/share/mlp.py
key = mlp_{{class}}
length = 4
width = {{2-4}}
"""


def add_arguments(parser):
    parser.add_argument("--original-epochs", type=int, default=100,
                        help="original: epochs of the side-by-side tutorial (default 100; 400 is the long mode)")
    parser.add_argument("--original-venv", default=os.path.join(REPO, ".venv-original"),
                        help="original: the venv of ml-mosaic 0.0.4, made there with pip when missing "
                             "(default .venv-original in the repository)")


def original_venv(venv):
    """A venv with ml-mosaic 0.0.4 (its `mosaic` package would clash with ours in one environment)."""
    if os.path.exists(os.path.join(venv, "bin", "mosaic_run")):
        return venv
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q"]
    import torch

    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, "ml-mosaic==0.0.4"], check=True)
    return venv


def original_folder(folder, venv, epochs):
    os.makedirs(folder, exist_ok=True)
    python = os.path.join(venv, "bin", "python")
    share = subprocess.run([python, "-c", "import mosaic, os; print(os.path.join(os.path.dirname(mosaic.__file__), "
                                          "'share'))"], capture_output=True, text=True, check=True,
                           env=original_env(venv), cwd=folder).stdout.strip()
    os.makedirs(os.path.join(folder, "mosaic"), exist_ok=True)
    os.symlink(share, os.path.join(folder, "mosaic", "share"))
    with open(os.path.join(folder, "setup.py"), "w") as handle:
        handle.write("# its dataset_OR saves this file through the download cache\n")
    with open(os.path.join(folder, "config.ini"), "w") as handle:
        handle.write(ORIGINAL_INI.format(epochs=epochs))


def original_env(venv):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    return env


class Sampler(threading.Thread):
    """Every half second: CPU time and memory of the processes that `belongs(pid, cmdline)` accepts."""

    def __init__(self, belongs, is_run, unwaited):
        super().__init__(daemon=True)
        self.belongs, self.is_run, self.unwaited = belongs, is_run, unwaited
        self.cpu = {}  # pid -> last user + system seconds seen
        self.runs = {}  # pid -> (peak RSS, peak PSS, peak USS) in MB
        self.stop = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.5)

    def sample(self):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
                if not self.belongs(pid, cmdline):
                    continue
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                if self.unwaited(pid, cmdline):
                    self.cpu[pid] = (int(fields[11]) + int(fields[12])) / self.tick
                if self.is_run(pid, cmdline):
                    memory = smaps(pid)
                    old = self.runs.get(pid, (0, 0, 0))
                    self.runs[pid] = tuple(max(a, b) for a, b in zip(old, memory))
            except (OSError, ValueError, IndexError):
                continue


def smaps(pid):
    """(RSS, PSS, USS) of a process in MB."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                values[parts[0][:-1]] = int(parts[1]) / 1024
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return values.get("Rss", 0), values.get("Pss", 0), uss


def session_of(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[3])


def side(command, cwd, env, unwaited, is_run):
    """(wall, CPU seconds, run memory rows) of one side's mosaic_run.

    CPU: what the processes we wait for used (getrusage of the children), plus the last CPU time seen of
    those nobody waits for (`unwaited`: the original's server, Mosaic's warm-start server and its runs).
    """
    from harness import children_cpu

    user0, sys0 = children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=open(os.path.join(cwd, "run.log"), "w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    sid = process.pid

    def belongs(pid, cmdline):
        try:
            return unwaited(pid, cmdline) or (is_run(pid, cmdline) and session_of(pid) == sid)
        except (OSError, ValueError, IndexError):
            return False

    sampler = Sampler(belongs, is_run, unwaited)
    sampler.start()
    process.wait()
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    sampler.sample()
    user1, sys1 = children_cpu()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}); see {cwd}/run.log")
    # The original's server is never waited for: stop what is left of that side.
    for pid in list(sampler.cpu):
        try:
            if session_of(pid) == sid:
                os.kill(pid, 15)
        except (OSError, ValueError, IndexError):
            pass
    return wall, user1 - user0 + sys1 - sys0 + sum(sampler.cpu.values()), list(sampler.runs.values())


def memory_cells(rows):
    if not rows:
        return ["n/a"] * 3
    return [f"{max(row[i] for row in rows):.0f} (median {sorted(row[i] for row in rows)[len(rows) // 2]:.0f})"
            for i in range(3)]


def run(args, work):
    epochs = 4 if args.quick else args.original_epochs
    contention = Contention()
    venv = original_venv(args.original_venv)
    old = os.path.join(work, "original")
    original_folder(old, venv, epochs)
    new = os.path.join(work, "mosaic")
    tutorial_folder(new, {("PROCESS", "epochs"): epochs, ("MONITOR", "nb_processus"): 2})
    warm_dir = os.path.join(work, "warm")

    old_wall, old_cpu, old_runs = side(
        [os.path.join(venv, "bin", "mosaic_run"), "config.ini", "database.db"], old, original_env(venv),
        lambda pid, cmdline: "serviceModule.py" in cmdline and os.readlink(f"/proc/{pid}/cwd") == old,
        lambda pid, cmdline: "execPipe" in cmdline)
    new_wall, new_cpu, new_runs = side(
        [*mosaic_command("mosaic_run"), "config.ini", "database.db"], new, child_env(MOSAIC_WARM_DIR=warm_dir),
        lambda pid, cmdline: warm_dir in cmdline,  # the server and its forked runs
        lambda pid, cmdline: warm_dir in cmdline and is_forked_run(pid))
    load = contention.report()
    ratio = new_wall / old_wall
    target = TARGETS.get(epochs)
    if target is not None:
        check(f"tutorial {epochs} epochs: Mosaic's wall / the original's", ratio, target, unit="x")
    if new_runs:
        check("tutorial: USS of a run process (peak)", max(row[2] for row in new_runs), 150, unit="MB")
    rows = [
        ["original ml-mosaic 0.0.4", f"**{old_wall:.0f} s**", f"{old_cpu:.0f} s", *memory_cells(old_runs)],
        ["Mosaic (this)", f"**{new_wall:.0f} s**", f"{new_cpu:.0f} s", *memory_cells(new_runs)],
    ]
    text = [
        f"## original: the tutorial, 24 runs x {epochs} epochs, side by side with ml-mosaic 0.0.4",
        "",
        "Both with 2 runs in parallel, batch 1, on this machine one after the other. CPU: user + system time of "
        "every process of that side (the waited-for ones exactly; the original's server and Mosaic's warm-start "
        "server and runs sampled every 0.5 s, so a little low). Memory of a run process (MB): the original's execPipe "
        "processes, Mosaic's forked runs (children of the warm-start server); peak over the run, max (median) "
        "over the runs.",
        "",
        table(["tool", "wall", "CPU time", "run RSS MB", "run PSS MB", "run USS MB"], rows),
        "",
        f"Ratio Mosaic / original: **{ratio:.2f}** (target {target if target else 'n/a'}); the original spent "
        f"{old_cpu / old_wall:.2f} cores on average, Mosaic {new_cpu / new_wall:.2f}.",
        "",
        load,
        "",
    ]
    shutil.rmtree(old, ignore_errors=True)
    return "\n".join(text)


def is_forked_run(pid):
    """A child of the warm-start server (the server itself has the same command line)."""
    with open(f"/proc/{pid}/stat") as handle:
        parent = int(handle.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{parent}/cmdline", "rb") as handle:
        return b"mosaic.run.server" in handle.read()
