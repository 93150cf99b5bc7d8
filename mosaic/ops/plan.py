"""mosaic_run -n: what a run would do, in one line, instead of Snakemake's dry run of every job:

    mosaic: 24 runs = 6 pipelines × 4 replicates; 24 to train, 0 kept (done); then the database, plots and comparison

The counts of jobs are Snakemake's own (its dry run, output kept in the log); its full listing of the
jobs stays one flag away: `mosaic_run ini db -- -n` hands -n to Snakemake, whose output is then shown as it is.
"""

import os
import re
import subprocess
import sys

DRY_RUN_FLAGS = ("--dry-run", "--dryrun")
FOLLOWING = (("database", ("database",)), ("plots", ("plotloss", "metaplot")), ("comparison", ("compare",)),
             ("decision on more replicates (multiplicity = auto)", ("rounds",)))
JOB_COUNT = re.compile(r"^(\w+)\s+(\d+)$")


def asks_dry_run(extra):
    """Whether snakemake's own arguments ask for a dry run: -n, a group of short flags holding n (-np), or
    --dry-run."""
    return any(arg in DRY_RUN_FLAGS or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in extra)


def plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def shape(runs):
    """'9 runs = 3 pipelines × 3 replicates', or '9 runs in 3 pipelines' when pipelines have different numbers
    of replicates. A pipeline: the runs that differ only by their replicate."""
    replicates = {}
    for run in runs:
        replicates[run.modules] = replicates.get(run.modules, 0) + 1
    pipelines = plural(len(replicates), "pipeline")
    counts = set(replicates.values())
    if len(counts) == 1:
        return f"{plural(len(runs), 'run')} = {pipelines} × {plural(counts.pop(), 'replicate')}"
    return f"{plural(len(runs), 'run')} in {pipelines}"


def job_counts(output):
    """{rule: jobs} from the 'Job stats' table of Snakemake's dry run ({} when it has nothing to do)."""
    counts = {}
    for line in output.splitlines():
        match = JOB_COUNT.match(line.strip())
        if match and match[1] != "total":
            counts[match[1]] = int(match[2])
    return counts


def plan_text(runs, jobs):
    """The plan's line, from the runs of the experiment and Snakemake's {rule: jobs}."""
    to_train = jobs.get("train", 0)
    following = [name for name, rules in FOLLOWING if any(jobs.get(rule) for rule in rules)]
    then = (f"then the {', '.join(following[:-1])} and {following[-1]}" if len(following) > 1
            else f"then the {following[0]}" if following else "nothing else to do")
    return f"mosaic: {shape(runs)}; {to_train} to train, {len(runs) - to_train} kept (done); {then}"


def dry_run(runs, command, raw, log_path, out=None):
    """Run Snakemake's dry run `command`: with `raw`, its output shown as it is; else kept in `log_path` and
    the plan printed (Snakemake's last lines on stderr when it fails). Returns Snakemake's exit status."""
    out = out or sys.stdout
    if raw:
        return subprocess.run(command, check=False).returncode
    done = subprocess.run([*command, "--quiet", "rules"], capture_output=True, text=True, check=False)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a") as log:
        log.write(done.stdout + done.stderr)
    if done.returncode != 0:
        print("\n".join((done.stdout + done.stderr).splitlines()[-20:]), file=sys.stderr)
        return done.returncode
    print(plan_text(runs, job_counts(done.stdout + done.stderr)), file=out, flush=True)
    return 0
