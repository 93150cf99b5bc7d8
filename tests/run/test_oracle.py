"""The oracle test (SPEC.md section 7): a zoo of models trained through `mosaic_run` and through a plain
PyTorch loop (tests/run/oracle.py) give the same losses, bit for bit, with the default settings and with the
opt-in traced step, and with training settings (optimizer arguments, learning-rate schedules, clipping, a
run continued from its checkpoint). The zoo's runs are long enough (2,048 steps) for every speed path to
engage: the traced step (2,000 steps), the cached batches, the flat optimizer and its direct fused kernel."""

import json
import shutil
import subprocess
from pathlib import Path

import oracle
import pytest
import torch

from mosaic import runfiles
from mosaic.experiment import load_experiment
from mosaic.experiment.spec import Fingerprints, describe, identity, run_context, run_spec
from mosaic.run.training import train_run
from tests.fakes import BIN, ROOT, command_env, quiet

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


def ini(process, sections, epochs=EPOCHS):
    text = (f"[PROCESS]\nlr = 0.01\nepochs = {epochs}\ndata_scheme = data\npipeline_scheme = model\n{process}\n"
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


# ---------------------------------------------------------------------------------------------------------
# Training settings: the run's spec holds them in its "process" dict, mosaic trains it (train_run, as the job
# does) and the oracle reads them from the same spec.

SHORT = 12  # epochs of 8 steps
SETTINGS = {
    "Adam weight_decay": {"weight_decay": 0.1},
    "Adam amsgrad eps": {"amsgrad": True, "eps": 1e-3},
    "SGD momentum nesterov": {"optimizer": "SGD", "momentum": 0.9, "nesterov": True},
    "AdamW betas": {"optimizer": "AdamW", "beta1": 0.5, "beta2": 0.9, "weight_decay": 0.1},
    "RMSprop alpha centered": {"optimizer": "RMSprop", "alpha": 0.9, "centered": True},
    "StepLR": {"scheduler": "StepLR", "scheduler_step_size": 4, "scheduler_gamma": 0.5},
    "MultiStepLR": {"scheduler": "MultiStepLR", "scheduler_milestones": [2, 5], "scheduler_gamma": 0.1},
    "OneCycleLR": {"scheduler": "OneCycleLR", "scheduler_max_lr": 0.05},
    "SGD OneCycleLR": {"optimizer": "SGD", "momentum": 0.9, "scheduler": "OneCycleLR"},
    "CyclicLR": {"scheduler": "CyclicLR", "scheduler_max_lr": 0.05, "scheduler_step_size_up": 10},
    "CosineAnnealingLR": {"scheduler": "CosineAnnealingLR"},
    "LinearLR warm-up": {"scheduler": "LinearLR", "scheduler_start_factor": 0.1, "scheduler_total_iters": 5},
    "clip_grad_norm": {"clip_grad_norm": 0.05},
    "all": {"optimizer": "SGD", "momentum": 0.5, "weight_decay": 0.01, "scheduler": "OneCycleLR",
            "clip_grad_norm": 0.1},
}


def settings_run(folder, settings, process="", epochs=SHORT):
    """The tutorial's funnel MLP on the zoo's numbers with `settings` in its spec: (experiment, run, spec, context),
    spec.json and context.json written into the run's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ZOO, folder / "zoo.py")
    shutil.copy(ROOT / "share" / "mlp.py", folder / "mlp.py")
    (folder / "config.ini").write_text(ini(process, {"mlp": MODELS["mlp"]}, epochs))
    experiment = load_experiment(str(folder / "config.ini"))
    run = experiment.runs[0]
    spec, context = run_spec(experiment, run, Fingerprints()), run_context(experiment, run)
    spec["process"].update(settings)
    run_dir = Path(runfiles.run_dir(experiment.process.run_files_path, run.run_hash))
    run_dir.mkdir(parents=True)
    runfiles.write_json(run_dir / runfiles.SPEC, spec)
    runfiles.write_json(run_dir / runfiles.CONTEXT, context)
    return experiment, run, spec, context


def mosaic_losses(experiment, run, spec, context, target=None, log=quiet):
    """Train the run as its job does (one thread, its spec's description and identity); its (epoch, train, test)
    rows."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_run(experiment, run, target_epochs=target, log=log, description=describe(spec, context),
                  identity=identity(spec))
    finally:
        torch.set_num_threads(threads)
    folder = Path(runfiles.run_dir(experiment.process.run_files_path, run.run_hash))
    return [row[:3] for row in runfiles.read_losses(folder / runfiles.LOSSES)], folder


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The oracle's losses without any training setting: a setting that changes nothing proves nothing."""
    _, run, spec, context = settings_run(tmp_path_factory.mktemp("plain") / "x", {})
    return oracle.train(Path(runfiles.run_dir(context["process"]["run_files_path"], run.run_hash)))


@pytest.mark.parametrize("name", SETTINGS)
def test_a_run_with_training_settings_equals_the_plain_pytorch_loop(tmp_path, plain, name):
    experiment, run, spec, context = settings_run(tmp_path, SETTINGS[name])
    mosaic, folder = mosaic_losses(experiment, run, spec, context)
    assert len(mosaic) == SHORT
    assert mosaic == oracle.train(folder)
    assert mosaic != plain


@pytest.mark.parametrize("name", ["StepLR", "OneCycleLR", "all"])
def test_a_continued_run_keeps_its_schedule(tmp_path, name):
    """Half the epochs, then the rest from the final model (as mosaic_rerun --epochs continues): the losses of
    one uninterrupted run, the oracle's."""
    experiment, run, spec, context = settings_run(tmp_path, SETTINGS[name])
    half, folder = mosaic_losses(experiment, run, spec, context, target=SHORT // 2)
    shutil.copy(folder / runfiles.MODEL, folder / runfiles.CHECKPOINT)
    lines = []
    continued, _ = mosaic_losses(experiment, run, spec, context, log=lines.append)
    assert f"continuing from the checkpoint at epoch {SHORT // 2}" in lines
    assert continued[: SHORT // 2] == half
    assert continued == oracle.train(folder)


@pytest.mark.slow
def test_the_traced_step_keeps_the_schedule_and_clipping(tmp_path):
    """traced_step = True replays forward and backward; clipping and the schedule around the optimizer's step
    are the same: the oracle's losses over 2,048 steps (the replay engages)."""
    experiment, run, spec, context = settings_run(tmp_path, SETTINGS["all"], "traced_step = True", EPOCHS)
    lines = []
    mosaic, folder = mosaic_losses(experiment, run, spec, context, log=lines.append)
    assert "traced step: replayed" in "\n".join(lines)
    assert mosaic == oracle.train(folder)


@pytest.mark.slow
def test_an_ini_sweeping_training_settings_trains_each_run_with_its_own(tmp_path):
    """Through mosaic_run: [PROCESS] sweeps lr and sets SGD's arguments, a schedule and clipping; every run
    equals the oracle reading its spec, and the two lrs train differently."""
    process = ("optimizer = SGD\nmomentum = 0.9\nnesterov = True\nweight_decay = 0.01\nscheduler = OneCycleLR\n"
               "clip_grad_norm = 0.5\n")
    sections = {"mlp": MODELS["mlp"]}
    folder = tmp_path / "sweep"
    folder.mkdir()
    shutil.copy(ZOO, folder / "zoo.py")
    shutil.copy(ROOT / "share" / "mlp.py", folder / "mlp.py")
    (folder / "config.ini").write_text(ini(process, sections, SHORT).replace("lr = 0.01\n", "lr = 0.01, 0.1\n"))
    done = subprocess.run([str(BIN / "mosaic_run"), "config.ini", "exp.db", "--cores", "2"], cwd=folder,
                          capture_output=True, text=True, timeout=900, env=command_env())
    assert done.returncode == 0, done.stdout + done.stderr
    losses = {}
    for spec_file in (folder / ".runs").glob(f"*/{runfiles.SPEC}"):
        spec = json.loads(spec_file.read_text())
        assert spec["process"]["scheduler"] == "OneCycleLR" and spec["process"]["momentum"] == 0.9
        rows = [row[:3] for row in runfiles.read_losses(spec_file.parent / runfiles.LOSSES)]
        assert len(rows) == SHORT and rows == oracle.train(spec_file.parent)
        losses[spec["process"]["lr"]] = rows
    assert sorted(losses) == [0.01, 0.1] and losses[0.01] != losses[0.1]
