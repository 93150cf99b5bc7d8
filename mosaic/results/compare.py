"""Which architecture wins, and how sure: statistics over the replicates of each group (mosaic_compare).

Per dataset key, the runs are grouped by model key, and within a model key by the model parameters that
vary (width=2, width=3, ...) when there are several (groups.py reads them). Each group is described on one
scale (stats.py): "log" for a positive value where lower is better (a loss, a duration: geometric means,
ratios), "linear" otherwise (accuracies: means, differences); `--scale` chooses. The reference of a
dataset key is its best group with at least 2 replicates.

Two families of comparisons, each with its own Holm correction over every pair of its groups (the best
group is chosen from the data: Holm over its pairs alone lets the null rate grow past 5% from 5 model keys
on; over every pair it stays below, tests/results/test_verdict.py):
- "architectures": the best group of each model key against the best group of the dataset key; the
  verdict (verdict.py) places every model key from these.
- "variants of <model key>": each variant of a model key against the key's best variant.
Across dataset keys: average ranks, Friedman's test and Nemenyi's critical difference, the diagram drawn
only where a difference could be detected. docs/statistics.md and `mosaic_compare --help` explain each column.

scipy and numpy are imported inside the functions that need them: importing this module stays cheap.
"""

import itertools
import math
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass

from mosaic.errors import MosaicError
from mosaic.results.groups import Group, load_groups
from mosaic.results.stats import (
    ALPHA,
    CONFIDENCE,
    PAIR_COLUMNS,
    SCALES,
    SEED,
    compare_pair,
    default_scale,
    describe,
    fisher_p,
    holm,
    is_constant,
    mann_whitney_p,
    quiet,
    transform,
    welch,
)
from mosaic.results.values import higher_is_better
from mosaic.results.verdict import write_verdict

__all__ = ["Group", "load_groups", "compare", "compare_dataset", "rank_across", "store"]

ARCHITECTURES = "architectures"
GROUP_COLUMNS = (
    "dataset_key value scale rank label model_key variant nb_params n n_failed n_diverged n_missing n_unfinished"
    " failure_rate mean center ci_low ci_high median iqm std constant first_epoch"
).split()
COMPARISON_COLUMNS = ["dataset_key", "value", "family", "label", "versus", *PAIR_COLUMNS, "fisher_p"]


def variants_family(model_key):
    return f"variants of {model_key}"


def choose_scale(scale, values, higher=False):
    """The scale of a comparison: `scale` ("auto", "log", "linear"); "auto" is stats.default_scale (log for
    a value positive in every finished run where lower is better). MosaicError for log on a value <= 0."""
    if scale == "auto":
        return default_scale(values, higher)
    if scale not in SCALES:
        raise MosaicError(f"unknown scale '{scale}': expected auto, {', '.join(SCALES)}")
    if scale == "log" and any(not 0 < v < math.inf for v in values):
        bad = next(v for v in values if not 0 < v < math.inf)
        raise MosaicError(f"--scale log needs values > 0, and one run has {bad:g}: use --scale linear")
    return scale


# ---------------------------------------------------------------- one dataset key


@dataclass
class DatasetComparison:
    dataset_key: str
    value: str
    groups: list  # [(Group, description)]: by center among those with n >= 2, then n = 1, then no value
    comparisons: list  # [dict of COMPARISON_COLUMNS]: the architectures family, then each variants family
    verdict: str
    higher: bool = False  # whether higher values are better
    scale: str = "linear"
    rope: float | None = None
    solved_below: float | None = None  # the rule by which a group solves the task (verdict.py), None: its default


def _order(higher):
    def key(item):
        group, description = item
        n, center = description["n"], description["center"]
        tier = 0 if n >= 2 else 1 if n == 1 else 2
        if center is None:
            return (tier, 0.0, group.label)
        return (tier, -center if higher else center, group.label)

    return key


