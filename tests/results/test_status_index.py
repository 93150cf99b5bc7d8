"""mosaic_status's index (mosaic/results/status.py): finished runs are read from it while their folder and
the file it holds the content of are unchanged, and read from their files again after any change: a file
written in place (cp), one renamed into place, a job taking the run's lock."""

import os
import shutil
import time

import pytest

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.results import status
from mosaic.results.status_text import render
from mosaic.run import job
from tests.fakes import Experiment, runs_read_by, small_settings

LONG_AGO = time.time_ns() - 3600 * 10**9


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return load_experiment(str(Experiment(tmp_path / "exp", small_settings()).ini))  # 4 runs


def folder(experiment, run):
    return runfiles.run_dir(experiment.process.run_files_path, run.run_hash)


def finish(experiment, run, test_loss, settled=True):
    """The files of a done run (with the lock file its job left); `settled`: they and their folder last changed
    an hour ago."""
    path = folder(experiment, run)
    os.makedirs(path, exist_ok=True)
    open(os.path.join(path, runfiles.LOCK), "a").close()
    with open(os.path.join(path, runfiles.LOSSES), "w") as handle:
        handle.write(runfiles.format_losses([(1, 0.5, test_loss, 0.1)]))
    runfiles.write_json(os.path.join(path, runfiles.RESULT), {
        "run_hash": run.run_hash, "status": "done", "epochs": 1, "train_loss": 0.5, "test_loss": test_loss,
        "duration_s": 1.0, "diverged": False})
    if settled:
        settle(path, runfiles.RESULT, runfiles.LOSSES)


def fail(experiment, run, text):
    path = folder(experiment, run)
    os.makedirs(path, exist_ok=True)
    runfiles.write_atomic(os.path.join(path, runfiles.ERROR), text)
    settle(path, runfiles.ERROR)


def settle(path, *names):
    for name in names:
        os.utime(os.path.join(path, name), ns=(LONG_AGO, LONG_AGO))
    os.utime(path, ns=(LONG_AGO, LONG_AGO))


def statuses(experiment):
    states = status.states_of(experiment)
    return [states[run.run_hash].status for run in experiment.runs]


def index_of(experiment):
    return status._load_index(os.path.join(experiment.process.run_files_path, status.INDEX))


def test_finished_runs_are_indexed_and_read_from_the_index_while_their_files_are_unchanged(experiment, monkeypatch):
    first, second, third, _ = experiment.runs
    finish(experiment, first, 0.25)
    fail(experiment, second, "Traceback\nValueError: boom\n")
    finish(experiment, third, 0.125, settled=False)  # just finished: not indexed yet
    assert statuses(experiment) == ["done", "error", "done", "pending"]
    assert set(index_of(experiment)) == {first.run_hash, second.run_hash}

    # Unchanged runs are read from the index, not from their files.
    reads = runs_read_by(monkeypatch, runfiles, "read_state")
    states = status.states_of(experiment)
    assert reads == [third.run_hash]  # not settled yet (the fourth run has no folder: pending, nothing to read)
    assert states[first.run_hash].result["test_loss"] == 0.25
    assert states[second.run_hash].error == "Traceback\nValueError: boom\n"
    text = render(status.listed(experiment), states)
    assert "[1] train_loss=5.000E-01\ttest_loss=2.500E-01" in text and "ValueError: boom" in text

    # A file removed is seen, whatever the folder's time says.
    os.remove(os.path.join(folder(experiment, first), runfiles.RESULT))
    os.utime(folder(experiment, first), ns=(LONG_AGO, LONG_AGO))
    assert statuses(experiment)[0] == "pending"


def test_a_result_copied_over_an_indexed_one_is_seen(experiment):
    """cp other/result.json .runs/X/result.json writes the file in place: the folder's time stays."""
    first, second = experiment.runs[:2]
    finish(experiment, first, 0.25)
    finish(experiment, second, 0.75)
    assert status.states_of(experiment)[first.run_hash].result["test_loss"] == 0.25
    assert first.run_hash in index_of(experiment)
    before = os.stat(folder(experiment, first)).st_mtime_ns
    target = os.path.join(folder(experiment, first), runfiles.RESULT)
    shutil.copyfile(os.path.join(folder(experiment, second), runfiles.RESULT), target)
    assert os.stat(folder(experiment, first)).st_mtime_ns == before
    assert status.states_of(experiment)[first.run_hash].result["test_loss"] == 0.75


