"""The results database (SQLite), rebuilt from the per-run files, and the run selections read from it.

Tables:
    runs(run_id, run_hash, pipeline, status, replicate, seed, nb_params, epochs, train_loss, test_loss,
         overfit, trainability, slope, duration_s, error, diverged, device, dataset_key, model_key,
         val_loss)                             val_loss: the last epoch's validation loss, NULL without one
    params(run_id, module_type, name, value)   free parameters of each module, typed, plus its `class`,
                                               rendered `key` and `section`; PROCESS values under 'PROCESS'
    losses(run_id, epoch, train_loss, test_loss, seconds, val_loss)   val_loss NULL for a run without validation
    metrics(run_id, epoch, name, value)        test-set metrics per epoch ([PROCESS] metrics, a metrics() hook);
                                               validation metrics named val_<metric>
    final_metrics(run_id, name, value)         their values at the last epoch
    meta(name, value)                          schema_version, ini_path, run_files_path, built_at,
                                               mosaic_version, epoch_loss (how an epoch's loss is averaged),
                                               plots (the folder the workflow's plots are in)
    run_stamps(run_id, stamp)                  what each run's rows were read from (incremental updates)
NaN and infinite losses are stored as NULL and the run is marked diverged.

The database always says what the run files and the current ini say (so re-keying is rebuilding); only
the runs that changed are read again (see build). Reading a run's files into its rows: run_records.py.
"""

import contextlib
import datetime
import functools
import os
import sqlite3
from contextlib import closing

from mosaic.errors import DatabaseError
from mosaic.results.run_records import RUN_COLUMNS, read_records, run_stamp
from mosaic.results.selection import PROCESS_TYPE, check_status, process_rows, row_matches
from mosaic.runfiles import copy_file, finite_or_none, replacing
from mosaic.version import version

