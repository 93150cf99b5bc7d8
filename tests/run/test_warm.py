"""Warm starts (mosaic/run/warm.py, mosaic/run/server.py): a job hands its run to a fork server, or trains
in-process where none can be used. Real jobs, a real server, real signals."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from mosaic import runfiles
from mosaic.run import warm
from mosaic.run.job import alive
from tests.fakes import Warm, wait_for


@pytest.fixture
def warm_experiment(tmp_path):
    setup = Warm(tmp_path)
    yield setup
    setup.stop_servers()


@pytest.fixture
def long_experiment(tmp_path):
    setup = Warm(tmp_path, epochs=5000)
    yield setup
    setup.stop_servers()


def losses(folder):
    return [row[:3] for row in runfiles.read_losses(str(folder / runfiles.LOSSES))]


def test_jobs_train_in_forked_children_of_one_server_with_the_same_results_as_in_process(warm_experiment):
    setup = warm_experiment
    rc, out, err = setup.job(0)
    assert rc == 0, err
    rc, out, err = setup.job(1)
    assert rc == 0, err
    assert "no warm start" not in err
    assert "epoch 1/1" in out  # the run's output reaches the job's stdout
    assert len(setup.server_pids()) == 1  # the second job found the first one's server
    assert setup.run_pid(0) and setup.run_pid(1) and setup.run_pid(0) != setup.run_pid(1)
    assert json.loads((setup.folder(1) / runfiles.RESULT).read_text())["status"] == "done"

    warm_losses = losses(setup.folder(1))
    (setup.folder(1) / runfiles.RESULT).unlink()  # train it again, in-process
    rc, _, err = setup.job(1, **{warm.ENABLE_ENV: "0"})
    assert rc == 0, err
    assert losses(setup.folder(1)) == warm_losses  # seeds are set in the child, as in-process


def test_a_failing_job_gives_its_exit_status_and_error_through_the_server(warm_experiment):
    setup = warm_experiment
    process = subprocess.run(
        [sys.executable, "-m", "mosaic.run.job", "config.ini", "0123456789abcdef"], cwd=setup.experiment.folder,
        env=setup.env, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 1
    assert "0123456789abcdef" in process.stderr
    assert re.search(r"run \d+: config.ini 0123456789abcdef", setup.log())


def test_disabled_by_the_environment_trains_in_process(warm_experiment):
    setup = warm_experiment
    rc, _, err = setup.job(0, **{warm.ENABLE_ENV: "0"})
    assert rc == 0, err
    assert not setup.dir.exists()
    assert (setup.folder(0) / runfiles.RESULT).exists()


def test_a_folder_others_may_enter_is_not_used_and_the_job_trains_in_process(warm_experiment):
    setup = warm_experiment
    setup.dir.mkdir(mode=0o755)
    setup.dir.chmod(0o755)
    rc, _, err = setup.job(0)
    assert rc == 0, err
    assert "no warm start" in err and "0700" in err
    assert not list(setup.dir.iterdir())
    assert (setup.folder(0) / runfiles.RESULT).exists()


def test_a_server_that_cannot_start_falls_back_to_in_process(warm_experiment, tmp_path):
    setup = warm_experiment
    broken = tmp_path / "broken"
    broken.mkdir()  # the server's interpreter dies at start-up; the job's does not
    (broken / "sitecustomize.py").write_text("import sys\nif 'mosaic.run.server' in sys.orig_argv:\n"
                                             "    raise SystemExit(7)\n")
    env = {"PYTHONPATH": f"{broken}{os.pathsep}{setup.env.get('PYTHONPATH', '')}"}
    rc, _, err = setup.job(0, **env)
    assert rc == 0, err
    assert "no warm start" in err and "server exited with status" in err
    assert (setup.folder(0) / runfiles.RESULT).exists()


@pytest.mark.slow
def test_kill_9_of_the_run_fails_the_job_and_the_server_goes_on(long_experiment):
    setup = long_experiment
    job = setup.start_job(0)
    pid = wait_for(lambda: setup.run_pid(0), what="the run to start")
    setup.wait_first_epoch()
    os.kill(pid, signal.SIGKILL)
    rc, _, err = setup.finish(job, timeout=60)
    assert rc != 0
    assert "without an exit status" in err
    (server,) = setup.server_pids()
    assert alive(server)
    lock = runfiles.try_lock(str(setup.folder(0) / runfiles.LOCK))  # the kernel dropped the run's lock
    assert lock is not None


@pytest.mark.slow
def test_kill_9_of_the_job_ends_its_run(long_experiment):
    setup = long_experiment
    job = setup.start_job(0)
    pid = wait_for(lambda: setup.run_pid(0), what="the run to start")
    setup.wait_first_epoch()
    job.kill()
    job.wait(timeout=30)
    wait_for(lambda: not alive(pid), timeout=30, what="the orphaned run to end")
    assert not (setup.folder(0) / runfiles.RESULT).exists()


@pytest.mark.slow
def test_sigterm_of_the_job_is_relayed_to_its_run(long_experiment):
    setup = long_experiment
    job = setup.start_job(0)
    pid = wait_for(lambda: setup.run_pid(0), what="the run to start")
    setup.wait_first_epoch()
    job.terminate()
    job.wait(timeout=30)
    assert job.returncode == -signal.SIGTERM
    wait_for(lambda: not alive(pid), timeout=30, what="the run to end")


@pytest.mark.slow
def test_kill_9_of_the_server_loses_no_run_and_the_next_job_starts_a_new_one(tmp_path):
    setup = Warm(tmp_path, epochs=40)
    try:
        job = setup.start_job(0)
        wait_for(lambda: setup.run_pid(0), what="the run to start")
        (server,) = setup.server_pids()
        os.kill(server, signal.SIGKILL)
        rc, _, err = setup.finish(job)
        assert rc == 0, err
        assert json.loads((setup.folder(0) / runfiles.RESULT).read_text())["epochs"] == 40
        rc, _, err = setup.job(1)  # the dead server's socket is stale: a new server starts
        assert rc == 0, err
        assert "no warm start" not in err
        assert len(setup.server_pids()) == 2
    finally:
        setup.stop_servers()


@pytest.mark.slow
def test_the_server_exits_when_idle_and_removes_its_socket(tmp_path):
    setup = Warm(tmp_path, **{warm.IDLE_ENV: "1"})
    rc, _, err = setup.job(0)
    assert rc == 0, err
    (server,) = setup.server_pids()
    wait_for(lambda: not alive(server), timeout=30, what="the idle server to exit")
    assert not list(setup.dir.glob("*.sock"))


def test_the_server_refuses_nothing_but_bad_requests(warm_experiment):
    """A connection that sends garbage is dropped; the server keeps serving."""
    setup = warm_experiment
    rc, _, err = setup.job(0)
    assert rc == 0, err
    (path,) = setup.dir.glob("*.sock")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(b"\x00\x00\x00\x02{]")
        assert sock.recv(100) == b""
    rc, _, err = setup.job(1)
    assert rc == 0, err
    assert len(setup.server_pids()) == 1


def test_one_server_per_environment_whatever_the_workflow_adds_to_the_path(monkeypatch, tmp_path):
    import mosaic

    package_parent = os.path.dirname(os.path.dirname(mosaic.__file__))
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    key = warm.server_key()
    monkeypatch.setenv("PYTHONPATH", f"{package_parent}{os.pathsep}/somewhere")  # as the workflow exports it
    assert warm.server_key() == key
    from mosaic.ops.snakemake_plugins import FOLDER

    # and as mosaic_run's Snakemake passes it on (its logger plugin): the jobs reach the server that
    # mosaic_run prestarted, not a second one importing torch while the first runs wait
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([package_parent, FOLDER, "/somewhere"]))
    assert warm.server_key() == key
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert warm.server_key() != key
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "another-venv"))  # same interpreter, other venv
    assert warm.server_key() != key


def test_prestart_starts_the_server_that_jobs_then_use(warm_experiment, monkeypatch):
    setup = warm_experiment
    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    warm.prestart()
    wait_for(lambda: list(setup.dir.glob("*.sock")) and setup.server_pids(), what="the server")
    rc, _, err = setup.job(0)
    assert rc == 0, err
    assert len(setup.server_pids()) == 1
    assert setup.run_pid(0)
