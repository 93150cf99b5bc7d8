"""The adaptive replicates (mosaic/results/sequential.py): the decision on values, on a database, and by
simulation the error rate of the whole adaptive procedure under the null, its power and runs against
fixed designs."""

import math

import numpy as np
import pytest

from mosaic.errors import MosaicError
from mosaic.results.sequential import ALPHA, decide, decide_values, nominal_levels
from tests.results.fake_database import build_tuned_database

SIGMA = 1.0  # the spread of log values in the simulations (lognormal replicates)


def test_nominal_levels_spend_alpha_obrien_fleming_style():
    levels = nominal_levels(3, 10)
    assert len(levels) == 8  # looks at 3, 4, ..., 10 replicates
    assert list(levels) == sorted(levels)  # nearly nothing spent at first, the most at the last look
    assert levels[0] < 0.001 and 0.025 < levels[-1] < ALPHA
    assert nominal_levels(3, 3) == (ALPHA,)  # one look: a fixed design


def test_clearly_different_groups_are_decided_at_the_first_round():
    values = {("d", "a"): [1.0, 1.1, 0.9], ("d", "b"): [100.0, 110.0, 90.0]}
    decision = decide_values(values, scale="log", min_n=3, max_n=10)
    assert decision.done and decision.reason == "decided" and decision.round == 1
    assert decision.targets == {("d", "a"): 3, ("d", "b"): 3}
    assert [(r["label"], r["state"], r["versus"]) for r in decision.rows] == [("b", "worse", "a")]
    assert decision.text.startswith("decided after 1 round and 6 runs: b is beaten by a; a fixed design")


def test_the_fixed_design_is_never_counted_below_min_multiplicity():
    # A huge difference: 2 replicates each would have 80% power, but round 1 already had 3 each, and a fixed
    # design below min_multiplicity is not one the user would run (the old line said "about 4 runs" after 6).
    values = {("d", "a"): [1.0, 1.1, 0.9], ("d", "b"): [100.0, 110.0, 90.0]}
    decision = decide_values(values, scale="log", min_n=3, max_n=10)
    assert decision.fixed_runs == 6
    assert decision.text.endswith("a fixed design would have needed as many (6 runs at 3 replicates each)")
    later = decide_values({k: v + [1.0] for k, v in values.items()}, scale="log", min_n=3, max_n=10)
    assert later.fixed_runs >= 6


def test_undecided_groups_get_one_more_replicate_up_to_max_n():
    values = {("d", "a"): [1.0, 1.5, 0.7], ("d", "b"): [1.1, 1.4, 0.8], ("d", "c"): [0.9, 1.2, 1.0]}
    decision = decide_values(values, scale="log", min_n=3, max_n=5)
    assert not decision.done and decision.reason == "undecided" and decision.round == 1
    assert decision.targets == dict.fromkeys(values, 4)
    assert decision.text.startswith("round 1, 9 runs: not decided yet: ")
    at_max = {key: v + [1.0, 1.2] for key, v in values.items()}
    decision = decide_values(at_max, scale="log", min_n=3, max_n=5)
    assert decision.done and decision.reason == "budget" and decision.round == 3
    assert decision.targets == dict.fromkeys(values, 5)
    assert decision.text.startswith("budget spent after 3 rounds and 15 runs: ")


def test_max_runs_stops_before_a_round_that_would_exceed_it():
    values = {("d", "a"): [1.0, 1.5, 0.7], ("d", "b"): [1.1, 1.4, 0.8]}
    assert not decide_values(values, scale="log", max_runs=8).done
    decision = decide_values(values, scale="log", max_runs=7)
    assert decision.done and decision.reason == "budget" and decision.targets == dict.fromkeys(values, 3)


def test_only_the_undecided_comparisons_grow_and_other_variants_keep_their_count():
    values = {
        ("d", "a"): [1.0, 1.1, 0.9, 1.05],
        ("d", "b"): [100.0, 110.0, 90.0, 105.0],  # far worse than a: decided
        ("d", "c"): [1.02, 1.2, 0.85, 1.0],  # like a: undecided
        ("d", "c w=2"): [5.0, 6.0, 4.0],  # not the best variant of c: outside the headline family
    }
    keys = {("d", "a"): "a", ("d", "b"): "b", ("d", "c"): "c", ("d", "c w=2"): "c"}
    decision = decide_values(values, scale="log", model_keys=keys)
    assert decision.round == 2 and not decision.done
    states = {r["label"]: r["state"] for r in decision.rows}
    assert states == {"b": "worse", "c": "undecided"}
    assert decision.targets == {("d", "a"): 5, ("d", "b"): 4, ("d", "c"): 5, ("d", "c w=2"): 3}


