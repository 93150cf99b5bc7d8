"""[MONITOR] multiplicity = auto (mosaic/ops/rounds.py): the keys, the replicates read from .mosaic/replicates.json
at expansion with the hashes of a fixed design, the workflow's rounds rule (the decision file with its history,
rounds.csv and rounds.png), mosaic_run's rounds with a stub decision (tests/ops/decide_stub.py), plain snakemake
one round per call, the status line."""

import io
import json
import os
import signal
from types import SimpleNamespace

import pytest

from mosaic.experiment.expand import REPLICATES_FILE
from tests.fakes import (
    TUTORIAL,
    Experiment,
    ini_error,
    load_ini,
    small_settings,
    start_run,
    status_of,
    status_section,
    wait_until,
)

AUTO = TUTORIAL.replace("multiplicity = 4", "multiplicity = auto\nmin_multiplicity = 2\nmax_multiplicity = 5")
FUNNEL2 = "dataset_OR(1,200,0.8) | mlp_funnel(4,2)"


def write_replicates(ini, round_number, counts):
    """.mosaic/replicates.json of the launch folder (the working directory) as mosaic_run writes it."""
    os.makedirs(".mosaic", exist_ok=True)
    with open(REPLICATES_FILE, "w") as handle:
        json.dump({"ini": str(ini.resolve()), "round": round_number, "replicates": counts}, handle)


def test_auto_reads_its_keys_and_starts_at_min_multiplicity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    experiment = load_ini(tmp_path, AUTO)
    monitor = experiment.monitor
    assert (monitor.adaptive, monitor.multiplicity, monitor.max_multiplicity, monitor.max_runs) == (True, 2, 5, None)
    assert len(experiment.runs) == 12  # 6 pipelines at min_multiplicity
    defaults = load_ini(tmp_path / "d", TUTORIAL.replace("multiplicity = 4", "multiplicity = auto\nmax_runs = 40"))
    assert (defaults.monitor.multiplicity, defaults.monitor.max_multiplicity, defaults.monitor.max_runs) == (3, 10, 40)
    assert not load_ini(tmp_path / "f", TUTORIAL).monitor.adaptive


def test_auto_keys_need_auto(tmp_path):
    message = ini_error(tmp_path, TUTORIAL.replace("multiplicity = 4", "multiplicity = 4\nmax_multiplicity = 8"))
    assert message.endswith("[MONITOR] max_multiplicity: is only read with multiplicity = auto")
    assert "must be >= 2" in ini_error(tmp_path / "b", AUTO.replace("min_multiplicity = 2", "min_multiplicity = 1"))


def test_a_replicate_added_by_a_round_is_the_run_of_the_fixed_design(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixed = load_ini(tmp_path / "fixed", TUTORIAL.replace("multiplicity = 4", "multiplicity = 5"))
    (tmp_path / "auto").mkdir()
    write_replicates(tmp_path / "auto" / "config.ini", 3, {FUNNEL2: 5, "no such pipeline": 4})
    grown = load_ini(tmp_path / "auto", AUTO)
    assert [run.pipeline for run in grown.runs].count(FUNNEL2) == 5 and len(grown.runs) == 12 + 3
    of_fixed = {(run.pipeline, run.replicate): (run.run_hash, run.seed) for run in fixed.runs}
    assert all(of_fixed[run.pipeline, run.replicate] == (run.run_hash, run.seed) for run in grown.runs)


def test_replicates_of_another_ini_or_beyond_max_are_not_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_replicates(tmp_path / "other.ini", 2, {FUNNEL2: 4})
    assert len(load_ini(tmp_path, AUTO).runs) == 12
    write_replicates(tmp_path / "config.ini", 2, {FUNNEL2: 9})  # ignored by another launch folder
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert len(load_ini(tmp_path, AUTO).runs) == 12
    monkeypatch.chdir(tmp_path)
    assert [run.pipeline for run in load_ini(tmp_path, AUTO).runs].count(FUNNEL2) == 5  # max_multiplicity
    assert len(load_ini(tmp_path, TUTORIAL).runs) == 24  # a fixed multiplicity ignores the file


def test_status_shows_the_round_and_what_it_waits_for(tmp_path, monkeypatch):
    from mosaic.results import status
    from mosaic.results.status_text import render

    monkeypatch.chdir(tmp_path)
    ini = tmp_path / "config.ini"
    load_ini(tmp_path, AUTO)
    listing = status.listing(str(ini))
    assert not render(listing, status.states_in(listing.run_files_path, listing.runs)).startswith("round")
    write_replicates(ini, 3, {FUNNEL2: 4})
    listing = status.listing(str(ini))  # the runs kept by the last listing are not those of round 3
    assert len(listing.runs) == 14
    text = render(listing, status.states_in(listing.run_files_path, listing.runs))
    assert text.splitlines()[0] == "round 3 (auto replicates): waiting for 14 runs; 14 runs: 14 pending"


def test_targets_count_failed_runs_and_become_replicates_of_the_groups_pipelines(tmp_path):
    import sqlite3

    from mosaic.ops.rounds import wanted_counts
    from mosaic.results.groups import Group

    db = tmp_path / "runs.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE runs (run_id INTEGER, pipeline TEXT)")
        connection.executemany("INSERT INTO runs VALUES (?, ?)",
                               [(i, "a") for i in (1, 2, 3)] + [(i, "b") for i in (4, 5, 6)])
    a, b = Group("d", "a"), Group("d", "b")
    for run_id, status in ((1, "done"), (2, "done"), (3, "error")):
        a.add_run(run_id, status, False, 10, 0.5)
    for run_id in (4, 5, 6):
        b.add_run(run_id, "done", False, 10, 0.1)
    experiment = SimpleNamespace(runs=[SimpleNamespace(pipeline=p) for p in "aaabbb"],
                                 monitor=SimpleNamespace(max_multiplicity=5))
    assert wanted_counts(experiment, db, {("d", "a"): 4, ("d", "b"): 3}, {"d": [a, b]}) == {"a": 4, "b": 3}
    assert wanted_counts(experiment, db, {("d", "a"): 9}, {"d": [a, b]}) == {"a": 5, "b": 3}


