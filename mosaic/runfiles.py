"""The files of one run under run_files_path, and reading a run's state from them.

Layout, per run (folder named by the run's content hash):
    <run_files_path>/<hash>/spec.json     what the run computes, and its epochs: job input (mosaic/experiment/spec.py)
    <run_files_path>/<hash>/context.json  run id, section names, [MONITOR]...: read by the job, not tracked
    <run_files_path>/<hash>/model.pt      final checkpoint (state dicts, optimizer, epoch): job output
    <run_files_path>/<hash>/losses.tsv    epoch, train_loss, test_loss, seconds (and val_loss for a run with a
                                          validation part): job output
    <run_files_path>/<hash>/result.json   metadata (pipeline, params, seed, nb_params, ...): job output
    <run_files_path>/<hash>/train.log     the job's log: one line per epoch, tracebacks
    <run_files_path>/<hash>/error.txt     traceback of the last failed attempt (removed when it succeeds)
    <run_files_path>/<hash>/checkpoint.pt intermediate checkpoint, written every `checkpoint_every` epochs
    <run_files_path>/<hash>/checkpoint_models_<epoch>/  what models that save themselves (save_model) saved
                                          for that checkpoint (renamed into place whole, before it)
    <run_files_path>/<hash>/running.lock  held (flock) by the training process while it runs
    <run_files_path>/<hash>/continue.json request to continue training for more epochs (mosaic_rerun)
    <run_files_path>/<hash>/metrics.tsv   epoch, name, value of the test-set metrics (when the run has any),
                                          and of the validation metrics, named val_<metric>
No torch import here: status and the database read these files.
"""

import contextlib
import fcntl
import itertools
import json
import math
import os
import re
import shutil
from dataclasses import dataclass

SPEC = "spec.json"
CONTEXT = "context.json"
MODEL = "model.pt"
LOSSES = "losses.tsv"
RESULT = "result.json"
LOG = "train.log"
ERROR = "error.txt"
CHECKPOINT = "checkpoint.pt"
LOCK = "running.lock"
CONTINUE = "continue.json"
METRICS = "metrics.tsv"
USER_MODELS_PREFIX = "checkpoint_models_"  # + <epoch>: what models that save themselves saved

# the folder an experiment is launched from keeps its session state in .mosaic/ (mosaic/ops/session.py)
STATE_DIR = ".mosaic"
PAUSE_FILE = os.path.join(STATE_DIR, "pause")  # mosaic_pause: jobs start no new run while it exists

LOSS_HEADER = "epoch\ttrain_loss\ttest_loss\tseconds"
VAL_LOSS_HEADER = LOSS_HEADER + "\tval_loss"  # the loss file of a run with a validation part


def run_dir(run_files_path, run_hash):
    return os.path.join(run_files_path, run_hash)


def run_file(run_files_path, run_hash, name):
    return os.path.join(run_files_path, run_hash, name)


@contextlib.contextmanager
def replacing(path):
    """A temporary path next to `path`: what the block writes there replaces `path` when the block
    ends (synced to disk first), so that readers see the old or the new file, never a half-written
    one; if the block raises, the temporary file is removed and `path` is untouched.

    The temporary file is created empty with mode 0666 less the user's umask, as any output is (SQLite
    alone would create 0644, a plain temporary file 0600), so that a team sharing a folder can read it.
    """
    tmp = f"{path}.tmp{os.getpid()}-{os.urandom(3).hex()}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


FICLONE = getattr(fcntl, "FICLONE", 0x40049409)  # Linux's reflink ioctl (linux/fs.h); fcntl has it from 3.12


