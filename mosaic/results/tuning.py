"""The tuned comparison (mosaic_compare --tune): each architecture at its own best training settings, chosen
on validation data, then compared on its test value at that setting (compare.compare_dataset's statistics);
and the tuning budget shown (Dodge et al. 2019, "Show your work": the expected best validation value over k
settings drawn from a group's grid, k = 1..N).

Per dataset key the runs are grouped as mosaic_compare groups them (model key, and the model parameters that
vary within it); the tuned names are training settings (params rows of type PROCESS: lr, weight_decay, ...)
and each combination of their values is a setting of the group. A setting's validation value is the mean over
its finished replicates of val_loss (compared value test_loss) or val_<metric> (a metric); the group's
selected setting is the best one, a setting where a replicate failed or diverged ranking after every
setting where none did. Selecting on the test value itself would bias the comparison: without a validation
value, refused.

The comparison at one shared setting stays: the setting every group has whose mean validation value over the
groups is best (and, with one tuned name, each of its shared values) is compared too, and the summary says
where its winner differs from the tuned one.
"""

import math
import sqlite3
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field

from mosaic.errors import MosaicError
from mosaic.results.compare import choose_scale, compare_dataset
from mosaic.results.database import open_db
from mosaic.results.groups import Group, first_epoch_values, variant_labels
from mosaic.results.selection import PROCESS_TYPE
from mosaic.results.stats import SEED, describe, quiet
from mosaic.results.values import COMPARED_COLUMNS, higher_is_better, value_source

AUTO = "auto"
NOT_TUNED = ("seed", "validation_split")  # PROCESS names that may vary but are no setting to select on


def validation_name(value):
    """The validation counterpart of a compared value: val_loss for test_loss, val_<metric> for a metric."""
    return "val_loss" if value == "test_loss" else f"val_{value}"


def refusal(value):
    return (f"--tune needs a validation value ({validation_name(value)}): add validation_split to [PROCESS] or "
            "return (train, validation, test) from the data class; selecting on the test set would bias the "
            "comparison")


def setting_text(setting):
    """'lr = 0.01' or 'lr = 0.01, weight_decay = 0.0001' of a setting ((name, value), ...)."""
    return ", ".join(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}"
                     for name, value in setting)


def names_text(names):
    """'lr', 'lr and weight_decay', 'lr, weight_decay and momentum'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# ---------------------------------------------------------------- the tuning budget (Dodge et al. 2019)


def expected_best(values, k, higher=False):
    """(mean, standard deviation) of the best of k values drawn with replacement from `values` (the
    validation value of each setting of a grid): with the values sorted worst first, the best of k draws is
    the i-th with probability (i/N)^k - ((i-1)/N)^k."""
    ordered = sorted(values, reverse=not higher)
    n = len(ordered)
    weights = [(i / n) ** k - ((i - 1) / n) ** k for i in range(1, n + 1)]
    mean = sum(w * v for w, v in zip(weights, ordered))
    variance = sum(w * (v - mean) ** 2 for w, v in zip(weights, ordered))
    return mean, math.sqrt(max(variance, 0.0))


def budget_curve(values, higher=False):
    """[{k, expected, sd, low, high}] for k = 1..N settings: the expected best validation value and the band
    of ±1 standard deviation of that best, within the values' range (the best of k draws never leaves it)."""
    rows = []
    for k in range(1, len(values) + 1):
        mean, sd = expected_best(values, k, higher)
        rows.append({"k": k, "expected": mean, "sd": sd, "low": max(mean - sd, min(values)),
                     "high": min(mean + sd, max(values))})
    return rows


def budget_reading(curves, higher=False):
    """In words, who is ahead at which budget: 'with 1 to 3 settings mlp_brick is ahead; with 4 to 16, both
    are equal' (`curves`: {label: budget_curve rows}; equal: within each other's band), up to the smallest
    number of settings of the groups."""
    if len(curves) < 2:
        return ""
    top = min(len(rows) for rows in curves.values())
    phrases = []
    for k in range(1, top + 1):
        at_k = sorted(((rows[k - 1]["expected"], rows[k - 1]["sd"], label) for label, rows in curves.items()),
                      reverse=higher)
        (best, best_sd, leader), (second, second_sd, _) = at_k[0], at_k[1]
        ahead = f"{leader} is ahead" if abs(best - second) > max(best_sd, second_sd) else (
            "both are equal" if len(curves) == 2 else f"{leader} is not ahead of the others")
        if phrases and phrases[-1][2] == ahead:
            phrases[-1][1] = k
        else:
            phrases.append([k, k, ahead])
    parts = []
    for first, last, ahead in phrases:
        span = f"{first}" if first == last else f"{first} to {last}"
        unit = " setting" + ("" if span == "1" else "s") if not parts else ""
        parts.append(f"with {span}{unit} {ahead}")
    return "; ".join(parts)


