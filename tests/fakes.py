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
                           n_data=1, pipeline=pipeline, dataset_key=modules[0].key, model_key=modules[-1].key)


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
