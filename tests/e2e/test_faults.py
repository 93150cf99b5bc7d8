"""Faults: kill -9 of the whole experiment at random moments (during training, a checkpoint write and
the database build) with a resume after each; one run's job killed alone; a full disk during the
database build. Real mosaic_run / Snakemake runs in temporary folders.

MOSAIC_FAULT_MOMENTS sets the number of kills (3 by default; the full suite in docs/development.md uses 10).
"""

import contextlib
import glob
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from contextlib import closing

import pytest

from tests.fakes import BIN, Experiment, command_env, small_settings, wait_until

pytestmark = pytest.mark.slow

MOMENTS = int(os.environ.get("MOSAIC_FAULT_MOMENTS", "3"))
# What differs between two folders or two trainings of the same runs: times (runs.duration_s,
# losses.seconds, meta's built_at), paths (meta's ini_path and run_files_path), run_stamps (the files'
# times and inodes). Every other table and column, mosaic_compare's included, must be the same.
VARYING_COLUMNS = {"runs": {"duration_s"}, "losses": {"seconds"}}
VARYING_META = ("built_at", "ini_path", "run_files_path", "plots")


def deterministic_rows(exp):
    """{table: rows} of exp's database, in a fixed order, less what VARYING_COLUMNS and VARYING_META name."""
    rows = {}
    with closing(sqlite3.connect(exp.db)) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            if name == "run_stamps":
                continue
            columns = ", ".join(f'"{column}"' for _, column, *_ in db.execute(f'PRAGMA table_info("{name}")')
                                if column not in VARYING_COLUMNS.get(name, ()))
            where = f" WHERE name NOT IN {VARYING_META}" if name == "meta" else ""
            rows[name] = db.execute(f'SELECT {columns} FROM "{name}"{where} ORDER BY {columns}').fetchall()
    return rows


def assert_same_results(exp, clean):
    found, expected = deterministic_rows(exp), deterministic_rows(clean)
    assert sorted(found) == sorted(expected)
    for name in expected:
        assert found[name] == expected[name], name


def start(exp):
    """mosaic_run in its own session, as a terminal would start it."""
    return subprocess.Popen(
        [str(BIN / "mosaic_run"), "config.ini", "database.db"], cwd=exp.folder, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=command_env(),
    )


