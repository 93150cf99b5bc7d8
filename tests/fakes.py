"""The tests' shared fakes and helpers (the benchmarks import them too): small experiments in temporary
folders, ini edits, running the real commands, checking PDF/PNG files."""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TUTORIAL_INI = (ROOT / "share" / "config.ini").read_text()


def set_key(ini_text, section, key, value):
    """The ini text with `key = value` set in [section] (added when absent)."""
    lines = ini_text.splitlines()
    start = lines.index(f"[{section}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(start + 1, end):
        if re.match(rf"{re.escape(key)}\s*=", lines[i]):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    lines.insert(end, f"{key} = {value}")
    return "\n".join(lines) + "\n"


class Experiment:
    """A folder holding the tutorial's classes and an ini, where the commands are run."""

    def __init__(self, folder, settings=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in ("dataset.py", "mlp.py"):
            shutil.copy(ROOT / "share" / name, self.folder / name)
        text = TUTORIAL_INI
        for (section, key), value in (settings or {}).items():
            text = set_key(text, section, key, value)
        self.ini = self.folder / "config.ini"
        self.ini.write_text(text)
        self.db = self.folder / "database.db"

    def edit(self, section, key, value):
        self.ini.write_text(set_key(self.ini.read_text(), section, key, value))

    def command(self, name, *args, timeout=600, check=None):
        result = subprocess.run(
            [str(BIN / name), *map(str, args)], cwd=self.folder, capture_output=True, text=True,
            timeout=timeout, env=command_env(),
        )
        if check is not None:
            assert result.returncode == check, f"{name} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def run(self, *args, check=0, **kwargs):
        return self.command("mosaic_run", "config.ini", "database.db", *args, check=check, **kwargs)

    def query(self, sql, db=None):
        with sqlite3.connect(db or self.db) as connection:
            return connection.execute(sql).fetchall()

    def runs_dir(self):
        return self.folder / ".runs"

    def result_mtimes(self):
        return {p.parent.name: p.stat().st_mtime_ns for p in self.runs_dir().glob("*/result.json")}


def fake_module(section, type_, class_name, key, params):
    """An object shaped like config.Module, for tests that build experiments by hand."""
    from types import SimpleNamespace

    return SimpleNamespace(section=section, type=type_, class_name=class_name, path=f"/x/{type_}.py",
                           path_in_ini=f"{type_}.py", key_template=key, key=key, params=tuple(params))


def command_env():
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def small_settings(epochs=2, multiplicity=1, widths="{2-3}", processes=2):
    return {
        ("PROCESS", "epochs"): epochs,
        ("MONITOR", "multiplicity"): multiplicity,
        ("MONITOR", "nb_processus"): processes,
        ("mlp_funnel", "width"): widths,
        ("mlp_brick", "width"): widths,
    }


def pdf_pages(path):
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF"), f"{path} is not a PDF"
    return len(re.findall(rb"/Type\s*/Page(?!s)", data))


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def wait_until(predicate, timeout=120, interval=0.2):
    """The first true value of predicate(), polled; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def optimizer_experiment(optimizer="Adam", lr=1e-2):
    """What make_optimizer reads of an experiment: its ini path and PROCESS optimizer and lr."""
    from types import SimpleNamespace

    return SimpleNamespace(ini_path="exp.ini", process=SimpleNamespace(optimizer=optimizer, lr=lr))


# ---------------------------------------------------------------- results databases built by hand (tests/results)


def fake_process(run_files_path, data_scheme, pipeline_scheme, epochs, extra=()):
    """An object shaped like config.Process: what the database reads of an experiment's [PROCESS]."""
    from types import SimpleNamespace

    return SimpleNamespace(lr=0.01, epochs=epochs, data_scheme=tuple(data_scheme),
                           pipeline_scheme=tuple(pipeline_scheme), run_files_path=str(run_files_path),
                           loss_function="MSELoss", optimizer="Adam", seed=0, extra=tuple(extra))


def fake_run(run_id, run_hash, modules, pipeline, replicate, seed):
    """An object shaped like config.Run: one data module, then the model modules; its keys are theirs."""
    from types import SimpleNamespace

    return SimpleNamespace(run_id=run_id, run_hash=run_hash, replicate=replicate, seed=seed, modules=tuple(modules),
                           n_data=1, pipeline=pipeline, dataset_key=modules[0].key, model_key=modules[-1].key,
                           training=(("lr", 0.01), ("optimizer", "Adam")))


def write_done(run_files_path, run_hash, losses, result, metrics=None):
    """The files of a finished run: its loss rows (epoch, train_loss, test_loss, seconds), result.json and,
    when given, its metric rows (epoch, name, value)."""
    import json

    from mosaic import runfiles

    folder = Path(runfiles.run_dir(run_files_path, run_hash))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runfiles.LOSSES).write_text(runfiles.format_losses(losses))
    if metrics is not None:
        (folder / runfiles.METRICS).write_text(runfiles.format_metrics(metrics))
    (folder / runfiles.RESULT).write_text(json.dumps(result))



def write_error(run_files_path, run_hash, text="Traceback (most recent call last):\nValueError: boom\n"):
    """The file of a failed run: its error.txt, holding `text`."""
    from mosaic import runfiles

    folder = Path(runfiles.run_dir(run_files_path, run_hash))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runfiles.ERROR).write_text(text)


