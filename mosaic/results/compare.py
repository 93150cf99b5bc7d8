"""Which architecture wins, and how sure: statistics over the replicates of each group (mosaic_compare).

Per dataset key, the runs are grouped by model key, and within a model key by the model parameters that
vary (width=2, width=3, ...) when there are several. For each group: n, mean, median, interquartile mean,
standard deviation and a 95% bootstrap confidence interval of the mean. Each group is compared with the best
one: difference of means (95% bootstrap CI), Welch's t-test and Mann-Whitney U p-values, both Holm-corrected
over the pairs compared, Hedges' g, the probability of improvement P(A better than B) (the share of replicate
pairs where A beats B, ties counted half, with a bootstrap CI) and the replicates per group a two-sided
t-test would need to separate them at 80% power. With a region of practical equivalence (ROPE) R, the
posterior of the difference of means (non-informative prior: a Student t centred on the observed difference,
with Welch's scale and degrees of freedom) gives P(A better by more than R), P(|difference| <= R) and
P(B better by more than R). Across dataset keys: average ranks, Friedman's test and Nemenyi's critical
difference. README.md ("Which architecture wins") explains each column.

Here: reading the groups from the database, the verdict, the ranks and storing them in the database; the
statistics themselves are in stats.py, the files and the text report in compare_outputs.py.
scipy and numpy are imported inside the functions that need them: importing this module stays cheap.
"""

import math
import os
import sqlite3
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field

from mosaic.errors import MosaicError
from mosaic.results.database import data_types_by_run, open_db
from mosaic.results.selection import PROCESS_TYPE
from mosaic.results.stats import ALPHA, CONFIDENCE, PAIR_COLUMNS, RESAMPLES, SEED, compare_pair, describe, holm
from mosaic.results.values import COMPARED_COLUMNS, LOSS_VALUES, higher_is_better, value_source

NEGLIGIBLE = 1e-3  # a final loss below this fraction of its first-epoch value: the task is solved

GROUP_COLUMNS = (
    "dataset_key value rank label model_key variant nb_params n n_failed n_diverged n_unfinished"
    " mean median iqm std ci_low ci_high first_epoch"
).split()
COMPARISON_COLUMNS = ["dataset_key", "value", "label", "versus", *PAIR_COLUMNS]


@dataclass
class Group:
    """The replicates of one model key (and variant) on one dataset key."""

    dataset_key: str
    model_key: str
    variant: str = ""  # 'width=2' when the model key has several variants, else ''
    values: list = field(default_factory=list)  # finite values of the runs done and not diverged
    run_ids: list = field(default_factory=list)  # those runs
    first_epoch: list = field(default_factory=list)  # their loss after epoch 1 (loss values only)
    nb_params: set = field(default_factory=set)
    n_failed: int = 0
    n_diverged: int = 0
    n_unfinished: int = 0

    @property
    def label(self):
        return f"{self.model_key} {self.variant}" if self.variant else self.model_key


# ---------------------------------------------------------------- reading


def _model_variants(db):
    """{run_id: {'type.name': value}} of the parameters of each run's model modules."""
    data_types = data_types_by_run(db)
    params = defaultdict(dict)
    for run_id, module_type, name, value in db.execute(
        "SELECT run_id, module_type, name, value FROM params WHERE module_type != ?"
        " AND name NOT IN ('section', 'class', 'key') ORDER BY rowid",
        (PROCESS_TYPE,),
    ):
        if module_type not in data_types.get(run_id, ()):
            params[run_id][f"{module_type}.{name}"] = value
    return params


def _variant_labels(run_params):
    """{run_id: 'width=2'}: the parameters that differ between the runs of one model key."""
    names = sorted({name for params in run_params.values() for name in params})
    varying = [name for name in names if len({repr(params.get(name)) for params in run_params.values()}) > 1]
    short = {name: name.partition(".")[2] for name in varying}
    if len(set(short.values())) < len(varying):  # the same name in two modules: keep the module type
        short = {name: name for name in varying}
    return {
        run_id: ",".join(f"{short[name]}={params.get(name)}" for name in varying)
        for run_id, params in run_params.items()
    }


def load_groups(db_path, value="test_loss"):
    """{dataset_key: [Group, ...]} of every run of the database, failed and unfinished ones counted."""
    with closing(open_db(db_path)) as db:
        column, join, args = value_source(db, value, COMPARED_COLUMNS)
        runs = db.execute(
            f"SELECT runs.run_id, dataset_key, model_key, status, diverged, nb_params, {column} FROM runs {join}"
            " ORDER BY runs.run_id",
            args,
        ).fetchall()
        variants = _model_variants(db)
        first = {}
        if value in LOSS_VALUES:
            first = dict(db.execute(f"SELECT run_id, {value} FROM losses WHERE epoch = 1"))
    by_model = defaultdict(dict)
    for run_id, dataset_key, model_key, *_ in runs:
        by_model[str(dataset_key), str(model_key)][run_id] = variants.get(run_id, {})
    labels = {}
    for run_params in by_model.values():
        labels.update(_variant_labels(run_params))
    groups = {}
    for run_id, dataset_key, model_key, status, diverged, nb_params, y in runs:
        key = (str(dataset_key), str(model_key), labels[run_id])
        group = groups.setdefault(key, Group(*key))
        if status != "done":
            if status == "error":
                group.n_failed += 1
            else:
                group.n_unfinished += 1
            continue
        if nb_params is not None:
            group.nb_params.add(nb_params)
        if diverged or y is None or not math.isfinite(y):
            group.n_diverged += 1
            continue
        group.values.append(float(y))
        group.run_ids.append(run_id)
        if first.get(run_id) is not None:
            group.first_epoch.append(first[run_id])
    by_dataset = defaultdict(list)
    for group in groups.values():
        by_dataset[group.dataset_key].append(group)
    if not by_dataset:
        raise MosaicError(f"{db_path}: no run to compare")
    return dict(sorted(by_dataset.items()))


