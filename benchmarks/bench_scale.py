"""scale: 100,000-run sweeps on synthetic finished runs (training is not the point here).

mosaic_generate, `snakemake -n`, mosaic_status, the database (full rebuild; incremental update after
100 runs are added and 100 rerun), plotloss and a metaplot: wall time and peak memory of each command.
"""

import dataclasses
import math
import os
import random
import shutil
import sys
import time

from bench_expand import dry_run_command, expand_ini, job_specs, job_walls, write_synthetic_runs
from harness import REPO, Contention, check, child_env, mosaic_command, table

NAME = "scale"


def add_arguments(parser):
    parser.add_argument("--scale-runs", type=int, default=100_000,
                        help="scale: runs of the big ini (default 100,000; a multiple of 8)")
    parser.add_argument("--scale-db-runs", type=int, default=10_000,
                        help="scale: runs of the database update and plots (default 10,000)")
    parser.add_argument("--scale-epochs", type=int, default=400, help="scale: epochs of each synthetic run")


def measured(command, cwd, log=None):
    """(wall s, peak RSS MB, return code) of one command, its peak memory from GNU time (wait4 on our own
    child would count the pages of this big process, copied by fork before the exec)."""
    import subprocess
    import tempfile

    handle, report = tempfile.mkstemp(prefix="mosaic-bench-time-")
    os.close(handle)
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        started = time.perf_counter()
        timer = ["/usr/bin/time", "-o", report, "-f", "%M"] if os.path.exists("/usr/bin/time") else []
        rc = subprocess.run([*timer, *command], cwd=cwd, env=child_env(), stdout=out,
                            stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - started
        with open(report) as lines:
            words = lines.read().split()
        rss_kb = int(words[-1]) if words else float("nan")  # nan: GNU time is not installed
    finally:
        if log:
            out.close()
        os.remove(report)
    return wall, rss_kb / 1024, rc


def python_measured(code, cwd):
    return measured([sys.executable, "-c", code], cwd)


def must(result, what):
    wall, rss, rc = result
    if rc != 0:
        raise RuntimeError(f"{what} failed ({rc})")
    return wall, rss


BUILD = """
from mosaic.experiment import load_experiment
from mosaic.results import database
database.build(load_experiment("config.ini"), "mosaic.db", incremental={incremental})
"""


def rewrite_runs(folder, hashes, epochs, seed):
    """New result and loss files for these runs, as a rerun leaves them."""
    from mosaic import runfiles

    rng = random.Random(seed)
    for run_hash in hashes:
        rows = [(e, rng.random(), rng.random(), 0.03) for e in range(1, epochs + 1)]
        path = os.path.join(folder, ".runs", run_hash)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, runfiles.LOSSES), "w") as handle:
            handle.write(runfiles.format_losses(rows))
        runfiles.write_json(os.path.join(path, runfiles.RESULT), {
            "run_hash": run_hash, "status": "done", "epochs": epochs, "duration_s": 1.0, "nb_params": 49,
            "device": "cpu", "diverged": False})


DRY_RUN_CEILING = ("Snakemake's own DAG building, about 1 ms a job (profiled: Mosaic's share is the 6 s of "
                   "spec writing and ini loading); lever: fewer jobs (runs batched k per job), not built")


def big_ini(args, work):
    """generate, snakemake -n and status on the big ini, database full rebuild on it."""
    from mosaic.experiment import load_experiment

    runs = 2000 if args.quick else args.scale_runs
    epochs = 40 if args.quick else args.scale_epochs
    folder = os.path.join(work, f"big_{runs}")
    ini = expand_ini(folder, runs)
    rows = []
    generate = must(measured([*mosaic_command("mosaic_generate"), "config.ini", "runs.json"], folder), "generate")
    rows.append(["mosaic_generate", runs, *generate])
    check(f"mosaic_generate, {runs:,} runs: wall", generate[0], 10)
    check(f"mosaic_generate, {runs:,} runs: peak memory", generate[1], 500, unit="MB")

    dry = must(measured(dry_run_command(ini, folder), REPO, log=os.path.join(folder, "dry.log")),
               "snakemake -n")
    rows.append(["`snakemake -n` (first: writes every run's spec, lists every job)", runs, *dry])
    again = must(measured([*dry_run_command(ini, folder), "--quiet"], REPO), "snakemake -n -q")
    rows.append(["`snakemake -n --quiet` again (specs unchanged; the summary only)", runs, *again])
    check(f"snakemake -n, {runs:,} runs: wall", dry[0], 120, note=DRY_RUN_CEILING)
    check(f"snakemake -n, {runs:,} runs: peak memory", dry[1], 4096, unit="MB")

    experiment = load_experiment(ini)
    small_folder = os.path.join(work, "small_24")  # the same job in a 24-run experiment, interleaved
    small_ini = expand_ini(small_folder, 24)
    must(measured(dry_run_command(small_ini, small_folder), REPO), "snakemake -n (24 runs)")
    walls = job_walls({24: (small_folder, job_specs(load_experiment(small_ini))),
                       runs: (folder, job_specs(experiment))}, os.path.join(work, "warm"))
    for size in (24, runs):
        rows.append(["one job, `python -m mosaic.run.job SPEC` (1 epoch; median of 4, warm)", size, walls[size],
                     float("nan")])
    check(f"one job's wall at {runs:,} runs / at 24 runs (ini size independence)", walls[runs] / walls[24], 1.10,
          unit="x")

    tick = time.perf_counter()
    write_synthetic_runs(experiment, epochs)
    writing = time.perf_counter() - tick
    os.sync()  # the kernel writes 3 GB back: not during the commands timed next
    first = must(measured([*mosaic_command("mosaic_status"), "config.ini"], folder), "mosaic_status")
    rows.append(["mosaic_status, first call (every run done; reads every run, writes the index and the run list)",
                 runs, *first])
    status = must(measured([*mosaic_command("mosaic_status"), "config.ini"], folder), "mosaic_status")
    rows.append(["mosaic_status, next calls (the index and the run list; every run folder checked)", runs, *status])
    check(f"mosaic_status, {runs:,} runs", status[0], 2,
          note=f"with its index; the first call, which writes it, took {first[0]:.1f} s")
    full = must(python_measured(BUILD.format(incremental=False), folder), "database build")
    rows.append([f"database full rebuild ({epochs} epochs a run)", runs, *full])
    check(f"database full rebuild, {runs:,} runs x {epochs} epochs: wall", full[0], 60)
    check(f"database full rebuild, {runs:,} runs x {epochs} epochs: peak memory", full[1], 2048, unit="MB")
    shutil.rmtree(folder, ignore_errors=True)
    return rows, writing