def _pair_p_values(a, b, scale):
    """(Welch p, Mann-Whitney p) of two groups on `scale`, None where nothing can be tested (fewer than 2
    replicates, or neither group varies): what Holm needs of the pairs not shown in the tables."""
    if len(a) < 2 or len(b) < 2 or (is_constant(a) and is_constant(b)):
        return None, None
    p = welch(transform(a, scale), transform(b, scale))[3]
    return (None if not math.isfinite(p) else float(p)), mann_whitney_p(a, b)


def _family_rows(family, members, reference, context):
    """Rows of COMPARISON_COLUMNS: each group of `members` (reference first) against `reference`, the Holm
    columns corrected over every pair of the members. `context`: dataset_key, value, higher, rope, scale, seed."""
    dataset_key, value, higher, rope, scale, seed = context
    tested = [group for group in members if len(group.values) >= 2]
    pairs = max(1, len(tested) * (len(tested) - 1) // 2)
    rows = []
    for group in members[1:]:
        row = {"dataset_key": dataset_key, "value": value, "family": family, "label": group.label,
               "versus": reference.label}
        row.update(compare_pair(group.values, reference.values, higher, rope, ALPHA / pairs, scale, seed))
        if row["constant_a"] and row["constant_b"]:
            row["mwu_p"] = None  # replicates that do not vary: no test at all
        row["fisher_p"] = fisher_p(group.n_bad, group.n_ended, reference.n_bad, reference.n_ended)
        rows.append(row)
    # Holm over every pair of the family: the reference was picked as the best, from the same data
    others = {(a.label, b.label): _pair_p_values(a.values, b.values, scale)
              for a, b in itertools.combinations(tested, 2) if reference not in (a, b)}
    for test, index in (("welch_p", 0), ("mwu_p", 1)):
        family_p = [row[test] for row in rows] + [p[index] for p in others.values()]
        for row, adjusted in zip(rows, holm(family_p)):
            row[f"{test}_holm"] = adjusted
    return rows


def compare_dataset(groups, value, higher=False, rope=None, scale="auto", solved_below=None, seed=SEED):
    """The DatasetComparison of the groups of one dataset key (see the module's docstring)."""
    scale = choose_scale(scale, [v for group in groups for v in group.values], higher)
    with quiet():
        described = sorted(((group, describe(group.values, scale)) for group in groups), key=_order(higher))
    context = (described[0][0].dataset_key, value, higher, rope, scale, seed)
    best_of_key = {}
    for group, _ in described:  # in order: the first group of a model key is its best
        best_of_key.setdefault(group.model_key, group)
    keys = list(best_of_key.values())
    with quiet():
        comparisons = _family_rows(ARCHITECTURES, keys, keys[0], context)
        variants = {}
        for group, _ in described:
            variants.setdefault(group.model_key, []).append(group)
        for model_key, members in variants.items():
            if len(members) > 1:
                comparisons += _family_rows(variants_family(model_key), members, members[0], context)
    if len(keys) > 1:
        headline = [row for row in comparisons if row["family"] == ARCHITECTURES]
    else:  # one model key: its variants are what there is to compare
        headline = [row for row in comparisons if row["family"] == variants_family(keys[0].model_key)]
    verdict = write_verdict(described, headline, value, higher, scale, rope, solved_below)
    return DatasetComparison(context[0], value, described, comparisons, verdict, higher, scale, rope, solved_below)


# ---------------------------------------------------------------- across dataset keys


@dataclass
class Ranks:
    labels: list  # the groups present in every dataset key, by average rank
    average: list
    n_datasets: int
    friedman_p: float | None
    critical_difference: float | None
    why_no_diagram: str = ""  # '' when the critical-difference diagram can show a difference

    @property
    def drawable(self):
        return not self.why_no_diagram


def rank_across(comparisons, higher=False):
    """Average ranks of the groups present in every dataset key (1 = best, by center), Friedman's p-value
    and Nemenyi's critical difference at 95%; None when there are fewer than 2 dataset keys or groups.
    The diagram is drawable when Friedman's test finds a difference and the critical difference is
    smaller than the largest possible gap between average ranks (k - 1)."""
    import numpy as np
    from scipy import stats

    centers = [
        {group.label: d["center"] for group, d in comparison.groups if d["center"] is not None}
        for comparison in comparisons
    ]
    if len(centers) < 2:
        return None
    common = sorted(set.intersection(*(set(m) for m in centers)))
    if len(common) < 2:
        return None
    table = np.array([[m[label] for label in common] for m in centers])
    k, n = len(common), len(centers)
    with quiet():
        ranks = stats.rankdata(-table if higher else table, axis=1)
        friedman = float(stats.friedmanchisquare(*table.T).pvalue) if k >= 3 else None
        q = stats.studentized_range.ppf(CONFIDENCE, k, np.inf) / math.sqrt(2)
    friedman = None if friedman is None or not math.isfinite(friedman) else friedman
    average = ranks.mean(axis=0)
    cd = float(q * math.sqrt(k * (k + 1) / (6 * n)))
    why = []
    if cd >= k - 1:
        why.append(f"with {n} dataset keys and {k} groups the critical difference ({cd:.2f}) is larger than "
                   f"the largest possible gap between average ranks ({k - 1}): no difference could be detected")
    if friedman is None:
        why.append("Friedman's test needs at least 3 groups present in every dataset key")
    elif friedman >= ALPHA:
        why.append(f"Friedman's test finds no difference between the average ranks (p = {friedman:.2g})")
    order = np.argsort(average, kind="stable")
    return Ranks([common[i] for i in order], [float(average[i]) for i in order], n, friedman, cd, "; ".join(why))


# ---------------------------------------------------------------- the whole comparison


def compare(db_path, value="test_loss", higher=None, rope=None, scale="auto", solved_below=None, seed=SEED):
    """([DatasetComparison per dataset key], Ranks or None) of every dataset key of the database; one
    scale for all of them (auto: from every finished run's value)."""
    if higher is None:
        higher = higher_is_better(value)
    if rope is not None and rope < 0:
        raise MosaicError(f"--rope must be positive, not {rope}")
    by_dataset = load_groups(db_path, value)
    scale = choose_scale(scale, [v for groups in by_dataset.values() for g in groups for v in g.values], higher)
    comparisons = [
        compare_dataset(groups, value, higher, rope, scale, solved_below, seed) for groups in by_dataset.values()
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
                    "scale": comparison.scale,
                    "rank": rank if d["n"] else None,
                    "label": group.label,
                    "model_key": group.model_key,
                    "variant": group.variant,
                    "nb_params": ",".join(str(n) for n in sorted(group.nb_params)) or None,
                    "n_failed": group.n_failed,
                    "n_diverged": group.n_diverged,
                    "n_missing": group.n_missing,
                    "n_unfinished": group.n_unfinished,
                    "failure_rate": group.failure_rate,
                    **d,
                    "first_epoch": first,
                }
            )
    return [{name: row[name] for name in GROUP_COLUMNS} for row in rows]


def comparison_rows(comparisons):
    return [{name: row[name] for name in COMPARISON_COLUMNS} for c in comparisons for row in c.comparisons]


# ---------------------------------------------------------------- storing


def _table(db, name, columns):
    """Create table `name` with `columns`, replacing one of an older layout (its rows are recomputed)."""
    found = [row[1] for row in db.execute(f"PRAGMA table_info({name})")]
    if found and found != list(columns):
        db.execute(f"DROP TABLE {name}")
    db.execute(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})")


def store(db_path, comparisons):
    """Replace this value's rows of the `groups`, `comparisons` and `verdicts` tables of the database.

    The database file keeps its modification time: Snakemake would otherwise take it for new and redo
    every plot made from it.
    """
    stat = os.stat(db_path)
    groups, pairs = group_rows(comparisons), comparison_rows(comparisons)
    values = {c.value for c in comparisons}
    with closing(sqlite3.connect(db_path, timeout=60)) as db, db:
        _table(db, "groups", GROUP_COLUMNS)
        _table(db, "comparisons", COMPARISON_COLUMNS)
        _table(db, "verdicts", ("dataset_key", "value", "verdict"))
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