SCHEMA_VERSION = 3  # 2: losses and metrics are WITHOUT ROWID tables; 3: runs.val_loss and losses.val_loss
# a database of these versions can be read (one older than 3 has no val_loss column: readers check, has_column)
READABLE_VERSIONS = ("1", "2", "3")
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
    model_key TEXT,
    val_loss REAL
);
CREATE TABLE params (run_id INTEGER, module_type TEXT, name TEXT, value);
CREATE TABLE losses (
    run_id INTEGER,
    epoch INTEGER,
    train_loss REAL,
    test_loss REAL,
    seconds REAL,
    val_loss REAL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE metrics (
    run_id INTEGER, epoch INTEGER, name TEXT, value REAL, PRIMARY KEY (run_id, name, epoch)
) WITHOUT ROWID;
CREATE TABLE final_metrics (run_id INTEGER, name TEXT, value REAL, PRIMARY KEY (run_id, name));
CREATE TABLE run_stamps (run_id INTEGER PRIMARY KEY, stamp TEXT);
"""
STORE_DIR = ".database-cache"  # under the run files path: the incrementally updated copy (see build)
STORE_SUFFIX = ".store.db"  # the store of a database published as a copy (older versions: .db, a hard link)

# Created after the bulk insert: faster than maintaining them row by row.
INDICES = """
CREATE INDEX params_run ON params (run_id);
CREATE INDEX params_name_value ON params (name, value);
"""

# ---------------------------------------------------------------- building


def build(experiment, db_path, incremental=True, processes=None):
    """Build the database of `experiment` at `db_path` from its run files.

    The database is kept up to date in a store under the run files path (.database-cache/; Snakemake
    removes `db_path` before the database job, so it cannot be the store) and published at `db_path`
    as a copy (a reflink where the file system makes one), never as the store's own file: what a user
    or mosaic_compare writes into the database stays there. With `incremental`, only the runs whose
    definition or files changed since the store was last built are read again: the result is the same
    as a full rebuild (tests/results/test_database.py checks it), at a cost that grows with the runs changed,
    not with the experiment (but for the copy: seconds a gigabyte where the file system has no
    reflinks). A big build reads the runs with `processes` processes (None: one per usable CPU, 8 at
    most) while this one writes. Every step writes a temporary file that then replaces its target, so
    readers see the old or the new database, never a half-built one, and a failure (a full disk)
    leaves both as they were.
    """
    if os.path.isdir(db_path):
        raise DatabaseError(db_path, "is a folder; give a database file path")
    folder = os.path.dirname(os.path.abspath(db_path))
    store = _store_path(experiment, db_path)
    try:
        os.makedirs(folder, exist_ok=True)
        os.makedirs(os.path.dirname(store), exist_ok=True)
    except OSError as error:
        raise DatabaseError(db_path, f"cannot create its folder: {error.strerror}") from None
    _remove_leftovers(store)
    _remove_leftovers(db_path)
    with contextlib.suppress(FileNotFoundError):  # the store of an older version, which published it as a
        os.remove(store[:-len(STORE_SUFFIX)] + ".db")  # hard link: it may hold a user's edits, never updated
    try:
        if not (incremental and _update_store(experiment, store, processes)):
            _build_store(experiment, store, processes)
        _publish(store, db_path)
    except (OSError, sqlite3.OperationalError) as error:  # disk full, file too large...
        raise DatabaseError(db_path, f"cannot write the database ({error}); the previous one is unchanged") from None


def _store_path(experiment, db_path):
    import hashlib

    name = hashlib.sha1(os.path.abspath(db_path).encode()).hexdigest()[:16]
    return os.path.join(experiment.process.run_files_path, STORE_DIR, name + STORE_SUFFIX)


def _remove_leftovers(path):
    """Remove the temporary copies of `path` (the store or the database) that a killed build left
    (their process is gone)."""
    import re

    folder, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(re.escape(name) + r"\.tmp(\d+)-")
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if match and not os.path.exists(f"/proc/{match[1]}"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, entry))


def _build_store(experiment, store, processes=None):
    """A full build into a temporary file that then replaces the store."""
    with read_records(experiment, experiment.runs, processes) as records:
        with replacing(store) as tmp_path, closing(_connect_unjournaled(tmp_path)) as db, db:
            db.executescript(SCHEMA)
            _insert_records(db, records)
            db.executescript(INDICES)
            _insert_meta(db, experiment)


def _connect_unjournaled(path):
    """A connection to a temporary database file: worthless until renamed, so no journal, no syncs."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    return db


def _publish(store, db_path):
    """Make `db_path` a copy of the store (see build)."""
    with replacing(db_path) as tmp_path:
        copy_file(store, tmp_path)


def _update_store(experiment, store, processes=None):
    """Bring a copy of the store up to date run by run, then let it replace the store; False when
    the store cannot be updated (absent, older schema): a full build is needed."""
    try:
        with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            version = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            known = dict(db.execute("SELECT run_id, stamp FROM run_stamps"))
    except sqlite3.Error:
        return False
    if version is None or version[0] != str(SCHEMA_VERSION):
        return False
    runs = experiment.runs
    if len({run.run_id for run in runs}) != len(runs) or len({run.run_hash for run in runs}) != len(runs):
        return False  # the full build reports it
    shared_rows = process_rows(experiment.process)

    def changed_since(run):
        stamp = run_stamp(experiment, run, shared_rows)
        return stamp is None or known.get(run.run_id) != stamp  # None: training, read again each time

    changed = [run for run in runs if changed_since(run)]
    if len(changed) > len(runs) // 2:
        return False  # a full build reads as much, in parallel, with no copy and no deletes
    wanted = {run.run_id for run in runs}
    stale = [run_id for run_id in known if run_id not in wanted] + [run.run_id for run in changed]
    with read_records(experiment, changed, processes) as records, replacing(store) as tmp_path:
        copy_file(store, tmp_path)
        with closing(_connect_unjournaled(tmp_path)) as db, db:
            for table in ("runs", "params", "losses", "metrics", "final_metrics", "run_stamps"):
                db.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(run_id,) for run_id in stale])
            _insert_records(db, records)
            db.execute("DELETE FROM meta")
            _insert_meta(db, experiment)
    return True


