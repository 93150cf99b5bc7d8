"""The results database (mosaic.results.database) and the reading of run files into it (run_records.py):
its tables, full and incremental builds, reading with several processes, selecting runs from it."""

import fcntl
import math
import os
import sqlite3
from types import SimpleNamespace

import pytest

from mosaic import __version__
from mosaic.errors import MosaicError
from mosaic.results import run_records
from mosaic.results.database import EPOCH_LOSS, SCHEMA_VERSION, build, open_db, select_run_ids
from mosaic.results.indicators import indicators
from mosaic.results.selection import parse_ids
from mosaic.runfiles import ERROR, LOCK, LOSSES, RESULT, run_dir, run_file
from tests.fakes import fake_module, fake_process, fake_run, runs_read_by, write_done, write_error

EPOCHS = 30
REPLICATES = 4
WIDTHS = (2, 3, 4)
CLASSES = ("funnel", "brick")

# Fake experiment (the shape config.load_experiment returns): 1 data module, then 2 model classes
# × 3 widths × 4 replicates = 24 runs; run ids 1-4 funnel width 2, ..., 21-24 brick width 4.


def fake_experiment(tmp_path, model_key="net_{class}"):
    extra = (("comment", "first try"), ("warmup", True))
    process = fake_process(tmp_path / ".runs", ("data",), ("net",), EPOCHS, extra)
    data_params = [("batch_size", 1), ("data_size", 200), ("train_prop", 0.8)]
    data = fake_module("dataset_OR", "data", "dataset_OR", "data_dataset_OR", data_params)
    runs = []
    for class_name in CLASSES:
        for width in WIDTHS:
            key = model_key.format(**{"class": class_name, "width": width})
            model_params = [("length", 4), ("width", width), ("activation", "relu"), ("bias", False)]
            model = fake_module(class_name, "net", class_name, key, model_params)
            for replicate in range(REPLICATES):
                run_id = len(runs) + 1
                pipeline = f"dataset_OR(1,200,0.8) | {class_name}(4,{width},relu,False)"
                runs.append(fake_run(run_id, f"h{run_id:04d}", (data, model), pipeline, replicate, 1000 + run_id))
    return SimpleNamespace(ini_path=str(tmp_path / "config.ini"), process=process, runs=tuple(runs))


def nb_params(run):
    width = dict(run.modules[1].params)["width"]
    return 10 * width + (1 if run.modules[1].class_name == "funnel" else 0)


def curves(run):
    """Decreasing losses; the final test loss grows with the replicate (known mean and spread)."""
    final = 0.01 * run.replicate + 0.001 * nb_params(run)
    train = [0.5 * 0.8**e + final for e in range(EPOCHS)]
    test = [t + 0.002 for t in train]
    return train, test


def finish(rfp, run, train, test, diverged=False):
    """The files of `run` done with these losses, and metrics mae and accuracy made from its test losses."""
    rows = [(e + 1, t, v, 0.25) for e, (t, v) in enumerate(zip(train, test))]
    metrics = [(e, name, value) for e, _, v, _ in rows for name, value in (("mae", v / 2), ("accuracy", 1 - v))]
    result = {
        "run_hash": run.run_hash,
        "status": "done",
        "pipeline": run.pipeline,
        "replicate": run.replicate,
        "seed": run.seed,
        "nb_params": nb_params(run),
        "epochs": len(rows),
        "duration_s": 7.5,
        "device": "cpu",
        "diverged": diverged,
        "versions": {"torch": "2.9"},
    }
    write_done(rfp, run.run_hash, rows, result, metrics)


