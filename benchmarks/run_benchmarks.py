#!/usr/bin/env python
"""Mosaic benchmarks, measured side by side in one run; prints a markdown report and writes it to a file.

    python benchmarks/run_benchmarks.py                      # everything, full size (several minutes)
    python benchmarks/run_benchmarks.py --quick              # everything, small sizes (2-3 minutes)
    python benchmarks/run_benchmarks.py --only step,expand   # a selection
    python benchmarks/run_benchmarks.py --only tutorial --epochs 100 --out /tmp/t.md

Benchmarks (see benchmarks/README.md):
  step      per-step training cost: Mosaic's loop against a bare PyTorch loop, on the tutorial model
  expand    ini expansion, Snakemake dry run, database / status / watcher cost for 24 to 10,000 runs
  tutorial  wall time of the whole tutorial through mosaic_run, and the start-up cost of one job

Run it with the project's interpreter (.venv/bin/python) and nothing else heavy on the machine: the
load average is printed next to every measurement.
"""

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARE = os.path.join(REPO, "share")
sys.path.insert(0, REPO)  # benchmark this checkout, whatever is installed
sys.path.insert(1, os.path.join(REPO, "tests"))
from conftest import set_key  # noqa: E402  (the tests' ini editor)

BENCHMARKS = ("step", "expand", "tutorial")

# The original Mosaic (ml-mosaic 0.0.4) on this 2-core machine: /work/shared/reference/original-mosaic.md §11.
ORIGINAL_TUTORIAL_S = 1226.4  # 24 runs x 400 epochs, nb_processus 2, wall
ORIGINAL_BARE_EPOCH_S = 0.062  # the same model, data and loop in plain PyTorch, one process, per epoch
TUTORIAL_TARGET_S = (150, 245)  # 5-8x faster than the original on 2 cores

# The tutorial's model for the step benchmark: mlp_brick, length 4, width 3.
STEP_PIPELINE = "mlp_brick(4,3)"


# ---------------------------------------------------------------------------------------------------------
# Small helpers


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
    """CPU seconds of this process and of the children it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class Contention:
    """What else ran on the machine while a benchmark ran: load average, and the cores used by
    processes other than this one and its children (from /proc/stat)."""

    def __init__(self):
        self.load = loadavg()
        self.busy, self.own, self.wall = cpu_busy_s(), own_cpu_s(), time.perf_counter()

    def report(self):
        wall = time.perf_counter() - self.wall
        text = f"Load average before / after: {self.load} / {loadavg()}"
        busy = cpu_busy_s()
        if busy is not None and self.busy is not None and wall > 0:
            other = max(0.0, (busy - self.busy) - (own_cpu_s() - self.own)) / wall
            text += (f"; other processes used {other:.2f} of the {os.cpu_count()} cores on average"
                     " during this benchmark")
            if other > 0.2:
                text += " (**the machine was not idle: timings are pessimistic**)"
        return text + "."


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values, scale=1.0, digits=0):
    """'min-max' of a list, scaled."""
    if not values:
        return ""
    return f"{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}"


def seconds(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f} s"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


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


def child_env():
    """The environment of the commands we start: this checkout first on the path, one torch thread."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([REPO, *paths])
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("MOSAIC_SNAKEMAKE_PID", None)
    return env


def timed_command(command, cwd=None, log=None):
    """(wall seconds, return code, output) of a command; its output goes to `log` when given."""
    started = time.perf_counter()
    if log:
        with open(log, "w") as handle:
            process = subprocess.run(command, cwd=cwd, env=child_env(), stdout=handle,
                                     stderr=subprocess.STDOUT)
        output = None
    else:
        process = subprocess.run(command, cwd=cwd, env=child_env(), capture_output=True, text=True)
        output = process.stdout + process.stderr
    return time.perf_counter() - started, process.returncode, output