def processes_of(folder, session=None):
    """Pids working in `folder` or belonging to `session`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            in_session = session is not None and os.getsid(int(entry)) == session
            if in_session or os.readlink(f"/proc/{entry}/cwd") == str(folder):
                pids.append(int(entry))
        except OSError:
            pass
    return pids


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_experiment(process, folder, everything=False):
    """kill -9 of mosaic_run's process group (a closed terminal), or of every process of the
    experiment at once (a machine crash); then nothing of it may remain: Snakemake dies with
    mosaic_run, the jobs stop when their Snakemake is gone."""
    session = os.getsid(process.pid)
    if everything:
        signal_all(processes_of(folder, session), signal.SIGKILL)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    try:
        wait_until(lambda: not processes_of(folder, session), timeout=30)
    except AssertionError:
        left = processes_of(folder, session)
        commands = []
        for pid in left:
            with contextlib.suppress(OSError):
                environ = open(f"/proc/{pid}/environ").read().split("\0")
                watched = [v for v in environ if v.startswith("MOSAIC_SNAKEMAKE_PID=")]
                state = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[:3]
                commands.append((open(f"/proc/{pid}/cmdline").read().replace("\0", " "), watched, state))
        for watched in {ws[0].split("=")[1] for _, ws, _ in commands if ws}:
            with contextlib.suppress(OSError):
                commands.append(("watched", watched, open(f"/proc/{watched}/stat").read()))
        signal_all(left, signal.SIGKILL)
        raise AssertionError(f"orphan processes after kill -9: {commands}") from None


def freeze_when(process, folder, pattern, timeout):
    """Stop every process of the experiment as soon as a file matching `pattern` exists and it still
    exists once they are stopped: the experiment is frozen in the middle of writing it. False if
    the experiment ended or `timeout` passed first."""
    session = os.getsid(process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if glob.glob(pattern):
            pids = processes_of(folder, session)
            signal_all(pids, signal.SIGSTOP)
            if glob.glob(pattern):
                return True
            signal_all(pids, signal.SIGCONT)
        time.sleep(0.0005)
    return False


def wait_for(process, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not glob.glob(pattern):
        time.sleep(0.01)


def running(exp):
    """True when mosaic_status lists a run under Running."""
    return re.search(r"^Running\n\t\[", exp.command("mosaic_status").stdout, flags=re.M) is not None


def test_kill_9_at_random_moments_then_resume_equals_a_clean_run(tmp_path):
    settings = small_settings(epochs=150, processes=2)
    settings[("PROCESS", "checkpoint_every")] = 5
    exp = Experiment(tmp_path / "crashed", settings)
    moments = ["random", "checkpoint"] * MOMENTS
    moments = moments[: MOMENTS - 1] + ["database"]
    landed, interrupted = [], 0
    for moment in moments:
        process = start(exp)
        if moment == "random":
            time.sleep(random.uniform(0.5, 5))
            landed.append(moment)
        elif moment == "checkpoint":  # a second checkpoint's write: the run is left with its first one
            wait_for(process, str(exp.runs_dir() / "*" / "checkpoint.pt"), 120)
            if freeze_when(process, exp.folder, str(exp.runs_dir() / "*" / "checkpoint.pt.tmp*"), 120):
                landed.append(moment)
        elif freeze_when(process, exp.folder, str(exp.runs_dir() / ".database-cache" / "*.db.tmp*"), 600):
            landed.append(moment)
        assert process.poll() is None, f"the experiment ended before the kill at moment {len(landed)}"
        kill_experiment(process, exp.folder, everything=moment != "random")  # frozen ones: all at once
        assert not running(exp)  # killed runs are not shown as running
        # runs left half-trained: the next start must continue them (their final losses prove how)
        interrupted += sum(not (p.parent / "result.json").exists() for p in exp.runs_dir().glob("*/checkpoint.pt"))
        if moment == "database":
            assert not exp.db.exists()  # killed in its first build: no half-built database in place
    assert landed == moments

    assert interrupted > 0  # the kills interrupted runs after a checkpoint, which later starts resumed
    exp.run()  # the last resume
    assert not list(exp.runs_dir().glob("*/*.tmp*"))  # leftovers of interrupted writes are cleaned
    assert not list(exp.runs_dir().glob(".database-cache/*.tmp*"))

    clean = Experiment(tmp_path / "clean", settings)
    clean.run()
    assert_same_results(exp, clean)


def test_one_runs_job_killed_alone_is_redone_from_its_checkpoint(tmp_path):
    settings = small_settings(epochs=60, processes=1)
    settings[("PROCESS", "checkpoint_every")] = 5
    exp = Experiment(tmp_path / "exp", settings)
    process = start(exp)

    def first_job_past_a_checkpoint():
        for path in exp.runs_dir().glob("*/checkpoint.pt"):
            for pid in processes_of(exp.folder):
                try:
                    command = open(f"/proc/{pid}/cmdline").read()
                except OSError:
                    continue
                training = "mosaic.run.job" in command and "pipefail" not in command  # not its shell
                if training and path.parent.name in command:
                    return pid, path.parent.name
        return None

    pid, run_hash = wait_until(first_job_past_a_checkpoint, timeout=300, interval=0.05)
    os.kill(pid, signal.SIGKILL)
    process.wait(timeout=600)
    assert not (exp.runs_dir() / run_hash / "result.json").exists()
    status = exp.command("mosaic_status").stdout
    assert len(re.findall(r"^\t\[\d+\] train_loss=", status, flags=re.M)) == 3, status  # the others went on
    assert not processes_of(exp.folder)

    out = exp.run().stdout
    assert "4 runs, 1 to train" in out
    assert "continuing from the checkpoint" in (exp.runs_dir() / run_hash / "train.log").read_text()
    clean = Experiment(tmp_path / "clean", settings)
    clean.run()
    assert_same_results(exp, clean)


def mount_tmpfs(folder, size):
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


@pytest.mark.parametrize("limit", ["tmpfs", "file_size"])
def test_full_disk_during_the_database_build_keeps_the_previous_database(tmp_path, limit):
    exp = Experiment(tmp_path / "exp", small_settings())
    exp.run()
    small = tmp_path / "small"
    if limit == "tmpfs" and not mount_tmpfs(small, "512k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    small.mkdir(exist_ok=True)
    try:
        db = small / "copy.db"
        exp.command("mosaic_savedb", db, check=0)
        before = db.read_bytes()
        preexec = None
        if limit == "tmpfs":  # leave less room than a database needs
            free = shutil.disk_usage(small).free
            (small / "filler").write_bytes(b"\0" * (free - len(before) // 2))
        else:
            def preexec():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, len(before) // 2))
        done = subprocess.run([str(BIN / "mosaic_savedb"), str(db)], cwd=exp.folder, capture_output=True, text=True,
                              env=command_env(), preexec_fn=preexec, timeout=300)
        assert done.returncode != 0
        message = done.stderr.strip().splitlines()
        assert len(message) == 1 and str(db) in message[0] and "previous one is unchanged" in message[0], done.stderr
        assert db.read_bytes() == before
        with closing(sqlite3.connect(db)) as connection:  # closed before the unmount
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert sorted(p.name for p in small.iterdir()) == sorted(["copy.db"] + (["filler"] if limit == "tmpfs" else []))
    finally:
        if limit == "tmpfs":
            assert subprocess.run(["umount", str(small)]).returncode == 0


CALLS = int(os.environ.get("MOSAIC_LOAD_CALLS", "100"))


def test_savedb_and_status_calls_while_an_experiment_runs(tmp_path):
    """CALLS mosaic_savedb and mosaic_status calls (half each, two at a time) while the experiment
    trains: every call succeeds, every copy is a sound database, the experiment ends as usual."""
    import threading

    exp = Experiment(tmp_path / "exp", small_settings(epochs=300, processes=1))
    process = start(exp)
    wait_until(lambda: running(exp), timeout=300)
    failures, overlapped = [], []
    copy = exp.folder / "copy.db"

    def calls(name, *args):
        for _ in range(CALLS // 2):
            done = exp.command(name, *args)
            overlapped.append(process.poll() is None)
            if done.returncode != 0:
                failures.append((name, done.stdout[-500:], done.stderr[-500:]))
            elif name == "mosaic_savedb":
                with closing(sqlite3.connect(copy)) as connection:
                    if connection.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                        failures.append((name, "corrupted copy"))
                    if connection.execute("SELECT COUNT(*) FROM runs").fetchall() != [(4,)]:
                        failures.append((name, "runs missing from the copy"))
            elif not done.stdout.startswith("4 runs: "):
                failures.append((name, done.stdout[-500:]))

    threads = [threading.Thread(target=calls, args=("mosaic_savedb", copy)),
               threading.Thread(target=calls, args=("mosaic_status",))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sum(overlapped) >= len(overlapped) // 2, "the experiment ended before most calls"
    assert process.wait(timeout=1200) == 0
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]
    assert not list(exp.folder.glob(".mosaic-db-*"))
