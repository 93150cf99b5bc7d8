"""Tests for mosaic.run.training: train_run (a run's files and result, divergence) and the pipeline it builds
(plain modules, the seed protocol, data chains and info(), evaluation, custom backward).

Every experiment is a small ini plus class files written into tmp_path (tests/fakes.py: the toy); runs train
a few epochs on a few dozen rows. The loss is in test_loss.py, the optimizer in test_optimizer.py, the
batches in test_batches.py, checkpoints in test_checkpoint.py, the job process in test_job.py.
"""

import json
import math

import pytest
import torch

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.run.training import Pipeline, seed_everything, train_run
from tests.fakes import (
    TOY_DATA,
    final_models,
    losses,
    make_experiment,
    model_section,
    quiet,
    result_of,
    run_folder,
    toy,
    user_class,
)

# ---------------------------------------------------------------------------------------------------------
# Protocols: plain modules, seed-protocol modules, data chains, info()


def test_plain_module_trains_and_writes_its_files(tmp_path):
    experiment = toy(tmp_path, epochs=3)
    run = experiment.runs[0]
    result = train_run(experiment, run, log=quiet)
    rows = losses(experiment, run)
    assert [row[0] for row in rows] == [1, 2, 3]
    assert all(math.isfinite(v) for row in rows for v in row[1:])
    assert rows[-1][1] < rows[0][1]  # it learns
    assert result["status"] == "done" and result["diverged"] is False
    assert result["epochs"] == 3
    assert result["nb_params"] == 4  # Linear(3, 1)
    assert result["train_loss"] == rows[-1][1] and result["test_loss"] == rows[-1][2]
    assert result["run_hash"] == run.run_hash and result["seed"] == run.seed
    assert result_of(experiment, run) == result
    folder = run_folder(experiment, run)
    assert (folder / runfiles.MODEL).exists()
    # By default a checkpoint every tenth of the epochs (here every epoch but the last).
    assert torch.load(folder / runfiles.CHECKPOINT, weights_only=False)["epoch"] == 2
    lines = (folder / runfiles.LOSSES).read_text().splitlines()
    assert lines[0] == runfiles.LOSS_HEADER and len(lines) == 4


def test_torch_class_imported_into_a_file_is_a_model(tmp_path):
    """`from torch.nn import Linear` in the class file: torch's own Linear, built from the section."""
    files = {"layers.py": "from torch.nn import Linear\n"}
    section = (
        "\n[lin]\ntype = model\nclass = Linear\npath_to_class = layers.py\n"
        "in_features = 3\nout_features = 1\n"
    )
    experiment = make_experiment(tmp_path, TOY_DATA + section, files=files, epochs=2)
    result = train_run(experiment, experiment.runs[0], log=quiet)
    assert result["nb_params"] == 4
    assert len(losses(experiment, experiment.runs[0])) == 2


def test_module_with_optional_forward_arguments_is_called_with_data_only(tmp_path):
    files = {
        "opt.py": """
        import torch

        class Opt(torch.nn.Module):
            seen = []

            def __init__(self, input_size):
                super().__init__()
                self.lin = torch.nn.Linear(input_size, 1)

            def forward(self, x, mask=None, scale=None):
                Opt.seen.append((mask, scale))
                return self.lin(x)
        """
    }
    section = "\n[opt]\ntype = model\nclass = Opt\npath_to_class = opt.py\n"
    experiment = make_experiment(tmp_path, TOY_DATA + section, files=files, epochs=1)
    run = experiment.runs[0]
    train_run(experiment, run, log=quiet)
    seen = user_class(run, 1, "Opt").seen
    assert len(seen) == 6  # 4 train + 2 test batches
    assert set(seen) == {(None, None)}


