"""expand: ini expansion, Snakemake dry run, and the run-file readers (watcher, status, database) for
24 to 10,000 runs."""

import json
import os
import random
import re
import sys

from harness import (
    REPO,
    STEP_PIPELINE,
    Contention,
    check,
    child_env,
    median,
    python_snippet,
    table,
    timed,
    timed_command,
    tutorial_folder,
)

NAME = "expand"


def add_arguments(parser):
    parser.add_argument("--sizes", default="24,1000,10000",
                        help="expand: run counts, multiples of 8 (default 24,1000,10000)")
    parser.add_argument("--db-epochs", type=int, default=400,
                        help="expand: epochs in the synthetic run files (default 400)")


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


def job_specs(experiment, count=4):
    """spec.json of `count` runs of the step benchmark's pipeline, as `snakemake -n` wrote them."""
    runs = [run for run in experiment.runs if STEP_PIPELINE in run.pipeline][:count]
    specs = [os.path.join(experiment.process.run_files_path, run.run_hash, "spec.json") for run in runs]
    missing = [spec for spec in specs if not os.path.exists(spec)]
    if missing:
        raise RuntimeError(f"no spec written by snakemake -n: {missing[0]}")
    return specs


def job_walls(groups, warm_dir):
    """{label: median wall} of `python -m mosaic.run.job SPEC` (what the workflow runs: a 1-epoch run)
    for each group of (folder, specs), the groups interleaved, through one warm-start server started by a
    first job not counted."""
    env = child_env(MOSAIC_WARM_DIR=warm_dir)
    walls = {label: [] for label in groups}

    def job(folder, spec):
        wall, rc, output = timed_command([sys.executable, "-m", "mosaic.run.job", spec], cwd=folder, env=env)
        if rc != 0:
            raise RuntimeError(f"mosaic.run.job {spec} failed:\n{output}")
        return wall

    first_folder, first_specs = next(iter(groups.values()))
    job(first_folder, first_specs[0])  # starts the server
    for rep in range(max(len(specs) for _, specs in groups.values())):
        for label, (folder, specs) in groups.items():
            walls[label].append(job(folder, specs[rep % len(specs)]))
    return {label: median(values) for label, values in walls.items()}


def dry_run_command(ini, folder):
    """`snakemake -n` for this ini in `folder`, to be run from the repository root."""
    return [
        sys.executable, "-m", "snakemake", "-n", "--snakefile", os.path.join(REPO, "Snakefile"),
        "--directory", folder, "--cores", "2", "--config", f"ini={ini}",
        f"database={os.path.join(folder, 'results', 'mosaic.db')}",
        f"plots={os.path.join(folder, 'results', 'plots')}",
    ]


def dry_run(ini, folder):
    """`snakemake -n` for this ini, from the repository root, in `folder`: (wall, train jobs, total jobs)."""
    log = os.path.join(folder, "dry_run.log")
    wall, rc, _ = timed_command(dry_run_command(ini, folder), cwd=REPO, log=log)
    with open(log) as handle:
        text = handle.read()
    if rc != 0:
        raise RuntimeError(f"snakemake -n failed ({rc}), see {log}:\n{text[-2000:]}")
    train = re.search(r"^train\s+(\d+)\s*$", text, re.M)
    total = re.search(r"^total\s+(\d+)\s*$", text, re.M)
    return wall, int(train.group(1)) if train else None, int(total.group(1)) if total else None


def run(args, work):
    from mosaic.experiment import load_experiment
    from mosaic.ops.progress import Progress
    from mosaic.results import database, status
    from mosaic.results.status_text import render

    sizes = [24, 1000] if args.quick else [int(size) for size in args.sizes.split(",")]
    reps = 2 if args.quick else 3
    db_epochs = 40 if args.quick else args.db_epochs
    contention = Contention()
    rows, jobs_rows, job_groups = [], [], {}
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
        watcher = Progress(experiment, experiment.runs, slots=1)
        poll_pending, _ = timed(watcher.summary)
        write_s, _ = timed(write_synthetic_runs, experiment, db_epochs)
        # a new watcher: the files are older than it, as those of runs done before a mosaic_run
        watcher = Progress(experiment, experiment.runs, slots=1)
        poll_done, _ = timed(watcher.summary)
        db_s, _ = timed(database.build, experiment, os.path.join(folder, "synthetic.db"))
        # the listing is made outside the timing: mosaic_status reads it from its .status-runs
        status_s, _ = timed(lambda e, listing: render(listing, status.states_of(e)), experiment,
                            status.listed(experiment))

        job_groups[size] = (folder, job_specs(experiment))
        rows.append([
            f"{size:,}",
            f"{load_s:.3f} s",
            f"{process_s:.2f} s",
            f"**{dry_s:.1f} s** ({train_jobs} train / {total_jobs} jobs)",
            f"{dry_s / size * 1e3:.1f} ms",
        ])
        jobs_rows.append([
            f"{size:,}",
            f"{poll_pending * 1e3:.0f} ms ({poll_pending * 2 * 100:.0f} % of a core)",
            f"{poll_done * 1e3:.0f} ms",
            f"{status_s:.2f} s",
            f"{db_s:.2f} s ({size * db_epochs:,} loss rows)",
            f"{write_s:.1f} s",
        ])
    walls = job_walls(job_groups, os.path.join(work, "warm"))
    for row, size in zip(rows, sizes):
        row.append(f"{walls[size]:.3f} s")
    load = contention.report()
    check(f"one job's wall at {sizes[-1]:,} runs / at {sizes[0]} runs (ini size independence)",
          walls[sizes[-1]] / walls[sizes[0]], 1.10, unit="x")
    text = [
        "## expand: ini size",
        "",
        "The tutorial ini with both width ranges widened (2 model sections x W widths x multiplicity 4). "
        f"load_experiment: in a fresh interpreter, median of {reps}; 'process' is the whole `python -c` "
        "(start-up + import + load). Dry run: `python -m snakemake -n --snakefile Snakefile --directory TMP "
        f"--config ini=...` from the repository root (median of {reps}; one for 5,000 runs and more), its "
        "output to a file. One job: `python -m mosaic.run.job SPEC` (what the workflow runs) of a 1-epoch "
        "mlp_brick(4,3) run of that ini, its spec.json written by the dry run; median of 4 runs, the sizes "
        "interleaved, through one warm-start server (started by a first job, not counted).",
        "",
        table(["runs", "load_experiment", "process", "snakemake -n", "dry run per run", "one job (1 epoch)"],
              rows),
        "",
        f"Run-file readers on synthetic finished runs ({db_epochs} epochs each), in-process. Progress summary: "
        "one pass of mosaic_run's progress display over the run files (redrawn every 0.5 s; the share of "
        "a core assumes that rate) with every run pending, then with every run done before it started. "
        " Status: `mosaic_status` minus start-up (states_of + render). Database: "
        "`mosaic.results.database.build` (what `mosaic_savedb` and the database job do after loading the ini).",
        "",
        table(["runs", "watcher poll, pending", "watcher poll, done", "status", "database build",
               "(writing the files)"], jobs_rows),
        "",
        load,
        "",
    ]
    return "\n".join(text)