# ---------------------------------------------------------------- reading the database


@dataclass
class Tuned:
    """One architecture group of a dataset key: its settings and the one selected on validation."""

    dataset_key: str
    model_key: str
    variant: str
    settings: dict = field(default_factory=dict)  # {setting: Group of the test values of its runs}
    validation: dict = field(default_factory=lambda: defaultdict(list))  # {setting: finite validation values}
    selected: tuple | None = None  # the best setting, None when no setting has a validation value

    @property
    def label(self):
        return Group(self.dataset_key, self.model_key, self.variant).label

    def mean_validation(self, setting):
        values = self.validation.get(setting)
        return sum(values) / len(values) if values else None

    def select(self, higher=False):
        """The setting with the best mean validation value, one where a replicate failed or diverged after
        every one where none did."""
        candidates = [s for s in self.settings if self.mean_validation(s) is not None]
        if candidates:
            sign = -1 if higher else 1
            self.selected = min(candidates, key=lambda s: (self.settings[s].n_bad > 0,
                                                           sign * self.mean_validation(s), repr(s)))
        return self.selected


def tuned_names(db, tune):
    """The training settings to tune: `tune` ('lr,weight_decay'), or 'auto': the PROCESS names whose value
    varies between the runs of a dataset key (seed and validation_split excepted). MosaicError for a name the
    database has no row of."""
    rows = db.execute("SELECT DISTINCT runs.dataset_key, params.name, params.value FROM params JOIN runs"
                      " ON runs.run_id = params.run_id WHERE params.module_type = ?", (PROCESS_TYPE,)).fetchall()
    values = defaultdict(set)
    for dataset_key, name, value in rows:
        values[dataset_key, name].add(value)
    if tune == AUTO:
        return sorted({name for (_, name), seen in values.items() if len(seen) > 1 and name not in NOT_TUNED})
    names = [name.strip() for name in tune.split(",") if name.strip()]
    known = sorted({name for _, name in values})
    for name in names:
        if name not in known:
            raise MosaicError(f"--tune {name}: no training setting of that name in the database "
                              f"(its settings: {', '.join(known)})")
    return names


def settings_to_tune(runs, tune):
    """The training settings the workflow tunes: of `tune` ('auto': every one; 'lr,weight_decay'; '' or None: none),
    those whose value varies between `runs` (their Run.training), seed and validation_split excepted."""
    if not (tune or "").strip():
        return []
    values = defaultdict(set)
    for run in runs:
        for name, value in run.training:
            values[name].add(value)
    wanted = None if tune == AUTO else {name.strip() for name in tune.split(",")}
    return sorted(name for name, seen in values.items()
                  if len(seen) > 1 and name not in NOT_TUNED and (wanted is None or name in wanted))


def _validation_values(db, value):
    """{run_id: validation value}; MosaicError (refusal) when no run has one."""
    name = validation_name(value)
    try:
        column, join, args = value_source(db, name, {"val_loss": "val_loss"})
        found = dict(db.execute(f"SELECT runs.run_id, {column} FROM runs {join} WHERE {column} IS NOT NULL", args))
    except MosaicError:  # a metric without its validation counterpart
        found = {}
    except sqlite3.OperationalError:  # a database built before validation existed: no val_loss column
        found = {}
    if not found:
        raise MosaicError(refusal(value))
    return found


