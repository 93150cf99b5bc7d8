"""The tuned comparison (mosaic/results/tuning.py, mosaic_compare --tune): selection on validation, the
comparison at the selected settings against the one at a shared setting, and the tuning budget (Dodge et
al. 2019) checked against brute force."""

import csv
import itertools
import math
import random
import sqlite3
import statistics

import pytest

from mosaic.errors import MosaicError
from mosaic.ops.cli import mosaic_compare
from mosaic.results.groups import load_groups
from mosaic.results.summary import shared_sentence, tuned_summary
from mosaic.results.tuning import budget_curve, budget_reading, expected_best, settings_to_tune, tune
from mosaic.results.tuning_plots import plain_words, write_tuning_placeholders
from tests.results.fake_database import build_tuned_database

REFUSAL = ("mosaic_compare: --tune needs a validation value (val_loss): add validation_split to [PROCESS] or "
           "return (train, validation, test) from the data class; selecting on the test set would bias the "
           "comparison\n")


def replicates(test, validation, n=4):
    """n replicates spread by 2% around the given test and validation values."""
    return [(test * (1 + 0.02 * i), validation * (1 + 0.02 * i)) for i in range(n)]


def crossing():
    """A wins at its own best lr (0.1) but loses at B's best lr (0.01) and at 0.001; the mean over both
    architectures is best at 0.01, the setting a single-lr comparison would take."""
    finals = {}
    for lr, (a, b) in {0.001: (0.5, 0.2), 0.01: (0.3, 0.1), 0.1: (0.05, 0.9)}.items():
        finals["ds", "A", (lr,)] = replicates(a, a)
        finals["ds", "B", (lr,)] = replicates(b, b)
    return finals


# ---------------------------------------------------------------- the tuning budget


@pytest.mark.parametrize("higher", [False, True])
def test_the_expected_best_of_k_settings_is_that_of_every_draw_enumerated(higher):
    values = [0.3, 0.1, 0.1, 0.7, 0.25]  # a tie included
    best = max if higher else min
    for k in range(1, 5):
        draws = [best(draw) for draw in itertools.product(values, repeat=k)]  # every draw, equally likely
        mean, sd = expected_best(values, k, higher)
        assert mean == pytest.approx(statistics.fmean(draws), rel=1e-12)
        assert sd == pytest.approx(statistics.pstdev(draws), rel=1e-9)


def test_the_expected_best_matches_a_simulation_of_k_draws():
    rng = random.Random(1)
    values = [rng.lognormvariate(0, 1) for _ in range(12)]
    for k in (1, 3, 12):
        draws = [min(rng.choice(values) for _ in range(k)) for _ in range(40000)]
        mean, sd = expected_best(values, k)
        assert mean == pytest.approx(statistics.fmean(draws), rel=0.02)
        assert sd == pytest.approx(statistics.pstdev(draws), rel=0.05)


def test_the_budget_curve_goes_from_the_mean_setting_towards_the_best():
    values = [4.0, 1.0, 3.0, 2.0]
    curve = budget_curve(values)
    assert [row["k"] for row in curve] == [1, 2, 3, 4]
    assert curve[0]["expected"] == pytest.approx(2.5)  # one setting drawn: the mean of them
    assert all(a["expected"] > b["expected"] for a, b in zip(curve, curve[1:]))  # more budget, lower loss
    assert curve[0]["low"] == pytest.approx(2.5 - statistics.pstdev(values))  # ±1 sd of the best...
    assert curve[3]["low"] == 1.0 and all(row["high"] <= 4.0 for row in curve)  # ...within the values' range


def test_the_budget_is_read_in_words():
    flat = [{"expected": 1.0, "sd": 0.01}] * 4
    falling = [{"expected": e, "sd": 0.01} for e in (2.0, 1.5, 1.0, 1.0)]
    assert budget_reading({"brick": flat, "funnel": falling}) == (
        "with 1 to 2 settings brick is ahead; with 3 to 4 both are equal")
    assert budget_reading({"brick": flat}) == ""


# ---------------------------------------------------------------- the proof: tuned against one shared setting


