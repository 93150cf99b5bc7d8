"""mosaic_run's progress (mosaic/ops/progress.py): the lines, counts and ETA from Snakemake's events, redrawn in
place on a terminal, plain lines elsewhere."""

import io
import os
import pty
import re
import select
import subprocess
import time

import pytest

from mosaic.experiment import load_experiment
from mosaic.ops import progress
from tests.fakes import BIN, Experiment, command_env, small_settings


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return load_experiment(Experiment(tmp_path_factory.mktemp("runner")).ini)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def events_for(experiment, runs):
    """Snakemake events, as the logger plugin writes them, for jobs 1.. training `runs`."""
    return {run.run_id: {"event": "job_info", "jobid": 10 + run.run_id, "rule_name": "train",
                         "wildcards": {"run": run.run_hash}} for run in runs}


def test_progress_lines_counts_and_eta(experiment):
    clock = Clock()
    runs = experiment.runs[:4]
    tracker = progress.Progress(experiment, runs, slots=2, clock=clock)
    info = events_for(experiment, runs)
    assert tracker.handle({"event": "run_info", "stats": {"train": 4, "database": 1, "total": 5}}) == []
    assert tracker.handle(info[1]) == [" ---> launch 1 1/4"]
    assert tracker.handle(info[2]) == [" ---> launch 2 2/4"]
    assert tracker.eta() is None and "ETA ?" in tracker.summary()
    clock.now = 10.0
    assert tracker.handle({"event": "job_finished", "job_id": 11}) == [" [run finished] 1"]
    assert tracker.handle({"event": "progress", "done": 1, "total": 5}) == [" 1 of 5 steps (20%) done"]
    # one run took 10 s; left: run 2 (10 s in, ~0 s), runs 3 and 4 (10 s each), on 2 slots: 10 s
    assert tracker.eta() == pytest.approx(10.0)
    assert tracker.summary() == "runs: 1 done, 1 running, 0 failed, 2 pending; ETA 10s"
    assert tracker.handle({"event": "job_error", "jobid": 12}) == [" [run failed] 2: unknown error"]
    assert tracker.summary().startswith("runs: 1 done, 0 running, 1 failed, 2 pending")
    assert tracker.handle({"event": "job_finished", "job_id": 99}) == []  # not a train job


def test_live_display_redraws_its_block_in_place(experiment):
    runs = experiment.runs[:2]
    tracker = progress.Progress(experiment, runs, slots=1, clock=Clock())
    stream = io.StringIO()
    display = progress.LiveDisplay(stream)
    info = events_for(experiment, runs)
    display.show(tracker.handle(info[1]), tracker)
    display.show(tracker.handle({"event": "job_finished", "job_id": 11}), tracker)
    text = stream.getvalue()
    assert "\x1b[" in text and "[run finished] 1" in text and "launch" not in text
    assert text.rstrip().endswith("runs: 1 done, 0 running, 0 failed, 1 pending; ETA 0s")


def test_plain_display_prints_the_lines(experiment):
    stream = io.StringIO()
    progress.PlainDisplay(stream).show([" ---> launch 1 1/4"], None)
    assert stream.getvalue() == " ---> launch 1 1/4\n"


def test_parse_events_keeps_the_incomplete_line():
    events, rest = progress.parse_events('{"event": "progress", "done": 1, "total": 2}\n{"event": "pro')
    assert events == [{"event": "progress", "done": 1, "total": 2}] and rest == '{"event": "pro'


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