def load_tuned(db_path, value, names):
    """{dataset_key: [Tuned, ...]}: the runs of each architecture group split by their setting of `names`."""
    with closing(open_db(db_path)) as db:
        validation = _validation_values(db, value)
        column, join, args = value_source(db, value, COMPARED_COLUMNS)
        runs = db.execute(
            f"SELECT runs.run_id, dataset_key, model_key, status, diverged, nb_params, {column} FROM runs {join}"
            " ORDER BY runs.run_id", args).fetchall()
        labels = variant_labels(db, runs, leave_out=names)
        first = first_epoch_values(db, value)
        settings = defaultdict(dict)
        marks = ",".join("?" * len(names))
        for run_id, name, setting_value in db.execute(
                f"SELECT run_id, name, value FROM params WHERE module_type = ? AND name IN ({marks})",
                (PROCESS_TYPE, *names)):
            settings[run_id][name] = setting_value
    tuned = {}
    for run_id, dataset_key, model_key, status, diverged, nb_params, y in runs:
        key = (str(dataset_key), str(model_key), labels[run_id])
        group = tuned.setdefault(key, Tuned(*key))
        setting = tuple((name, settings[run_id].get(name)) for name in names)
        test = group.settings.setdefault(setting, Group(*key))
        test.add_run(run_id, status, diverged, nb_params, y, first.get(run_id))
        v = validation.get(run_id)  # counted for the runs that gave a test value (done, not diverged)
        if test.run_ids and test.run_ids[-1] == run_id and v is not None and math.isfinite(v):
            group.validation[setting].append(float(v))
    by_dataset = defaultdict(list)
    for group in tuned.values():
        by_dataset[group.dataset_key].append(group)
    if not by_dataset:
        raise MosaicError(f"{db_path}: no run to compare")
    return dict(sorted(by_dataset.items()))


# ---------------------------------------------------------------- the comparisons


@dataclass
class TunedComparison:
    """The tuned comparison of one dataset key, and the comparison at the shared settings."""

    dataset_key: str
    names: list
    groups: list  # [Tuned], each with its selected setting
    comparison: object  # compare.DatasetComparison of the groups at their selected settings; None: nothing
    shared: list  # [(setting, winner label)]: the settings every group has, the best over groups first
    fixed: object = None  # compare.DatasetComparison at the best shared setting, None without one
    curves: dict = field(default_factory=dict)  # {label: budget_curve rows}


def _winner(groups, scale, higher):
    """The label of the group with the best center, those with 2 values or more first (as compare.py ranks
    them); None when no group has a value."""
    with quiet():
        centers = [(len(g.values) < 2, describe(g.values, scale)["center"], g.label) for g in groups if g.values]
    centers = [(tier, -c if higher else c, label) for tier, c, label in centers if c is not None]
    return min(centers)[2] if centers else None


def _at(groups, setting):
    """The test Groups of `groups` at `setting`, labelled as their architecture group."""
    return [g.settings[setting] for g in groups]


def _shared(groups, higher):
    """The settings with a validation value in every group, the best mean over the groups first."""
    common = set.intersection(*({s for s in g.settings if g.mean_validation(s) is not None} for g in groups))
    sign = -1 if higher else 1
    return sorted(common, key=lambda s: (sign * sum(g.mean_validation(s) for g in groups) / len(groups), repr(s)))


def tune_dataset(groups, names, value, higher, rope, scale, solved_below, seed=SEED):
    """The TunedComparison of the Tuned groups of one dataset key (on `scale`, already chosen)."""
    for group in groups:
        group.select(higher)
    selected = [g for g in groups if g.selected is not None]
    context = (value, higher, rope, scale, solved_below, seed)
    comparison = compare_dataset([g.settings[g.selected] for g in selected], *context) if selected else None
    shared = _shared(selected, higher) if len(selected) > 1 else []
    considered = shared if len(names) == 1 else shared[:1]
    winners = [(setting, _winner(_at(selected, setting), scale, higher)) for setting in considered]
    fixed = compare_dataset(_at(selected, shared[0]), *context) if shared else None
    curves = {}
    for group in selected:
        means = [group.mean_validation(s) for s in group.settings]
        curves[group.label] = budget_curve([m for m in means if m is not None], higher)
    return TunedComparison(groups[0].dataset_key, names, groups, comparison, winners, fixed, curves)


def tune(db_path, value="test_loss", names=AUTO, higher=None, rope=None, scale="auto", solved_below=None,
         seed=SEED):
    """[TunedComparison per dataset key] of the database, tuning `names` ('auto' or 'lr,weight_decay');
    MosaicError when there is nothing to tune or no validation value to select on."""
    if higher is None:
        higher = higher_is_better(value)
    with closing(open_db(db_path)) as db:
        tuned = tuned_names(db, names)
    if not tuned:
        raise MosaicError("--tune: no training setting varies between the runs: nothing to tune")
    by_dataset = load_tuned(db_path, value, tuned)
    every = [v for groups in by_dataset.values() for g in groups for test in g.settings.values() for v in test.values]
    scale = choose_scale(scale, every, higher)
    return [tune_dataset(groups, tuned, value, higher, rope, scale, solved_below, seed)
            for groups in by_dataset.values()]