def runs_read_by(monkeypatch, module, name):
    """The run hashes that module.name(run_files_path, run_hash) is called with from now on (a list that grows)."""
    reads = []
    original = getattr(module, name)

    def counting(run_files_path, run_hash):
        reads.append(run_hash)
        return original(run_files_path, run_hash)

    monkeypatch.setattr(module, name, counting)
    return reads


# ---------------------------------------------------------------- toy experiments trained in-process (tests/run)

TOY_DIR = ROOT / "tests" / "run" / "toy"
TOY = (TOY_DIR / "toy.py").read_text()  # a regression task and models for it (see the file)

TOY_DATA = """
[toy]
type = data
class = Toy
path_to_class = toy.py
"""

DROP_DATA = "shuffle = True\n"  # the toy's train rows shuffled: each epoch draws from torch's generator

ASYM = (TOY_DIR / "loss.py").read_text()  # Asym, a loss class recording its calls, and Mse


def model_section(class_name, extra=""):
    """A [model] section of a class of TOY."""
    return f"\n[model]\ntype = model\nclass = {class_name}\npath_to_class = toy.py\n{extra}\n"


def make_experiment(folder, sections, *, epochs=3, lr=0.01, data_scheme="data", pipeline_scheme="model",
                    process="", multiplicity=1, files=None):
    """Write toy.py, any extra class files and an ini into `folder`; return the loaded Experiment."""
    import textwrap

    from mosaic.experiment import load_experiment

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.py").write_text(TOY)
    for name, source in (files or {}).items():
        (folder / name).write_text(textwrap.dedent(source))
    ini = (
        f"[PROCESS]\nlr = {lr}\nepochs = {epochs}\ndata_scheme = {data_scheme}\n"
        f"pipeline_scheme = {pipeline_scheme}\n{process}\n"
        f"[MONITOR]\nmultiplicity = {multiplicity}\n{sections}"
    )
    (folder / "exp.ini").write_text(ini)
    return load_experiment(str(folder / "exp.ini"))


def toy(folder, model="Affine", data_params="", model_params="", **kwargs):
    """The toy data and one model of TOY (`data_params`, `model_params`: extra lines of their sections)."""
    return make_experiment(folder, TOY_DATA + data_params + model_section(model, model_params), **kwargs)


def run_folder(experiment, run):
    from mosaic import runfiles

    return Path(runfiles.run_dir(experiment.process.run_files_path, run.run_hash))


def losses(experiment, run):
    """(epoch, train, test) rows of the run's loss file: exact floats, seconds left out."""
    from mosaic import runfiles

    return [row[:3] for row in runfiles.read_losses(run_folder(experiment, run) / runfiles.LOSSES)]


def result_of(experiment, run):
    from mosaic import runfiles

    return runfiles.read_json(run_folder(experiment, run) / runfiles.RESULT)


def user_class(run, index, name):
    """The class object the run uses (the same module mosaic loaded), to read what it recorded."""
    from mosaic.run.classes import load_class

    return load_class(run.modules[index].path, name)


def quiet(_line):
    pass


def final_models(experiment, run):
    """The state dicts model.pt holds (None for a model that is not an nn.Module)."""
    import torch

    from mosaic import runfiles

    return torch.load(run_folder(experiment, run) / runfiles.MODEL, weights_only=False)["models"]


