"""The results database (SQLite), rebuilt from the per-run files, and the run selections read from it.

Tables:
    runs(run_id, run_hash, pipeline, status, replicate, seed, nb_params, epochs, train_loss, test_loss,
         overfit, trainability, slope, duration_s, error, diverged, device, dataset_key, model_key)
    params(run_id, module_type, name, value)   free parameters of each module, typed, plus its `class`,
                                               rendered `key` and `section`; PROCESS values under 'PROCESS'
    losses(run_id, epoch, train_loss, test_loss, seconds)
    metrics(run_id, epoch, name, value)        test-set metrics per epoch ([PROCESS] metrics, a metrics() hook)
    final_metrics(run_id, name, value)         their values at the last epoch
    meta(name, value)                          schema_version, ini_path, run_files_path, built_at,
                                               mosaic_version, epoch_loss (how an epoch's loss is averaged)
NaN and infinite losses are stored as NULL and the run is marked diverged.

The database is always rebuilt as a whole from the run files and the current ini (so re-keying is
rebuilding), into a temporary file that then replaces the old one: readers never see a half-built database.
"""

import datetime
import math
import os
import sqlite3
from contextlib import closing

from mosaic import __version__
from mosaic.errors import DatabaseError
from mosaic.results.indicators import indicators
from mosaic.results.selection import (  # noqa: F401 (PROCESS_TYPE, parse_ids: kept for importers)
    PROCESS_TYPE,
    check_status,
    module_rows,
    parse_ids,
    process_rows,
    row_matches,
)
from mosaic.runfiles import (
    LOSSES,
    METRICS,
    RunState,
    finite_or_none,
    read_losses,
    read_metrics,
    read_state,
    replacing,
    run_file,
)

SCHEMA_VERSION = 1
# How train_loss and test_loss of an epoch are computed (older versions: the mean of the batch means).
EPOCH_LOSS = "per-sample mean: each batch weighted by its number of samples"

SCHEMA = """
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY,
    run_hash TEXT UNIQUE,
    pipeline TEXT,
    status TEXT,
    replicate INTEGER,
    seed INTEGER,
    nb_params INTEGER,
    epochs INTEGER,
    train_loss REAL,
    test_loss REAL,
    overfit REAL,
    trainability REAL,
    slope REAL,
    duration_s REAL,
    error TEXT,
    diverged INTEGER,
    device TEXT,
    dataset_key TEXT,
    model_key TEXT
);
CREATE TABLE params (run_id INTEGER, module_type TEXT, name TEXT, value);
CREATE TABLE losses (
    run_id INTEGER,
    epoch INTEGER,
    train_loss REAL,
    test_loss REAL,
    seconds REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE metrics (run_id INTEGER, epoch INTEGER, name TEXT, value REAL, PRIMARY KEY (run_id, name, epoch));
CREATE TABLE final_metrics (run_id INTEGER, name TEXT, value REAL, PRIMARY KEY (run_id, name));
"""

# Created after the bulk insert: faster than maintaining them row by row.
INDICES = """
CREATE INDEX params_run ON params (run_id);
CREATE INDEX params_name_value ON params (name, value);
"""

RUN_COLUMNS = (
    "run_id run_hash pipeline status replicate seed nb_params epochs train_loss test_loss"
    " overfit trainability slope duration_s error diverged device dataset_key model_key"
).split()



# ---------------------------------------------------------------- building


def build(experiment, db_path):
    """Build the database of `experiment` at `db_path` from its run files; replaces the old one atomically."""
    if os.path.isdir(db_path):
        raise DatabaseError(db_path, "is a folder; give a database file path")
    folder = os.path.dirname(os.path.abspath(db_path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise DatabaseError(db_path, f"cannot create its folder: {error.strerror}") from None
    try:
        with replacing(db_path) as tmp_path, closing(sqlite3.connect(tmp_path)) as db:
            # The temporary file is worthless until renamed: no journal, no syncs while filling it.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            with db:
                _fill(db, experiment)
    except (OSError, sqlite3.OperationalError) as error:  # disk full, file too large...
        raise DatabaseError(db_path, f"cannot write the database ({error}); the previous one is unchanged") from None


def _fill(db, experiment):
    db.executescript(SCHEMA)
    process = experiment.process
    shared_rows = process_rows(process)
    insert_run = f"INSERT INTO runs VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
    for run in experiment.runs:
        state, losses = _read_run(process.run_files_path, run.run_hash)
        db.execute(insert_run, _run_row(run, state, losses))
        db.executemany(
            "INSERT INTO params VALUES (?, ?, ?, ?)",
            [(run.run_id, *row) for row in module_rows(run) + shared_rows],
        )
        db.executemany(
            "INSERT INTO losses VALUES (?, ?, ?, ?, ?)",
            [
                (run.run_id, epoch, finite_or_none(train), finite_or_none(test), finite_or_none(seconds))
                for epoch, train, test, seconds in losses
            ],
        )
        if state.status == "done":
            _insert_metrics(db, run.run_id, process.run_files_path, run.run_hash)
    db.executescript(INDICES)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "ini_path": os.path.abspath(experiment.ini_path),
        "run_files_path": process.run_files_path,
        "built_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mosaic_version": __version__,
        "epoch_loss": EPOCH_LOSS,
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])


