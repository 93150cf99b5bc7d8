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

scipy and numpy are imported inside the functions that need them: importing this module stays cheap.
"""

import csv
import math
import os
import sqlite3
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field

from mosaic.errors import MosaicError
from mosaic.results.database import PROCESS_TYPE, data_types_by_run, open_db
from mosaic.runfiles import replacing, write_atomic

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
SEED = 20240607  # the bootstrap's seed: the same database always gives the same intervals
RESAMPLES = 9999
NEGLIGIBLE = 1e-3  # a final loss below this fraction of its first-epoch value: the task is solved
MAX_REPLICATES = 100_000

# compared value -> runs column, and the values whose first-epoch value is in the losses table
VALUE_COLUMNS = {
    "test_loss": "test_loss",
    "train_loss": "train_loss",
    "duration": "duration_s",
    "duration_s": "duration_s",
    "overfit": "overfit",
    "trainability": "trainability",
    "slope": "slope",
}
LOSS_VALUES = ("test_loss", "train_loss")
# values where higher is better, known by name; any other value: lower is better unless told
HIGHER_IS_BETTER = {"accuracy", "balanced_accuracy", "f1", "precision", "recall", "auc", "r2"}

GROUP_COLUMNS = (
    "dataset_key value rank label model_key variant nb_params n n_failed n_diverged n_unfinished"
    " mean median iqm std ci_low ci_high first_epoch"
).split()
COMPARISON_COLUMNS = (
    "dataset_key value label versus diff diff_ci_low diff_ci_high welch_p welch_p_holm mwu_p mwu_p_holm"
    " hedges_g p_better p_better_ci_low p_better_ci_high replicates_needed rope p_rope_better p_rope_equal"
    " p_rope_worse"
).split()


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


def recorded_metrics(db):
    """The names of the metrics recorded in the database (its final_metrics table)."""
    try:
        return sorted(name for (name,) in db.execute("SELECT DISTINCT name FROM final_metrics"))
    except sqlite3.OperationalError:  # a database built before metrics existed
        return []


def value_source(db, value, columns=VALUE_COLUMNS):
    """(SQL expression, join, arguments) giving `value` per row of runs: a runs column (see `columns`) or
    the final value of a recorded metric; MosaicError naming the choices otherwise."""
    if value in columns:
        return f"runs.{columns[value]}", "", ()
    metrics = recorded_metrics(db)
    if value in metrics:
        join = "LEFT JOIN final_metrics ON final_metrics.run_id = runs.run_id AND final_metrics.name = ?"
        return "final_metrics.value", join, (value,)
    names = ", ".join(list(columns) + metrics)
    raise MosaicError(f"unknown value '{value}': expected one of {names}")


def higher_is_better(value):
    return value in HIGHER_IS_BETTER


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
        column, join, args = value_source(db, value)
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


# ---------------------------------------------------------------- statistics


def _bootstrap_ci(samples, statistic, seed=SEED, n_resamples=RESAMPLES, method="BCa"):
    """95% bootstrap CI of statistic(*samples) (each sample resampled on its own); BCa, or the percentile
    interval where BCa is undefined (all resampled statistics equal)."""
    import numpy as np
    from scipy import stats

    samples = tuple(np.asarray(sample, dtype=float) for sample in samples)
    if all(np.ptp(sample) == 0 for sample in samples):  # nothing varies: the interval is the point
        point = float(statistic(*samples, axis=-1))
        return point, point
    for how in (method, "percentile"):
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = stats.bootstrap(
                    samples, statistic, n_resamples=n_resamples, confidence_level=CONFIDENCE, method=how,
                    vectorized=True, rng=np.random.default_rng(seed),
                )
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            return float(low), float(high)
    return None, None


def _mean(sample, axis=-1):
    import numpy as np

    return np.mean(sample, axis=axis)


def _mean_difference(a, b, axis=-1):
    import numpy as np

    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def describe(values, seed=SEED, n_resamples=RESAMPLES):
    """{n, mean, median, iqm, std, ci_low, ci_high} of one group's values (None where undefined)."""
    import numpy as np
    from scipy import stats

    n = len(values)
    if n == 0:
        return dict.fromkeys(("n", "mean", "median", "iqm", "std", "ci_low", "ci_high"), None) | {"n": 0}
    array = np.asarray(values, dtype=float)
    found = {
        "n": n,
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "iqm": float(stats.trim_mean(array, 0.25)),  # the mean of the middle half
        "std": float(array.std(ddof=1)) if n > 1 else None,
        "ci_low": None,
        "ci_high": None,
    }
    if n > 1:
        found["ci_low"], found["ci_high"] = _bootstrap_ci((array,), _mean, seed, n_resamples)
    return found