@pytest.fixture
def experiment(tmp_path):
    """24 runs: 1 error, 2 running (lock held), 3 pending, 5 nan losses, 6 flagged diverged, others done."""
    experiment = fake_experiment(tmp_path)
    rfp = experiment.process.run_files_path
    for run in experiment.runs:
        train, test = curves(run)
        if run.run_id == 1:
            write_error(rfp, run.run_hash)
        elif run.run_id == 2:
            os.makedirs(run_dir(rfp, run.run_hash))
        elif run.run_id == 5:
            finish(rfp, run, train[:-1] + [math.nan], test[:-2] + [math.inf, math.nan], diverged=True)
        elif run.run_id == 6:
            finish(rfp, run, train, test, diverged=True)
        elif run.run_id != 3:
            finish(rfp, run, train, test)
    lock = os.open(run_file(rfp, "h0002", LOCK), os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    yield experiment
    os.close(lock)


@pytest.fixture
def db_path(experiment, tmp_path):
    path = str(tmp_path / "results" / "mosaic.db")
    build(experiment, path)
    return path


def query(db_path, sql, args=()):
    with sqlite3.connect(db_path) as db:
        return db.execute(sql, args).fetchall()


def test_row_counts(db_path):
    assert query(db_path, "SELECT COUNT(*) FROM runs") == [(24,)]
    assert query(db_path, "SELECT COUNT(*) FROM losses") == [(21 * EPOCHS,)]
    # data: section, class, key + 3 params; net: 3 + 4 params; PROCESS: 7 fields + 2 extras
    assert query(db_path, "SELECT COUNT(*) FROM params") == [(24 * (6 + 7 + 9),)]


def test_statuses(db_path):
    statuses = dict(query(db_path, "SELECT run_id, status FROM runs"))
    assert statuses[1] == "error"
    assert statuses[2] == "running"
    assert statuses[3] == "pending"
    assert {statuses[i] for i in range(4, 25)} == {"done"}
    (error,) = query(db_path, "SELECT error FROM runs WHERE run_id = 1")[0]
    assert error.endswith("ValueError: boom\n")
    for run_id in (1, 2, 3):
        row = query(db_path, "SELECT nb_params, train_loss, diverged FROM runs WHERE run_id = ?", (run_id,))
        assert row == [(None, None, None)]


def test_done_run_columns(db_path, experiment):
    run = experiment.runs[23]
    train, test = curves(run)
    row = query(db_path, "SELECT * FROM runs WHERE run_id = 24")[0]
    assert row[:8] == (24, "h0024", run.pipeline, "done", 3, 1024, 40, EPOCHS)
    assert row[8:10] == (pytest.approx(train[-1]), pytest.approx(test[-1]))
    expected = indicators(train, test)
    assert row[10:13] == pytest.approx((expected["overfit"], expected["trainability"], expected["slope"]))
    assert row[13:] == (7.5, None, 0, "cpu", "data_dataset_OR", "net_brick", None)  # no validation: val_loss NULL


def test_losses_table(db_path, experiment):
    train, test = curves(experiment.runs[9])
    rows = query(db_path, "SELECT epoch, train_loss, test_loss, seconds FROM losses WHERE run_id = 10")
    assert [r[0] for r in rows] == list(range(1, EPOCHS + 1))
    assert [r[1] for r in rows] == pytest.approx(train)
    assert [r[2] for r in rows] == pytest.approx(test)
    assert {r[3] for r in rows} == {0.25}


def test_losses_primary_key(db_path):
    with pytest.raises(sqlite3.IntegrityError):
        query(db_path, "INSERT INTO losses VALUES (10, 1, 0.0, 0.0, 0.0, NULL)")


def test_non_finite_losses_are_null_and_diverged(db_path):
    columns = "train_loss, test_loss, diverged, overfit, trainability, slope"
    row = query(db_path, f"SELECT {columns} FROM runs WHERE run_id = 5")
    assert row == [(None, None, 1, None, None, None)]
    sql = "SELECT epoch, train_loss, test_loss FROM losses WHERE run_id = 5 AND epoch >= ? ORDER BY epoch"
    last = query(db_path, sql, (EPOCHS - 1,))
    assert last[0][1] is not None and last[0][2] is None  # the inf
    assert last[1][1:] == (None, None)
    # result.json's diverged flag counts even when the losses are finite
    assert query(db_path, "SELECT diverged, test_loss IS NOT NULL FROM runs WHERE run_id = 6") == [(1, 1)]
    assert query(db_path, "SELECT SUM(diverged) FROM runs") == [(2,)]


def test_params_typed(db_path):
    rows = query(db_path, "SELECT module_type, name, value, typeof(value) FROM params WHERE run_id = 5")
    by_name = {(module_type, name): (value, kind) for module_type, name, value, kind in rows}
    assert by_name["net", "width"] == (3, "integer")
    assert by_name["data", "train_prop"] == (0.8, "real")
    assert by_name["net", "activation"] == ("relu", "text")
    assert by_name["net", "bias"] == ("False", "text")
    assert by_name["net", "class"] == ("funnel", "text")
    assert by_name["net", "key"] == ("net_funnel", "text")
    assert by_name["net", "section"] == ("funnel", "text")
    assert by_name["data", "class"] == ("dataset_OR", "text")
    assert by_name["PROCESS", "lr"] == (0.01, "real")
    assert by_name["PROCESS", "epochs"] == (EPOCHS, "integer")
    assert by_name["PROCESS", "data_scheme"] == ("data", "text")
    assert by_name["PROCESS", "pipeline_scheme"] == ("net", "text")
    assert by_name["PROCESS", "comment"] == ("first try", "text")
    assert by_name["PROCESS", "warmup"] == ("True", "text")
    assert ("PROCESS", "class_loss_function") not in by_name  # unset PROCESS values are not stored
    indices = {name for (name,) in query(db_path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"params_run", "params_name_value"} <= indices


def test_meta(db_path, tmp_path):
    meta = dict(query(db_path, "SELECT name, value FROM meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["mosaic_version"] == __version__
    assert meta["ini_path"] == str(tmp_path / "config.ini")
    assert meta["built_at"][:2] == "20"
    assert meta["epoch_loss"] == EPOCH_LOSS


def test_rebuild_applies_new_keys(db_path, experiment, tmp_path):
    rekeyed = fake_experiment(tmp_path, model_key="{class}_w{width}")
    build(rekeyed, db_path)
    assert query(db_path, "SELECT model_key FROM runs WHERE run_id = 24") == [("brick_w4",)]
    sql = "SELECT value FROM params WHERE run_id = 24 AND name = 'key' AND module_type = 'net'"
    assert query(db_path, sql) == [("brick_w4",)]
    assert query(db_path, "SELECT COUNT(*) FROM losses") == [(21 * EPOCHS,)]


def test_failed_build_keeps_the_old_database(db_path, experiment):
    duplicated = experiment.runs + (experiment.runs[0],)  # the same run id and hash twice
    broken = SimpleNamespace(ini_path=experiment.ini_path, process=experiment.process, runs=duplicated)
    with pytest.raises(sqlite3.IntegrityError):
        build(broken, db_path)
    assert query(db_path, "SELECT COUNT(*) FROM runs") == [(24,)]
    assert os.listdir(os.path.dirname(db_path)) == ["mosaic.db"]


def test_unreadable_run_files_make_an_error_run(experiment, tmp_path):
    with open(run_file(experiment.process.run_files_path, "h0010", LOSSES), "w") as handle:
        handle.write("epoch\ttrain_loss\ttest_loss\tseconds\n1\t0.5\n")
    path = str(tmp_path / "mosaic.db")
    build(experiment, path)
    [(status, error)] = query(path, "SELECT status, error FROM runs WHERE run_id = 10")
    assert status == "error" and "h0010" in error
    assert query(path, "SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(20,)]


@pytest.mark.parametrize("body", [
    "1\t0.5\t0.4\t0.1\n2\t0.5\t0.4\n3\t0.5\t0.4\t0.1\t9\n",  # one field short, one too many
    "1\t0.5\t0.4\t0.1\n2\t0.5 0.4\t0.1\t0.3\n",  # a space where a tab should be
    "1.5\t0.5\t0.4\t0.1\n",  # the epoch is not an integer
])
def test_a_malformed_loss_line_makes_an_error_run(experiment, tmp_path, body):
    with open(run_file(experiment.process.run_files_path, "h0010", LOSSES), "w") as handle:
        handle.write("epoch\ttrain_loss\ttest_loss\tseconds\n" + body)
    path = str(tmp_path / "mosaic.db")
    build(experiment, path)
    [(status, error)] = query(path, "SELECT status, error FROM runs WHERE run_id = 10")
    assert status == "error" and "h0010" in error and "losses.tsv" in error
    assert query(path, "SELECT COUNT(*) FROM losses WHERE run_id = 10") == [(0,)]


def test_several_reading_processes_build_the_same_database_as_one(experiment, tmp_path, monkeypatch):
    """A big build reads runs in forked processes and writes them here, in run order."""
    from mosaic.results import database

    monkeypatch.setattr(run_records, "RUNS_PER_PROCESS", 4)  # 24 runs: up to 6 readers
    one, several = str(tmp_path / "one.db"), str(tmp_path / "several.db")
    database._build_store(experiment, one, processes=1)
    database._build_store(experiment, several, processes=3)
    assert table_rows(several) == table_rows(one)
    statuses = dict(query(several, "SELECT run_id, status FROM runs"))
    assert (statuses[1], statuses[2], statuses[3], statuses[5]) == ("error", "running", "pending", "done")
    assert query(several, "SELECT COUNT(*) FROM losses WHERE train_loss IS NULL") == [(1,)]  # run 5's nan


def test_a_database_of_the_previous_schema_version_can_still_be_read(db_path):
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
    open_db(db_path).close()
    assert select_run_ids(db_path, status="error") == [1]


def test_open_db_refuses_what_is_not_a_mosaic_database(tmp_path, db_path):
    open_db(db_path).close()
    with pytest.raises(MosaicError, match="not a Mosaic database"):
        open_db(str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "text.db").write_text("hello\n" * 100)
    with pytest.raises(MosaicError, match="text.db: not a Mosaic database"):
        open_db(str(tmp_path / "text.db"))
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(MosaicError, match="not a Mosaic database"):
        open_db(str(tmp_path / "other.db"))


def test_select_by_ids_and_status(db_path):
    assert select_run_ids(db_path) == list(range(1, 25))
    assert select_run_ids(db_path, ids={1, 2, 3, 7, 99}) == [1, 2, 3, 7]
    assert select_run_ids(db_path, status="error") == [1]
    assert select_run_ids(db_path, status="running") == [2]
    assert select_run_ids(db_path, status="done", ids=parse_ids("1-6")) == [4, 5, 6]


def test_select_by_param_compares_numbers_as_numbers(db_path):
    width_3 = [5, 6, 7, 8, 17, 18, 19, 20]
    assert select_run_ids(db_path, param=("width", "3")) == width_3
    assert select_run_ids(db_path, param=("width", "3.0")) == width_3
    assert select_run_ids(db_path, param=("width", 3)) == width_3
    assert select_run_ids(db_path, param=("net.width", "3")) == width_3
    assert select_run_ids(db_path, param=("data.width", "3")) == []
    assert select_run_ids(db_path, param=("train_prop", ".8")) == list(range(1, 25))
    assert select_run_ids(db_path, param=("lr", "1e-2")) == list(range(1, 25))
    assert select_run_ids(db_path, param=("PROCESS.lr", "0.01"), status="done") == list(range(4, 25))


def test_select_by_text_param(db_path):
    assert select_run_ids(db_path, param=("class", "brick")) == list(range(13, 25))
    assert select_run_ids(db_path, param=("key", "net_funnel")) == list(range(1, 13))
    assert select_run_ids(db_path, param=("bias", "False")) == list(range(1, 25))
    assert select_run_ids(db_path, param=("comment", "first try")) == list(range(1, 25))
    assert select_run_ids(db_path, param=("class", "brick' OR '1'='1")) == []
    assert select_run_ids(db_path, param=("class", "brick"), ids={12, 13}) == [13]


# ---------------------------------------------------------------------------------------------------------
# Incremental updates: only changed runs are read again, and the result equals a full rebuild


def table_rows(path):
    """Every table's rows (meta less built_at), in a fixed order, and the schema: what two databases
    that equal each other have in common. A table a user adds is in it too."""
    with sqlite3.connect(path) as db:
        schema = sorted(db.execute("SELECT type, name, sql FROM sqlite_master"))
        rows = {}
        for _, name, _ in (row for row in schema if row[0] == "table"):
            columns = ", ".join(str(k + 1) for k in range(len(db.execute(f"SELECT * FROM {name}").description)))
            where = " WHERE name != 'built_at'" if name == "meta" else ""
            rows[name] = db.execute(f"SELECT * FROM {name}{where} ORDER BY {columns}").fetchall()
    return {"schema": schema, **rows}


def test_incremental_update_reads_only_changed_runs_and_equals_a_full_rebuild(db_path, experiment, tmp_path,
                                                                                monkeypatch):
    rfp = experiment.process.run_files_path
    runs = {run.run_id: run for run in experiment.runs}
    train, test = curves(runs[7])
    finish(rfp, runs[7], [x * 2 for x in train], test[:10])  # rerun, with other losses
    finish(rfp, runs[3], train, test)  # a pending run is done
    finish(rfp, runs[1], train, test)  # the failed run, rerun
    os.remove(run_file(rfp, runs[1].run_hash, ERROR))
    more = fake_experiment(tmp_path, model_key="{class}_w{width}")  # re-keyed: every run's params change
    added = []
    for extra in range(2):  # and two runs added
        run = SimpleNamespace(**{**vars(more.runs[-1]), "run_id": 25 + extra, "run_hash": f"h{25 + extra:04d}",
                                 "replicate": 4 + extra})
        finish(rfp, run, train, test)
        added.append(run)
    grown = SimpleNamespace(ini_path=more.ini_path, process=more.process, runs=more.runs + tuple(added))

    reads = runs_read_by(monkeypatch, run_records, "_read_run")
    build(experiment, db_path)  # nothing about the keys changed yet: only 7, 3, 1 and the running run 2
    assert sorted(reads) == ["h0001", "h0002", "h0003", "h0007"]
    full = str(tmp_path / "full.db")
    build(experiment, full, incremental=False)
    assert table_rows(db_path) == table_rows(full)
    assert query(full, "SELECT COUNT(*) FROM final_metrics WHERE run_id = 7") == [(2,)]  # the rerun's metrics
    assert query(full, "SELECT value FROM final_metrics WHERE run_id = 7 AND name = 'mae'") == [(test[9] / 2,)]

    reads.clear()
    build(grown, db_path)
    assert len(reads) == 26  # re-keying changes every run's rows
    build(grown, full, incremental=False)
    assert table_rows(db_path) == table_rows(full)
    assert query(db_path, "SELECT COUNT(*) FROM runs") == [(26,)]

    shrunk = SimpleNamespace(ini_path=more.ini_path, process=more.process, runs=grown.runs[:20])
    reads.clear()
    build(shrunk, db_path)  # runs gone from the ini leave the database
    assert reads == ["h0002"]
    build(shrunk, full, incremental=False)
    assert table_rows(db_path) == table_rows(full)


def test_a_database_removed_by_snakemake_is_updated_from_its_store(db_path, experiment, monkeypatch):
    os.remove(db_path)  # Snakemake removes a job's output before running it
    reads = runs_read_by(monkeypatch, run_records, "_read_run")
    build(experiment, db_path)
    assert reads == ["h0002"]  # the running run only
    assert query(db_path, "SELECT COUNT(*) FROM runs") == [(24,)]
    assert os.listdir(os.path.dirname(db_path)) == ["mosaic.db"]


def test_the_copies_a_killed_build_left_are_removed(db_path, experiment):
    store = store_of(db_path, experiment)
    leftovers = [f"{path}.tmp999999999-abcdef" for path in (db_path, store)]  # no such process
    for path in leftovers:
        open(path, "w").close()
    build(experiment, db_path)
    assert not any(map(os.path.exists, leftovers))
    assert os.listdir(os.path.dirname(db_path)) == ["mosaic.db"]


def test_a_run_that_stopped_training_is_read_again(db_path, experiment, tmp_path):
    """A running run is re-read every time: when its process dies its lock goes, not its files."""
    assert query(db_path, "SELECT status FROM runs WHERE run_id = 2") == [("running",)]
    lock = run_file(experiment.process.run_files_path, "h0002", LOCK)
    os.remove(lock)  # the fixture's holder still has the removed file locked; the run is not running now
    build(experiment, db_path)
    assert query(db_path, "SELECT status FROM runs WHERE run_id = 2") == [("pending",)]


def store_of(db_path, experiment):
    from mosaic.results import database

    return database._store_path(experiment, db_path)


def test_editing_the_published_database_changes_nothing_else(db_path, experiment, tmp_path):
    """The database is a copy of its store, not the store itself: a user's DELETE, or mosaic_compare's own
    tables, stay in the published file and go when it is rebuilt."""
    store = store_of(db_path, experiment)
    assert os.stat(db_path).st_ino != os.stat(store).st_ino and os.stat(db_path).st_nlink == 1
    with sqlite3.connect(db_path) as db:
        for table in ("runs", "losses", "metrics", "final_metrics", "run_stamps"):
            db.execute(f"DELETE FROM {table} WHERE run_id = 7")
        db.execute("CREATE TABLE verdicts (pipeline TEXT, verdict TEXT)")
        db.execute("INSERT INTO verdicts VALUES ('funnel', 'better')")
    full = str(tmp_path / "full.db")
    build(experiment, full, incremental=False)
    assert table_rows(db_path) != table_rows(full)
    build(experiment, db_path)  # updated from the store
    assert table_rows(db_path) == table_rows(full)
    assert query(db_path, "SELECT COUNT(*) FROM losses WHERE run_id = 7") == [(EPOCHS,)]

    with sqlite3.connect(db_path) as db:  # edited again, then removed, as Snakemake does before the job
        db.execute("DELETE FROM runs WHERE run_id = 8")
    os.remove(db_path)
    build(experiment, db_path)
    assert table_rows(db_path) == table_rows(full)


def test_a_store_an_older_version_published_as_a_hard_link_is_not_updated(db_path, experiment, tmp_path):
    """Older versions published the database as a hard link to .database-cache/<digest>.db: a user's
    edits may be in that store, so it is removed, never updated."""
    import hashlib

    digest = hashlib.sha1(os.path.abspath(db_path).encode()).hexdigest()[:16]
    old_store = os.path.join(experiment.process.run_files_path, ".database-cache", f"{digest}.db")
    store = store_of(db_path, experiment)
    if store != old_store:
        os.replace(store, old_store)
    os.remove(db_path)
    os.link(old_store, db_path)
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM runs WHERE run_id = 7")
    os.remove(db_path)  # the edit is in the store alone now
    build(experiment, db_path)
    assert os.listdir(os.path.dirname(store)) == [os.path.basename(store)]  # the old store is gone
    full = str(tmp_path / "full.db")
    build(experiment, full, incremental=False)
    assert table_rows(db_path) == table_rows(full)


def test_a_result_file_edited_in_place_with_its_time_put_back_is_read_again(db_path, experiment):
    """The same size, the same inode, the modification time put back (cp -p, touch -r, rsync -t): the
    change time still tells."""
    import time

    path = run_file(experiment.process.run_files_path, "h0007", RESULT)
    info = os.stat(path)
    text = open(path).read()
    assert '"duration_s": 7.5' in text
    time.sleep(0.02)  # a change time later than the file's (a coarse clock ticks every few ms)
    with open(path, "r+") as handle:
        handle.write(text.replace('"duration_s": 7.5', '"duration_s": 8.5'))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_ino) == (info.st_size, info.st_ino)
    build(experiment, db_path)
    assert query(db_path, "SELECT duration_s FROM runs WHERE run_id = 7") == [(8.5,)]
