"""tutorial: the whole tutorial through mosaic_run, and the start-up cost of one job."""

import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import time

from bench_step import ORIGINAL_BARE_EPOCH_S, measure_variant, step_variants
from harness import (
    STEP_PIPELINE,
    Contention,
    check,
    child_env,
    children_cpu,
    median,
    mosaic_command,
    table,
    timed_command,
    tutorial_folder,
    warm_servers_cpu_s,
)

NAME = "tutorial"
# The original Mosaic (ml-mosaic 0.0.4), same tutorial on the same kind of 2-core machine, when it was timed:
ORIGINAL_TUTORIAL_S = 1226.4  # 24 runs x 400 epochs, nb_processus 2, wall
TUTORIAL_TARGET_S = (150, 245)  # 5-8x faster than the original on 2 cores


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, help="tutorial: epochs (default 400, 40 with --quick)")


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
        wall, rc, output = timed_command([sys.executable, "-m", "mosaic.run.job", ini, run.run_hash], cwd=folder,
                                         env=child_env(MOSAIC_WARM_START="0"))  # in-process: what it imports
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


def run(args, work):
    epochs = 40 if args.quick and args.epochs is None else (args.epochs or 400)
    reps = 2 if args.quick else 3
    folder = os.path.join(work, "tutorial")
    tutorial_folder(folder, {("PROCESS", "epochs"): epochs, ("MONITOR", "nb_processus"): 2})
    reference_ms = reference_loop_ms(work)
    contention = Contention()
    user0, sys0 = children_cpu()
    servers0 = warm_servers_cpu_s()  # the runs are forked by the warm-start server, not our children
    started = time.time()
    wall, rc, _ = timed_command([*mosaic_command("mosaic_run"), "config.ini", "database.db"], cwd=folder,
                                log=os.path.join(folder, "mosaic_run.log"))
    ended = time.time()
    user1, sys1 = children_cpu()
    cpu_s = user1 - user0 + sys1 - sys0 + warm_servers_cpu_s() - servers0
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

    if full:
        check("tutorial (400 epochs): speed-up over the original's 1226 s", ORIGINAL_TUTORIAL_S / wall, 5.0,
              unit="x", higher_is_better=True)
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
        ["CPU time of all processes (user + sys; the warm-start server's runs included)",
         f"{cpu_s:.0f} s ({cpu_s / wall:.2f} cores on average)"],
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
        ["one `python -m mosaic.run.job`, 1-epoch run, alone, in-process (MOSAIC_WARM_START=0; the warm start: "
         "see warmstart)", f"{job_wall:.2f} s"],
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