# ---------------------------------------------------------------- GPU locks and warm starts (tests/run)


def gpu_is_free(device, lock_dir):
    """Whether `device` can be taken now (taken and given back at once)."""
    from mosaic.run.devices import acquire_slot

    try:
        _, handle = acquire_slot([device], lock_dir=lock_dir, poll=0.01, timeout=0)
    except TimeoutError:
        return False
    handle.close()
    return True


def wait_for(condition, what, timeout=60.0):
    """wait_until, polled every 50 ms; the AssertionError says what was awaited."""
    try:
        return wait_until(condition, timeout=timeout, interval=0.05)
    except AssertionError:
        raise AssertionError(f"timed out waiting for {what}") from None


class Warm:
    """An experiment plus a private warm-start server folder; starts jobs the way Snakemake does."""

    def __init__(self, folder, epochs=1, **env):
        from mosaic.experiment import load_experiment
        from mosaic.run import warm

        self.experiment = Experiment(folder / "exp", small_settings(epochs=epochs))
        self.loaded = load_experiment(str(self.experiment.ini))
        self.dir = folder / "w"
        self.env = command_env()
        self.env.update({warm.DIR_ENV: str(self.dir), warm.IDLE_ENV: "60", **env})
        self.env.pop(warm.ENABLE_ENV, None)
        self.env.pop("SLURM_JOB_ID", None)
        self.env.pop("MOSAIC_SNAKEMAKE_PID", None)

    def run_hash(self, index=0):
        return self.loaded.runs[index].run_hash

    def folder(self, index=0):
        return self.experiment.folder / ".runs" / self.run_hash(index)

    def start_job(self, index=0, **env):
        """The job, its output going to files (self.out, self.err), as Snakemake sends it to the log."""
        self.out, self.err = self.dir.parent / f"job{index}.out", self.dir.parent / f"job{index}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "mosaic.run.job", "config.ini", self.run_hash(index)],
                cwd=self.experiment.folder, env={**self.env, **env}, stdout=out, stderr=err,
            )

    def finish(self, process, timeout=300):
        process.wait(timeout=timeout)
        return process.returncode, self.out.read_text(), self.err.read_text()

    def job(self, index=0, **env):
        return self.finish(self.start_job(index, **env))

    def wait_first_epoch(self):
        wait_for(lambda: "epoch 1/" in self.out.read_text(), "a first epoch")

    def log(self):
        logs = list(self.dir.glob("*.log"))
        return "".join(path.read_text() for path in logs)

    def server_pids(self):
        return [int(pid) for pid in re.findall(r"server (\d+) listening", self.log())]

    def run_pid(self, index=0):
        """The pid of the forked run of job `index`, from the server's log."""
        found = re.findall(rf"run (\d+): config.ini {self.run_hash(index)} ", self.log())
        return int(found[-1]) if found else None

    def stop_servers(self):
        import signal

        from mosaic.run.job import alive

        for pid in self.server_pids():
            if alive(pid):
                os.kill(pid, signal.SIGTERM)


# ---------------------------------------------------------------- ini texts over stub classes (tests/experiment)
# The tutorial's sections over class files that only define the classes (TUTORIAL_INI above is the real one):
# enough for reading, validating and expanding an ini, not for training.

CLASS_FILES = {
    "dataset.py": "class dataset_OR:\n    pass\n\n\nclass dataset_XOR:\n    pass\n",
    "mlp.py": "class mlp_funnel:\n    pass\n\n\nclass mlp_brick:\n    pass\n",
    "chain.py": "class gen:\n    pass\n\n\nclass noise:\n    pass\n\n\nclass fit:\n    pass\n",
    "loss.py": "class MyLoss:\n    pass\n",
}

PROCESS = """\
[PROCESS]
lr = 1e-2
epochs = 400
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = .runs
"""

MONITOR = """\
[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 8
multiplicity = 4
cache_database_path = ./cache.db
cache_size = 1M
"""

DATASET = """\
[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./dataset.py
key = data_{class}
batch_size = 1
data_size = 200
train_prop = 0.8
"""

