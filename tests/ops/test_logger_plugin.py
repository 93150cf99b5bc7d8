"""The Snakemake logger plugin behind mosaic_run's progress display (mosaic/ops/snakemake_plugins)."""

import json
import logging
import os
import sys
import threading

import pytest

from mosaic.ops.snakemake_plugins import FOLDER

sys.path.insert(0, FOLDER)
from snakemake_logger_plugin_mosaic import LogHandler, LogHandlerSettings  # noqa: E402


@pytest.fixture
def handler(tmp_path, monkeypatch):
    monkeypatch.delenv("MOSAIC_EVENTS_FD", raising=False)
    monkeypatch.setenv("MOSAIC_EVENTS_FILE", str(tmp_path / "events.jsonl"))
    made = LogHandler(None, LogHandlerSettings())
    yield made
    if made.fd is not None:
        os.close(made.fd)


def record(**fields):
    made = logging.LogRecord("snakemake", logging.INFO, __file__, 1, "message", (), None)
    made.__dict__.update(fields)
    return made


def test_job_events_are_written_one_json_line_each(handler, tmp_path):
    handler.emit(record(event="job_info", jobid=3, rule_name="train", wildcards={"run": "ab"}))
    handler.emit(record(event="shellcmd", cmd="ignored"))
    handler.emit(record(event="progress", done=1, total=2))
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"event": "job_info", "jobid": 3, "rule_name": "train", "wildcards": {"run": "ab"}},
        {"event": "progress", "done": 1, "total": 2},
    ]


def test_closing_cancels_the_schedulers_pending_timers(handler):
    # Snakemake's scheduler leaves threading.Timer threads (not daemons) that the process waits for at exit:
    # closing the handler at the end of the workflow cancels them, without running their action
    fired = []
    timer = threading.Timer(60, fired.append, args=[True])
    timer.start()
    try:
        handler.close()
        timer.join(timeout=10)
        assert not timer.is_alive() and not fired
    finally:
        timer.cancel()
