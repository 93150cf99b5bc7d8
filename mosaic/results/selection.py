"""Selecting runs with -id, -status and -param: one meaning for mosaic_rerun (which reads the ini)
and mosaic_plotloss (which reads the database).

A run's parameters are rows (module_type, name, value): each module's free parameters plus its
`section`, `class` and `key`, and the PROCESS values under the type 'PROCESS': the run's own training
settings (lr, optimizer, weight_decay, scheduler, ...), then the values shared by every run. The database stores
exactly these rows; -param NAME VALUE matches a row whose NAME (or TYPE.NAME) is NAME and whose
value equals VALUE: numerically when both are numbers ('3' matches 3 and 3.0), else as text.
"""

import math

from mosaic.errors import UsageError
from mosaic.experiment.model import PROCESS_PARAMETER_FIELDS as PROCESS_FIELDS

PROCESS_TYPE = "PROCESS"
RUN_FIELDS = ("lr", "optimizer")  # PROCESS_FIELDS that are each run's own
STATUSES = ("done", "error", "running", "pending")


def parse_ids(text):
    """Run ids from 'all' (None: every run), '5', '1-3,7' or '1-3, 7' (a set of ints)."""
    if text.strip().lower() == "all":
        return None
    ids = set()
    for item in text.split(","):
        first, dash, last = (part.strip() for part in item.partition("-"))
        if not first.isdecimal() or not first.isascii() or (dash and not (last.isdecimal() and last.isascii())):
            raise UsageError(f"bad run ids '{text}': expected 'all', '5', '1-3' or '1-3,7'")
        first, last = int(first), int(last) if dash else int(first)
        if last < first:
            raise UsageError(f"bad run ids '{text}': range {first}-{last} is empty")
        ids.update(range(first, last + 1))
    return ids


def check_status(status):
    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown status '{status}': expected one of {', '.join(STATUSES)}")
    return status


def stored_value(value):
    """A parameter value as it is stored and compared: int, float or text (booleans as 'True'/'False')."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return str(value)
    return value


def module_rows(run):
    """The (module_type, name, value) rows that are a run's own: its modules', then its training settings
    (PROCESS lr, optimizer, ...; a list such as milestones as '10 20')."""
    rows = []
    for module in run.modules:
        rows.append((module.type, "section", module.section))
        rows.append((module.type, "class", module.class_name))
        rows.append((module.type, "key", module.key))
        rows += [(module.type, name, stored_value(value)) for name, value in module.params]
    for name, value in run.training:
        value = " ".join(map(str, value)) if isinstance(value, tuple) else value
        rows.append((PROCESS_TYPE, name, stored_value(value)))
    return rows


def process_rows(process):
    """The (PROCESS, name, value) rows shared by every run of an experiment (lr and optimizer are each run's:
    module_rows)."""
    rows = []
    for name in PROCESS_FIELDS:
        value = getattr(process, name, None) if name not in RUN_FIELDS else None
        if value is None:
            continue
        if isinstance(value, (tuple, list)):
            value = ",".join(value)
        rows.append((PROCESS_TYPE, name, stored_value(value)))
    rows += [(PROCESS_TYPE, name, stored_value(value)) for name, value in process.extra]
    return rows


def as_number(text):
    """The finite number that `text` spells (int or float), or None."""
    for kind in (int, float):
        try:
            number = kind(text)
        except (TypeError, ValueError):
            continue
        return number if math.isfinite(number) else None
    return None


def value_matches(value, text):
    """A stored value equals a command-line value: numerically when both are numbers, else as text."""
    text = str(text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = as_number(text)
        if number is not None:
            return value == number
    return str(value) == text


def row_matches(row, name, text):
    module_type, row_name, value = row
    return name in (row_name, f"{module_type}.{row_name}") and value_matches(value, text)


def matches(rows, param):
    """True when one of `rows` matches param = (NAME, VALUE); always True without a param."""
    return param is None or any(row_matches(row, param[0], param[1]) for row in rows)


def select_runs(experiment, ids=None, status=None, param=None, states=None):
    """The runs of `experiment` matching every selector given: ids (a set, None: any), a status
    (read from `states`, {hash: RunState}), a param (NAME, VALUE)."""
    check_status(status)
    shared = process_rows(experiment.process)
    selected = []
    for run in experiment.runs:
        if ids is not None and run.run_id not in ids:
            continue
        if status is not None and states[run.run_hash].status != status:
            continue
        if not matches(module_rows(run) + shared, param):
            continue
        selected.append(run)
    return selected