# ---------------------------------------------------------------- one dataset key


@dataclass
class DatasetComparison:
    dataset_key: str
    value: str
    groups: list  # [(Group, description)] best first; groups without a value last
    comparisons: list  # [dict of COMPARISON_COLUMNS]: each group against the best
    verdict: str
    higher: bool = False  # whether higher values are better


def compare_dataset(groups, value, higher=False, rope=None, seed=SEED, n_resamples=RESAMPLES):
    described = [(group, describe(group.values, seed, n_resamples)) for group in groups]

    def order(item):
        group, description = item
        mean = description["mean"]
        if mean is None:
            return (1, 0.0, group.label)
        return (0, -mean if higher else mean, group.label)

    described.sort(key=order)
    best = described[0][0]
    comparisons = []
    alpha = ALPHA / max(1, len(described) - 1)  # the replicates needed survive the correction for all the pairs
    for group, _ in described[1:]:
        row = {"dataset_key": best.dataset_key, "value": value, "label": group.label, "versus": best.label}
        row.update(compare_pair(group.values, best.values, higher, rope, seed, n_resamples, alpha))
        comparisons.append(row)
    for test in ("welch_p", "mwu_p"):
        for row, adjusted in zip(comparisons, holm([row[test] for row in comparisons])):
            row[f"{test}_holm"] = adjusted
    verdict = _verdict(described, comparisons, value, higher, rope)
    return DatasetComparison(best.dataset_key, value, described, comparisons, verdict, higher)


def _solved(group, description):
    """Whether a loss fell below NEGLIGIBLE times its first-epoch value."""
    if not group.first_epoch or description["mean"] is None:
        return False
    first = sum(group.first_epoch) / len(group.first_epoch)
    return first > 0 and description["mean"] <= NEGLIGIBLE * first


def _n_text(a, b):
    return f"n = {a}" if a == b else f"n = {a} and {b}"


def _left_out(group):
    """'1 failed, 2 diverged': the runs of a group that give no value ('' when none)."""
    counts = ((group.n_failed, "failed"), (group.n_diverged, "diverged"), (group.n_unfinished, "pending"))
    return ", ".join(f"{count} {what}" for count, what in counts if count)


def _verdict(described, comparisons, value, higher, rope):
    with_values = [(group, d) for group, d in described if d["n"]]
    if not with_values:
        return f"no finished replicate has a {value}: nothing to compare"
    best, best_d = with_values[0]
    if len(with_values) == 1:
        return f"only {best.label} has finished replicates: nothing to compare"
    # the strongest other architecture: the best group of another model key, else the runner-up
    others = [(g, d) for g, d in with_values[1:] if g.model_key != best.model_key] or with_values[1:]
    other, other_d = others[0]
    row = next(r for r in comparisons if r["label"] == other.label)
    if best_d["n"] < 2 or other_d["n"] < 2:
        return (
            f"{best.label} is ahead of {other.label} on {value}, but with {_n_text(best_d['n'], other_d['n'])} "
            "replicates nothing can be tested: run at least 2 of each"
        )
    p = row["welch_p_holm"]
    p_better = 1 - row["p_better"]  # the row holds P(other better than best)
    if p < ALPHA:
        text = f"{best.label} beats {other.label} on {value} (P(better) = {p_better:.2f}, p = {p:.2g}, Holm)"
    else:
        needed = row["replicates_needed"]
        text = (
            f"no significant difference between {best.label} and {other.label} on {value} at "
            f"{_n_text(best_d['n'], other_d['n'])} (p = {p:.2g}, Holm): "
        )
        if needed is None:
            text += "the observed effect is too small for any practical number of replicates to separate them"
        else:
            text += f"about {needed} replicates per group would be needed to separate them"
    if rope is not None:
        worse, equal, better = row["p_rope_better"], row["p_rope_equal"], row["p_rope_worse"]
        text += (
            f"; with a practical-equivalence margin of {rope:g}: P({best.label} better) = {better:.2f}, "
            f"P(practically equal) = {equal:.2f}, P({other.label} better) = {worse:.2f}"
        )
    elif not higher and _solved(best, best_d) and _solved(other, other_d):
        first = sum(best.first_epoch + other.first_epoch) / len(best.first_epoch + other.first_epoch)
        text += (
            f"; both solve the task ({value} about {first:.2g} after epoch 1, {best_d['mean']:.1e} and "
            f"{other_d['mean']:.1e} at the end): the difference is tiny in absolute terms"
        )
    lost = [f"{group.label}: {_left_out(group)}" for group in (best, other) if _left_out(group)]
    if lost:
        text += f" (runs left out: {'; '.join(lost)})"
    return text