def database_updates(args, work):
    """Incremental updates of a database of db_runs runs: 100 added, then 100 rerun; plots."""
    from mosaic.experiment import load_experiment

    runs = 400 if args.quick else args.scale_db_runs
    epochs = 40 if args.quick else args.scale_epochs
    folder = os.path.join(work, f"db_{runs}")
    ini = expand_ini(folder, runs)
    experiment = load_experiment(ini)
    later = experiment.runs[-100:]
    write_synthetic_runs(dataclasses.replace(experiment, runs=experiment.runs[:-100]), epochs)
    rows = []
    initial = must(python_measured(BUILD.format(incremental=True), folder), "first build")
    rows.append([f"database, first build of {runs - 100:,} done runs", runs, *initial])
    write_synthetic_runs(dataclasses.replace(experiment, runs=later), epochs)
    added = must(python_measured(BUILD.format(incremental=True), folder), "update")
    rows.append(["database update: 100 runs added", runs, *added])
    rewrite_runs(folder, [run.run_hash for run in experiment.runs[:100]], epochs, seed=1)
    rerun = must(python_measured(BUILD.format(incremental=True), folder), "update")
    rows.append(["database update: 100 runs rerun", runs, *rerun])
    check(f"database update, 100 runs added to {runs - 100:,}", added[0], 2)
    check(f"database update, 100 of {runs:,} runs rerun", rerun[0], 2)

    plotloss = must(measured([*mosaic_command("mosaic_plotloss"), "mosaic.db", "losses.pdf"], folder), "plotloss")
    rows.append(["mosaic_plotloss (default selection)", runs, *plotloss])
    metaplot = must(measured([*mosaic_command("mosaic_metaplot"), "mosaic.db", "meta.png", "dataset_OR",
                              "test_loss"], folder), "metaplot")
    rows.append(["mosaic_metaplot test_loss", runs, *metaplot])
    check(f"mosaic_plotloss, {runs:,} runs", plotloss[0], 60)
    check(f"mosaic_metaplot, {runs:,} runs", metaplot[0], 60)
    shutil.rmtree(folder, ignore_errors=True)
    return rows


CACHE = """
import resource, torch
from mosaic.run.training import batch_source
rows = {rows}
data = torch.utils.data.TensorDataset(torch.ones(rows, 63), torch.ones(rows, 1))  # 256 bytes a row
loader = torch.utils.data.DataLoader(data, batch_size=4096)
batches = batch_source(loader, "cpu", {limit})
for epoch in range(2):
    total = sum(float(x[0, 0]) for x, y in batches())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def batch_cache(args, work):
    """Peak memory of two epochs over a big TensorDataset, cached on the device or streamed."""
    size_mb = 256 if args.quick else 1024
    rows = size_mb * 1024 * 1024 // 256
    folder = os.path.join(work, "cache")
    os.makedirs(folder, exist_ok=True)
    found = []
    for label, limit in (("cached (limit above its size)", size_mb << 21), ("streamed (limit below its size)", 0),
                         ("default limit (a quarter of the free memory)", None)):
        wall, rss, rc = python_measured(CACHE.format(rows=rows, limit=limit), folder)
        if rc != 0:
            raise RuntimeError(f"batch cache measurement failed ({rc})")
        found.append([f"two epochs over a {size_mb} MB TensorDataset, batch 4096: {label}", rows, wall, rss])
    return found


def run(args, work):
    contention = Contention()
    rows, writing = big_ini(args, work)
    rows += database_updates(args, work)
    rows += batch_cache(args, work)
    load = contention.report()
    text = [
        "## scale: big sweeps on synthetic finished runs",
        "",
        "The tutorial ini with both width ranges widened (see expand); synthetic result.json and losses.tsv "
        f"for every run (writing them took {writing:.0f} s for the big ini). Each command in a fresh process; "
        "peak memory is its maximum resident set (GNU time). `snakemake -n` runs from the repository root with "
        "its output to a file. The database updates: a first build with the last 100 runs missing, then "
        "those 100 written (added), then 100 others rewritten (rerun), each an incremental `database.build`. "
        "The batch cache rows: a run's data path alone (training.batch_source); 'runs' is the dataset's rows.",
        "",
        table(["command", "runs", "wall s", "peak RSS MB"],
              [[name, f"{runs:,}", f"{wall:.2f}", "" if math.isnan(rss) else f"{rss:.0f}"]
               for name, runs, wall, rss in rows]),
        "",
        load,
        "",
    ]
    return "\n".join(text)