def probability_of_improvement(a, b, higher=False, axis=-1):
    """Share of the pairs (a_i, b_j) where a_i is better than b_j, ties counted half (vectorized over
    leading axes, as scipy's bootstrap calls it)."""
    import numpy as np

    a = np.moveaxis(np.asarray(a, dtype=float), axis, -1)
    b = np.moveaxis(np.asarray(b, dtype=float), axis, -1)
    left, right = a[..., :, None], b[..., None, :]
    better = (left > right) if higher else (left < right)
    return (better + 0.5 * (left == right)).mean(axis=(-2, -1))


def hedges_g(a, b):
    """Standardized difference of means (a - b) / pooled std, with Hedges' small-sample correction;
    None when the pooled std is 0 or a group has fewer than 2 values."""
    import numpy as np

    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    pooled = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return None
    d = (np.mean(a) - np.mean(b)) / pooled
    return float(d * (1 - 3 / (4 * (na + nb) - 9)))


def replicates_needed(effect_size, alpha=ALPHA, power=POWER):
    """Replicates per group for a two-sided two-sample t-test to detect `effect_size` (standardized)
    with `power`; None when the effect is 0 or needs more than MAX_REPLICATES."""
    from scipy import stats

    d = abs(effect_size or 0.0)
    if d == 0 or not math.isfinite(d):
        return None

    def power_at(n):
        df = 2 * n - 2
        critical = stats.t.ppf(1 - alpha / 2, df)
        shift = d * math.sqrt(n / 2)
        power = stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)
        if math.isnan(power):  # a shift far out in the tail, where nct gives up
            return 1.0 if shift > critical else 0.0
        return power

    low, high = 2, 4
    while power_at(high) < power:
        low, high = high, high * 2
        if high > MAX_REPLICATES:
            return None
    while low < high:  # smallest n with enough power
        middle = (low + high) // 2
        if power_at(middle) >= power:
            high = middle
        else:
            low = middle + 1
    return high


def welch_p(a, b):
    """Two-sided p-value of Welch's t-test; when neither group varies, 0 if their means differ, else 1."""
    import numpy as np
    from scipy import stats

    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def mann_whitney_p(a, b):
    from scipy import stats

    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def holm(p_values):
    """Holm-Bonferroni adjusted p-values, in the order given (None stays None)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    adjusted = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def rope_probabilities(a, b, rope, higher=False):
    """(P(a better by more than rope), P(|difference| <= rope), P(b better by more than rope)): the
    posterior of the difference of means under a non-informative prior, a Student t centred on the
    observed difference with Welch's standard error and degrees of freedom."""
    import numpy as np
    from scipy import stats

    na, nb = len(a), len(b)
    diff = float(np.mean(a) - np.mean(b))
    if higher:
        diff = -diff  # below 0 is then 'a better' in both directions
    va, vb = np.var(a, ddof=1) / na, np.var(b, ddof=1) / nb
    scale = math.sqrt(va + vb)
    if scale == 0:
        return (float(diff < -rope), float(-rope <= diff <= rope), float(diff > rope))
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    posterior = stats.t(df, loc=diff, scale=scale)
    better = float(posterior.cdf(-rope))
    worse = float(posterior.sf(rope))
    return better, max(0.0, 1.0 - better - worse), worse


def compare_pair(a, b, higher=False, rope=None, seed=SEED, n_resamples=RESAMPLES, alpha=ALPHA):
    """The statistics of group values `a` against `b` (COMPARISON_COLUMNS without keys and Holm);
    replicates_needed at significance level `alpha`."""
    found = dict.fromkeys(COMPARISON_COLUMNS[4:])
    if not a or not b:
        return found
    found["diff"] = sum(a) / len(a) - sum(b) / len(b)
    found["rope"] = rope
    found["p_better"] = float(probability_of_improvement(a, b, higher))
    if len(a) < 2 or len(b) < 2:
        return found
    found["diff_ci_low"], found["diff_ci_high"] = _bootstrap_ci((a, b), _mean_difference, seed, n_resamples)
    found["welch_p"] = welch_p(a, b)
    found["mwu_p"] = mann_whitney_p(a, b)
    found["hedges_g"] = hedges_g(a, b)
    found["replicates_needed"] = replicates_needed(found["hedges_g"], alpha)

    def improvement(x, y, axis=-1):
        return probability_of_improvement(x, y, higher, axis)

    found["p_better_ci_low"], found["p_better_ci_high"] = _bootstrap_ci(
        (a, b), improvement, seed, n_resamples, method="percentile"
    )
    if rope is not None:
        found["p_rope_better"], found["p_rope_equal"], found["p_rope_worse"] = rope_probabilities(a, b, rope, higher)
    return found


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


