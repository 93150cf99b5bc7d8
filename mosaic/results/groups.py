"""The replicates mosaic_compare compares, read from the database: per dataset key, one Group per model key (and
per variant, e.g. width=2 or lr=0.01: the model parameters and training settings that vary), with its finished
values and the runs that gave none, counted by why: failed (an error), diverged (NaN or inf, or stopped as
diverged), missing (done, no value recorded) and pending (not finished yet)."""

import math
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field

from mosaic.errors import MosaicError
from mosaic.results.database import data_types_by_run, open_db
from mosaic.results.selection import PROCESS_TYPE
from mosaic.results.values import COMPARED_COLUMNS, LOSS_VALUES, value_source


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
    n_failed: int = 0  # the run raised an error
    n_diverged: int = 0  # NaN or infinite value, or the run stopped as diverged
    n_unfinished: int = 0  # pending or running
    n_missing: int = 0  # done, not diverged, but no value recorded

    @property
    def label(self):
        return f"{self.model_key} {self.variant}" if self.variant else self.model_key

    @property
    def n_ended(self):
        """The runs that ended: with a value, failed, diverged or without a value (pending ones excluded)."""
        return len(self.values) + self.n_failed + self.n_diverged + self.n_missing

    @property
    def n_bad(self):
        """The runs that failed or diverged: a result of the architecture, compared between groups."""
        return self.n_failed + self.n_diverged

    @property
    def failure_rate(self):
        return self.n_bad / self.n_ended if self.n_ended else None

    def add_run(self, run_id, status, diverged, nb_params, y, first=None):
        """Count one run: its value `y` when done, finite and not diverged, else why it gives none; `first`:
        its loss after epoch 1, if known."""
        if status != "done":
            if status == "error":
                self.n_failed += 1
            else:
                self.n_unfinished += 1
            return
        if nb_params is not None:
            self.nb_params.add(nb_params)
        if diverged or (y is not None and not math.isfinite(y)):
            self.n_diverged += 1
        elif y is None:
            self.n_missing += 1
        else:
            self.values.append(float(y))
            self.run_ids.append(run_id)
            if first is not None:
                self.first_epoch.append(first)


def _model_variants(db, leave_out=()):
    """{run_id: {'type.name': value}} of the parameters of each run's model modules and of its PROCESS rows
    (its training settings: lr, ...), but the PROCESS names in `leave_out`."""
    data_types = data_types_by_run(db)
    params = defaultdict(dict)
    for run_id, module_type, name, value in db.execute(
        "SELECT run_id, module_type, name, value FROM params WHERE name NOT IN ('section', 'class', 'key')"
        " ORDER BY rowid"
    ):
        if module_type == PROCESS_TYPE and name in leave_out:
            continue
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


def variant_labels(db, runs, leave_out=()):
    """{run_id: 'width=2'} of `runs` (rows starting run_id, dataset_key, model_key): the model parameters and
    training settings ('lr=0.01') that differ between the runs of its model key on its dataset key, but the
    training settings named in `leave_out` (those the tuned comparison selects)."""
    variants = _model_variants(db, leave_out)
    by_model = defaultdict(dict)
    for run_id, dataset_key, model_key, *_ in runs:
        by_model[str(dataset_key), str(model_key)][run_id] = variants.get(run_id, {})
    labels = {}
    for run_params in by_model.values():
        labels.update(_variant_labels(run_params))
    return labels


def first_epoch_values(db, value):
    """{run_id: `value` after epoch 1} for a loss value (what the default solved rule reads), else {}."""
    if value not in LOSS_VALUES:
        return {}
    return dict(db.execute(f"SELECT run_id, {value} FROM losses WHERE epoch = 1"))


def load_groups(db_path, value="test_loss"):
    """{dataset_key: [Group, ...]} of every run of the database, the runs without a value counted by why."""
    with closing(open_db(db_path)) as db:
        column, join, args = value_source(db, value, COMPARED_COLUMNS)
        runs = db.execute(
            f"SELECT runs.run_id, dataset_key, model_key, status, diverged, nb_params, {column} FROM runs {join}"
            " ORDER BY runs.run_id",
            args,
        ).fetchall()
        labels = variant_labels(db, runs)
        first = first_epoch_values(db, value)
    groups = {}
    for run_id, dataset_key, model_key, status, diverged, nb_params, y in runs:
        key = (str(dataset_key), str(model_key), labels[run_id])
        groups.setdefault(key, Group(*key)).add_run(run_id, status, diverged, nb_params, y, first.get(run_id))
    by_dataset = defaultdict(list)
    for group in groups.values():
        by_dataset[group.dataset_key].append(group)
    if not by_dataset:
        raise MosaicError(f"{db_path}: no run to compare")
    return dict(sorted(by_dataset.items()))