def test_a_replicate_belongs_to_the_first_round_that_reaches_it():
    from mosaic.results.rounds_report import round_of

    history = [{"a": 2, "b": 2}, {"a": 3, "b": 2}, {"a": 4, "b": 3}]
    assert [round_of(k, "a", history) for k in (1, 2, 3, 4, 5)] == [1, 1, 2, 3, None]
    assert [round_of(k, "b", history) for k in (1, 2, 3)] == [1, 1, 3] and round_of(1, "c", history) is None


def test_the_history_starts_at_min_multiplicity_and_ends_as_expanded(tmp_path, monkeypatch):
    from mosaic.ops.rounds import history_of, read_kept

    monkeypatch.chdir(tmp_path)
    ini = tmp_path / "config.ini"
    (first,) = history_of(None, load_ini(tmp_path, AUTO))  # no file: round 1
    assert set(first.values()) == {2} and len(first) == 6
    write_replicates(ini, 3, {FUNNEL2: 4})  # written without its history: rounds 2 and 3 as now
    experiment = load_ini(tmp_path, AUTO)
    history = history_of(read_kept(str(ini)), experiment)
    assert len(history) == 3 and history[1] == history[2] and history[2][FUNNEL2] == 4
    assert history[0] == first
    kept = {"ini": str(ini), "round": 3, "replicates": {FUNNEL2: 4}, "history": [first, {FUNNEL2: 3}, {FUNNEL2: 9}]}
    assert history_of(kept, experiment)[1:] == [{FUNNEL2: 3}, history[2]]  # the last one as expanded now


def test_the_decision_lines_name_the_undecided_pairs_and_the_next_round(tmp_path, monkeypatch):
    from mosaic.ops.rounds import decision_lines

    monkeypatch.chdir(tmp_path)
    ini = tmp_path / "config.ini"
    assert decision_lines(str(ini)) == []
    os.makedirs(".mosaic")
    with open(REPLICATES_FILE, "w") as handle:
        json.dump({"ini": str(ini), "round": 2, "replicates": {}, "decision": "round 1, 6 runs: not decided yet: x",
                   "added": 2, "undecided": ["a against b"]}, handle)
    assert decision_lines(str(ini)) == [
        "mosaic: the summary above is that of a fixed design; with multiplicity = auto the line below decides,"
        " and a against b stays undecided",
        "mosaic: round 1, 6 runs: not decided yet: x",
        "round 2: 2 more runs; run snakemake again (or mosaic_run)"]
    assert decision_lines(str(tmp_path / "other.ini")) == []


