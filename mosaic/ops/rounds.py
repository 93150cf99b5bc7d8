"""[MONITOR] multiplicity = auto: rounds of replicates, each an ordinary incremental run of the workflow.

Round 1 is the ordinary run of the experiment, every pipeline at min_multiplicity. The workflow's `rounds` rule
(workflow/rules/compare.smk), whose input is the database, ends each round: the sequential decision
(mosaic/results/sequential.py, a group-sequential design over the headline comparison) says which groups are
undecided and how many replicates each should reach; their pipelines get those counts in .mosaic/replicates.json
(expand.REPLICATES_FILE: {"ini", "round", "replicates", "history": each round's counts, "decision": its line,
...}), and rounds.csv and its plot show the rounds. The next `snakemake` (or mosaic_run's next pass) expands
the experiment with those counts: an ordinary incremental run that trains only the new replicates (replicate k
of a pipeline has the same hash as in a fixed design). Plain snakemake runs one round per invocation;
mosaic_run runs the workflow again while the file asks for more runs. The rounds end when the decision is
done, or when a round would add no run (max_multiplicity, max_runs). After a kill, the next run starts from
replicates.json: nothing else is remembered.
"""

import math
import os
import sqlite3
from contextlib import closing

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.experiment.expand import REPLICATES_FILE, read_rounds


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


def decide_now(experiment, db_path, decide, value, rope, tune=None):
    """The decision after the round just run, with the settings of [MONITOR] on `value` (rope: None or a
    number, the workflow's compare_value and compare_rope; tune: the training settings the workflow tunes,
    whose selected settings are decided on, as the tune rule compares them)."""
    monitor = experiment.monitor
    settings = {"tune": tune} if tune else {}
    return decide(db_path, value=value, rope=None if rope is None else float(rope), min_n=monitor.multiplicity,
                  max_n=monitor.max_multiplicity, max_runs=monitor.max_runs, **settings)


def read_kept(ini_path):
    """REPLICATES_FILE's content when it was written for this ini, else None."""
    try:
        kept = runfiles.read_json(REPLICATES_FILE)
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and kept.get("ini") == os.path.abspath(ini_path) else None


def history_of(kept, experiment):
    """Each round's {pipeline text: replicates} up to the round `experiment` was expanded for, round 1 (every
    pipeline at min_multiplicity) first, the last one as expanded now (an edited max_multiplicity caps it).
    A file without its history (written before there was one) gives the rounds between the first and the last
    the last one's counts."""
    counts = pipeline_counts(experiment)
    number = read_rounds(experiment.ini_path)[0]
    history = kept.get("history") if kept else None
    if isinstance(history, list) and len(history) == number and all(isinstance(c, dict) for c in history):
        return [*history[:-1], counts]
    first = {pipeline: min(n, experiment.monitor.multiplicity) for pipeline, n in counts.items()}
    return [first] + [counts] * (number - 1)


def headline_groups(decision):
    """{(dataset_key, label)} of the decision's headline comparisons."""
    return {(row["dataset_key"], label) for row in decision.rows for label in (row["label"], row["versus"])}


def workflow_round(ini_path, db_path, value, rope, csv_path, plot_path, text_path, advance=True, tune=None):
    """The workflow's `rounds` rule: decide on the database of the round just run (sequential_decide), write
    rounds.csv and its plot (the rounds so far), the decision's lines (decision_lines: the report's first page
    shows them) in `text_path`, and, when `advance` (not a partial build) and the decision
    asks for more replicates, the next round's counts in REPLICATES_FILE; the decision's line always. `tune`
    (the workflow's TUNED, comma-separated): decide on, and grow, each architecture at its setting selected on
    validation. Returns what it wrote in REPLICATES_FILE."""
    from mosaic.results.figures import render_message, write_rows_csv
    from mosaic.results.groups import load_groups
    from mosaic.results.rounds_report import ROUND_COLUMNS, write_rounds

    experiment = load_experiment(ini_path)
    history = history_of(read_kept(ini_path), experiment)
    try:
        decision = decide_now(experiment, db_path, sequential_decide, value, rope, tune)
    except MosaicError as error:  # nothing to decide on (no run in the database): say so in the files
        write_rows_csv(csv_path, [], ROUND_COLUMNS)
        render_message(plot_path, f"no rounds on {value}: {error}")
        runfiles.write_atomic(text_path, f"mosaic: no decision: {error}\n")
        return {"decision": f"no decision: {error}"}
    groups = decision.groups or load_groups(db_path, value)  # the groups decided on (tuned: the selected settings)
    write_rounds(db_path, value, history, headline_groups(decision) or None, csv_path, plot_path, groups)
    counts = wanted_counts(experiment, db_path, decision.targets, groups)
    added = sum(counts.values()) - len(experiment.runs)
    kept = {"ini": os.path.abspath(ini_path), "round": len(history), "replicates": history[-1], "history": history,
            "decision": decision.text, "reason": decision.reason, "added": 0,
            "undecided": [f"{row['label']} against {row['versus']}" for row in decision.rows
                          if row["state"] == "undecided"]}
    if advance and not decision.done and added > 0:
        kept.update(round=len(history) + 1, replicates=counts, history=[*history, counts], added=added)
    os.makedirs(os.path.dirname(REPLICATES_FILE), exist_ok=True)  # plain snakemake in a fresh folder
    runfiles.write_json(REPLICATES_FILE, kept)
    runfiles.write_atomic(text_path, "\n".join(lines_of(kept)) + "\n")
    return kept


def decision_lines(ini_path):
    """The lines that end an adaptive experiment's run, after the fixed-design summary: which comparisons that
    summary may call settled stay undecided, the decision's line, and the next round when one is asked."""
    kept = read_kept(ini_path)
    return lines_of(kept) if kept and "decision" in kept else []


def lines_of(kept):
    """decision_lines of REPLICATES_FILE's content `kept`."""
    lines = []
    if kept.get("undecided"):
        lines.append("mosaic: the summary above is that of a fixed design; with multiplicity = auto the line below"
                     " decides, and " + "; ".join(kept["undecided"]) + " stays undecided")
    lines.append(f"mosaic: {kept['decision']}")
    if kept.get("added"):
        lines.append(f"round {kept['round']}: {kept['added']} more runs; run snakemake again (or mosaic_run)")
    return lines


def run_rounds(experiment, outcome, run_round, out):
    """After mosaic_run's ordinary run (`outcome`) of an adaptive experiment: while the workflow's rounds rule
    asked for more runs (REPLICATES_FILE), say so in one line and `run_round(experiment)` (runner.run_locked:
    an incremental run). Stops at the first round that fails or is paused; returns the last round's Outcome."""
    while outcome.error() is None:
        grown = load_experiment(experiment.ini_path)
        added = len(grown.runs) - len(experiment.runs)
        if added <= 0:
            break
        print(f"\nmosaic: round {read_rounds(grown.ini_path)[0]} (auto replicates): {added} more runs for the"
              " undecided comparisons", file=out, flush=True)
        experiment = grown
        outcome = run_round(experiment)
    return outcome
