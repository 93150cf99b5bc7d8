"""The values a user can compare (mosaic_compare) or plot (metaplot): a column of the runs table, by one of
its names, or the final value of a recorded metric; and which direction is better.

One table (VALUE_COLUMNS) says which names mean which runs column, for metaplot, the workflow's
metaplot_values and mosaic_compare (all but NOT_COMPARED); config/README.md lists them.
"""

import sqlite3

from mosaic.errors import MosaicError
from mosaic.results.database import has_column

# value name -> runs column; "duration(s)" is another spelling users type
VALUE_COLUMNS = {
    "test_loss": "test_loss",
    "train_loss": "train_loss",
    "val_loss": "val_loss",  # the last epoch's validation loss (a run with a validation part; else missing)
    "duration": "duration_s",
    "duration_s": "duration_s",
    "duration(s)": "duration_s",
    "overfit": "overfit",
    "trainability": "trainability",
    "slope": "slope",
    "nb_params": "nb_params",
}
# the names metaplot takes and mosaic_compare does not: the size of a model (what metaplot draws the values
# against) is not an outcome to rank, and mosaic_compare takes duration under its other spellings only
NOT_COMPARED = {"nb_params", "duration(s)"}
COMPARED_COLUMNS = {name: column for name, column in VALUE_COLUMNS.items() if name not in NOT_COMPARED}
LOSS_VALUES = ("test_loss", "train_loss", "val_loss")  # the values whose first-epoch value is in the losses table
# values where higher is better, known by name; any other value: lower is better unless told
HIGHER_IS_BETTER = {"accuracy", "balanced_accuracy", "f1", "precision", "recall", "auc", "r2"}


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
        if not has_column(db, "runs", columns[value]):
            raise MosaicError(f"value '{value}': this database has no {columns[value]} column (built by an older"
                              " version of Mosaic); build it again (mosaic_savedb)")
        return f"runs.{columns[value]}", "", ()
    metrics = recorded_metrics(db)
    if value in metrics:
        join = "LEFT JOIN final_metrics ON final_metrics.run_id = runs.run_id AND final_metrics.name = ?"
        return "final_metrics.value", join, (value,)
    names = ", ".join(list(columns) + metrics)
    raise MosaicError(f"unknown value '{value}': expected one of {names}")


def higher_is_better(value):
    return value in HIGHER_IS_BETTER


def dataset_keys_named(name, keys, run_classes=()):
    """The dataset keys `name` selects among `keys`: the key itself; else every key whose runs use a data
    class of that name (`run_classes`: (dataset_key, class names) per run); else the one key that has `name`
    as a stage of its data chain ('xor_n240' in 'xor_n240 | standardize') or, failing that, inside it.
    [] when none; MosaicError listing the keys when a part is found in several."""
    if name in keys:
        return [name]
    by_class = sorted({str(key) for key, classes in run_classes if name in classes})
    if by_class:
        return by_class
    stages = [key for key in keys if name in (stage.strip() for stage in str(key).split("|"))]
    found = stages or [key for key in keys if name in str(key)]
    if len(found) > 1:
        raise MosaicError(f"dataset '{name}' is part of several dataset keys: {', '.join(found)}; give one of them")
    return found