def test_higher_is_better_and_the_rope_decides_practical_equality():
    accuracy = {("d", "a"): [0.90, 0.91, 0.92], ("d", "b"): [0.50, 0.52, 0.51]}
    decision = decide_values(accuracy, higher=True)
    assert [(r["label"], r["state"], r["versus"]) for r in decision.rows] == [("b", "worse", "a")]
    equal = {("d", "a"): [0.900, 0.901, 0.899, 0.9005], ("d", "b"): [0.9002, 0.9, 0.8999, 0.9004]}
    decision = decide_values(equal, higher=True, rope=0.01)
    assert decision.done and decision.reason == "decided"
    assert decision.rows[0]["state"] == "equal" and decision.rows[0]["p_equal"] > 0.95
    assert "is practically equal to" in decision.text
    assert not decide_values(equal, higher=True).done  # without a rope: not decided


def test_min_n_below_2_is_refused():
    with pytest.raises(MosaicError, match=r"^\[MONITOR\] min_multiplicity = 1 must be >= 2"):
        decide_values({("d", "a"): [1.0]}, min_n=1)


def test_decide_reads_the_groups_of_the_database(db_path):
    # 2 datasets × 2 models × 3 widths × 4 replicates: width 4 is the best variant of each model
    decision = decide(db_path, min_n=3, max_n=6)
    assert decision.round == 2 and decision.runs == 48
    assert len(decision.targets) == 12
    assert [(r["dataset_key"], r["label"], r["versus"], r["state"]) for r in decision.rows] == [
        (dataset, "net_funnel width=4", "net_brick width=4", "undecided")
        for dataset in ("data_dataset_AND", "data_dataset_OR")
    ]
    assert decision.text.startswith("round 2, 48 runs: not decided yet: data_dataset_AND: net_funnel width=4 is")
    grown = {key for key, n in decision.targets.items() if n == 5}
    assert grown == {(dataset, f"net_{model} width=4") for dataset in ("data_dataset_AND", "data_dataset_OR")
                     for model in ("funnel", "brick")}
    assert all(n == 4 for key, n in decision.targets.items() if key not in grown)  # the pending run counted


# ---------------------------------------------------------------- simulation of the whole procedure


def adaptive_experiment(rng, n_groups, shift, min_n=3, max_n=10):
    """One experiment run round by round as mosaic_run does: lognormal groups, the first `shift` better
    (lower) on the log scale. (any false 'beats' at any look, first group declared best of all, runs)."""
    centers = np.zeros(n_groups)
    centers[0] = -shift
    values = {("d", f"m{i}"): list(rng.lognormal(centers[i], SIGMA, min_n)) for i in range(n_groups)}
    false_claim = False
    while True:
        decision = decide_values(values, scale="log", min_n=min_n, max_n=max_n)
        false_claim |= shift == 0 and any(r["state"] in ("beats", "worse") for r in decision.rows)
        if decision.done:
            break
        for key, n in decision.targets.items():
            values[key] += list(rng.lognormal(centers[int(key[1][1:])], SIGMA, n - len(values[key])))
    won = all(r["versus"] == "m0" and r["state"] == "worse" for r in decision.rows)
    return false_claim, won, decision.runs


def fixed_power(rng, n_groups, shift, n, experiments):
    """The power of the fixed design (n replicates per group, Holm over every pair as compare.py does) to
    declare the first group better than all the others."""
    from scipy import stats

    from mosaic.results.stats import holm

    won = 0
    for _ in range(experiments):
        x = rng.normal(0.0, SIGMA, (n_groups, n))
        x[0] -= shift
        pairs = [(a, b) for a in range(n_groups) for b in range(a + 1, n_groups)]
        p = holm([float(stats.ttest_ind(x[a], x[b], equal_var=False).pvalue) for a, b in pairs])
        leader = int(np.argmin(x.mean(axis=1)))
        won += leader == 0 and all(q < ALPHA for (a, _), q in zip(pairs, p) if a == 0)
    return won / experiments


def null_rate(n_groups, experiments, seed):
    rng = np.random.default_rng(seed)
    claims = [adaptive_experiment(rng, n_groups, 0.0)[0] for _ in range(experiments)]
    rate = float(np.mean(claims))
    return rate, math.sqrt(ALPHA * (1 - ALPHA) / experiments)


def test_false_beats_rate_of_the_adaptive_procedure_with_2_architectures():
    rate, se = null_rate(2, 2000, seed=2)
    print(f"2 architectures, null: false 'beats' in {rate:.4f} of 2000 adaptive experiments")
    assert rate < ALPHA + 2 * se


def test_false_beats_rate_of_the_adaptive_procedure_with_6_architectures():
    rate, se = null_rate(6, 2000, seed=6)
    print(f"6 architectures, null: false 'beats' in {rate:.4f} of 2000 adaptive experiments")
    assert rate < ALPHA + 2 * se


