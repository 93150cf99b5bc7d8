"""The results database (SQLite), rebuilt from the per-run files, and the run selections read from it.

Tables (SPEC §4):
    runs(run_id, run_hash, pipeline, status, replicate, seed, nb_params, epochs, train_loss, test_loss,
         overfit, trainability, slope, duration_s, error, diverged, device, dataset_key, model_key)
    params(run_id, module_type, name, value)   free parameters of each module, typed, plus its `class`,
                                               rendered `key` and `section`; PROCESS values under 'PROCESS'
    losses(run_id, epoch, train_loss, test_loss, seconds)
    meta(name, value)                          schema_version, ini_path, run_files_path, built_at,
                                               mosaic_version
NaN and infinite losses are stored as NULL and the run is marked diverged.

The database is always rebuilt as a whole from the run files and the current ini (so re-keying is
rebuilding), into a temporary file that then replaces the old one: readers never see a half-built database.
"""

import datetime
import math
import os
import sqlite3
import tempfile
from contextlib import closing

from mosaic import __version__
from mosaic.errors import MosaicError
from mosaic.results.indicators import indicators
from mosaic.runfiles import LOSSES, RunState, finite_or_none, read_losses, read_state, run_file

SCHEMA_VERSION = 1

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

PROCESS_TYPE = "PROCESS"
PROCESS_FIELDS = (
    "lr", "epochs", "loss_function", "class_loss_function", "optimizer", "seed", "data_scheme", "pipeline_scheme"
)


# ---------------------------------------------------------------- building


def build(experiment, db_path):
    """Build the database of `experiment` at `db_path` from its run files; replaces the old one atomically."""
    folder = os.path.dirname(os.path.abspath(db_path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(prefix=".mosaic-db-", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        with closing(sqlite3.connect(tmp_path)) as db:
            # The temporary file is worthless until renamed: no journal, no syncs while filling it.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            with db:
                _fill(db, experiment)
        with open(tmp_path, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp_path, db_path)
    except BaseException as error:
        os.remove(tmp_path)
        if isinstance(error, (OSError, sqlite3.OperationalError)):  # disk full, file too large...
            message = f"{db_path}: cannot write the database ({error}); the previous one is unchanged"
            raise MosaicError(message) from None
        raise


def _fill(db, experiment):
    db.executescript(SCHEMA)
    process = experiment.process
    process_rows = _process_params(process)
    insert_run = f"INSERT INTO runs VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
    for run in experiment.runs:
        state, losses = _read_run(process.run_files_path, run.run_hash)
        db.execute(insert_run, _run_row(run, state, losses))
        db.executemany(
            "INSERT INTO params VALUES (?, ?, ?, ?)",
            [(run.run_id, *row) for row in _module_params(run) + process_rows],
        )
        db.executemany(
            "INSERT INTO losses VALUES (?, ?, ?, ?, ?)",
            [
                (run.run_id, epoch, finite_or_none(train), finite_or_none(test), finite_or_none(seconds))
                for epoch, train, test, seconds in losses
            ],
        )
    db.executescript(INDICES)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "ini_path": os.path.abspath(experiment.ini_path),
        "run_files_path": process.run_files_path,
        "built_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mosaic_version": __version__,
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])


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


def _sql_value(value):
    """A parameter value as SQLite stores it: int, float or text (booleans as 'True'/'False')."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return str(value)
    return value


def _module_params(run):
    rows = []
    for module in run.modules:
        rows.append((module.type, "section", module.section))
        rows.append((module.type, "class", module.class_name))
        rows.append((module.type, "key", module.key))
        rows += [(module.type, name, _sql_value(value)) for name, value in module.params]
    return rows


def _process_params(process):
    rows = []
    for name in PROCESS_FIELDS:
        value = getattr(process, name, None)
        if value is None:
            continue
        if isinstance(value, (tuple, list)):
            value = ",".join(value)
        rows.append((PROCESS_TYPE, name, _sql_value(value)))
    rows += [(PROCESS_TYPE, name, _sql_value(value)) for name, value in process.extra]
    return rows


# ---------------------------------------------------------------- reading


def open_db(path):
    """A connection to an existing Mosaic database; MosaicError when it is missing or not one."""
    if not os.path.isfile(path):
        raise MosaicError(f"{path}: not a Mosaic database")
    db = sqlite3.connect(path)
    try:
        version = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        version = None
    if version is None or version[0] != str(SCHEMA_VERSION):
        db.close()
        raise MosaicError(f"{path}: not a Mosaic database")
    return db


def parse_ids(text):
    """Run ids from 'all' (None: every run), '5', '1-3,7' or '1-3, 7' (a set of ints)."""
    if text.strip().lower() == "all":
        return None
    ids = set()
    for item in text.split(","):
        first, dash, last = (part.strip() for part in item.partition("-"))
        if not first.isdigit() or (dash and not last.isdigit()):
            raise MosaicError(f"bad run ids '{text}': expected 'all', '5', '1-3' or '1-3,7'")
        first, last = int(first), int(last) if dash else int(first)
        if last < first:
            raise MosaicError(f"bad run ids '{text}': range {first}-{last} is empty")
        ids.update(range(first, last + 1))
    return ids


def _as_number(text):
    """The number that `text` spells (int or float), or None."""
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        return number if math.isfinite(number) else None
    return None


def select_run_ids(db_path, ids=None, status=None, param=None):
    """Sorted run ids that are in `ids` (any iterable; None: any), have `status` and the parameter `param`.

    param = (NAME, VALUE): NAME is a parameter name ('width') or qualified by its module type
    ('mlp.width'); VALUE matches numerically when it spells a number ('3' matches 3 and 3.0), else as text.
    """
    query = "SELECT run_id FROM runs WHERE 1"
    args = []
    if status is not None:
        query += " AND status = ?"
        args.append(status)
    if param is not None:
        name, value = param
        module_type, _, short_name = str(name).partition(".")
        values = [str(value)]
        number = _as_number(str(value))
        if number is not None:
            values.append(number)
        query += (
            " AND run_id IN (SELECT run_id FROM params"
            " WHERE (name = ? OR (module_type = ? AND name = ?))"
            f" AND value IN ({', '.join('?' * len(values))}))"
        )
        args += [name, module_type, short_name, *values]
    with closing(open_db(db_path)) as db:
        found = [run_id for (run_id,) in db.execute(query + " ORDER BY run_id", args)]
    if ids is not None:
        ids = set(ids)
        found = [run_id for run_id in found if run_id in ids]
    return found