FUNNEL = """\
[mlp_funnel]
type = mlp
class = mlp_funnel
path_to_class = ./mlp.py
key = mlp_funnel
length = 4
width = {2-4}
"""

BRICK = FUNNEL.replace("mlp_funnel", "mlp_brick")

TUTORIAL = "\n".join([PROCESS, MONITOR, DATASET, FUNNEL, BRICK])


def write_ini(folder, text, name="config.ini"):
    """Write the class files and the ini into `folder`; return the ini's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, source in CLASS_FILES.items():
        (folder / file_name).write_text(source)
    path = folder / name
    path.write_text(text)
    return path


def load_ini(folder, text):
    """The experiment of the ini `text`, written into `folder` beside the stub class files."""
    from mosaic.experiment import load_experiment

    return load_experiment(write_ini(folder, text))


def mlp_ini(body, multiplicity=1, process_extra=""):
    """A one-dataset ini whose single mlp section has the given body lines."""
    monitor = f"[MONITOR]\nmultiplicity = {multiplicity}\n"
    section = f"[mlp]\ntype = mlp\nclass = mlp_funnel\npath_to_class = mlp.py\n{body}\n"
    return "\n".join([PROCESS + process_extra, monitor, DATASET, section])


def ini_error(folder, text):
    """The one-line message of the MosaicError that loading the ini `text` raises (it names config.ini)."""
    import pytest

    from mosaic.errors import MosaicError

    with pytest.raises(MosaicError) as caught:
        load_ini(folder, text)
    message = str(caught.value)
    assert "\n" not in message
    assert "config.ini" in message
    return message


# ---------------------------------------------------------------- commands in a folder (tests/ops)

# A model class that fails on the runs of width 3 (the last run of small_settings() when it replaces mlp_brick).
BAD_MODEL = '''
from mlp import mlp_brick


class mlp_bad(mlp_brick):
    def forward(self, data, run_info, module_info):
        if module_info["width"] == 3:
            raise ValueError("width 3 is not supported")
        return super().forward(data, run_info, module_info)
'''


def hold_folder_lock(folder):
    """What a running mosaic_run holds: the folder's session lock (an open file; close it to release)."""
    from mosaic import runfiles

    (Path(folder) / runfiles.STATE_DIR).mkdir(exist_ok=True)
    return runfiles.try_lock(str(Path(folder) / runfiles.SESSION_LOCK))


def start_run(exp, *args):
    """mosaic_run started in the experiment's folder, its output (stdout and stderr) piped."""
    return subprocess.Popen(
        [str(BIN / "mosaic_run"), "config.ini", "database.db", *args], cwd=exp.folder,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=command_env(),
    )


def status_of(exp):
    """mosaic_status's output in the experiment's folder (empty until mosaic_run has saved its session)."""
    return exp.command("mosaic_status").stdout


def status_section(text, name):
    """The lines of one part (Done, Error, Running) of mosaic_status's output ([] when it has none)."""
    parts = re.split(r"^(Done|Error|Running)$", text, flags=re.M)
    return parts[parts.index(name) + 1].strip("\n").splitlines() if name in parts else []


# ---------------------------------------------------------------- the download cache (tests/run)


def cache_at(monkeypatch, db):
    """setup(size): the download cache at `db` with that size limit, set as a training job sets it (its
    environment), for the rest of the test."""

    def setup(size=10**6):
        monkeypatch.setenv("MOSAIC_CACHE_DB", str(db))
        monkeypatch.setenv("MOSAIC_CACHE_SIZE", str(size))

    return setup


def cache_rows(db=None, table="cache"):
    """The rows (dicts) of the download cache's `table` (cache, least recently used first, or user_files,
    by path), read from its SQLite file (default: the one in use); [] before it exists."""
    from mosaic.run import cache

    db = str(db or cache.db_path())
    if not os.path.exists(db):
        return []
    order = "last_use" if table == "cache" else "path"
    connection = sqlite3.connect(db)
    try:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(f"SELECT * FROM {table} ORDER BY {order}")]
    finally:
        connection.close()


def cache_user_files(db=None):
    """The paths registered with save_path_file, sorted."""
    return [row["path"] for row in cache_rows(db, "user_files")]


def cache_bytes(db=None):
    """The bytes the cache records (the sum over its rows): what counts against its limit."""
    return sum(row["size"] for row in cache_rows(db))
