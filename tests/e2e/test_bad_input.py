"""The bad-input matrix (tests/e2e/bad_input_cases.py): every case gets one clear line and a non-zero exit.

ini, file and command cases call the commands in this process (the same entry points as the console
scripts); run cases start the real training job, `python -m mosaic.run.job`, and are marked slow.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mosaic.ops.cli import COMMANDS
from tests.e2e import bad_input_cases as cases
from tests.fakes import CLASS_FILES, TUTORIAL, Experiment, command_env, small_settings


def call(argv):
    """Run a command as its console script does; its exit status."""
    try:
        return COMMANDS[argv[0]](argv[1:])
    except SystemExit as exit:  # argparse refuses an argument
        return exit.code


def one_line_error(capsys, code, expected):
    captured = capsys.readouterr()
    assert code != 0, captured.out
    lines = captured.err.strip().splitlines()
    if lines and lines[0].startswith("usage:"):  # argparse: its usage (several lines), then one error line
        lines = [line for line in lines if ": error: " in line]
    assert len(lines) == 1, captured.err
    assert expected in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name, source in CLASS_FILES.items():
        (tmp_path / name).write_text(source)
    (tmp_path / "broken.py").write_text("class mlp_funnel:\n    def (self):\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ini_text(edits):
    text = TUTORIAL
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("case", cases.INI_CASES, ids=[case[0] for case in cases.INI_CASES])
def test_ini_case(folder, capsys, case):
    _, edits, expected = case
    (folder / "config.ini").write_text(ini_text(edits))
    code = call(["mosaic_generate", "config.ini", "out.json"])
    one_line_error(capsys, code, expected)
    assert not (folder / "out.json").exists()


@pytest.mark.parametrize("case", cases.FILE_CASES, ids=[case[0] for case in cases.FILE_CASES])
def test_file_case(folder, capsys, case):
    _, content, expected = case
    if content == "folder":
        (folder / "config.ini").mkdir()
    elif content is not None:
        (folder / "config.ini").write_bytes(content)
    code = call(["mosaic_generate", "config.ini", "out.json"])
    one_line_error(capsys, code, expected)


@pytest.fixture
def built(tmp_path, monkeypatch):
    """The tutorial experiment with its database built (every run pending), and the odd files."""
    from mosaic.experiment import load_experiment
    from mosaic.results.database import build

    experiment = Experiment(tmp_path / "exp")
    build(load_experiment(experiment.ini), str(experiment.db))
    (experiment.folder / "corrupt.db").write_bytes(bytes(range(256)) * 16)
    (experiment.folder / "folder").mkdir()
    (experiment.folder / "file").write_text("")
    monkeypatch.chdir(experiment.folder)
    return experiment


@pytest.mark.parametrize("case", cases.COMMAND_CASES, ids=[case[0] for case in cases.COMMAND_CASES])
def test_command_case(built, capsys, case):
    _, argv, expected = case
    before = built.db.read_bytes()
    code = call(argv)
    one_line_error(capsys, code, expected)
    assert built.db.read_bytes() == before  # nothing computed lost
    assert not Path("out.pdf").exists() and not Path("out.png").exists()


BAD_CLASSES = '''
import torch


class Toy:
    def __init__(self, batch_size=4):
        self.batch_size = batch_size

    def prepare(self, data, run_info, module_info):
        x = torch.randn(16, 3)
        dataset = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
        loader = torch.utils.data.DataLoader(dataset, batch_size=4)
        return loader, loader

    def info(self):
        return {"input_size": 3}


class NoPrepare:
    pass


class PrepareRaises(Toy):
    def prepare(self, data, run_info, module_info):
        raise ValueError("cannot read the data set")


class InitRaises(Toy):
    def __init__(self):
        raise RuntimeError("bad init")


class OneLoader(Toy):
    def prepare(self, data, run_info, module_info):
        return super().prepare(data, run_info, module_info)[0]


class Triples(Toy):
    def prepare(self, data, run_info, module_info):
        x = torch.randn(16, 3)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x, x), batch_size=4)
        return loader, loader


class EmptyLoader(Toy):
    def prepare(self, data, run_info, module_info):
        dataset = torch.utils.data.TensorDataset(torch.zeros(0, 3), torch.zeros(0, 1))
        loader = torch.utils.data.DataLoader(dataset, batch_size=4)
        return loader, loader


class Affine(torch.nn.Module):
    def __init__(self, input_size):
        super().__init__()
        self.lin = torch.nn.Linear(input_size, 1)

    def forward(self, x):
        return self.lin(x)


class NoForward:
    def __init__(self, input_size):
        self.w = torch.zeros(1, requires_grad=True)

    def parameters(self):
        return [self.w]


class ForwardRaises(Affine):
    def forward(self, x):
        raise RuntimeError("boom in forward")


class NeedsArg(Affine):
    def __init__(self, input_size, depth):
        super().__init__(input_size)


class NoParams(torch.nn.Module):
    def __init__(self, input_size):
        super().__init__()

    def forward(self, x):
        return x.sum(1, keepdim=True)


class Detached(Affine):
    def forward(self, x):
        return self.lin(x).detach()


class NaNOut(Affine):
    def forward(self, x):
        return self.lin(x) * float("nan")
'''


PREFLIGHT_CLASSES = '''\
import torch

from mlp import mlp_brick


class Raises(mlp_brick):
    def forward(self, data, run_info, module_info):
        return self.helper(data)

    def helper(self, data):
        raise RuntimeError("boom in forward")


class OneLoader:
    def __init__(self, batch_size, data_size, train_prop):
        pass

    def prepare(self, data, run_info, module_info):
        x = torch.zeros(4, 2)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x), batch_size=2)

    def info(self):
        return {"input_size": 2, "output_size": 2}


class Brick(mlp_brick):
    pass
'''


@pytest.mark.parametrize("case", cases.PREFLIGHT_CASES, ids=[case[0] for case in cases.PREFLIGHT_CASES])
def test_preflight_case(tmp_path, monkeypatch, capsys, case):
    """A class that would fail every run fails once, before anything is launched: no run folder, no database."""
    _, edits, expected = case
    experiment = Experiment(tmp_path / "exp", small_settings())
    (experiment.folder / "bad.py").write_text(PREFLIGHT_CLASSES)
    text = experiment.ini.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    experiment.ini.write_text(text)
    monkeypatch.chdir(experiment.folder)
    code = call(["mosaic_run", "config.ini", "database.db"])
    assert code == 2
    assert one_line_error(capsys, code, expected).startswith(f"mosaic_run: {expected}")
    assert not experiment.runs_dir().exists() and not experiment.db.exists()


def run_job(folder, data_class, model_class, run_files_path=".runs"):
    """Write an ini with one run of these classes, start its training job; (exit code, stderr, run folder)."""
    from mosaic.experiment import load_experiment

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.py").write_text(BAD_CLASSES)
    (folder / "exp.ini").write_text(
        f"[PROCESS]\nlr = 0.01\nepochs = 2\ndata_scheme = data\npipeline_scheme = model\n"
        f"run_files_path = {run_files_path}\n\n"
        f"[data]\ntype = data\nclass = {data_class}\npath_to_class = classes.py\n\n"
        f"[model]\ntype = model\nclass = {model_class}\npath_to_class = classes.py\n")
    experiment = load_experiment(str(folder / "exp.ini"))
    run = experiment.runs[0]
    result = subprocess.run([sys.executable, "-m", "mosaic.run.job", "exp.ini", run.run_hash], cwd=folder,
                            capture_output=True, text=True, timeout=300, env=command_env())
    return result.returncode, result.stderr, Path(experiment.process.run_files_path) / run.run_hash


@pytest.mark.slow
@pytest.mark.parametrize("case", cases.RUN_CASES, ids=[case[0] for case in cases.RUN_CASES])
def test_run_case(tmp_path, case):
    text, data_class, model_class, expected = case
    blocked = "cannot create its folder" in expected
    if blocked:
        (tmp_path / "blocked").write_text("a file where the runs folder should be")
    code, stderr, run_folder = run_job(tmp_path, data_class, model_class,
                                       "blocked/runs" if blocked else ".runs")
    assert code == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("mosaic: run 1") and expected in last, last
    if not blocked:
        assert (run_folder / "error.txt").exists() and not (run_folder / "result.json").exists()


@pytest.mark.slow
def test_nan_loss_is_recorded_as_diverged(tmp_path):
    code, stderr, run_folder = run_job(tmp_path, "Toy", "NaNOut")
    assert code == 0, stderr
    result = json.loads((run_folder / "result.json").read_text())
    assert result["diverged"] is True and result["epochs"] == 1
    assert "diverged at epoch 1" in (run_folder / "train.log").read_text() if (run_folder / "train.log").exists() \
        else True


@pytest.mark.slow
def test_bad_runs_in_one_experiment_lose_nothing_computed(tmp_path):
    """One experiment with good and failing runs: the good ones are trained and kept, the command exits
    non-zero, each failure is one line in mosaic_status, and a second mosaic_run retrains nothing done."""
    experiment = Experiment(tmp_path / "exp", small_settings(widths="2"))
    (experiment.folder / "bad.py").write_text(
        "import torch\n\n\nclass raises_in_forward(torch.nn.Module):\n"
        "    def __init__(self, input_size, output_size, length, width):\n        super().__init__()\n"
        "        self.lin = torch.nn.Linear(input_size, output_size)\n\n"
        "    def forward(self, data, run_info, module_info):\n        raise RuntimeError('boom in forward')\n")
    experiment.ini.write_text(experiment.ini.read_text() + "\n[mlp_bad]\ntype = mlp\nclass = raises_in_forward\n"
                              "path_to_class = bad.py\nlength = 4\nwidth = 2\n")
    first = experiment.run("--no-preflight", check=None)  # the runs fail as they would without the check
    assert first.returncode != 0
    done = experiment.query("SELECT run_id FROM runs WHERE status = 'done' ORDER BY run_id")
    assert done == [(1,), (2,)]
    assert experiment.query("SELECT status, error LIKE '%boom in forward%' FROM runs WHERE run_id = 3") == [
        ("error", 1)]
    status = experiment.command("mosaic_status", "config.ini", check=0).stdout
    assert "boom in forward" in status
    mtimes = experiment.result_mtimes()
    second = experiment.run("--no-preflight", check=None)
    assert second.returncode != 0
    assert experiment.result_mtimes() == mtimes  # the done runs were not retrained


def test_reliability_table_is_up_to_date():
    text = cases.RELIABILITY.read_text()
    assert cases.markdown() in text, "run: python tests/e2e/bad_input_cases.py"


def test_the_matrix_has_at_least_40_cases():
    total = (len(cases.INI_CASES) + len(cases.FILE_CASES) + len(cases.COMMAND_CASES) + len(cases.RUN_CASES)
             + len(cases.PREFLIGHT_CASES))
    assert total >= 40
