"""`snakemake --logger mosaic`: Snakemake's job events, one JSON object a line, for mosaic_run's
progress display (mosaic/ops/progress.py).

The events go to the file descriptor named by MOSAIC_EVENTS_FD (a pipe mosaic_run reads), else to
the file named by MOSAIC_EVENTS_FILE. Snakemake's own console output is left as it is.
"""

import json
import os
import threading
from dataclasses import dataclass

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

# event name -> the fields of the log record that mosaic_run reads
FIELDS = {
    "run_info": ("stats",),
    "job_info": ("jobid", "rule_name", "wildcards"),
    "job_started": ("jobs",),
    "job_finished": ("job_id",),
    "job_error": ("jobid",),
    "progress": ("done", "total"),
}


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    pass


class LogHandler(LogHandlerBase):
    def __post_init__(self):
        self.fd = None
        if os.environ.get("MOSAIC_EVENTS_FD"):
            self.fd = int(os.environ["MOSAIC_EVENTS_FD"])
        elif os.environ.get("MOSAIC_EVENTS_FILE"):
            self.fd = os.open(os.environ["MOSAIC_EVENTS_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)

    def emit(self, record):
        event = str(getattr(record, "event", ""))
        if self.fd is None or event not in FIELDS:
            return
        data = {"event": event}
        for name in FIELDS[event]:
            value = getattr(record, name, None)
            data[name] = dict(value) if name in ("stats", "wildcards") and value is not None else value
        try:
            # One write per event: below PIPE_BUF a pipe never interleaves writes.
            os.write(self.fd, (json.dumps(data, default=str) + "\n").encode())
        except OSError:  # the reader is gone (mosaic_run killed): Snakemake goes on
            self.fd = None

    def close(self):
        """At the end of the workflow (Snakemake closes its log handlers, then exits)."""
        # Snakemake's scheduler re-examines its queue by threading.Timer threads of one second, which are not
        # daemons: the process waited for the last one before exiting, up to a second after the workflow was
        # over. Nothing is scheduled any more, so they are cancelled.
        for thread in threading.enumerate():
            if isinstance(thread, threading.Timer):
                thread.cancel()
        super().close()

    @property
    def writes_to_stream(self):
        return False

    @property
    def writes_to_file(self):
        return False

    @property
    def has_filter(self):
        return False

    @property
    def has_formatter(self):
        return False

    @property
    def needs_rulegraph(self):
        return False
