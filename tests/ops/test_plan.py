"""mosaic_run -n: the plan in one line (mosaic/ops/plan.py); `-- -n` still shows Snakemake's dry run."""

from types import SimpleNamespace

import pytest

from mosaic.ops import plan
from tests.fakes import Experiment

ALL = {"experiment_ini": 1, "train": 9, "database": 1, "compare": 1, "metaplot": 1, "plotloss": 1, "all": 1}


def runs(*replicates):
    """Runs of pipelines ('p0', 'p1', ...) with these numbers of replicates each."""
    return [SimpleNamespace(modules=(f"p{i}",), replicate=r + 1) for i, n in enumerate(replicates) for r in range(n)]


def test_the_plan_names_pipelines_replicates_and_what_follows():
    assert plan.plan_text(runs(3, 3, 3), ALL) == (
        "mosaic: 9 runs = 3 pipelines × 3 replicates; 9 to train, 0 kept (done); "
        "then the database, plots and comparison")
    assert plan.plan_text(runs(3, 3, 3), {"train": 2, "database": 1, "all": 1}) == (
        "mosaic: 9 runs = 3 pipelines × 3 replicates; 2 to train, 7 kept (done); then the database")
    assert plan.plan_text(runs(1), {}) == (
        "mosaic: 1 run = 1 pipeline × 1 replicate; 0 to train, 1 kept (done); nothing else to do")
    assert plan.shape(runs(2, 3)) == "5 runs in 2 pipelines"
    assert plan.plan_text(runs(3, 3), {**ALL, "train": 6, "rounds": 1}).endswith(
        "then the database, plots, comparison and decision on more replicates (multiplicity = auto)")


def test_the_job_counts_are_read_from_snakemakes_table():
    output = ("Building DAG of jobs...\nJob stats:\njob               count\n--------------  -------\n"
              "experiment_ini        1\ntrain                24\ndatabase              1\ntotal                26\n")
    assert plan.job_counts(output) == {"experiment_ini": 1, "train": 24, "database": 1}
    assert plan.job_counts("Building DAG of jobs...\nNothing to be done (all requested files are present).\n") == {}


@pytest.mark.parametrize("extra, asked", [(["-n"], True), (["-np"], True), (["--dry-run"], True),
                                          (["--dryrun"], True), (["-p", "--forcerun", "x"], False), ([], False),
                                          (["--notemp"], False)])
def test_a_dry_run_asked_of_snakemake_is_seen(extra, asked):
    assert plan.asks_dry_run(extra) is asked


def test_mosaic_run_n_prints_the_plan_and_double_dash_n_the_jobs(tmp_path):
    exp = Experiment(tmp_path / "exp")  # the tutorial: 24 runs
    shown = exp.run("-n")
    assert shown.stdout == ("mosaic: 24 runs = 6 pipelines × 4 replicates; 24 to train, 0 kept (done); "
                            "then the database, plots and comparison\n")
    raw = exp.run("--", "-n")
    assert "Job stats:" in raw.stdout and "This was a dry-run" in raw.stdout and "launch" not in raw.stdout
    assert not list(exp.runs_dir().glob("*/result.json")) and not exp.db.exists()