# ---------------------------------------------------------------- outputs


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


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e4:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value)


def _write_csv(path, rows, columns):
    with replacing(path) as tmp, open(tmp, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


# the columns printed, with their headers (every column is in the CSV files and the database)
GROUP_TABLE = (
    ("rank", "rank"), ("label", "group"), ("nb_params", "params"), ("n", "n"), ("n_failed", "failed"),
    ("n_diverged", "diverged"), ("n_unfinished", "pending"), ("mean", "mean"), ("ci_low", "ci_low"),
    ("ci_high", "ci_high"), ("median", "median"), ("iqm", "iqm"), ("std", "std"),
)
PAIR_TABLE = (
    ("label", "group"), ("versus", "vs best"), ("diff", "diff"), ("diff_ci_low", "ci_low"),
    ("diff_ci_high", "ci_high"), ("welch_p_holm", "welch_p*"), ("mwu_p_holm", "mwu_p*"), ("hedges_g", "g"),
    ("p_better", "P(beats best)"), ("p_better_ci_low", "ci_low"), ("p_better_ci_high", "ci_high"),
    ("replicates_needed", "n_needed"),
)
ROPE_TABLE = (("p_rope_better", "P(rope better)"), ("p_rope_equal", "P(rope equal)"), ("p_rope_worse", "P(rope worse)"))


def aligned_table(rows, columns):
    """Plain aligned text: text columns left-aligned, numbers right-aligned."""
    cells = [[header for _, header in columns]]
    cells += [[_format(row.get(name)) for name, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    texts = {i for i, (name, _) in enumerate(columns) if name in ("label", "versus")}
    lines = []
    for line in cells:
        lines.append(
            "  ".join(cell.ljust(w) if i in texts else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        )
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(rows, columns):
    lines = ["| " + " | ".join(header for _, header in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row.get(name)) for name, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def report(comparisons, ranks, table=aligned_table):
    """The comparison as text (table=aligned_table) or Markdown (table=markdown_table)."""
    markdown = table is markdown_table
    with_rope = any(row["rope"] is not None for c in comparisons for row in c.comparisons)
    pair_columns = PAIR_TABLE + (ROPE_TABLE if with_rope else ())
    parts = []
    for comparison in comparisons:
        direction = "higher" if comparison.higher else "lower"
        title = f"{comparison.dataset_key}: {comparison.value} ({direction} is better)"
        parts.append(f"## {title}" if markdown else f"== {title} ==")
        parts.append(f"**Verdict:** {comparison.verdict}" if markdown else f"verdict: {comparison.verdict}")
        parts.append(table(group_rows([comparison]), GROUP_TABLE))
        if comparison.comparisons:
            parts.append(table(comparison.comparisons, pair_columns))
    if ranks is not None:
        parts.append("## Across dataset keys" if markdown else "== across dataset keys ==")
        rank_rows = [{"label": label, "rank": rank} for label, rank in zip(ranks.labels, ranks.average)]
        parts.append(table(rank_rows, (("label", "group"), ("rank", "average rank"))))
        friedman = "n/a (fewer than 3 groups)" if ranks.friedman_p is None else f"{ranks.friedman_p:.3g}"
        parts.append(
            f"{ranks.n_datasets} dataset keys; Friedman p = {friedman}; Nemenyi critical difference at 95% = "
            f"{ranks.critical_difference:.3g} (groups whose average ranks differ by less are not told apart)"
        )
    parts.append(
        "p-values marked * are Holm-corrected over the groups compared with the best; "
        f"intervals are {CONFIDENCE:.0%} bootstrap intervals."
    )
    return "\n\n".join(parts) + "\n"


def output_names(value):
    suffix = "" if value == "test_loss" else f"_{value}"
    return {
        "comparison": f"comparison{suffix}.csv",
        "groups": f"groups{suffix}.csv",
        "markdown": f"comparison{suffix}.md",
        "diagram": f"critical_difference{suffix}.png",
        "values": f"values{suffix}.png",
        "curves": f"curves{suffix}.png",
    }


CURVE_COLUMNS = ("dataset_key", "label", "epoch", "n", "mean", "ci_low", "ci_high")


def loss_curves(db_path, comparisons, loss="test_loss"):
    """{dataset_key: {label: [row of CURVE_COLUMNS per epoch]}}: per group, the mean `loss` of its
    replicates at each epoch with a 95% Student t interval of the mean."""
    import numpy as np
    from scipy import stats

    if loss not in LOSS_VALUES:
        raise MosaicError(f"unknown loss '{loss}': expected one of {', '.join(LOSS_VALUES)}")
    curves = {}
    with closing(open_db(db_path)) as db:
        for comparison in comparisons:
            by_label = curves.setdefault(comparison.dataset_key, {})
            for group, _ in comparison.groups:
                per_epoch = defaultdict(list)
                for run_id in group.run_ids:
                    for epoch, y in db.execute(f"SELECT epoch, {loss} FROM losses WHERE run_id = ?", (run_id,)):
                        if y is not None:
                            per_epoch[epoch].append(y)
                rows = []
                for epoch in sorted(per_epoch):
                    ys = np.asarray(per_epoch[epoch])
                    mean, low, high = float(ys.mean()), None, None
                    if len(ys) > 1:
                        half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(ys) - 1) * ys.std(ddof=1) / math.sqrt(len(ys))
                        low, high = mean - float(half), mean + float(half)
                    row = (group.dataset_key, group.label, epoch, len(ys), mean, low, high)
                    rows.append(dict(zip(CURVE_COLUMNS, row)))
                if rows:
                    by_label[group.label] = rows
    return curves


def value_rows(comparisons):
    """The replicates' values drawn by the box plot: one row (dataset_key, label, value) each."""
    return [
        {"dataset_key": group.dataset_key, "label": group.label, "value": y}
        for comparison in comparisons
        for group, _ in comparison.groups
        for y in group.values
    ]


def write_outputs(db_path, out_dir, comparisons, ranks, value):
    """In `out_dir`: comparison.csv, groups.csv, comparison.md, critical_difference.png, values.png (a box
    plot of the value per group) and curves.png (the mean loss curve per group), each PNG with a CSV of
    the numbers drawn; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, file) for name, file in output_names(value).items()}
    _write_csv(paths["comparison"], comparison_rows(comparisons), COMPARISON_COLUMNS)
    _write_csv(paths["groups"], group_rows(comparisons), GROUP_COLUMNS)
    markdown = f"# Which architecture wins on {value}\n\n" + report(comparisons, ranks, markdown_table)
    write_atomic(paths["markdown"], markdown)
    from mosaic.results.compare_plots import draw_curves, draw_values, render_critical_difference
    from mosaic.results.figures import save as _save

    render_critical_difference(ranks, paths["diagram"], value)
    _save(draw_values(comparisons, value), paths["values"])
    _write_csv(_csv_beside(paths["values"]), value_rows(comparisons), ("dataset_key", "label", "value"))
    loss = value if value in LOSS_VALUES else "test_loss"
    curves = loss_curves(db_path, comparisons, loss)
    _save(draw_curves(curves, loss), paths["curves"])
    rows = [row for by_label in curves.values() for rows in by_label.values() for row in rows]
    _write_csv(_csv_beside(paths["curves"]), rows, CURVE_COLUMNS)
    return paths


def _csv_beside(path):
    return os.path.splitext(path)[0] + ".csv"


def write_placeholders(out_dir, value, message):
    """The files of write_outputs when there is nothing to compare: headers only, and the message."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, file) for name, file in output_names(value).items()}
    _write_csv(paths["comparison"], [], COMPARISON_COLUMNS)
    _write_csv(paths["groups"], [], GROUP_COLUMNS)
    with open(paths["markdown"], "w") as out:
        out.write(f"# Which architecture wins on {value}\n\n{message}\n")
    from mosaic.results.figures import draw_message
    from mosaic.results.figures import save as _save

    for name in ("diagram", "values", "curves"):
        _save(draw_message(message), paths[name])
    return paths


def run_compare(db_path, out_dir, value="test_loss", higher=None, rope=None):
    """The whole step: compute, store in the database, write the files; returns the text report."""
    comparisons, ranks = compare(db_path, value, higher, rope)
    store(db_path, comparisons)
    write_outputs(db_path, out_dir, comparisons, ranks, value)
    return report(comparisons, ranks)