# ---------------------------------------------------------------- across dataset keys


@dataclass
class Ranks:
    labels: list  # the groups present in every dataset key, by average rank
    average: list
    n_datasets: int
    friedman_p: float | None
    critical_difference: float | None


def rank_across(comparisons, higher=False):
    """Average ranks of the groups present in every dataset key (1 = best), Friedman's p-value and
    Nemenyi's critical difference at 95%; None when there are fewer than 2 dataset keys or groups."""
    import numpy as np
    from scipy import stats

    means = [
        {group.label: d["mean"] for group, d in comparison.groups if d["mean"] is not None}
        for comparison in comparisons
    ]
    if len(means) < 2:
        return None
    common = sorted(set.intersection(*(set(m) for m in means)))
    if len(common) < 2:
        return None
    table = np.array([[m[label] for label in common] for m in means])
    ranks = stats.rankdata(-table if higher else table, axis=1)
    average = ranks.mean(axis=0)
    k, n = len(common), len(means)
    friedman = float(stats.friedmanchisquare(*table.T).pvalue) if k >= 3 else None
    q = stats.studentized_range.ppf(CONFIDENCE, k, np.inf) / math.sqrt(2)
    cd = float(q * math.sqrt(k * (k + 1) / (6 * n)))
    order = np.argsort(average, kind="stable")
    return Ranks([common[i] for i in order], [float(average[i]) for i in order], n, friedman, cd)


# ---------------------------------------------------------------- the whole comparison


def compare(db_path, value="test_loss", higher=None, rope=None, seed=SEED, n_resamples=RESAMPLES):
    """([DatasetComparison per dataset key], Ranks or None) of every dataset key of the database."""
    if higher is None:
        higher = higher_is_better(value)
    if rope is not None and rope < 0:
        raise MosaicError(f"--rope must be positive, not {rope}")
    comparisons = [
        compare_dataset(groups, value, higher, rope, seed, n_resamples)
        for groups in load_groups(db_path, value).values()
    ]
    return comparisons, rank_across(comparisons, higher)


def group_rows(comparisons):
    rows = []
    for comparison in comparisons:
        for rank, (group, d) in enumerate(comparison.groups, start=1):
            first = sum(group.first_epoch) / len(group.first_epoch) if group.first_epoch else None
            rows.append(
                {
                    "dataset_key": group.dataset_key,
                    "value": comparison.value,
                    "rank": rank if d["n"] else None,
                    "label": group.label,
                    "model_key": group.model_key,
                    "variant": group.variant,
                    "nb_params": ",".join(str(n) for n in sorted(group.nb_params)) or None,
                    "n_failed": group.n_failed,
                    "n_diverged": group.n_diverged,
                    "n_unfinished": group.n_unfinished,
                    **d,
                    "first_epoch": first,
                }
            )
    return [{name: row[name] for name in GROUP_COLUMNS} for row in rows]


def comparison_rows(comparisons):
    return [{name: row[name] for name in COMPARISON_COLUMNS} for c in comparisons for row in c.comparisons]


# ---------------------------------------------------------------- storing


def store(db_path, comparisons):
    """Replace this value's rows of the `groups`, `comparisons` and `verdicts` tables of the database.

    The database file keeps its modification time: Snakemake would otherwise take it for new and redo
    every plot made from it.
    """
    stat = os.stat(db_path)
    groups, pairs = group_rows(comparisons), comparison_rows(comparisons)
    values = {c.value for c in comparisons}
    with closing(sqlite3.connect(db_path, timeout=60)) as db, db:
        db.execute(f"CREATE TABLE IF NOT EXISTS groups ({', '.join(GROUP_COLUMNS)})")
        db.execute(f"CREATE TABLE IF NOT EXISTS comparisons ({', '.join(COMPARISON_COLUMNS)})")
        db.execute("CREATE TABLE IF NOT EXISTS verdicts (dataset_key, value, verdict)")
        for table in ("groups", "comparisons", "verdicts"):
            db.executemany(f"DELETE FROM {table} WHERE value = ?", [(v,) for v in values])
        db.executemany(
            f"INSERT INTO groups VALUES ({', '.join('?' * len(GROUP_COLUMNS))})", [tuple(r.values()) for r in groups]
        )
        db.executemany(
            f"INSERT INTO comparisons VALUES ({', '.join('?' * len(COMPARISON_COLUMNS))})",
            [tuple(r.values()) for r in pairs],
        )
        db.executemany(
            "INSERT INTO verdicts VALUES (?, ?, ?)", [(c.dataset_key, c.value, c.verdict) for c in comparisons]
        )
    os.utime(db_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

