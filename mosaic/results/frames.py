"""A results database as pandas DataFrames: `mosaic.load("database.db")`.

pandas is imported inside `load`, so that importing mosaic or mosaic.results stays cheap.
"""

from contextlib import closing
from dataclasses import dataclass

from mosaic.results.database import has_column, open_db
from mosaic.results.run_records import RUN_COLUMNS


@dataclass
class Results:
    """The three tables of a results database.

    runs    one row a run: the columns of the database's runs table, then one typed column a parameter,
            named `TYPE.NAME` (`mlp.width`, `dataset.batch_size`, `mlp.class`, `PROCESS.lr`); a run whose
            module has no such parameter has a missing value there
    losses  long form: run_id, epoch, train_loss, test_loss, seconds, val_loss (one row a run and epoch;
            val_loss missing for a run without a validation part)
    params  the parameters as stored, long form: run_id, module_type, name, value
    """

    runs: object
    losses: object
    params: object

    def __iter__(self):  # runs, losses, params = mosaic.load(...)
        return iter((self.runs, self.losses, self.params))


def load(db_path):
    """Read a Mosaic database into a Results (runs wide and typed, losses long); MosaicError if not one."""
    import pandas as pd

    with closing(open_db(db_path)) as db:
        validation = "val_loss" if has_column(db, "runs", "val_loss") else "NULL"  # a database older than v3: none
        run_columns = [validation if name == "val_loss" else name for name in RUN_COLUMNS]
        run_rows = db.execute(f"SELECT {', '.join(run_columns)} FROM runs ORDER BY run_id").fetchall()
        param_rows = db.execute(
            "SELECT run_id, module_type, name, value FROM params ORDER BY run_id, rowid").fetchall()
        loss_rows = db.execute(f"SELECT run_id, epoch, train_loss, test_loss, seconds, {validation} FROM losses"
                               " ORDER BY run_id, epoch").fetchall()

    runs = pd.DataFrame.from_records(run_rows, columns=RUN_COLUMNS)
    runs = runs.astype({"run_id": "int64", "replicate": "Int64", "seed": "Int64", "nb_params": "Int64",
                        "epochs": "Int64", "diverged": "boolean"})
    for column in ("train_loss", "test_loss", "val_loss", "overfit", "trainability", "slope", "duration_s"):
        runs[column] = runs[column].astype("float64")

    columns = {}  # "TYPE.NAME" -> {run_id: value}, in first-seen order
    for run_id, module_type, name, value in param_rows:
        columns.setdefault(f"{module_type}.{name}", {})[run_id] = value
    ids = runs["run_id"].tolist()
    for column, by_run in columns.items():
        runs[column] = typed_column(pd, [by_run.get(run_id) for run_id in ids])

    losses = pd.DataFrame.from_records(loss_rows, columns=["run_id", "epoch", "train_loss", "test_loss", "seconds",
                                                           "val_loss"])
    losses = losses.astype({"run_id": "int64", "epoch": "int64", "train_loss": "float64", "test_loss": "float64",
                            "seconds": "float64", "val_loss": "float64"})
    params = pd.DataFrame.from_records(param_rows, columns=["run_id", "module_type", "name", "value"])
    params = params.astype({"run_id": "int64"})
    return Results(runs=runs, losses=losses, params=params)


def typed_column(pd, values):
    """One parameter's values as a Series of one type: Int64, float64, boolean, else text (object)."""
    present = [value for value in values if value is not None]
    if present and all(isinstance(value, int) for value in present):
        return pd.array(values, dtype="Int64")
    if present and all(isinstance(value, (int, float)) for value in present):
        return pd.array([float("nan") if value is None else float(value) for value in values], dtype="float64")
    if present and all(value in ("True", "False") for value in present):  # booleans are stored as text
        return pd.array([None if value is None else value == "True" for value in values], dtype="boolean")
    return pd.array([None if value is None else str(value) for value in values], dtype="object")