def python_snippet(code, cwd=None):
    """Run `code` in a fresh interpreter; it prints one JSON line; returns (wall s, parsed JSON)."""
    wall, rc, output = timed_command([sys.executable, "-c", code], cwd=cwd)
    if rc != 0:
        raise RuntimeError(f"snippet failed ({rc}):\n{output}")
    return wall, json.loads(output.strip().splitlines()[-1])


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


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_header(args):
    import torch

    try:
        from importlib.metadata import version

        snakemake_version = version("snakemake")
    except Exception:  # only informative
        snakemake_version = "not installed"
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    lines = [
        "# Mosaic benchmarks",
        "",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {cpu_model()}, **{cores} cores** ({usable} usable), "
        f"{platform.system()} {platform.release()}",
        f"- Software: Python {platform.python_version()}, **torch {torch.__version__}** "
        f"(intra-op threads: 1 per run), snakemake {snakemake_version}",
        f"- Code: git {git_description()}",
        f"- Command: `{' '.join(['python', 'benchmarks/run_benchmarks.py', *sys.argv[1:]])}`",
        f"- Load average (1, 5, 15 min) at the start: {loadavg()}",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# step: Mosaic's training loop against a bare PyTorch loop


def import_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Variant:
    """One way of training the tutorial model: build() gives (train_epoch, eval_epoch) callables."""

    def __init__(self, name, build, note=""):
        self.name, self.build, self.note = name, build, note
        self.train_us, self.eval_us, self.epoch_ms = [], [], []


def step_variants(work):
    """The loops compared, all on mlp_brick(4,3), dataset_OR (200 samples, 80 % train), batch 1, MSE,
    Adam lr 1e-2."""
    import torch

    from mosaic.experiment import load_experiment
    from mosaic.run import training

    ini = tutorial_folder(work, {("MONITOR", "multiplicity"): 1})
    experiment = load_experiment(ini)
    run = next(r for r in experiment.runs if STEP_PIPELINE in r.pipeline)
    mlp = import_file(os.path.join(work, "mlp.py"), "bench_mlp")
    dataset = import_file(os.path.join(work, "dataset.py"), "bench_dataset")

    def bare_model(fused):
        torch.manual_seed(run.seed)
        train_loader, test_loader = dataset.dataset_OR(1, 200, 0.8).prepare(None, {}, {})
        model = mlp.mlp_brick(2, 1, 4, 3)
        # the tutorial's forward takes (data, run_info, module_info): model(x, None, None)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, **({"fused": True} if fused else {}))
        return model, optimizer, torch.nn.MSELoss(), train_loader, test_loader

    def bare(fused, materialized):
        def build():
            model, opt, crit, train_loader, test_loader = bare_model(fused)
            train_batches = list(train_loader) if materialized else train_loader
            test_batches = list(test_loader) if materialized else test_loader

            def train_epoch():
                model.train()
                for x, y in train_batches:
                    opt.zero_grad()
                    loss = crit(model(x, None, None).squeeze(), y.squeeze())
                    loss.backward()
                    opt.step()

            def eval_epoch():
                model.eval()
                total = 0.0
                with torch.no_grad():
                    for x, y in test_batches:
                        total += crit(model(x, None, None).squeeze(), y.squeeze()).item()
                return total / len(test_batches)

            return train_epoch, eval_epoch, len(train_batches), len(test_batches)

        return build

    def mosaic():
        def build():
            training.seed_everything(run.seed)
            pipeline = training.Pipeline(run, experiment, "cpu")
            optimizer = training.make_optimizer(experiment, pipeline.parameters)
            train_batches = training.batch_source(pipeline.train_loader, "cpu")
            test_batches = training.batch_source(pipeline.test_loader, "cpu")
            n_train, n_test = len(list(train_batches())), len(list(test_batches()))
            return (
                lambda: training.train_epoch(pipeline, train_batches(), optimizer),
                lambda: training.evaluate(pipeline, test_batches()),
                n_train,
                n_test,
            )

        return build

    return run, experiment, [
        Variant("bare PyTorch: DataLoader, default Adam", bare(False, False),
                "the obvious loop: `for x, y in loader`, `Adam(...)`"),
        Variant("bare PyTorch: batches in a list, default Adam", bare(False, True),
                "the same, DataLoader iterated once beforehand"),
        Variant("bare PyTorch: batches in a list, Adam(fused=True)", bare(True, True),
                "the best a hand-written loop does"),
        Variant("Mosaic: training.train_epoch + evaluate", mosaic(),
                "Pipeline from the ini, make_optimizer, batch_source"),
    ]


def measure_variant(variant, epochs):
    train_epoch, eval_epoch, n_train, n_test = variant.build()
    train_epoch()  # warm-up: optimizer state, allocator, lazy initialisation
    eval_epoch()
    train_s = eval_s = 0.0
    for _ in range(epochs):
        tick = time.perf_counter()
        train_epoch()
        tock = time.perf_counter()
        eval_epoch()
        train_s += tock - tick
        eval_s += time.perf_counter() - tock
    variant.train_us.append(train_s / (epochs * n_train) * 1e6)
    variant.eval_us.append(eval_s / (epochs * n_test) * 1e6)
    variant.epoch_ms.append((train_s + eval_s) / epochs * 1e3)
    return n_train, n_test


def measure_train_run(experiment, run, epochs, log_path):
    """Mosaic's whole train_run (seeding, data, model, checkpoints every tenth, final save), in-process."""
    from mosaic import runfiles
    from mosaic.run import training

    folder = runfiles.run_dir(experiment.process.run_files_path, run.run_hash)
    shutil.rmtree(folder, ignore_errors=True)
    with open(log_path, "w") as log:
        tick = time.perf_counter()
        training.train_run(experiment, run, target_epochs=epochs,
                           log=lambda line: print(line, file=log, flush=True))
        wall = time.perf_counter() - tick
    rows = runfiles.read_losses(os.path.join(folder, runfiles.LOSSES))
    epoch_s = [row[3] for row in rows]
    return wall, epoch_s


def bench_step(args, work):
    import torch

    torch.set_num_threads(1)
    reps, epochs = (3, 3) if args.quick else (args.step_reps, args.step_epochs)
    run_epochs = 20 if args.quick else args.step_run_epochs
    contention = Contention()
    run, experiment, variants = step_variants(os.path.join(work, "step"))
    n_train = n_test = None
    train_run_walls, train_run_epochs, train_run_setup = [], [], []
    for rep in range(reps):
        order = variants[rep % len(variants):] + variants[: rep % len(variants)]  # interleaved, rotated
        for variant in order:
            n_train, n_test = measure_variant(variant, epochs)
        log = os.path.join(work, "step", "train.log")
        wall, epoch_s = measure_train_run(experiment, run, run_epochs, log)
        train_run_walls.append(wall / run_epochs)
        train_run_epochs.append(median(epoch_s))
        train_run_setup.append(wall - sum(epoch_s))
    load = contention.report()

    base = median(variants[0].train_us)
    best = median(variants[2].train_us)
    rows = []
    for variant in variants:
        train_us = median(variant.train_us)
        rows.append([
            variant.name,
            f"**{train_us:.0f}** ({spread(variant.train_us)})",
            f"{median(variant.eval_us):.0f}",
            f"{median(variant.epoch_ms):.1f}",
            f"{train_us / base:.2f}",
            f"**{train_us / best:.2f}**",
            variant.note,
        ])
    per_epoch_run = median(train_run_walls) * 1e3
    rows.append([
        f"Mosaic: whole train_run, {run_epochs} epochs",
        "", "",
        f"{median(train_run_epochs) * 1e3:.1f} per epoch; {per_epoch_run:.1f} with set-up and saves",
        "", f"{median(train_run_epochs) * 1e3 / median(variants[2].epoch_ms):.2f} (epoch)",
        f"set-up + checkpoints + final save: {median(train_run_setup) * 1e3:.0f} ms a run",
    ])
    header = ["loop", "train us/step (min-max)", "eval us/step", "epoch ms", "/ bare DataLoader",
              "/ bare best", "what it is"]
    text = [
        "## step: per-step cost, Mosaic against a bare PyTorch loop",
        "",
        f"Tutorial model {STEP_PIPELINE} ({sum(p.numel() for p in training_parameters(run, experiment))} "
        f"parameters), dataset_OR data_size 200: {n_train} train steps + {n_test} eval steps per epoch, "
        f"batch 1, MSELoss, Adam lr 1e-2, torch.set_num_threads(1), one process. Median of {reps} "
        f"repetitions (interleaved) of {epochs} epochs each after one warm-up epoch; train_run: median of "
        f"{reps} runs of {run_epochs} epochs. Reference: the original report's bare loop took "
        f"{ORIGINAL_BARE_EPOCH_S * 1e3:.0f} ms/epoch; target: Mosaic within 10 % of the bare loop.",
        "",
        table(header, rows),
        "",
        load,
        "",
    ]
    return "\n".join(text)


def training_parameters(run, experiment):
    from mosaic.run import training

    pipeline = training.Pipeline(run, experiment, "cpu")
    return pipeline.parameters


# ---------------------------------------------------------------------------------------------------------
# expand: ini size against load, dry run, database, status and watcher


def expand_ini(folder, runs):
    """The tutorial with width ranges widened to give `runs` runs (2 model sections x widths x 4)."""
    per_section = runs // 8
    if per_section * 8 != runs:
        raise ValueError(f"{runs} runs: need a multiple of 8 (2 model sections, multiplicity 4)")
    width = "{2-4}" if runs == 24 else f"{{2-{per_section + 1}}}"
    return tutorial_folder(folder, {
        ("PROCESS", "epochs"): 1,  # irrelevant to expansion; lets one job of this ini run quickly
        ("MONITOR", "multiplicity"): 4,
        ("MONITOR", "nb_processus"): 2,
        ("mlp_funnel", "width"): width,
        ("mlp_brick", "width"): width,
    })


LOAD_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
from mosaic.experiment import load_experiment
t1 = time.perf_counter()
e = load_experiment({ini!r})
t2 = time.perf_counter()
print(json.dumps({{"runs": len(e.runs), "import": t1 - t0, "load": t2 - t1}}))
"""


def write_synthetic_runs(experiment, epochs):
    """result.json and losses.tsv for every run, as a finished training would leave them."""
    from mosaic import runfiles

    rng = random.Random(0)
    rfp = experiment.process.run_files_path
    for run in experiment.runs:
        folder = runfiles.run_dir(rfp, run.run_hash)
        os.makedirs(folder, exist_ok=True)
        rows, train, test = [], 0.25, 0.25
        for epoch in range(1, epochs + 1):
            train *= 0.97 + 0.02 * rng.random()
            test *= 0.97 + 0.02 * rng.random()
            rows.append((epoch, train, test, 0.03 + 0.01 * rng.random()))
        with open(os.path.join(folder, runfiles.LOSSES), "w") as handle:
            handle.write(runfiles.format_losses(rows))
        result = {
            "run_hash": run.run_hash, "run_id": run.run_id, "status": "done", "pipeline": run.pipeline,
            "replicate": run.replicate, "seed": run.seed, "nb_params": 49, "epochs": epochs,
            "duration_s": 12.0, "device": "cpu", "diverged": False, "train_loss": train, "test_loss": test,
            "versions": {},
        }
        with open(os.path.join(folder, runfiles.RESULT), "w") as handle:
            json.dump(result, handle)


def timed(function, *args):
    tick = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - tick, value


def dry_run(ini, folder):
    """`snakemake -n` for this ini, from the repository root, in `folder`: (wall, train jobs, total jobs)."""
    log = os.path.join(folder, "dry_run.log")
    command = [
        sys.executable, "-m", "snakemake", "-n", "--snakefile", os.path.join(REPO, "Snakefile"),
        "--directory", folder, "--cores", "2", "--config", f"ini={ini}",
        f"database={os.path.join(folder, 'results', 'mosaic.db')}",
        f"plots={os.path.join(folder, 'results', 'plots')}",
    ]
    wall, rc, _ = timed_command(command, cwd=REPO, log=log)
    with open(log) as handle:
        text = handle.read()
    if rc != 0:
        raise RuntimeError(f"snakemake -n failed ({rc}), see {log}:\n{text[-2000:]}")
    train = re.search(r"^train\s+(\d+)\s*$", text, re.M)
    total = re.search(r"^total\s+(\d+)\s*$", text, re.M)
    return wall, int(train.group(1)) if train else None, int(total.group(1)) if total else None


def bench_expand(args, work):
    from mosaic.experiment import load_experiment
    from mosaic.ops.progress import Progress
    from mosaic.results import database, status

    sizes = [24, 1000] if args.quick else args.sizes
    reps = 2 if args.quick else 3
    db_epochs = 40 if args.quick else args.db_epochs
    contention = Contention()
    rows, jobs_rows = [], []
    for size in sizes:
        folder = os.path.join(work, f"expand_{size}")
        ini = expand_ini(folder, size)
        loads = [python_snippet(LOAD_SNIPPET.format(ini=ini), cwd=folder) for _ in range(reps)]
        counts = {info["runs"] for _, info in loads}
        if counts != {size}:
            raise RuntimeError(f"the {size}-run ini expanded to {counts} runs")
        load_s = median([info["load"] for _, info in loads])
        process_s = median([wall for wall, _ in loads])

        dry_reps = 1 if size >= 5000 else reps
        dries = [dry_run(ini, folder) for _ in range(dry_reps)]
        dry_s = median([wall for wall, _, _ in dries])
        _, train_jobs, total_jobs = dries[0]

        experiment = load_experiment(ini)
        # mosaic_run's progress display: events from Snakemake, no per-run polling (one refresh a second)
        watcher = Progress(experiment, experiment.runs, slots=1)
        poll_pending, _ = timed(watcher.summary)
        write_s, _ = timed(write_synthetic_runs, experiment, db_epochs)
        # a new watcher: the files are older than it, as those of runs done before a mosaic_run
        watcher = Progress(experiment, experiment.runs, slots=1)
        poll_done, _ = timed(watcher.summary)
        db_s, _ = timed(database.build, experiment, os.path.join(folder, "synthetic.db"))
        status_s, _ = timed(lambda e: status.render(e, status.states_of(e)), experiment)

        # One job of this ini: every job loads (parses and expands) the whole ini to find its run.
        run = next(r for r in experiment.runs if STEP_PIPELINE in r.pipeline)
        shutil.rmtree(os.path.join(experiment.process.run_files_path, run.run_hash), ignore_errors=True)
        job_s, rc, output = timed_command([sys.executable, "-m", "mosaic.run.job", ini, run.run_hash], cwd=folder)
        if rc != 0:
            raise RuntimeError(f"mosaic.run.job failed:\n{output}")
        rows.append([
            f"{size:,}",
            f"{load_s:.3f} s",
            f"{process_s:.2f} s",
            f"**{dry_s:.1f} s** ({train_jobs} train / {total_jobs} jobs)",
            f"{dry_s / size * 1e3:.1f} ms",
            f"{job_s:.2f} s",
        ])
        jobs_rows.append([
            f"{size:,}",
            f"{poll_pending * 1e3:.0f} ms ({poll_pending * 2 * 100:.0f} % of a core)",
            f"{poll_done * 1e3:.0f} ms",
            f"{status_s:.2f} s",
            f"{db_s:.2f} s ({size * db_epochs:,} loss rows)",
            f"{write_s:.1f} s",
        ])
    load = contention.report()
    text = [
        "## expand: ini size",
        "",
        "The tutorial ini with both width ranges widened (2 model sections x W widths x multiplicity 4). "
        f"load_experiment: in a fresh interpreter, median of {reps}; 'process' is the whole `python -c` "
        "(start-up + import + load). Dry run: `python -m snakemake -n --snakefile Snakefile --directory TMP "
        f"--config ini=...` from the repository root (median of {reps}; one for 5,000 runs and more), its "
        "output to a file. One job: `python -m mosaic.run.job INI HASH` of a 1-epoch mlp_brick(4,3) run of "
        "that ini (every job loads the whole ini).",
        "",
        table(["runs", "load_experiment", "process", "snakemake -n", "dry run per run", "one job (1 epoch)"],
              rows),
        "",
        f"Run-file readers on synthetic finished runs ({db_epochs} epochs each), in-process. Watcher poll: "
        "one pass of mosaic_run's progress watcher (it polls every 0.5 s; the share of a core assumes that "
        "rate) with every run pending, then with every run done before the watcher started (those stay "
        "polled). Status: `mosaic_status` minus start-up (states_of + render). Database: "
        "`mosaic.results.database.build` (what `mosaic_savedb` and the database job do after loading the ini).",
        "",
        table(["runs", "watcher poll, pending", "watcher poll, done", "status", "database build",
               "(writing the files)"], jobs_rows),
        "",
        load,
        "",
    ]
    return "\n".join(text)


# ---------------------------------------------------------------------------------------------------------
# tutorial: the whole experiment through mosaic_run, and one job's start-up cost


def mosaic_command(name):
    script = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "mosaic.ops.cli", name.removeprefix("mosaic_")]


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def job_startup(work, reps):
    """Cost of one `python -m mosaic.run.job` for a 1-epoch run, and of its parts."""
    from mosaic.experiment import load_experiment

    folder = os.path.join(work, "job")
    ini = tutorial_folder(folder, {("PROCESS", "epochs"): 1, ("MONITOR", "multiplicity"): 1})
    experiment = load_experiment(ini)
    run = next(r for r in experiment.runs if STEP_PIPELINE in r.pipeline)
    run_folder = os.path.join(experiment.process.run_files_path, run.run_hash)
    walls, durations = [], []
    for _ in range(reps):
        shutil.rmtree(run_folder, ignore_errors=True)
        wall, rc, output = timed_command([sys.executable, "-m", "mosaic.run.job", ini, run.run_hash], cwd=folder)
        if rc != 0:
            raise RuntimeError(f"mosaic.run.job failed:\n{output}")
        walls.append(wall)
        with open(os.path.join(run_folder, "result.json")) as handle:
            durations.append(json.load(handle)["duration_s"])
    parts = []
    for label, code in [
        ("`python -c pass`", "pass"),
        ("`import mosaic.run.job` (no torch)", "import mosaic.run.job"),
        ("`import torch`", "import torch"),
        ("`import torch, torch._dynamo` (the first torch.optim call imports torch._dynamo)",
         "import torch, torch._dynamo"),
        ("`import mosaic.run.training` (torch, numpy)", "import mosaic.run.training"),
    ]:
        times = [timed_command([sys.executable, "-c", code], cwd=folder)[0] for _ in range(reps)]
        parts.append((label, median(times)))
    return median(walls), median(durations), parts


def reference_loop_ms(work):
    """Epoch time now of the original report's plain-PyTorch reference loop (DataLoader, default Adam,
    train + eval under no_grad): how fast the machine is compared with when the original was timed."""
    import torch

    torch.set_num_threads(1)
    _, _, variants = step_variants(os.path.join(work, "calibration"))
    reference = variants[0]
    for _ in range(3):
        measure_variant(reference, 5)
    return median(reference.epoch_ms)


def bench_tutorial(args, work):
    epochs = 40 if args.quick and args.epochs is None else (args.epochs or 400)
    reps = 2 if args.quick else 3
    folder = os.path.join(work, "tutorial")
    tutorial_folder(folder, {("PROCESS", "epochs"): epochs, ("MONITOR", "nb_processus"): 2})
    reference_ms = reference_loop_ms(work)
    contention = Contention()
    user0, sys0 = children_cpu()
    started = time.time()
    wall, rc, _ = timed_command([*mosaic_command("mosaic_run"), "config.ini", "database.db"], cwd=folder,
                                log=os.path.join(folder, "mosaic_run.log"))
    ended = time.time()
    user1, sys1 = children_cpu()
    load = contention.report()
    results = [os.path.join(root, "result.json") for root, _, files in os.walk(os.path.join(folder, ".runs"))
               if "result.json" in files]
    last_run = max((os.path.getmtime(path) for path in results), default=ended)
    if rc != 0:
        with open(os.path.join(folder, "mosaic_run.log")) as handle:
            raise RuntimeError(f"mosaic_run failed ({rc}):\n{handle.read()[-3000:]}")
    with contextlib.closing(sqlite3.connect(os.path.join(folder, "database.db"))) as db:
        done, runs = db.execute("SELECT SUM(status = 'done'), COUNT(*) FROM runs").fetchone()
        durations = [row[0] for row in db.execute("SELECT duration_s FROM runs WHERE status = 'done'")]
        epoch_s = sorted(row[0] for row in db.execute("SELECT seconds FROM losses"))
    cores = min(2, os.cpu_count() or 1)  # nb_processus = 2, capped at the cores by mosaic_run
    train_wall = sum(durations) / cores
    full = epochs == 400
    speedup = f"{ORIGINAL_TUTORIAL_S / wall:.1f}x" if full else "n/a (not 400 epochs)"
    slower = reference_ms / (ORIGINAL_BARE_EPOCH_S * 1e3)
    scaled = wall / slower
    job_wall, job_duration, parts = job_startup(work, reps)

    rows = [
        ["wall time, `mosaic_run config.ini database.db`", f"**{wall:.1f} s**"],
        ["original Mosaic, same tutorial (400 epochs, 2 cores)", f"{ORIGINAL_TUTORIAL_S:.0f} s"],
        ["speed-up over the original (target 5-8x: "
         f"{TUTORIAL_TARGET_S[0]}-{TUTORIAL_TARGET_S[1]} s)", f"**{speedup}**"],
        ["machine speed: the original report's plain-PyTorch loop (DataLoader, default Adam, train + "
         f"eval), {ORIGINAL_BARE_EPOCH_S * 1e3:.0f} ms/epoch when the original was timed",
         f"{reference_ms:.1f} ms/epoch now ({slower:.2f}x)"],
        ["wall time scaled to that speed (estimate: wall / "
         f"{slower:.2f})", f"{scaled:.0f} s" + (f", {ORIGINAL_TUTORIAL_S / scaled:.1f}x" if full else "")],
        ["CPU time of all processes (user + sys)", f"{user1 - user0:.0f} + {sys1 - sys0:.0f} s"],
        ["phases: until the last run's result.json / database and plots after it",
         f"{last_run - started:.1f} s / {ended - last_run:.1f} s"],
        ["runs done", f"{done}/{runs}"],
        ["per-run duration_s (database): mean (min-max)",
         f"{statistics.mean(durations):.2f} s ({min(durations):.2f}-"
         f"{max(durations):.2f})"],
        ["sum of duration_s / 2 cores (training inside the jobs)", f"{train_wall:.1f} s"],
        ["rest: job start-ups outside train_run, Snakemake, database, plots", f"{wall - train_wall:.1f} s"],
        ["epoch time in the runs: median (p90)",
         f"{median(epoch_s) * 1e3:.1f} ms ({epoch_s[int(0.9 * (len(epoch_s) - 1))] * 1e3:.1f} ms)"],
        ["one `python -m mosaic.run.job`, 1-epoch run, alone", f"{job_wall:.2f} s"],
        ["  of which train_run (its duration_s: torch._dynamo import, data, model, 1 epoch, saves)",
         f"{job_duration:.3f} s"],
        *[[f"  {label}", f"{value:.3f} s"] for label, value in parts],
    ]
    text = [
        f"## tutorial: 24 runs x {epochs} epochs through mosaic_run",
        "",
        "share/dataset.py, mlp.py and config.ini copied to a temporary folder, `nb_processus = 2`, "
        f"`epochs = {epochs}`, fresh run files; `mosaic_run` trains, builds the database and draws the "
        f"plots. Job start-up: median of {reps}. Machine speed: the reference loop of the step benchmark, "
        "measured just before.",
        "",
        table(["measure", "value"], rows),
        "",
        load.replace("benchmark", "tutorial run (job start-up excluded)"),
        "",
    ]
    return "\n".join(text)


# ---------------------------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: tutorial 40 epochs, expand 24 and 1,000 runs, step 3 x 3 epochs")
    parser.add_argument("--epochs", type=int, help="tutorial epochs (default 400, 40 with --quick)")
    parser.add_argument("--sizes", default="24,1000,10000",
                        help="expand: run counts, multiples of 8 (default 24,1000,10000)")
    parser.add_argument("--step-reps", type=int, default=7, help="step: repetitions (default 7)")
    parser.add_argument("--step-epochs", type=int, default=10,
                        help="step: timed epochs a repetition (default 10)")
    parser.add_argument("--step-run-epochs", type=int, default=40,
                        help="step: epochs of each whole train_run (default 40)")
    parser.add_argument("--db-epochs", type=int, default=400,
                        help="expand: epochs in the synthetic run files (default 400)")
    parser.add_argument("--out", help="markdown file to write (default benchmarks/results.md; "
                                      "benchmarks/out/results-quick.md with --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose among {', '.join(BENCHMARKS)}")
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if args.out is None:
        name = "out/results-quick.md" if args.quick else "results.md"
        args.out = os.path.join(REPO, "benchmarks", name)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    functions = {"step": bench_step, "expand": bench_expand, "tutorial": bench_tutorial}
    work = tempfile.mkdtemp(prefix="mosaic-bench-")
    sections = [machine_header(args)]
    print(sections[0], flush=True)
    try:
        for name in args.only:
            print(f"... {name} (load average {loadavg()})", file=sys.stderr, flush=True)
            tick = time.perf_counter()
            section = functions[name](args, work)
            section += f"_{name} benchmark took {time.perf_counter() - tick:.0f} s._\n"
            print(section, flush=True)
            sections.append(section)
    finally:
        if args.keep:
            print(f"temporary files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(sections))
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