def test_the_rounds_rule_on_a_database_without_runs_writes_placeholders(tmp_path, monkeypatch):
    import sqlite3

    from mosaic.ops.rounds import workflow_round
    from mosaic.results.database import build

    monkeypatch.chdir(tmp_path)
    build(load_ini(tmp_path, AUTO), str(tmp_path / "db.db"))
    with sqlite3.connect(tmp_path / "db.db") as connection:
        connection.execute("DELETE FROM runs")
    kept = workflow_round("config.ini", "db.db", "test_loss", None, "rounds.csv", "rounds.png", "rounds.txt")
    assert kept == {"decision": "no decision: db.db: no run to compare"} and not os.path.exists(REPLICATES_FILE)
    assert (tmp_path / "rounds.csv").read_text().startswith("round,dataset_key,group,runs,n,")
    assert (tmp_path / "rounds.png").stat().st_size > 0
    assert (tmp_path / "rounds.txt").read_text() == "mosaic: no decision: db.db: no run to compare\n"


# ---------------------------------------------------------------- mosaic_run's rounds, a stub decision


def auto_experiment(tmp_path, low=2, high=4):
    exp = Experiment(tmp_path / "exp", small_settings(multiplicity="auto", widths="2"))
    exp.edit("MONITOR", "min_multiplicity", low)
    exp.edit("MONITOR", "max_multiplicity", high)
    return exp


def assert_rounds_report(exp, rounds, runs, per_group):
    """rounds.csv and rounds.png beside the plots: one row per round and group, the runs of each round
    (`runs`) and of each group (`per_group`), and each group's center and interval at each round: those of
    stats.mean_interval on the replicates the group had then (the first per_group[round - 1] of each)."""
    import csv

    from matplotlib.image import imread

    from mosaic.results.stats import mean_interval

    plots = exp.folder / "database_plots"
    with open(plots / "rounds.csv") as handle:
        rows = list(csv.DictReader(handle))
    groups = sorted({row["group"] for row in rows})
    assert len(groups) == 2 and len(rows) == rounds * len(groups)
    for group in groups:
        mine = [row for row in rows if row["group"] == group]
        assert [int(row["round"]) for row in mine] == list(range(1, rounds + 1))
        assert [int(row["round_runs"]) for row in mine] == runs
        assert [int(row["runs"]) for row in mine] == [int(row["n"]) for row in mine] == per_group
        for row, n in zip(mine, per_group):
            values = [v for (v,) in exp.query(f"SELECT test_loss FROM runs WHERE model_key = '{group}'"
                                              f" AND replicate <= {n} ORDER BY replicate")]
            expected = mean_interval(values, row["scale"])
            assert [float(row[k]) for k in ("center", "ci_low", "ci_high")] == pytest.approx(expected), (group, n)
    image = imread(plots / "rounds.png")
    assert image.shape[0] > 100 and image.shape[1] > 100


def mosaic_run(exp, monkeypatch, wanted):
    """mosaic_run in this process, the workflow's rounds rule deciding with decide_stub (`wanted` values per
    group); returns the Outcome, the output and the settings of each decision."""
    from mosaic.ops import runner
    from tests.ops import decide_stub

    calls = decide_stub.install(monkeypatch, exp.folder.parent / "stub", wanted)
    monkeypatch.chdir(exp.folder)
    out = io.StringIO()
    outcome = runner.run(runner.Plan("config.ini", "database.db", "database_plots"), out=out)
    return outcome, out.getvalue(), [json.loads(line) for line in calls.read_text().splitlines()]


@pytest.mark.slow
def test_rounds_add_replicates_to_the_undecided_groups_until_decided(tmp_path, monkeypatch):
    exp = auto_experiment(tmp_path)
    outcome, out, calls = mosaic_run(exp, monkeypatch, wanted=4)
    assert outcome.error() is None and outcome.total == 8
    assert "mosaic: 4 runs, 4 to train" in out and "mosaic: 6 runs, 2 to train" in out
    assert "mosaic: round 2 (auto replicates): 2 more runs for the undecided comparisons" in out
    assert "mosaic: 8 runs, 2 to train" in out and "round 4" not in out
    assert out.rstrip().endswith("mosaic: decided after 3 rounds and 8 runs (stub)")
    assert len(calls) == 3
    assert calls[0] == {"value": "test_loss", "rope": None, "min_n": 2, "max_n": 4, "max_runs": None}
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(8,)]
    kept = json.loads((exp.folder / REPLICATES_FILE).read_text())
    assert kept["round"] == 3 and sorted(kept["replicates"].values()) == [4, 4]
    assert [sorted(counts.values()) for counts in kept["history"]] == [[2, 2], [3, 3], [4, 4]]
    # the fixed-design summary once, after the last round, then the decision: no verdict while undecided
    assert out.count("the statistical tables: mosaic_compare") == 1
    assert out.index("mosaic: 8 runs, 2 to train") < out.index("the statistical tables: mosaic_compare")
    assert_rounds_report(exp, rounds=3, runs=[4, 6, 8], per_group=[2, 3, 4])

    fixed = Experiment(tmp_path / "fixed", small_settings(multiplicity=4, widths="2"))
    monkeypatch.chdir(fixed.folder)
    from mosaic.experiment import load_experiment

    assert {run.run_hash for run in load_experiment(str(fixed.ini)).runs} == {
        p.name for p in exp.runs_dir().iterdir() if (p / "result.json").exists()}

    again, out, calls = mosaic_run(exp, monkeypatch, wanted=4)  # decided: nothing more to train
    assert "mosaic: 8 runs, 0 to train" in out and "(auto replicates)" not in out