def test_a_shared_lr_names_the_wrong_winner_and_the_tuned_comparison_the_right_one(tmp_path, capsys):
    db = build_tuned_database(tmp_path, crossing())
    assert mosaic_compare([db, "--tune", "lr", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "  A: lr = 0.1 selected of 3 settings (mean val_loss 0.052; the others 0.31 to 0.52).\n" in out
    assert "  B: lr = 0.01 selected of 3 settings (mean val_loss 0.10; the others 0.21 to 0.93).\n" in out
    assert "    A beats B: test_loss 0.051 vs 0.10 (2.0× lower; won all 16 replicate pairs; p = " in out
    assert "  at lr = 0.01 and at lr = 0.001 B wins; each at its best lr, A wins.\n" in out
    [tuned] = tune(db, names="lr")
    assert tuned.fixed.groups[0][0].label == "B"  # at the best shared lr (0.01): the wrong answer
    assert tuned.shared[0] == ((("lr", 0.01),), "B")
    assert tuned.comparison.groups[0][0].label == "A"


def test_without_tune_each_setting_is_a_variant_and_runs_of_different_lr_are_not_pooled(tmp_path):
    by_dataset = load_groups(build_tuned_database(tmp_path, crossing()))
    assert sorted((g.label, len(g.values)) for g in by_dataset["ds"]) == [
        ("A lr=0.001", 4), ("A lr=0.01", 4), ("A lr=0.1", 4), ("B lr=0.001", 4), ("B lr=0.01", 4), ("B lr=0.1", 4)]


def test_when_the_shared_setting_agrees_the_summary_says_so(tmp_path):
    finals = {("ds", model, (lr,)): replicates(base * lr, base * lr)
              for lr in (0.01, 0.1) for model, base in (("A", 1.0), ("B", 2.0))}
    [tuned] = tune(build_tuned_database(tmp_path, finals))
    assert shared_sentence(tuned) == "at every shared lr A wins too: the comparison at one shared setting agrees."


def test_the_selection_follows_validation_not_test(tmp_path):
    finals = {("ds", "A", (0.01,)): replicates(0.3, 0.1),  # best on validation, worse on test
              ("ds", "A", (0.1,)): replicates(0.05, 0.2),  # best on test
              ("ds", "B", (0.01,)): replicates(0.2, 0.2)}
    [tuned] = tune(build_tuned_database(tmp_path, finals))
    a = next(group for group in tuned.groups if group.label == "A")
    assert a.selected == (("lr", 0.01),)
    centers = {group.label: d["center"] for group, d in tuned.comparison.groups}
    assert centers["A"] == pytest.approx(math.exp(statistics.fmean(math.log(0.3 * (1 + 0.02 * i)) for i in range(4))))
    assert tuned.comparison.groups[0][0].label == "B"  # compared at validation's choice, A loses on test


def test_a_setting_where_a_run_failed_ranks_after_the_others(tmp_path):
    finals = {("ds", "A", (0.1,)): replicates(0.05, 0.05)[:3] + [None],
              ("ds", "A", (0.01,)): replicates(0.3, 0.3),
              ("ds", "B", (0.01,)): replicates(0.2, 0.2)}
    [tuned] = tune(build_tuned_database(tmp_path, finals))
    assert next(g for g in tuned.groups if g.label == "A").selected == (("lr", 0.01),)


def test_the_tuning_files(tmp_path):
    db = build_tuned_database(tmp_path, crossing())
    out = tmp_path / "out"
    assert mosaic_compare([db, "--tune", "auto", "--out", str(out)]) == 0
    with open(out / "tuning.csv") as table:
        rows = list(csv.DictReader(table))
    assert [(row["label"], row["k"], row["selected"]) for row in rows] == [
        ("A", "1", "lr = 0.1"), ("A", "2", "lr = 0.1"), ("A", "3", "lr = 0.1"),
        ("B", "1", "lr = 0.01"), ("B", "2", "lr = 0.01"), ("B", "3", "lr = 0.01")]
    assert float(rows[0]["expected"]) == pytest.approx(statistics.fmean((0.052, 0.306, 0.51)), rel=0.01)
    assert (out / "tuning.png").read_bytes().startswith(b"\x89PNG")
    markdown = (out / "tuned_comparison.md").read_text()
    assert "each at its best lr, A wins" in markdown and "How to read it" in markdown
    assert "| ds | A | lr = 0.1 | 3 | 0.0515 | 0.0515 |" in markdown
    assert plain_words(out / "tuned_comparison.md") == tuned_summary(tune(db))
    write_tuning_placeholders(out, "test_loss", "nothing to tune")
    assert plain_words(out / "tuned_comparison.md") == "nothing to tune\n"


# ---------------------------------------------------------------- refusals


def test_without_a_validation_value_the_tuned_comparison_refuses(tmp_path, capsys):
    db = build_tuned_database(tmp_path, crossing(), with_validation=False)
    assert mosaic_compare([db, "--tune", "lr"]) == 2
    assert capsys.readouterr().err == REFUSAL


def test_a_database_without_the_val_loss_column_refuses_too(tmp_path, capsys):
    db = build_tuned_database(tmp_path, crossing())
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE runs DROP COLUMN val_loss")
    assert mosaic_compare([db, "--tune", "lr"]) == 2
    assert capsys.readouterr().err == REFUSAL


def test_names_to_tune(tmp_path):
    finals = {("ds", model, (0.01,)): replicates(0.1, 0.1) for model in ("A", "B")}
    db = build_tuned_database(tmp_path, finals)
    with pytest.raises(MosaicError, match="^--tune: no training setting varies between the runs: nothing to tune$"):
        tune(db)
    with pytest.raises(MosaicError, match=r"^--tune momentum: no training setting of that name in the database "
                                          r"\(its settings: .*lr.*\)$"):
        tune(db, names="lr,momentum")


def test_the_workflow_tunes_the_settings_that_vary_between_the_runs():
    from types import SimpleNamespace

    runs = [SimpleNamespace(training=(("lr", lr), ("optimizer", "Adam"), ("validation_split", split)))
            for lr in (0.01, 0.1) for split in (0.1, 0.2)]
    assert settings_to_tune(runs, "auto") == ["lr"]
    assert settings_to_tune(runs, "lr,optimizer") == ["lr"]
    assert settings_to_tune(runs, "optimizer") == []
    assert settings_to_tune(runs, "") == []


def test_two_names_tuned_together_and_a_setting_left_unset(tmp_path):
    finals = {("ds", "A", (0.01, None)): replicates(0.2, 0.1),  # a tie on validation with the next one
              ("ds", "A", (0.01, 1e-4)): replicates(0.3, 0.1),
              ("ds", "A", (0.1, 1e-4)): replicates(0.3, 0.4),
              ("ds", "B", (0.01, None)): replicates(0.2, 0.2),
              ("ds", "B", (0.1, 1e-4)): replicates(0.1, 0.1)}
    db = build_tuned_database(tmp_path, finals, names=("lr", "weight_decay"))
    [tuned] = tune(db, names="lr,weight_decay")
    assert {g.label: g.selected for g in tuned.groups} == {
        "A": (("lr", 0.01), ("weight_decay", 1e-4)), "B": (("lr", 0.1), ("weight_decay", 1e-4))}
    assert [setting for setting, _ in tuned.shared] == [(("lr", 0.01), ("weight_decay", None))]  # the best first
    assert shared_sentence(tuned) == ("at lr = 0.01, weight_decay = None A wins; each at its best lr and "
                                      "weight_decay, B wins.")


def test_a_metric_is_selected_on_its_validation_counterpart(tmp_path, capsys):
    finals = {("ds", "A", (0.01,)): replicates(0.9, 0.7),  # best on val_accuracy (higher is better)
              ("ds", "A", (0.1,)): replicates(0.8, 0.6),
              ("ds", "B", (0.01,)): replicates(0.5, 0.5)}
    [tuned] = tune(build_tuned_database(tmp_path / "metric", finals, metric="accuracy"), "accuracy")
    assert next(g for g in tuned.groups if g.label == "A").selected == (("lr", 0.01),)
    assert tuned.comparison.higher and tuned.comparison.groups[0][0].label == "A"
    db = build_tuned_database(tmp_path, crossing())
    assert mosaic_compare([db, "--tune", "lr", "--value", "accuracy"]) == 2
    assert capsys.readouterr().err == REFUSAL.replace("(val_loss)", "(val_accuracy)")