CHAIN = """
import torch

class Gen:
    def __init__(self, data_size, features):
        self.data_size, self.features = data_size, features

    def prepare(self, data, run_info, module_info):
        Gen.received = (data, dict(module_info), dict(run_info))
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.data_size, self.features, generator=g)
        Gen.made = (x, x.sum(1))
        return Gen.made

    def info(self):
        return {"input_size": self.features, "n_rows": self.data_size}


class Noise:
    "Plain prepare(data); its constructor takes n_rows from Gen.info()."
    def __init__(self, sigma, n_rows, batch_size):
        self.sigma, self.n_rows, self.batch_size = sigma, n_rows, batch_size

    def prepare(self, data):
        Noise.received = data
        x, y = data
        x = x + self.sigma * torch.randn(x.shape)
        cut = self.n_rows * 3 // 4
        loader = lambda a, b: torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(a, b), batch_size=self.batch_size)
        return loader(x[:cut], y[:cut]), loader(x[cut:], y[cut:])


class SeedNet(torch.nn.Module):
    "Seed protocol: forward(data, run_info, module_info)."
    seen = []

    def __init__(self, input_size, hidden):
        super().__init__()
        SeedNet.built_with = (input_size, hidden)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(input_size, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    def forward(self, data, run_info, module_info):
        SeedNet.seen.append((run_info, module_info))
        return self.net(data)
"""


CHAIN_SECTIONS = """
[gen]
type = gen
class = Gen
path_to_class = chain.py
data_size = 24
features = 3

[noise]
type = noise
class = Noise
path_to_class = chain.py
key = noisy_{sigma}
sigma = 0.1
batch_size = 6

[net]
type = model
class = SeedNet
path_to_class = chain.py
hidden = 4
"""


def test_data_chain_info_and_seed_protocol(tmp_path):
    experiment = make_experiment(
        tmp_path, CHAIN_SECTIONS, files={"chain.py": CHAIN}, data_scheme="gen, noise", epochs=2
    )
    run = experiment.runs[0]
    result = train_run(experiment, run, log=quiet)
    gen = user_class(run, 0, "Gen")
    noise = user_class(run, 1, "Noise")
    net = user_class(run, 2, "SeedNet")

    data, gen_module_info, gen_run_info = gen.received
    assert data is None  # the first data class gets None
    assert gen_module_info["data_size"] == 24 and gen_module_info["features"] == 3
    assert gen_module_info["class"] == "Gen" and gen_module_info["type"] == "gen"
    assert gen_run_info["run_id"] == 1 and gen_run_info["device"] == "cpu"
    assert gen_run_info["seed"] == run.seed and gen_run_info["run_hash"] == run.run_hash
    assert noise.received is gen.made  # the second data class gets the first one's return value

    assert net.built_with == (3, 4)  # input_size from Gen.info(), hidden from its section
    assert result["nb_params"] == 3 * 4 + 4 + 4 + 1
    run_info, module_info = net.seen[0]
    assert module_info == {
        "hidden": 4,
        "type": "model",
        "name": "net",
        "key": "SeedNet",
        "path_to_class": run.modules[2].path,
        "class": "SeedNet",
    }
    assert run_info["input_size"] == 3 and run_info["n_rows"] == 24
    assert run_info["train_loader"] is not None and run_info["test_loader"] is not None
    # 18 train rows in 3 batches, 6 test rows in 1 batch, 2 epochs
    assert len(net.seen) == 2 * (3 + 1)
    assert len(losses(experiment, run)) == 2


def test_missing_constructor_argument_names_class_and_argument(tmp_path):
    files = {
        "needy.py": """
        import torch

        class Needy(torch.nn.Module):
            def __init__(self, input_size, depth):
                super().__init__()
        """
    }
    section = "\n[needy]\ntype = model\nclass = Needy\npath_to_class = needy.py\n"
    experiment = make_experiment(tmp_path, TOY_DATA + section, files=files)
    with pytest.raises(MosaicError) as caught:
        train_run(experiment, experiment.runs[0], log=quiet)
    message = str(caught.value)
    assert "Needy" in message and "'depth'" in message and "[needy]" in message
    assert not (run_folder(experiment, experiment.runs[0]) / runfiles.RESULT).exists()