@pytest.mark.slow
def test_a_decided_first_round_stops_at_min_multiplicity(tmp_path, monkeypatch):
    exp = auto_experiment(tmp_path)
    outcome, out, calls = mosaic_run(exp, monkeypatch, wanted=2)
    assert outcome.total == 4 and "round 2" not in out and len(calls) == 1
    assert out.rstrip().endswith("mosaic: decided after 1 rounds and 4 runs (stub)")
    kept = json.loads((exp.folder / REPLICATES_FILE).read_text())
    assert (kept["round"], kept["added"], list(kept["replicates"].values())) == (1, 0, [2, 2])


@pytest.mark.slow
def test_an_interrupted_round_resumes_from_replicates_json(tmp_path, monkeypatch):
    exp = auto_experiment(tmp_path)
    mosaic_run(exp, monkeypatch, wanted=2)
    funnel = exp.query("SELECT pipeline FROM runs WHERE pipeline LIKE '%funnel%' LIMIT 1")[0][0]
    monkeypatch.chdir(exp.folder)
    write_replicates(exp.ini, 2, {funnel: 3})  # killed after round 2 was written, before it trained
    outcome, out, calls = mosaic_run(exp, monkeypatch, wanted=4)
    assert "mosaic: 5 runs, 1 to train" in out
    assert "mosaic: round 3 (auto replicates): 2 more runs" in out and "mosaic: 7 runs, 2 to train" in out
    assert "mosaic: round 4 (auto replicates): 1 more runs" in out and outcome.total == 8


# ---------------------------------------------------------------- the real decision, a kill -9 mid-round


@pytest.mark.slow
def test_kill_9_in_round_2_resumes_it_and_the_real_decision_stops_at_the_budget(tmp_path, monkeypatch):
    """funnel and brick of width 2 are nearly equal after 2 epochs (p ~ 0.16 at 3 and 4 replicates): the
    sequential decision adds a replicate to each, then stops at max_multiplicity."""
    exp = auto_experiment(tmp_path, low=3, high=4)
    process = start_run(exp)
    wait_until(lambda: status_of(exp).startswith("round 2 (auto replicates): waiting for "), timeout=300)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    wait_until(lambda: not status_section(status_of(exp), "Running"), timeout=60)

    out = exp.run().stdout
    assert out.startswith("mosaic: 8 runs, ")  # round 2 goes on: not back to the 6 runs of round 1
    *_, note, last = out.rstrip().splitlines()
    assert out.count("the statistical tables: mosaic_compare") == 1  # the fixed-design summary, once, then:
    assert note == ("mosaic: the summary above is that of a fixed design; with multiplicity = auto the line below"
                    " decides, and mlp_funnel against mlp_brick stays undecided")
    assert last.startswith("mosaic: budget spent after 2 rounds and 8 runs: mlp_funnel is undecided against "
                           "mlp_brick; a fixed design with the same error rate would have needed about "), last
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(8,)]

    fixed = Experiment(tmp_path / "fixed", small_settings(multiplicity=4, widths="2"))
    monkeypatch.chdir(fixed.folder)
    from mosaic.experiment import load_experiment

    assert {run.run_hash for run in load_experiment(str(fixed.ini)).runs} == {
        p.name for p in exp.runs_dir().iterdir() if (p / "result.json").exists()}


@pytest.mark.slow
def test_a_clear_difference_stops_the_real_decision_at_min_multiplicity(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(multiplicity="auto", widths="2", epochs=20))
    exp.edit("mlp_brick", "width", 16)
    exp.edit("MONITOR", "max_multiplicity", 4)
    out = exp.run().stdout
    assert "(auto replicates)" not in out and exp.query("SELECT COUNT(*) FROM runs") == [(6,)]
    assert out.rstrip().splitlines()[-1] == (
        "mosaic: decided after 1 round and 6 runs: mlp_funnel is beaten by mlp_brick; a fixed design would have"
        " needed as many (6 runs at 3 replicates each)")