def test_an_error_edited_in_place_with_its_times_put_back_is_seen(experiment):
    """The same size, the same inode, the file's and the folder's modification times put back (cp -p,
    touch -r): the change time still tells."""
    first = experiment.runs[0]
    fail(experiment, first, "Traceback\nValueError: boom\n")
    path = os.path.join(folder(experiment, first), runfiles.ERROR)
    assert status.states_of(experiment)[first.run_hash].error.endswith("boom\n")
    assert first.run_hash in index_of(experiment)
    time.sleep(0.02)  # a change time later than the file's (a coarse clock ticks every few ms)
    with open(path, "r+") as handle:
        handle.write("Traceback\nValueError: bang\n")
    os.utime(path, ns=(LONG_AGO, LONG_AGO))
    os.utime(folder(experiment, first), ns=(LONG_AGO, LONG_AGO))
    assert status.states_of(experiment)[first.run_hash].error.endswith("bang\n")


def test_a_changed_folder_is_read_again(experiment):
    first = experiment.runs[0]
    finish(experiment, first, 0.25)
    assert status.states_of(experiment)[first.run_hash].result["test_loss"] == 0.25
    finish(experiment, first, 0.5, settled=False)  # rerun: new files renamed into place, a new folder time
    assert status.states_of(experiment)[first.run_hash].result["test_loss"] == 0.5
    os.remove(os.path.join(folder(experiment, first), runfiles.LOSSES))  # a file removed: no longer done
    assert statuses(experiment)[0] == "pending"


def test_a_job_taking_the_lock_of_an_indexed_run_makes_it_running(experiment):
    first = experiment.runs[0]
    finish(experiment, first, 0.25)
    assert statuses(experiment)[0] == "done" and first.run_hash in index_of(experiment)
    lock = job.hold_lock(folder(experiment, first))  # retrained by hand, say: its result.json is still there
    assert statuses(experiment)[0] == "running"
    lock.close()  # the job was killed before writing anything: its old result stands
    assert statuses(experiment)[0] == "done"


def test_a_damaged_index_is_rebuilt(experiment):
    first = experiment.runs[0]
    finish(experiment, first, 0.25)
    with open(os.path.join(experiment.process.run_files_path, status.INDEX), "wb") as handle:
        handle.write(b"\x00garbage")
    assert statuses(experiment) == ["done", "pending", "pending", "pending"]
    assert first.run_hash in index_of(experiment)


def test_entries_of_another_experiment_sharing_the_run_files_path_are_kept(experiment, tmp_path):
    first = experiment.runs[0]
    finish(experiment, first, 0.25)
    statuses(experiment)
    index = index_of(experiment)
    index["0123456789abcdef"] = [LONG_AGO, "done", [0.1, 0.1, 1.0, False, 1], None]
    status._save_index(os.path.join(experiment.process.run_files_path, status.INDEX), index)
    finish(experiment, experiment.runs[1], 0.5)
    statuses(experiment)
    assert {"0123456789abcdef", first.run_hash, experiment.runs[1].run_hash} <= set(index_of(experiment))


def test_a_done_run_without_some_values_shows_nan(experiment):
    first = experiment.runs[0]
    finish(experiment, first, None)
    assert "[1] train_loss=5.000E-01\ttest_loss=nan\tduration=1.0 s" in render(
        status.listed(experiment), status.states_of(experiment))


def listed(experiment):
    return [(run.run_id, run.run_hash) for run in experiment.runs]


def test_the_runs_listed_are_kept_while_the_ini_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = Experiment(tmp_path / "exp", small_settings())
    experiment = load_experiment(str(exp.ini))
    finish(experiment, experiment.runs[0], 0.25)  # the run files path exists
    first = status.listing(str(exp.ini))  # expanded, then kept
    kept = os.path.join(experiment.process.run_files_path, status.LISTING)
    assert os.path.exists(kept)
    again = status.listing(str(exp.ini))  # from the kept copy
    assert listed(first) == listed(again) == listed(experiment)
    assert first.runs == again.runs == status.listed(experiment).runs  # the labels too
    assert first.run_files_path == again.run_files_path == experiment.process.run_files_path
    assert render(again, status.states_in(again.run_files_path, again.runs)) == render(
        status.listed(experiment), status.states_of(experiment))

    exp.edit("MONITOR", "multiplicity", "3")  # another ini text: expanded again
    assert listed(status.listing(str(exp.ini))) == listed(load_experiment(str(exp.ini)))
    assert len(status.listing(str(exp.ini)).runs) == 3 * len(first.runs)

    with open(kept, "wb") as handle:  # damaged: expanded again, and kept anew
        handle.write(b"\x00garbage")
    assert listed(status.listing(str(exp.ini))) == listed(load_experiment(str(exp.ini)))
    assert len(status.listing(str(exp.ini)).runs) == 3 * len(first.runs)

    exp.edit("PROCESS", "lr", "fast")  # a broken ini: load_experiment's one-line error, whatever is kept
    with pytest.raises(MosaicError, match=r"\[PROCESS\] lr"):
        status.listing(str(exp.ini))
