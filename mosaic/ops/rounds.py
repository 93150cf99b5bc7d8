"""[MONITOR] multiplicity = auto: mosaic_run's rounds of replicates.

Round 1 is the ordinary run of the experiment, every pipeline at min_multiplicity. After each round the
sequential decision (mosaic/results/sequential.py, a group-sequential design over the headline comparison)
says which groups are undecided and how many replicates each should reach; their pipelines get those counts in
.mosaic/replicates.json (expand.REPLICATES_FILE), and the same workflow runs again: an ordinary incremental run
that trains only the new replicates (replicate k of a pipeline has the same hash as in a fixed design). The
rounds end when the decision is done, or when a round would add no run (max_multiplicity, max_runs).
A mosaic_run or mosaic_resume after a kill starts from replicates.json: nothing else is remembered.
"""

import math
import sqlite3
from contextlib import closing

from mosaic import runfiles
from mosaic.experiment import load_experiment
from mosaic.experiment.expand import REPLICATES_FILE, read_rounds
from mosaic.ops.paths import config_default


def sequential_decide(db_path, **settings):
    """mosaic.results.sequential.decide, imported when the first round ends."""
    from mosaic.results.sequential import decide

    return decide(db_path, **settings)


def pipeline_counts(experiment):
    """{pipeline text: replicates} of the experiment as expanded now."""
    counts = {}
    for run in experiment.runs:
        counts[run.pipeline] = counts.get(run.pipeline, 0) + 1
    return counts


def pipelines_of_runs(db_path):
    """{run id: pipeline text} of the database's runs."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT run_id, pipeline FROM runs").fetchall())


def wanted_counts(experiment, db_path, targets, groups):
    """{pipeline text: replicates} for the next round: each group of `targets` ({(dataset_key, label): n})
    that has fewer than n runs (failed and diverged ones included, as sequential.decide counts them) gets the
    missing ones, shared between its pipelines (those of its runs with a value, Group.run_ids), at most
    max_multiplicity each; the other pipelines keep their count."""
    counts = pipeline_counts(experiment)
    pipeline_of = pipelines_of_runs(db_path)
    for (dataset_key, label), wanted in targets.items():
        group = next((g for g in groups.get(dataset_key, ()) if g.label == label), None)
        have = group.n_ended + group.n_unfinished if group else 0
        if group is None or wanted <= have:
            continue
        pipelines = sorted({pipeline_of[run_id] for run_id in group.run_ids if run_id in pipeline_of})
        extra = math.ceil((wanted - have) / max(1, len(pipelines)))
        for pipeline in pipelines:
            counts[pipeline] = min(counts[pipeline] + extra, experiment.monitor.max_multiplicity)
    return counts


def decide_now(experiment, db_path, decide):
    """The decision after the round just run, with the settings of [MONITOR] and the workflow's compare_*
    defaults (config/README.md)."""
    monitor = experiment.monitor
    return decide(db_path, value=config_default("compare_value"), rope=config_default("compare_rope"),
                  min_n=monitor.multiplicity, max_n=monitor.max_multiplicity, max_runs=monitor.max_runs)


def run_rounds(experiment, state, outcome, run_round, out, decide=None):
    """After mosaic_run's ordinary run (`outcome`) of an adaptive experiment: decide (`decide`, default
    sequential_decide), write the counts of the next round, `run_round(experiment)` (runner.run_locked: an
    incremental run), until the decision is done or no run is added; then print the decision's one line.
    Stops at the first round that fails or is paused; returns the last round's Outcome."""
    from mosaic.results.groups import load_groups

    decide = decide or sequential_decide
    round_number = read_rounds(experiment.ini_path)[0]
    while outcome.error() is None:
        decision = decide_now(experiment, state["database"], decide)
        counts = wanted_counts(experiment, state["database"], decision.targets,
                               load_groups(state["database"], config_default("compare_value")))
        added = sum(counts.values()) - len(experiment.runs)
        if decision.done or added <= 0:
            print(f"\nmosaic: {decision.text}", file=out, flush=True)
            return outcome
        round_number += 1
        runfiles.write_json(REPLICATES_FILE, {"ini": experiment.ini_path, "round": round_number, "replicates": counts})
        print(f"\nmosaic: round {round_number} (auto replicates): {added} more runs for the undecided comparisons",
              file=out, flush=True)
        experiment = load_experiment(experiment.ini_path)
        outcome = run_round(experiment)
    return outcome