def test_last_data_class_must_return_two_or_three_loaders(tmp_path):
    files = {"one.py": "class One:\n    def prepare(self, data):\n        return [1, 2, 3, 4]\n"}
    sections = "\n[one]\ntype = data\nclass = One\npath_to_class = one.py\n" + model_section("Affine")
    experiment = make_experiment(tmp_path, sections, files=files)
    with pytest.raises(MosaicError, match=r"One.prepare returned a list of 4 items; expected \(train_loader,"
                                          r" test_loader\) or \(train_loader, validation_loader, test_loader\)"):
        train_run(experiment, experiment.runs[0], log=quiet)


# ---------------------------------------------------------------------------------------------------------
# Evaluation, the backward


def test_evaluation_runs_without_grad_in_eval_mode(tmp_path):
    experiment = toy(tmp_path, model="ModeProbe", epochs=2)
    run = experiment.runs[0]
    train_run(experiment, run, log=quiet)
    records = user_class(run, 1, "ModeProbe").records
    epoch = [(True, True)] * 4 + [(False, False)] * 2  # 4 train batches, then 2 test batches
    assert records == epoch * 2


def test_custom_module_backward_and_parameters(tmp_path):
    experiment = toy(tmp_path, model="Bare", epochs=2)
    run = experiment.runs[0]
    seed_everything(run.seed)
    start = [p.detach().clone() for p in Pipeline(run, experiment, "cpu").parameters]
    result = train_run(experiment, run, log=quiet)
    bare = user_class(run, 1, "Bare")
    assert bare.backward_calls == 2 * 4  # once per training batch
    assert result["nb_params"] == 4
    saved = torch.load(run_folder(experiment, run) / "model_0_Bare.pt")
    assert not torch.equal(saved["w"], start[0])
    assert not torch.equal(saved["b"], start[1])
    assert final_models(experiment, run) == [None]  # Mosaic keeps no state dict for it


def test_detached_loss_fails_the_run(tmp_path):
    experiment = toy(tmp_path, model="Detached")
    with pytest.raises(MosaicError, match="the loss does not require grad"):
        train_run(experiment, experiment.runs[0], log=quiet)
    assert not (tmp_path / ".runs" / experiment.runs[0].run_hash / "result.json").exists()


# ---------------------------------------------------------------------------------------------------------
# Divergence


def test_nan_model_is_marked_diverged(tmp_path):
    experiment = toy(tmp_path, model="NaNNet", epochs=5)
    run = experiment.runs[0]
    lines = []
    result = train_run(experiment, run, log=lines.append)
    assert result["diverged"] is True and result["status"] == "done"
    assert result["epochs"] == 1
    assert result["train_loss"] is None and result["test_loss"] is None
    folder = run_folder(experiment, run)
    text = (folder / runfiles.RESULT).read_text()
    assert '"train_loss": null' in text and ": NaN" not in text
    json.loads(text)  # strict JSON
    rows = (folder / runfiles.LOSSES).read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1\tnan\tnan\t")
    assert any("diverged at epoch 1" in line for line in lines)
    assert (folder / runfiles.MODEL).exists()


def test_huge_learning_rate_diverges_and_stops(tmp_path):
    experiment = toy(tmp_path, epochs=30, lr=1e20, process="optimizer = SGD\n")
    run = experiment.runs[0]
    result = train_run(experiment, run, log=quiet)
    rows = losses(experiment, run)
    assert result["diverged"] is True
    assert len(rows) < 30 and result["epochs"] == len(rows)
    assert not (math.isfinite(rows[-1][1]) and math.isfinite(rows[-1][2]))
    assert all(math.isfinite(v) for row in rows[:-1] for v in row[1:])
    assert result["train_loss"] is None or result["test_loss"] is None
    assert json.loads((run_folder(experiment, run) / runfiles.RESULT).read_text())["diverged"] is True
