"""Commands that change run files take the folder's lock first; outputs never overwrite inputs; any
path works; the progress display on a terminal and in plain mode."""

import json
import os
import pty
import re
import select
import subprocess
import time

import pytest

from mosaic import runfiles
from mosaic.experiment import load_experiment
from tests.fakes import BIN, ROOT, Experiment, command_env, small_settings


def hold_folder_lock(folder):
    """What a running mosaic_run holds: the folder's session lock."""
    (folder / ".mosaic").mkdir(exist_ok=True)
    return runfiles.try_lock(str(folder / ".mosaic" / "run.lock"))


def test_rerun_touches_no_run_folder_while_another_command_holds_the_folder(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    run = load_experiment(exp.ini).runs[0]
    folder = exp.folder / ".runs" / run.run_hash
    folder.mkdir(parents=True)
    (folder / runfiles.CHECKPOINT).write_bytes(b"an in-progress checkpoint")
    lock = hold_folder_lock(exp.folder)
    try:
        refused = exp.command("mosaic_rerun", "config.ini", "database.db", "-id", "1", "-epochs", "2", check=3)
    finally:
        lock.close()
    assert "another mosaic_run is running" in refused.stderr
    assert (folder / runfiles.CHECKPOINT).read_bytes() == b"an in-progress checkpoint"
    assert not (folder / runfiles.CONTINUE).exists()


def test_outputs_that_are_inputs_are_refused(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    ini_text = exp.ini.read_text()
    for command in (("mosaic_savedb", "--ini", "config.ini", "config.ini"),
                    ("mosaic_generate", "config.ini", "config.ini"),
                    ("mosaic_run", "config.ini", "config.ini"),
                    ("mosaic_run", "config.ini", "database.db", "--plots", "config.ini"),
                    ("mosaic_rekey", "config.ini", "./config.ini")):
        refused = exp.command(*command, check=2)
        assert "config.ini is also an input" in refused.stderr and "Traceback" not in refused.stderr, command
        assert exp.ini.read_text() == ini_text, command


def test_generate_into_a_missing_folder_is_one_line(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    failed = exp.command("mosaic_generate", "config.ini", "/nonexistent/x.json", check=2)
    assert failed.stderr.strip().count("\n") == 0 and "Traceback" not in failed.stderr
    assert "/nonexistent/x.json: cannot write" in failed.stderr
    exp.command("mosaic_generate", "config.ini", "runs.json", check=0)
    assert len(json.loads((exp.folder / "runs.json").read_text())) == 4


def test_braces_in_an_output_path_are_named(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    refused = exp.command("mosaic_run", "config.ini", "db{x}.db", check=2)
    assert "Snakemake reads '{' in a file path as a wildcard" in refused.stderr


@pytest.mark.slow
def test_paths_that_yaml_would_misread_work(tmp_path):
    """`--config ini=PATH` would read these as YAML (a mapping, a comment); a config file does not."""
    folder = tmp_path / "data" / "x: y" / "a #b"
    exp = Experiment(folder, small_settings(widths="2"))
    done = exp.command("mosaic_run", "config.ini", "my #db: 1.db", "-n", check=0)
    assert re.search(r"^train\s+2$", done.stdout, re.M), done.stdout
    state = json.loads((folder / ".mosaic" / "experiment.json").read_text())
    assert state["ini"] == str(folder / "config.ini") and state["database"] == str(folder / "my #db: 1.db")


@pytest.mark.slow
def test_rekey_keeps_the_profile_the_user_chose(tmp_path):
    exp = Experiment(tmp_path, small_settings(widths="2"))
    profile = tmp_path / "myprofile"
    profile.mkdir()
    (profile / "config.yaml").write_text("printshellcmds: true\n")
    exp.run("--profile", str(profile), check=0)
    exp.command("mosaic_rekey", "config.ini", "database.db", check=0)
    state = json.loads((exp.folder / ".mosaic" / "experiment.json").read_text())
    assert state["profile"] == str(profile)


@pytest.mark.slow
def test_unlock_leaves_a_live_plain_snakemake_alone(tmp_path):
    exp = Experiment(tmp_path, small_settings(epochs=30, processes=1))
    plain = subprocess.Popen(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--cores", "1",
         "--config", "ini=config.ini", "database=plain.db", "plots=plain_plots"],
        cwd=exp.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=command_env(),
    )
    try:
        locks = exp.folder / ".snakemake" / "locks"
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and os.listdir(locks)):
            assert time.monotonic() < deadline and plain.poll() is None, "the plain snakemake did not lock"
            time.sleep(0.2)
        refused = exp.run(check=3)
        assert f"a snakemake process (pid {plain.pid}) is working in this folder" in refused.stderr
        assert os.listdir(locks), "the live snakemake's lock was removed"
        assert plain.wait(timeout=600) == 0
    finally:
        if plain.poll() is None:
            plain.kill()


def read_terminal(master, process, timeout=600):
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other side is closed
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    return output.decode(errors="replace")


@pytest.mark.slow
def test_progress_on_a_terminal_and_in_plain_lines(tmp_path):
    exp = Experiment(tmp_path / "tty", small_settings(epochs=3))
    master, slave = pty.openpty()
    process = subprocess.Popen([str(BIN / "mosaic_run"), "config.ini", "database.db"], cwd=exp.folder,
                               stdin=slave, stdout=slave, stderr=slave, env=command_env())
    os.close(slave)
    shown = read_terminal(master, process)
    os.close(master)
    assert process.returncode == 0, shown
    assert "\x1b[" in shown  # redrawn in place
    assert re.search(r"runs: \d done, \d running, 0 failed, \d pending; ETA", shown), shown
    assert "runs: 4 done, 0 running, 0 failed, 0 pending" in shown
    assert all(f"[run finished] {run_id}" in shown for run_id in range(1, 5))
    assert " ---> launch" not in shown  # the block shows the running runs instead

    plain = Experiment(tmp_path / "plain", small_settings(epochs=3))
    out = plain.run(check=0).stdout
    assert "\x1b[" not in out
    launches = re.findall(r"^ ---> launch (\d) (\d)/4$", out, re.M)
    assert sorted(run_id for run_id, _ in launches) == ["1", "2", "3", "4"], out
    assert sorted(index for _, index in launches) == ["1", "2", "3", "4"], out
    assert len(re.findall(r"^ \[run finished\] \d$", out, re.M)) == 4, out


def test_rerun_leaves_a_run_being_trained_alone(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    runs = load_experiment(exp.ini).runs
    folders = [exp.folder / ".runs" / run.run_hash for run in runs[:2]]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / runfiles.CHECKPOINT).write_bytes(b"checkpoint")
    training = runfiles.try_lock(str(folders[1] / runfiles.LOCK))  # run 2 is being trained
    try:
        refused = exp.command("mosaic_rerun", "config.ini", "database.db", "-id", "1-2", "-epochs", "2", check=3)
    finally:
        training.close()
    assert "run 2 is being trained; nothing was changed" in refused.stderr
    assert all((folder / runfiles.CHECKPOINT).exists() for folder in folders)
    assert not any((folder / runfiles.CONTINUE).exists() for folder in folders)


@pytest.mark.slow
def test_a_stale_snakemake_lock_is_cleared(tmp_path):
    """What a kill -9 of Snakemake leaves; no snakemake lives in the folder, so mosaic_run unlocks it."""
    exp = Experiment(tmp_path, small_settings(widths="2"))
    locks = exp.folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(str(exp.folder / "database.db") + "\n")
    exp.run("-n", check=0)
    assert not os.listdir(locks)