def copy_file(source, target):
    """Make `target` (created, or an existing file truncated) a copy of `source` that shares nothing
    with it: a reflink (blocks shared until either file is written, so instant and free) where the
    file system makes one (Btrfs, XFS...), else a plain copy. Never a hard link: a hard link is the same
    file, and writing either would write both (the rule for every file Mosaic hands to its user)."""
    if os.uname().sysname == "Linux":
        with open(source, "rb") as src, open(target, "wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                return
            except OSError:  # another file system, or across file systems: copied below
                pass
    shutil.copyfile(source, target)


def file_stamp(path):
    """What tells that a file changed, without reading it: (mtime_ns, ctime_ns, size, inode), None when
    it is absent. A file renamed into place has a new inode; one written in place (cp, an editor) a new
    size or times, and always a new change time, which no tool sets back (cp -p and touch -r set the
    modification time only)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino


def write_atomic(path, text):
    """Write a text file so that readers see the old or the new content, never a half-written one."""
    with replacing(path) as tmp, open(tmp, "w") as handle:
        handle.write(text)


def write_json(path, data):
    write_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def format_losses(rows):
    """The loss file of `rows` (epoch, train_loss, test_loss, seconds), each with its val_loss last for a run
    with a validation part (then the file has a fifth column)."""
    if rows and len(rows[0]) == 5:
        lines = [f"{e}\t{t!r}\t{v!r}\t{s:.6f}\t{val!r}" for e, t, v, s, val in rows]
        return "\n".join([VAL_LOSS_HEADER] + lines) + "\n"
    return "\n".join([LOSS_HEADER] + [f"{e}\t{t!r}\t{v!r}\t{s:.6f}" for e, t, v, s in rows]) + "\n"


def read_loss_columns(path):
    """The columns (epochs, train_losses, test_losses, seconds), and val_losses when the file has them (its
    header says so), of a loss file; nan/inf kept as floats. ValueError when a line does not hold exactly
    an integer epoch and the header's numbers, tab-separated."""
    with open(path) as handle:
        width = 5 if handle.readline().rstrip("\n") == VAL_LOSS_HEADER else 4
        text = handle.read()
    fields = text.split()
    lines = text.rstrip("\n").split("\n") if fields else []
    if set(map(str.count, lines, itertools.repeat("\t"))) - {width - 1} or len(fields) != width * len(lines):
        lines = [line for line in lines if line.strip()]  # blank lines are allowed; anything else is not
        for line in lines:
            if line.count("\t") != width - 1 or len(line.split()) != width:
                names = "epoch, train_loss, test_loss, seconds" + (", val_loss" if width == 5 else "")
                raise ValueError(f"{path}: not a loss line ({names}): {line!r}")
    try:
        return (list(map(int, fields[0::width])),
                *(list(map(float, fields[k::width])) for k in range(1, width)))
    except ValueError as error:  # an epoch that is not an integer, a loss that is not a number
        raise ValueError(f"{path}: {error}") from None


# Kept beside read_loss_columns (what the database reads): the benchmarks (bench_step.py) and the tests read
# a run's losses row by row.
def read_losses(path):
    """Rows (epoch, train_loss, test_loss, seconds[, val_loss]) of a loss file; nan/inf kept as floats."""
    return list(zip(*read_loss_columns(path)))


def format_metrics(rows):
    """The metrics file: one line (epoch, name, value) per epoch and metric."""
    return "epoch\tname\tvalue\n" + "".join(f"{e}\t{name}\t{value!r}\n" for e, name, value in rows)


def read_metrics(path):
    """Rows (epoch, name, value) of a metrics file; [] when the run has none."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as handle:
        next(handle, None)
        for line in handle:
            if line.strip():
                epoch, name, value = line.rstrip("\n").split("\t")
                rows.append((int(epoch), name, float(value)))
    return rows


_LEFTOVER = re.compile(r"^(checkpoint\.pt|model\.pt|losses\.tsv|metrics\.tsv|result\.json|error\.txt"
                       r"|" + USER_MODELS_PREFIX + r"\d+)\.(tmp|link)\d+(-[0-9a-f]+)?$")


def remove_leftovers(folder):
    """Remove the temporary files of writes interrupted by a kill (call it holding the run's lock)."""
    for entry in os.listdir(folder):
        if _LEFTOVER.match(entry):
            path = os.path.join(folder, entry)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def try_lock(path, mode=0o666):
    """An open file holding an exclusive flock on `path`, or None if a live process holds it.

    Keep the file open while the lock is needed; the kernel drops it when the process dies.
    `mode` (less the umask) applies when the file is created.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    handle = os.fdopen(fd, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def is_locked(path):
    """True when a live process holds the flock on `path` (a killed process holds none)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def progress(log_path):
    """(epoch, total) from the last 'epoch E/N' line of a run's log, or None."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            tail = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    for line in reversed(tail.splitlines()):
        if line.startswith("epoch "):
            done, _, total = line.split()[1].partition("/")
            if done.isdigit() and total.isdigit():
                return int(done), int(total)
    return None


@dataclass
class RunState:
    status: str  # done | error | running | pending
    result: dict | None = None
    error: str | None = None
    progress: tuple | None = None


def read_state(run_files_path, run_hash):
    """What the files say of one run. A run whose process died holds no lock: not 'running'."""
    folder = run_dir(run_files_path, run_hash)
    if is_locked(os.path.join(folder, LOCK)):
        return RunState("running", progress=progress(os.path.join(folder, LOG)))
    result_path = os.path.join(folder, RESULT)
    if os.path.exists(result_path) and os.path.exists(os.path.join(folder, LOSSES)):
        return RunState("done", result=read_json(result_path))
    error_path = os.path.join(folder, ERROR)
    if os.path.exists(error_path):
        with open(error_path) as handle:
            return RunState("error", error=handle.read())
    return RunState("pending")


def finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None


# ---------------------------------------------------------------- more names of the on-disk contract

SPEC_MANIFEST = ".mosaic-specs"  # in run_files_path: a digest of each run's spec and context as last written

# .mosaic/ of the launch folder (mosaic/ops): what mosaic_run keeps there
SESSION_FILE = os.path.join(STATE_DIR, "experiment.json")  # the experiment launched here (ops/session.py)
SESSION_LOCK = os.path.join(STATE_DIR, "run.lock")  # held by the one command that changes run files here
WORKFLOW_CONFIG = os.path.join(STATE_DIR, "config.yaml")  # the workflow's config, given to --configfile
RUN_LIST = os.path.join(STATE_DIR, "selected_runs.txt")  # the runs mosaic_rerun trains (config `also`)
LOGS_DIR = os.path.join(STATE_DIR, "logs")  # the workflow's logs (config `logs`, its schema's default)
SNAKEMAKE_LOG = os.path.join(LOGS_DIR, "snakemake.log")  # Snakemake's output under mosaic_run