def _insert_metrics(db, run_id, run_files_path, run_hash):
    try:
        rows = read_metrics(run_file(run_files_path, run_hash, METRICS))
    except (OSError, ValueError):
        return  # a damaged metrics file costs the metrics, not the run
    db.executemany(
        "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)",
        [(run_id, epoch, name, finite_or_none(value)) for epoch, name, value in rows],
    )
    last = {}
    for epoch, name, value in rows:
        if epoch >= last.get(name, (0, None))[0]:
            last[name] = (epoch, value)
    db.executemany(
        "INSERT INTO final_metrics VALUES (?, ?, ?)",
        [(run_id, name, finite_or_none(value)) for name, (_, value) in last.items()],
    )


def _read_run(run_files_path, run_hash):
    """(RunState, loss rows) of one run; unreadable files make it an error run, not a failed build."""
    try:
        state = read_state(run_files_path, run_hash)
        if state.status != "done":
            return state, []
        return state, read_losses(run_file(run_files_path, run_hash, LOSSES))
    except (OSError, ValueError) as exc:
        return RunState("error", error=f"unreadable run files of {run_hash}: {exc}"), []


def _run_row(run, state, losses):
    """The runs row of one run: a tuple in RUN_COLUMNS order."""
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(
        run_id=run.run_id,
        run_hash=run.run_hash,
        pipeline=run.pipeline,
        status=state.status,
        replicate=run.replicate,
        seed=run.seed,
        error=state.error,
        dataset_key=run.dataset_key,
        model_key=run.model_key,
    )
    if state.status == "done":
        result = state.result
        train = [t for _, t, _, _ in losses]
        test = [v for _, _, v, _ in losses]
        finite = all(math.isfinite(x) for x in train + test)
        row.update(
            nb_params=result.get("nb_params"),
            epochs=result.get("epochs", len(losses)),
            train_loss=finite_or_none(train[-1]) if train else None,
            test_loss=finite_or_none(test[-1]) if test else None,
            duration_s=result.get("duration_s"),
            diverged=int(bool(result.get("diverged")) or not finite),
            device=result.get("device"),
            **indicators(train, test),
        )
    return tuple(row.values())


# ---------------------------------------------------------------- reading


def open_db(path):
    """A connection to an existing Mosaic database; MosaicError when it is missing or not one."""
    if not os.path.isfile(path):
        raise DatabaseError(path, "not a Mosaic database")
    db = sqlite3.connect(path)
    try:
        version = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        version = None
    if version is None or version[0] != str(SCHEMA_VERSION):
        db.close()
        raise DatabaseError(path, "not a Mosaic database")
    return db


def select_run_ids(db_path, ids=None, status=None, param=None):
    """Sorted run ids that are in `ids` (any iterable; None: any), have `status` and the parameter
    `param` = (NAME, VALUE), matched as mosaic/results/selection.py says (as mosaic_rerun does)."""
    check_status(status)
    query = "SELECT run_id FROM runs" + (" WHERE status = ?" if status is not None else "")
    with closing(open_db(db_path)) as db:
        found = [run_id for (run_id,) in db.execute(query + " ORDER BY run_id", [status] if status else [])]
        if param is not None:
            name = str(param[0])
            rows = db.execute("SELECT run_id, module_type, name, value FROM params WHERE name IN (?, ?)",
                              (name, name.rpartition(".")[2]))
            matching = {run_id for run_id, *row in rows if row_matches(row, name, param[1])}
            found = [run_id for run_id in found if run_id in matching]
    if ids is not None:
        ids = set(ids)
        found = [run_id for run_id in found if run_id in ids]
    return found


def data_types_by_run(db):
    """{run_id: set of the types in its PROCESS data_scheme}: which modules of a run are its data."""
    return {
        run_id: set(scheme.split(","))
        for run_id, scheme in db.execute(
            "SELECT run_id, value FROM params WHERE module_type = ? AND name = 'data_scheme'", (PROCESS_TYPE,)
        )
    }