# ---------------------------------------------------------------- writing the records (run_records.py reads them)


def _insert_records(db, records):
    for run_row, params, losses, metrics, stamp in records:
        run_id = run_row[0]
        db.execute(INSERT_RUN, run_row)
        db.executemany("INSERT INTO params VALUES (?, ?, ?, ?)", params)
        _insert_losses(db, run_id, losses)
        _insert_metrics(db, run_id, metrics)
        db.execute("INSERT INTO run_stamps VALUES (?, ?)", (run_id, stamp))


INSERT_RUN = f"INSERT INTO runs VALUES ({', '.join('?' * len(RUN_COLUMNS))})"


def _insert_losses(db, run_id, columns):
    """A run's loss rows, many rows a statement (half the cost of executemany); `columns`: epochs, train, test,
    seconds, val (None: NULL on every row)."""
    width = 6  # run_id, epoch, train_loss, test_loss, seconds, val_loss, run_id, ...
    flat = [run_id] * (width * len(columns[0]))
    for k, column in enumerate(columns, start=1):
        flat[k::width] = [None] * len(columns[0]) if column is None else column
    per_statement = width * (_max_variables(db) // width)
    for start in range(0, len(flat), per_statement):
        chunk = flat[start:start + per_statement]
        db.execute(_values_statement("losses", width, len(chunk) // width), chunk)


def _max_variables(db):
    """The most parameters one statement may have (999 where SQLite cannot say: its smallest limit)."""
    try:
        return min(db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 5000)  # Python 3.11+
    except AttributeError:
        return 999


@functools.lru_cache(maxsize=64)
def _values_statement(table, width, count):
    row = "(" + ", ".join("?" * width) + ")"
    return f"INSERT INTO {table} VALUES " + ", ".join([row] * count)


def _insert_meta(db, experiment):
    meta = {
        "schema_version": SCHEMA_VERSION,
        "ini_path": os.path.abspath(experiment.ini_path),
        "run_files_path": experiment.process.run_files_path,
        "built_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mosaic_version": version(),
        "epoch_loss": EPOCH_LOSS,
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])


def _insert_metrics(db, run_id, rows):
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


# ---------------------------------------------------------------- reading the database


def open_db(path):
    """A connection to an existing Mosaic database; MosaicError when it is missing or not one."""
    if not os.path.isfile(path):
        raise DatabaseError(path, "not a Mosaic database")
    db = sqlite3.connect(path)
    try:
        version = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        version = None
    if version is None or version[0] not in READABLE_VERSIONS:
        db.close()
        raise DatabaseError(path, "not a Mosaic database")
    return db


def set_meta(db_path, name, value):
    """Set one meta row (the plots folder the workflow wrote, say), keeping the file's modification time:
    Snakemake would otherwise take the database for new and redo every plot made from it."""
    stat = os.stat(db_path)
    with closing(open_db(db_path)) as db, db:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, str(value)))
    os.utime(db_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def meta_value(db_path, name):
    """A meta row's value, None when absent."""
    with closing(open_db(db_path)) as db:
        row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]


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


def has_column(db, table, column):
    """True when `table` of the open database has `column` (a database older than version 3 has no val_loss)."""
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))


def data_types_by_run(db):
    """{run_id: set of the types in its PROCESS data_scheme}: which modules of a run are its data."""
    return {
        run_id: set(scheme.split(","))
        for run_id, scheme in db.execute(
            "SELECT run_id, value FROM params WHERE module_type = ? AND name = 'data_scheme'", (PROCESS_TYPE,)
        )
    }