def plain_snakemake(exp, *extra):
    """`snakemake` in the experiment's folder, as a user types it (no mosaic_run)."""
    import subprocess

    from tests.fakes import BIN, ROOT, command_env

    done = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--cores", "2", "--config", f"ini={exp.ini}",
         f"database={exp.db}", f"plots={exp.folder / 'database_plots'}", *extra],
        cwd=exp.folder, capture_output=True, text=True, timeout=600, env=command_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_plain_snakemake_runs_one_round_per_call_and_the_next_call_trains_the_next_round(tmp_path, monkeypatch):
    """funnel and brick of width 2, 2 epochs: undecided after round 1 (3 replicates each), so the first call
    writes round 2 into replicates.json and ends saying so; the second call trains only its 2 runs (the
    replicates 4 of a fixed design) and stops at max_multiplicity with the decision's line."""
    exp = auto_experiment(tmp_path, low=3, high=4)
    first = plain_snakemake(exp)
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(6,)]
    kept = json.loads((exp.folder / REPLICATES_FILE).read_text())
    assert (kept["round"], kept["added"], sorted(kept["replicates"].values())) == (2, 2, [4, 4])
    assert [sorted(counts.values()) for counts in kept["history"]] == [[3, 3], [4, 4]]
    lines = first.rstrip().splitlines()
    assert lines[-2].startswith("mosaic: round 1, 6 runs: not decided yet: mlp_funnel is undecided against"), lines
    assert lines[-1] == "round 2: 2 more runs; run snakemake again (or mosaic_run)"
    assert (exp.folder / "database_plots" / "rounds.txt").read_text().splitlines() == lines[-3:]
    trained = exp.result_mtimes()

    second = plain_snakemake(exp)
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(8,)]
    now = exp.result_mtimes()
    assert {h: now[h] for h in trained} == trained and len(now) == 8  # only round 2's runs were trained
    assert second.rstrip().splitlines()[-1].startswith("mosaic: budget spent after 2 rounds and 8 runs: ")
    kept = json.loads((exp.folder / REPLICATES_FILE).read_text())
    assert (kept["round"], kept["added"], kept["reason"]) == (2, 0, "budget")
    assert_rounds_report(exp, rounds=2, runs=[6, 8], per_group=[3, 4])

    fixed = Experiment(tmp_path / "fixed", small_settings(multiplicity=4, widths="2"))
    monkeypatch.chdir(fixed.folder)
    from mosaic.experiment import load_experiment

    assert {run.run_hash for run in load_experiment(str(fixed.ini)).runs} == set(now)
    plain_snakemake(exp)  # a third call: decided, up to date, nothing trained
    assert exp.result_mtimes() == now
    plain_snakemake(exp, "--report", "report.html")  # its first page: the decision under the verdict
    report = (exp.folder / "report.html").read_text()
    assert "<strong>Multiplicity = auto:</strong> budget spent after 2 rounds and 8 runs: " in report
    assert "rounds.png" in report and "rounds.csv" in report


@pytest.mark.slow
def test_with_tuned_learning_rates_only_each_architectures_selected_rate_grows(tmp_path):
    """Two learning rates per architecture (the workflow tunes lr, selected on validation): round 1 trains
    3 replicates of each of the 4 pipelines; the decision is on each architecture at its selected rate, as
    the tune rule compares them, so round 2 grows those 2 pipelines only."""
    from mosaic.results.tuning import tune

    exp = auto_experiment(tmp_path, low=3, high=4)
    exp.edit("PROCESS", "lr", "0.001, 0.05")
    exp.edit("PROCESS", "validation_split", 0.25)
    plain_snakemake(exp)
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(12,)]
    kept = json.loads((exp.folder / REPLICATES_FILE).read_text())
    [tuned] = tune(str(exp.db), names="lr")
    selected = {group.label: dict(group.selected)["lr"] for group in tuned.groups}
    assert set(selected) == {"mlp_funnel", "mlp_brick"}
    assert kept["reason"] == "undecided"  # 2 epochs of width 2: seeded, close after round 1
    grown = {pipeline for pipeline, n in kept["replicates"].items() if n == 4}
    assert kept["added"] == 2 and len(grown) == 2 and sorted(kept["replicates"].values()) == [3, 3, 4, 4]
    for label, lr in selected.items():
        assert [p for p in grown if label in p and f"lr={lr:g}" in p.replace(" ", "")], (grown, selected)
    rows = (exp.folder / "database_plots" / "rounds.csv").read_text().splitlines()
    assert {row.split(",")[2] for row in rows[1:]} == {"mlp_funnel", "mlp_brick"}  # the selected settings
