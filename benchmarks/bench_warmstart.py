"""warmstart: what a training job costs around its run, three designs side by side.

- cold: `python -m mosaic.run.job` trains in its own interpreter (MOSAIC_WARM_START=0): python, torch,
  torch._dynamo imported by every job;
- warm: the job hands its run to the per-user fork server (mosaic/run/server.py), which has them imported;
- several runs per process: one interpreter trains k runs in a row (what Snakemake group jobs or a
  batching rule would give), the floor of any one-process design.

Job overhead = the job's wall time minus the run's own duration_s (from result.json). End to end:
mosaic_run on N one-epoch runs, 2 in parallel; overhead per run = (time until the last result.json -
sum of duration_s / 2) / N, Snakemake's own per-job cost included.
"""

import json
import os
import sys
import time

from bench_expand import expand_ini
from harness import Contention, check, child_env, median, mosaic_command, table, timed_command, tutorial_folder

NAME = "warmstart"
TARGET_S = 0.15

GROUP_SNIPPET = """
import sys
from mosaic.run import job
for run_hash in sys.argv[1:]:
    assert job.main(["config.ini", run_hash]) == 0
"""


def add_arguments(parser):
    parser.add_argument("--warm-jobs", type=int, default=12, help="warmstart: sequential jobs a design (default 12)")
    parser.add_argument("--warm-runs", type=int, default=1000,
                        help="warmstart: one-epoch runs end to end, warm (default 1000; cold gets a fifth)")


def durations(folder, hashes):
    total = []
    for run_hash in hashes:
        with open(os.path.join(folder, ".runs", run_hash, "result.json")) as handle:
            total.append(json.load(handle)["duration_s"])
    return total


def clear(folder, hashes):
    import shutil

    for run_hash in hashes:
        shutil.rmtree(os.path.join(folder, ".runs", run_hash), ignore_errors=True)


def sequential_jobs(folder, hashes, env):
    """Job overheads (wall - duration_s) of one job after another."""
    clear(folder, hashes)
    overheads = []
    for run_hash in hashes:
        wall, rc, output = timed_command([sys.executable, "-m", "mosaic.run.job", "config.ini", run_hash],
                                         cwd=folder, env=env)
        if rc != 0:
            raise RuntimeError(f"job {run_hash} failed:\n{output}")
        overheads.append(wall - durations(folder, [run_hash])[0])
    return overheads


def one_process(folder, hashes, env):
    """Overhead per run when one interpreter trains all the runs in a row."""
    clear(folder, hashes)
    wall, rc, output = timed_command([sys.executable, "-c", GROUP_SNIPPET, *hashes], cwd=folder, env=env)
    if rc != 0:
        raise RuntimeError(f"one-process runs failed:\n{output}")
    return (wall - sum(durations(folder, hashes))) / len(hashes)


def end_to_end(folder, runs, env):
    """(overhead per run, wall until the last result, whole mosaic_run wall) for `runs` one-epoch runs."""
    from mosaic.experiment import load_experiment

    ini = expand_ini(folder, runs)
    hashes = [run.run_hash for run in load_experiment(ini).runs]
    started = time.time()
    wall, rc, _ = timed_command([*mosaic_command("mosaic_run"), "config.ini", "database.db"], cwd=folder, env=env,
                                log=os.path.join(folder, "mosaic_run.log"))
    if rc != 0:
        raise RuntimeError(f"mosaic_run failed, see {folder}/mosaic_run.log")
    results = [os.path.join(folder, ".runs", h, "result.json") for h in hashes]
    last = max(os.path.getmtime(path) for path in results) - started
    return (last - sum(durations(folder, hashes)) / 2) / runs, last, wall


def run(args, work):
    from mosaic.experiment import load_experiment

    jobs = 4 if args.quick else args.warm_jobs
    warm_runs = 48 if args.quick else args.warm_runs
    cold_runs = 16 if args.quick else max(8, warm_runs // 5 // 8 * 8)
    contention = Contention()
    folder = os.path.join(work, "jobs")
    ini = tutorial_folder(folder, {("PROCESS", "epochs"): 1, ("MONITOR", "multiplicity"): jobs})
    hashes = [run.run_hash for run in load_experiment(ini).runs if run.pipeline.endswith("mlp_brick(4,3)")]
    cold_env = child_env(MOSAIC_WARM_START="0")
    warm_env = child_env(MOSAIC_WARM_START="1", MOSAIC_WARM_DIR=os.path.join(work, "w"), MOSAIC_WARM_IDLE="60")

    cold = sequential_jobs(folder, hashes, cold_env)
    first = sequential_jobs(folder, hashes[:1], warm_env)[0]  # starts the server
    warm = sequential_jobs(folder, hashes, warm_env)
    grouped = one_process(folder, hashes, cold_env)

    e2e_warm = end_to_end(os.path.join(work, "e2e_warm"), warm_runs, warm_env)
    e2e_cold = end_to_end(os.path.join(work, "e2e_cold"), cold_runs, cold_env)
    load = contention.report()

    check("warm start: job overhead per run (job wall - duration_s), tutorial 1-epoch run", median(warm), TARGET_S)
    check(f"warm start: overhead per run end to end, {warm_runs:,} one-epoch runs, 2 cores", e2e_warm[0], TARGET_S)
    rows = [
        ["cold: in-process (MOSAIC_WARM_START=0)", f"**{median(cold):.3f} s** ({min(cold):.3f}-{max(cold):.3f})",
         f"{cold_runs:,}", f"**{e2e_cold[0]:.3f} s**", f"{e2e_cold[1]:.0f} s / {e2e_cold[2]:.0f} s"],
        ["warm: fork server", f"**{median(warm):.3f} s** ({min(warm):.3f}-{max(warm):.3f}); first job, "
         f"starting the server: {first:.2f} s", f"{warm_runs:,}", f"**{e2e_warm[0]:.3f} s**",
         f"{e2e_warm[1]:.0f} s / {e2e_warm[2]:.0f} s"],
        [f"several runs in one process ({len(hashes)} in a row)", f"**{grouped:.3f} s** per run", "", "", ""],
    ]
    text = [
        "## warmstart: the cost of a job around its run",
        "",
        f"Tutorial mlp_brick(4,3) runs of 1 epoch, {len(hashes)} jobs one after another per design (median, "
        "min-max); job overhead = job wall - the run's duration_s. End to end: `mosaic_run` on N one-epoch runs "
        "(the tutorial with widened widths), nb_processus 2; overhead per run = (time to the last result.json - "
        "sum of duration_s / 2) / N, Snakemake included (database and plots after it are not).",
        "",
        table(["design", "job overhead", "runs end to end", "overhead per run end to end",
               "to last result / mosaic_run wall"], rows),
        "",
        f"Why the fork server won: a warm job costs {median(warm):.2f} s around its run while keeping one "
        "Snakemake job per run (Snakemake schedules, retries and logs each run; a kill of a job ends exactly one "
        f"run). Several runs in one process paid {grouped:.2f} s per run with {len(hashes)} runs a process: the "
        f"interpreter and torch import ({median(cold):.2f} s cold) are shared by k runs, so it needs k of about "
        f"{median(cold) / max(median(warm), 1e-3):.0f} runs a process to match the warm job, and then one failure, "
        "one kill, one log and one retry concern k runs, and Snakemake's progress counts groups. What remains end "
        "to end is mostly Snakemake's own per-job cost in its main process (45-120 ms a job).",
        "",
        load,
        "",
    ]
    return "\n".join(text)