@pytest.mark.slow
def test_auto_uses_fewer_runs_than_the_fixed_design_of_equal_power():
    rng = np.random.default_rng(7)
    shift, experiments = 1.5, 1000
    results = [adaptive_experiment(rng, 2, shift) for _ in range(experiments)]
    power = float(np.mean([won for _, won, _ in results]))
    runs = float(np.mean([n for _, _, n in results]))
    powers = {n: fixed_power(rng, 2, shift, n, experiments) for n in range(3, 11)}
    equal = min(n for n, p in powers.items() if p >= power - 0.02)  # within the simulation's noise
    print(f"auto: power {power:.3f}, {runs:.1f} runs on average; fixed: "
          + ", ".join(f"n={n}: power {p:.3f}" for n, p in powers.items()))
    assert runs < 2 * equal


def print_figures(experiments=2000, seed=11):
    """The figures of docs/statistics.md "How many replicates?" (python -m tests.results.test_sequential)."""
    rng = np.random.default_rng(seed)
    for n_groups in (2, 6):
        rate, se = null_rate(n_groups, experiments, seed + n_groups)
        print(f"null, {n_groups} architectures: false 'beats' {rate:.3f} (± {se:.3f}) of {experiments} experiments")
    print("| architectures | difference (log sd) | auto: power | auto: mean runs | fixed of that power | fixed 10 |")
    for n_groups, shift in ((2, 1.0), (2, 1.5), (2, 2.5), (6, 1.5), (6, 2.5)):
        results = [adaptive_experiment(rng, n_groups, shift) for _ in range(experiments // 2)]
        power = float(np.mean([won for _, won, _ in results]))
        runs = float(np.mean([n for _, _, n in results]))
        powers = {n: fixed_power(rng, n_groups, shift, n, experiments // 2) for n in range(3, 11)}
        equal = min((n for n, p in powers.items() if p >= power), default=None)
        fixed = f"n = {equal}: {n_groups * equal} runs" if equal else "more than 10 per group"
        print(f"| {n_groups} | {shift} | {power:.2f} | {runs:.1f} | {fixed} | {n_groups * 10} runs,"
              f" power {powers[10]:.2f} |")


if __name__ == "__main__":
    print_figures()


def test_with_tuned_settings_only_the_selected_settings_are_decided_on_and_grow(tmp_path):
    # A's best lr on validation is 0.1, B's is 0.01; A at lr 0.1 is close to B at lr 0.01: undecided. The
    # decision is on each architecture at its selected lr, and every run counts against max_runs.
    spread = [1.0, 1.3, 0.8]
    finals = {("ds", "A", (0.01,)): [(0.9 * s, 0.9 * s) for s in spread],
              ("ds", "A", (0.1,)): [(0.3 * s, 0.3 * s) for s in spread],
              ("ds", "B", (0.01,)): [(0.31 * s, 0.31 * s) for s in reversed(spread)],
              ("ds", "B", (0.1,)): [(0.8 * s, 0.8 * s) for s in spread]}
    db = build_tuned_database(tmp_path, finals)
    decision = decide(db, tune=["lr"], min_n=3, max_n=6)
    assert [(r["label"], r["versus"], r["state"]) for r in decision.rows] == [("B", "A", "undecided")]
    assert decision.runs == 12 and decision.targets == {("ds", "A"): 4, ("ds", "B"): 4}
    lrs = {g.label: {run_id for run_id in g.run_ids} for g in decision.groups["ds"]}
    assert lrs == {"A": {4, 5, 6}, "B": {7, 8, 9}}  # the runs at lr 0.1 of A and at lr 0.01 of B
    assert decide(db, tune="lr", min_n=3, max_n=6, max_runs=13).reason == "budget"  # 12 runs + 2 > 13
    untuned = decide(db, min_n=3, max_n=6)  # without tuning each lr is a variant: 4 groups
    assert sorted(untuned.targets) == [("ds", "A lr=0.01"), ("ds", "A lr=0.1"), ("ds", "B lr=0.01"),
                                       ("ds", "B lr=0.1")]


def test_a_metric_where_higher_is_better_decides_the_right_way(tmp_path):
    finals = {("ds", "A", (0.01,)): [(0.95, 0.95), (0.96, 0.96), (0.94, 0.94)],
              ("ds", "B", (0.01,)): [(0.50, 0.50), (0.52, 0.52), (0.48, 0.48)]}
    db = build_tuned_database(tmp_path, finals, metric="accuracy")
    decision = decide(db, value="accuracy", min_n=3, max_n=10)
    assert decision.done and [(r["label"], r["state"], r["versus"]) for r in decision.rows] == [("B", "worse", "A")]


def test_without_a_validation_value_a_tuned_decision_takes_each_setting_as_a_variant(tmp_path):
    finals = {("ds", model, (lr,)): [(base * lr * s, None) for s in (1.0, 1.3, 0.8)]
              for lr in (0.01, 0.1) for model, base in (("A", 1.0), ("B", 2.0))}
    db = build_tuned_database(tmp_path, finals, with_validation=False)
    assert sorted(decide(db, tune="lr").targets) == sorted(decide(db).targets)
    assert len(decide(db, tune="lr").targets) == 4
