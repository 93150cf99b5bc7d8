"""The oracle test (SPEC.md section 7): a zoo of models trained through `mosaic_run` and through a plain
PyTorch loop (tests/run/oracle.py) give the same losses, bit for bit, with the default settings and with the
opt-in traced step. The runs are long enough (2,048 steps) for every speed path to engage: the traced
step (2,000 steps), the cached batches, the flat optimizer and its direct fused kernel."""

import json
import shutil
import subprocess
from pathlib import Path

import oracle
import pytest

from mosaic import runfiles
from tests.fakes import BIN, ROOT, command_env

ZOO = Path(__file__).resolve().parent / "zoo" / "zoo.py"
EPOCHS = 256  # 8 steps an epoch: 2,048 steps

MODELS = {  # section -> (class, extra keys)
    "mlp": ("mlp_funnel", "path_to_class = mlp.py\nlength = 4\nwidth = 2"),
    "cnn": ("CNN", ""),
    "recurrent": ("Recurrent", "cell = GRU, LSTM"),
    "encoder": ("Encoder", ""),
    "tied": ("Tied", ""),
    "two_heads": ("TwoHeads", ""),
    "inplace_input": ("InPlaceInput", ""),
    "inplace_weight": ("InPlaceWeight", ""),
    "numpy_noise": ("NumpyNoise", ""),
    "warm_up": ("WarmUp", ""),
}
RUNS = ["mlp_funnel", "CNN", "Recurrent GRU", "Recurrent LSTM", "Encoder", "Tied", "TwoHeads", "InPlaceInput",
        "InPlaceWeight", "NumpyNoise", "WarmUp", "RampLoss"]


def ini(process, sections):
    text = (f"[PROCESS]\nlr = 0.01\nepochs = {EPOCHS}\ndata_scheme = data\npipeline_scheme = model\n{process}\n"
            "[MONITOR]\nmultiplicity = 1\nnb_processus = 2\n\n"
            "[numbers]\ntype = data\nclass = Numbers\npath_to_class = zoo.py\n")
    for section, (cls, extra) in sections.items():
        path = "" if "path_to_class" in extra else "path_to_class = zoo.py\n"
        text += f"\n[{section}]\ntype = model\nclass = {cls}\n{path}{extra}\n"
    return text


def experiment(folder, process, sections):
    """Train the experiment with mosaic_run; {run name: its run folder}."""
    folder.mkdir(parents=True)
    shutil.copy(ZOO, folder / "zoo.py")
    shutil.copy(ROOT / "share" / "mlp.py", folder / "mlp.py")
    (folder / "config.ini").write_text(ini(process, sections))
    done = subprocess.run([str(BIN / "mosaic_run"), "config.ini", "exp.db", "--cores", "2"], cwd=folder,
                          capture_output=True, text=True, timeout=900, env=command_env())
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {}
    for result in (folder / ".runs").glob("*/result.json"):
        model = json.loads(result.read_text())["modules"][-1]
        name = " ".join([model["class"], *(str(v) for k, v in model["params"].items() if k == "cell")])
        runs[name] = result.parent
    return runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The zoo trained with the default settings and with traced_step = True; the stateful loss apart
    (the loss is one per experiment)."""
    base = tmp_path_factory.mktemp("oracle")
    settings = {}
    for name, traced in (("default", ""), ("traced", "traced_step = True")):
        runs = experiment(base / name, traced, MODELS)
        loss = "class_loss_function = RampLoss\npath_to_class_loss_function = zoo.py"
        ramp = experiment(base / f"{name}-loss", f"{traced}\n{loss}", {"mlp": MODELS["mlp"]})
        runs["RampLoss"] = ramp["mlp_funnel"]
        settings[name] = runs
    return settings


ORACLE = {}  # run hash -> the oracle's losses: both settings train the same runs


def oracle_losses(folder):
    run_hash = json.loads((folder / runfiles.SPEC).read_text())["run_hash"]
    if run_hash not in ORACLE:
        ORACLE[run_hash] = oracle.train(folder)
    return ORACLE[run_hash]


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["default", "traced"])
@pytest.mark.parametrize("name", RUNS)
def test_a_run_equals_the_plain_pytorch_loop(trained, setting, name):
    folder = trained[setting][name]
    mosaic = [row[:3] for row in runfiles.read_losses(folder / runfiles.LOSSES)]
    assert len(mosaic) == EPOCHS
    assert mosaic == oracle_losses(folder)


@pytest.mark.slow
def test_the_traced_step_says_what_it_decided(trained):
    """With traced_step = True the tutorial's MLP is replayed (so the oracle covers the replay), a forward
    that keeps state out of torch's sight is not, and train.log says which and why."""
    mlp = (trained["traced"]["mlp_funnel"] / runfiles.LOG).read_text()
    assert "traced step: replayed" in mlp
    warm_up = (trained["traced"]["WarmUp"] / runfiles.LOG).read_text()
    assert "traced step: eager step kept" in warm_up and "replayed" not in warm_up
    default = (trained["default"]["mlp_funnel"] / runfiles.LOG).read_text()
    assert "traced step" not in default
