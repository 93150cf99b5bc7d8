"""Tests for mosaic.run.training and mosaic.run.job: pipelines, the epoch loop, checkpoints, divergence, jobs.

Every experiment is a small ini plus class files written into tmp_path; runs train a few epochs on
a few dozen rows.
"""

import fcntl
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.run import training
from mosaic.run.classes import load_class
from mosaic.run.training import Pipeline, batch_loss, batch_source, seed_everything, train_run

REPO = Path(__file__).resolve().parents[2]

# A regression task: y = x . (1, 2, 3) + 0.5, 32 train rows and 16 test rows in batches of 8.
TOY = """
import torch

class Toy:
    def __init__(self, batch_size=8, n_train=32, n_test=16, features=3, shuffle=False):
        self.batch_size, self.n_train, self.n_test = batch_size, n_train, n_test
        self.features, self.shuffle = features, shuffle

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(123)
        x = torch.randn(self.n_train + self.n_test, self.features, generator=g)
        y = x @ torch.arange(1.0, self.features + 1) + 0.5
        train = torch.utils.data.TensorDataset(x[: self.n_train], y[: self.n_train])
        test = torch.utils.data.TensorDataset(x[self.n_train :], y[self.n_train :])
        Toy.targets = y
        return (
            torch.utils.data.DataLoader(train, batch_size=self.batch_size, shuffle=self.shuffle),
            torch.utils.data.DataLoader(test, batch_size=self.batch_size),
        )

    def info(self):
        return {"input_size": self.features, "output_size": 1}


class Affine(torch.nn.Module):
    "A plain torch module: forward(self, x)."
    def __init__(self, input_size, output_size):
        super().__init__()
        self.lin = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.lin(x)


class DropNet(torch.nn.Module):
    "Uses the torch RNG while training (dropout); can be made to crash after some training batches."
    limit = None
    calls = 0

    def __init__(self, input_size, hidden=6):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(input_size, hidden), torch.nn.Tanh(), torch.nn.Dropout(0.3),
            torch.nn.Linear(hidden, 1),
        )

    def forward(self, x):
        if self.training:
            DropNet.calls += 1
            if DropNet.limit is not None and DropNet.calls > DropNet.limit:
                raise RuntimeError("interrupted")
        return self.net(x)


class Bare:
    "Not an nn.Module: its own parameters(), backward(), save_model() and load_model()."
    limit = None
    calls = 0
    backward_calls = 0

    def __init__(self, input_size):
        self.w = (torch.randn(input_size) * 0.1).requires_grad_()
        self.b = torch.zeros(1, requires_grad=True)

    def parameters(self):
        return [self.w, self.b]

    def forward(self, x):
        if torch.is_grad_enabled():
            Bare.calls += 1
            if Bare.limit is not None and Bare.calls > Bare.limit:
                raise RuntimeError("interrupted")
        return x @ self.w + self.b

    def backward(self, loss):
        Bare.backward_calls += 1

    def save_model(self, path):
        torch.save({"w": self.w.detach().clone(), "b": self.b.detach().clone()}, path + ".pt")

    def load_model(self, path):
        state = torch.load(path + ".pt")
        with torch.no_grad():
            self.w.copy_(state["w"])
            self.b.copy_(state["b"])


class NaNNet(Affine):
    def forward(self, x):
        return self.lin(x) * float("nan")


class Fail(Affine):
    def forward(self, x):
        raise RuntimeError("boom in forward")


class ModeProbe(Affine):
    "Records, for every batch, whether gradients are on and whether the module is in train mode."
    records = []

    def forward(self, x):
        ModeProbe.records.append((torch.is_grad_enabled(), self.training))
        return super().forward(x)
"""

TOY_DATA = """
[toy]
type = data
class = Toy
path_to_class = toy.py
"""


def model_section(class_name, extra=""):
    return f"\n[model]\ntype = model\nclass = {class_name}\npath_to_class = toy.py\n{extra}\n"


def make_experiment(folder, sections, *, epochs=3, lr=0.01, data_scheme="data", pipeline_scheme="model",
                    process="", multiplicity=1, files=None):
    """Write toy.py, any extra class files and an ini into `folder`; return the loaded Experiment."""
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
    return make_experiment(folder, TOY_DATA + data_params + model_section(model, model_params), **kwargs)


def run_folder(experiment, run):
    return Path(runfiles.run_dir(experiment.process.run_files_path, run.run_hash))


def losses(experiment, run):
    """(epoch, train, test) rows of the run's loss file: exact floats, seconds left out."""
    return [row[:3] for row in runfiles.read_losses(run_folder(experiment, run) / runfiles.LOSSES)]


def result_of(experiment, run):
    return runfiles.read_json(run_folder(experiment, run) / runfiles.RESULT)


def user_class(run, index, name):
    """The class object the run uses (the same module mosaic loaded), to read what it recorded."""
    return load_class(run.modules[index].path, name)


def quiet(_line):
    pass


def final_models(experiment, run):
    return torch.load(run_folder(experiment, run) / runfiles.MODEL, weights_only=False)["models"]


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


def test_last_data_class_must_return_two_loaders(tmp_path):
    files = {"one.py": "class One:\n    def prepare(self, data):\n        return [1, 2, 3]\n"}
    sections = "\n[one]\ntype = data\nclass = One\npath_to_class = one.py\n" + model_section("Affine")
    experiment = make_experiment(tmp_path, sections, files=files)
    with pytest.raises(MosaicError, match=r"One.*\(train_loader, test_loader\)"):
        train_run(experiment, experiment.runs[0], log=quiet)


# ---------------------------------------------------------------------------------------------------------
# Optimizer, loss, evaluation


NETS = """
import torch

class Encoder(torch.nn.Module):
    def __init__(self, input_size, hidden):
        super().__init__()
        self.hidden = hidden
        self.lin = torch.nn.Linear(input_size, hidden)

    def forward(self, x):
        return torch.tanh(self.lin(x))

    def info(self):
        return {"hidden_size": self.hidden}


class Head(torch.nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.lin = torch.nn.Linear(hidden_size, 1)

    def forward(self, x):
        return self.lin(x)
"""

ENC_HEAD = """
[enc]
type = enc
class = Encoder
path_to_class = nets.py
hidden = 4

[head]
type = head
class = Head
path_to_class = nets.py
"""


def test_every_model_module_is_optimized(tmp_path):
    experiment = make_experiment(
        tmp_path, TOY_DATA + ENC_HEAD, files={"nets.py": NETS}, pipeline_scheme="enc, head", epochs=2
    )
    run = experiment.runs[0]
    seed_everything(run.seed)
    initial = [
        {name: tensor.clone() for name, tensor in model.state_dict().items()}
        for model in Pipeline(run, experiment, "cpu").models
    ]
    result = train_run(experiment, run, log=quiet)
    final = final_models(experiment, run)
    assert result["nb_params"] == (3 * 4 + 4) + (4 + 1)
    assert len(final) == 2
    for before, after in zip(initial, final):
        assert before.keys() == after.keys()
        for name in before:
            assert before[name].shape == after[name].shape
            assert not torch.equal(before[name], after[name]), name


ASYM = """
import torch

class Asym:
    "A non-symmetric loss recording how it is called."
    calls = []

    def __init__(self, weight=2.0):
        self.weight = weight

    def __call__(self, prediction, target):
        Asym.calls.append((
            tuple(prediction.shape), tuple(target.shape),
            prediction.requires_grad, target.requires_grad, target.clone(),
        ))
        over = (prediction - target).clamp(min=0)
        under = (target - prediction).clamp(min=0)
        return (self.weight * over**2 + under**2).mean()


class Mse(torch.nn.MSELoss):
    "The original's example custom loss (which the original never instantiated)."
"""


def test_custom_loss_is_instantiated_and_called_prediction_first(tmp_path):
    experiment = toy(
        tmp_path, epochs=2, files={"loss.py": ASYM},
        process="class_loss_function = Asym\npath_to_class_loss_function = loss.py\n",
    )
    run = experiment.runs[0]
    seed_everything(run.seed)
    assert type(Pipeline(run, experiment, "cpu").loss_fn).__name__ == "Asym"
    train_run(experiment, run, log=quiet)
    calls = load_class(experiment.process.path_to_class_loss_function, "Asym").calls
    targets = load_class(run.modules[0].path, "Toy").targets
    # 2 epochs of 4 train + 2 test batches; model output (8, 1) and target (8,) squeezed to (8,)
    assert len(calls) == 2 * 6
    assert all(call[0] == (8,) and call[1] == (8,) for call in calls)
    train_calls = calls[0:4]
    assert [call[2:4] for call in train_calls] == [(True, False)] * 4
    assert torch.equal(train_calls[0][4], targets[:8])  # the second argument is the target
    test_calls = calls[4:6]
    assert [call[2:4] for call in test_calls] == [(False, False)] * 2
    assert torch.equal(test_calls[0][4], targets[32:40])


def test_original_style_loss_subclass_works(tmp_path):
    experiment = toy(
        tmp_path, epochs=2, files={"loss.py": ASYM},
        process="class_loss_function = Mse\npath_to_class_loss_function = loss.py\n",
    )
    run = experiment.runs[0]
    seed_everything(run.seed)
    loss_fn = Pipeline(run, experiment, "cpu").loss_fn
    assert isinstance(loss_fn, torch.nn.MSELoss) and type(loss_fn).__name__ == "Mse"
    result = train_run(experiment, run, log=quiet)
    assert math.isfinite(result["train_loss"])


def test_torch_loss_by_name(tmp_path):
    experiment = toy(tmp_path, epochs=1, process="loss_function = L1Loss\n")
    seed_everything(0)
    assert isinstance(Pipeline(experiment.runs[0], experiment, "cpu").loss_fn, torch.nn.L1Loss)


def test_unknown_torch_loss_and_optimizer_are_mosaic_errors(tmp_path):
    # refused when the ini is read (tests/run/test_validation.py), before any run
    with pytest.raises(MosaicError, match="NoSuchLoss"):
        toy(tmp_path / "a", process="loss_function = NoSuchLoss\n")
    with pytest.raises(MosaicError, match="NoSuchOptim"):
        toy(tmp_path / "b", process="optimizer = NoSuchOptim\n")


def test_sgd_optimizer_by_name(tmp_path):
    experiment = toy(tmp_path, epochs=3, process="optimizer = SGD\n", lr=0.05)
    train_run(experiment, experiment.runs[0], log=quiet)
    rows = losses(experiment, experiment.runs[0])
    assert rows[-1][1] < rows[0][1]


def test_batch_loss_squeezes_only_singleton_differences():
    seen = []

    def record(prediction, target):
        seen.append((tuple(prediction.shape), tuple(target.shape)))
        return (prediction.sum() - target.sum()).abs()

    prediction, target = torch.ones(4, 1), torch.zeros(4)
    assert batch_loss(record, prediction, target).item() == 4.0
    batch_loss(record, torch.ones(4, 2), torch.zeros(4, 2))
    batch_loss(record, torch.ones(1, 1), torch.zeros(1))
    assert seen == [((4,), (4,)), ((4, 2), (4, 2)), ((), ())]
    # a real mismatch is left to the loss function
    seen.clear()
    batch_loss(record, torch.ones(4, 2), torch.zeros(4))
    assert seen == [((4, 2), (4,))]


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


# ---------------------------------------------------------------------------------------------------------
# Batches


def test_plain_tensor_loader_batches_are_made_once():
    data = torch.utils.data
    loader = data.DataLoader(data.TensorDataset(torch.arange(8.0), torch.arange(8.0)), batch_size=4)
    batches = batch_source(loader, "cpu")
    first, second = list(batches()), list(batches())
    assert len(first) == 2
    assert first[0][0] is second[0][0]
    assert torch.equal(first[1][0], torch.tensor([4.0, 5.0, 6.0, 7.0]))


def test_random_collate_and_batch_samplers_give_new_batches_each_epoch():
    data = torch.utils.data
    dataset = data.TensorDataset(torch.zeros(8, 2), torch.zeros(8))

    def noisy(items):
        x, y = data.default_collate(items)
        return x + torch.randn(x.shape), y

    class Augmented(data.TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return x + torch.randn(x.shape), y

    class Shuffled(data.Sampler):
        def __iter__(self):
            return iter(torch.randperm(8).view(2, 4).tolist())

        def __len__(self):
            return 2

    torch.manual_seed(0)
    loaders = {
        "collate_fn": data.DataLoader(dataset, batch_size=4, collate_fn=noisy),
        "dataset subclass": data.DataLoader(Augmented(torch.zeros(8, 2), torch.zeros(8)), batch_size=4),
    }
    for name, loader in loaders.items():
        batches = batch_source(loader, "cpu")
        assert not torch.equal(list(batches())[0][0], list(batches())[0][0]), name
    indexed = data.TensorDataset(torch.arange(8.0), torch.arange(8.0))
    batches = batch_source(data.DataLoader(indexed, batch_sampler=Shuffled()), "cpu")
    orders = {tuple(torch.cat([x for x, _ in batches()]).tolist()) for _ in range(5)}
    assert len(orders) > 1


def test_a_dataset_above_the_cache_limit_is_streamed_batch_by_batch():
    data = torch.utils.data
    loader = data.DataLoader(data.TensorDataset(torch.arange(8.0), torch.arange(8.0)), batch_size=4)
    size = 2 * 8 * 4  # two tensors of 8 float32
    cached = batch_source(loader, "cpu", limit=size)
    streamed = batch_source(loader, "cpu", limit=size - 1)
    assert list(cached())[0][0] is list(cached())[0][0]
    first, second = list(streamed()), list(streamed())
    assert first[0][0] is not second[0][0]
    assert [torch.equal(a[0], b[0]) for a, b in zip(first, list(cached()))] == [True, True]


def test_streamed_and_cached_batches_train_alike(tmp_path):
    cached = make_experiment(tmp_path / "cached", TOY_DATA + model_section("Affine"))
    streamed = make_experiment(tmp_path / "streamed", "batch_cache = 0\n" + TOY_DATA + model_section("Affine"))
    assert (cached.monitor.batch_cache_limit, streamed.monitor.batch_cache_limit) == (None, 0)
    for experiment in (cached, streamed):
        train_run(experiment, experiment.runs[0], log=lambda line: None)
    assert losses(cached, cached.runs[0]) == losses(streamed, streamed.runs[0])


def test_batch_cache_takes_a_size_or_auto(tmp_path):
    experiment = make_experiment(tmp_path, "batch_cache = 2G\n" + TOY_DATA + model_section("Affine"))
    assert experiment.monitor.batch_cache_limit == 2_000_000_000
    with pytest.raises(MosaicError, match="batch_cache"):
        make_experiment(tmp_path, "batch_cache = lots\n" + TOY_DATA + model_section("Affine"))


def test_empty_train_loader_is_a_mosaic_error():
    data = torch.utils.data
    loader = data.DataLoader(data.TensorDataset(torch.zeros(3), torch.zeros(3)), batch_size=4, drop_last=True)
    with pytest.raises(MosaicError, match="empty"):
        batch_source(loader, "cpu")


# ---------------------------------------------------------------------------------------------------------
# Seeds and determinism

DROP_DATA = "shuffle = True\n"


def test_same_run_twice_is_bit_identical_and_replicates_differ(tmp_path):
    experiment = toy(tmp_path, model="DropNet", data_params=DROP_DATA, epochs=3, multiplicity=2)
    first, second = experiment.runs
    assert first.seed != second.seed
    train_run(experiment, first, log=quiet)
    once = losses(experiment, first)
    once_state = final_models(experiment, first)
    train_run(experiment, first, log=quiet)
    assert losses(experiment, first) == once
    for a, b in zip(once_state[0].values(), final_models(experiment, first)[0].values()):
        assert torch.equal(a, b)
    train_run(experiment, second, log=quiet)
    other = losses(experiment, second)
    assert [row[1] for row in other] != [row[1] for row in once]
    assert all(a[1] != b[1] for a, b in zip(once, other))


def test_same_ini_in_another_folder_gives_the_same_losses(tmp_path):
    a = toy(tmp_path / "a", model="DropNet", data_params=DROP_DATA, epochs=2)
    b = toy(tmp_path / "b", model="DropNet", data_params=DROP_DATA, epochs=2)
    assert a.runs[0].run_hash == b.runs[0].run_hash
    train_run(a, a.runs[0], log=quiet)
    train_run(b, b.runs[0], log=quiet)
    assert losses(a, a.runs[0]) == losses(b, b.runs[0])


# ---------------------------------------------------------------------------------------------------------
# Checkpoints and continuation

CHECKPOINTED = dict(model="DropNet", data_params=DROP_DATA, epochs=6, process="checkpoint_every = 2\n")


def clean_rows(folder, **kwargs):
    experiment = toy(folder, **{**CHECKPOINTED, **kwargs})
    train_run(experiment, experiment.runs[0], log=quiet)
    return losses(experiment, experiment.runs[0]), final_models(experiment, experiment.runs[0])


def test_continuing_from_the_final_model_equals_a_clean_run(tmp_path):
    clean, clean_state = clean_rows(tmp_path / "clean")
    assert len(clean) == 6

    experiment = toy(tmp_path / "resumed", **CHECKPOINTED)
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    first = train_run(experiment, run, target_epochs=4, log=quiet)
    assert first["epochs"] == 4
    assert losses(experiment, run) == clean[:4]
    shutil.copy(folder / runfiles.MODEL, folder / runfiles.CHECKPOINT)  # what mosaic_rerun -epochs does
    lines = []
    result = train_run(experiment, run, target_epochs=6, log=lines.append)
    assert "continuing from the checkpoint at epoch 4" in lines
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["5/6", "6/6"]
    assert losses(experiment, run) == clean  # RNG, optimizer and weights all restored
    assert result["epochs"] == 6 and result["train_loss"] == clean[-1][1]
    assert result["duration_s"] >= first["duration_s"]
    for a, b in zip(clean_state[0].values(), final_models(experiment, run)[0].values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("model", ["DropNet", "Bare"])
def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, model):
    clean, _ = clean_rows(tmp_path / "clean", model=model)

    experiment = toy(tmp_path / "crash", **{**CHECKPOINTED, "model": model})
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    cls = user_class(run, 1, model)
    cls.limit = 4 * 4  # 4 epochs of 4 training batches, then the process "dies"
    with pytest.raises(RuntimeError, match="interrupted"):
        train_run(experiment, run, log=quiet)
    assert not (folder / runfiles.RESULT).exists()
    checkpoint = torch.load(folder / runfiles.CHECKPOINT, weights_only=False)
    assert checkpoint["epoch"] == 4 and checkpoint["run_hash"] == run.run_hash
    assert [row[:3] for row in checkpoint["losses"]] == clean[:4]

    cls.limit = None
    lines = []
    train_run(experiment, run, log=lines.append)
    assert "continuing from the checkpoint at epoch 4" in lines
    assert losses(experiment, run) == clean


def test_user_saved_models_stay_paired_with_their_checkpoint(tmp_path, monkeypatch):
    """A process killed after a non-nn.Module model saved itself but before the checkpoint of that
    epoch was written must continue from the previous checkpoint with that checkpoint's models."""
    clean, _ = clean_rows(tmp_path / "clean", model="Bare")
    experiment = toy(tmp_path / "crash", **{**CHECKPOINTED, "model": "Bare"})
    run = experiment.runs[0]
    real_save = training.save_checkpoint
    calls = []

    def dies_at_the_second_checkpoint(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise RuntimeError("killed while writing the checkpoint")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(training, "save_checkpoint", dies_at_the_second_checkpoint)
    with pytest.raises(RuntimeError, match="killed"):
        train_run(experiment, run, log=quiet)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    lines = []
    train_run(experiment, run, log=lines.append)
    assert "continuing from the checkpoint at epoch 2" in lines
    assert losses(experiment, run) == clean
    names = sorted(p.name for p in run_folder(experiment, run).iterdir())
    assert "model_0_Bare.pt" in names and not any(name.startswith("checkpoint_models") for name in names)


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    experiment = toy(tmp_path, model="DropNet", data_params=DROP_DATA, epochs=3, multiplicity=2)
    first, second = experiment.runs
    train_run(experiment, second, log=quiet)
    clean = losses(experiment, second)
    train_run(experiment, first, target_epochs=2, log=quiet)
    foreign = run_folder(experiment, first) / runfiles.MODEL
    shutil.copy(foreign, run_folder(experiment, second) / runfiles.CHECKPOINT)
    lines = []
    train_run(experiment, second, log=lines.append)
    assert not any(line.startswith("continuing") for line in lines)
    assert losses(experiment, second) == clean


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


# ---------------------------------------------------------------------------------------------------------
# The job process: python -m mosaic.run.job INI HASH


def job_env():
    """This checkout first on the path, whether or not the package is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_job(experiment, run, cwd):
    """Run the job as the train rule does: output appended to the run's train.log."""
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / runfiles.LOG, "a") as log:
        done = subprocess.run(
            [sys.executable, "-m", "mosaic.run.job", experiment.ini_path, run.run_hash],
            cwd=cwd, env=job_env(), stdout=log, stderr=subprocess.STDOUT, timeout=120,
        )
    return done.returncode, (folder / runfiles.LOG).read_text()


def test_failing_job_leaves_its_traceback(tmp_path):
    experiment = toy(tmp_path, model="Fail", epochs=2)
    run = experiment.runs[0]
    code, log = run_job(experiment, run, tmp_path)
    folder = run_folder(experiment, run)
    assert code == 1
    error = (folder / runfiles.ERROR).read_text()
    assert error.startswith("Traceback (most recent call last):")
    assert "in forward" in error and "RuntimeError: boom in forward" in error
    for name in (runfiles.RESULT, runfiles.MODEL, runfiles.LOSSES):
        assert not (folder / name).exists(), name
    assert log.strip().splitlines()[-1] == "mosaic: run 1 failed: RuntimeError: boom in forward"
    state = runfiles.read_state(experiment.process.run_files_path, run.run_hash)
    assert state.status == "error" and "boom in forward" in state.error


def test_successful_job_cleans_up_and_continues_to_the_requested_epochs(tmp_path):
    experiment = toy(tmp_path, epochs=3, process="checkpoint_every = 1\n")
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True)
    (folder / runfiles.ERROR).write_text("Traceback: an earlier failure\n")
    runfiles.write_json(folder / runfiles.CONTINUE, {"target_epochs": 4})
    code, log = run_job(experiment, run, tmp_path)
    assert code == 0, log
    for name in (runfiles.ERROR, runfiles.CHECKPOINT, runfiles.CONTINUE):
        assert not (folder / name).exists(), name
    assert [row[0] for row in losses(experiment, run)] == [1, 2, 3, 4]
    assert "epoch 4/4" in log and "seed" in log
    assert not runfiles.is_locked(str(folder / runfiles.LOCK))
    state = runfiles.read_state(experiment.process.run_files_path, run.run_hash)
    assert state.status == "done" and state.result["epochs"] == 4


def test_second_job_on_a_locked_run_fails_clearly(tmp_path):
    experiment = toy(tmp_path, epochs=2)
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True)
    with open(folder / runfiles.LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert runfiles.read_state(experiment.process.run_files_path, run.run_hash).status == "running"
        code, log = run_job(experiment, run, tmp_path)
        assert code == 1
        assert "another process is training this run" in log
        for name in (runfiles.ERROR, runfiles.RESULT, runfiles.MODEL, runfiles.LOSSES):
            assert not (folder / name).exists(), name
    code, log = run_job(experiment, run, tmp_path)  # lock released: it trains
    assert code == 0, log
    assert result_of(experiment, run)["epochs"] == 2


def test_job_with_an_unknown_run_hash_fails(tmp_path):
    experiment = toy(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mosaic.run.job", experiment.ini_path, "0123456789abcdef"],
        cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "0123456789abcdef" in done.stderr


# ---------------------------------------------------------------------------------------------------------
# The tutorial classes (share/dataset.py, share/mlp.py)


@pytest.fixture
def tutorial(tmp_path):
    for name in ("config.ini", "dataset.py", "mlp.py"):
        shutil.copy(REPO / "share" / name, tmp_path / name)
    return load_experiment(str(tmp_path / "config.ini"))


def test_tutorial_parameter_counts(tutorial):
    counts = {}
    for run in tutorial.runs[::4]:
        seed_everything(run.seed)
        pipeline = Pipeline(run, tutorial, "cpu")
        counts[run.pipeline] = sum(p.numel() for p in pipeline.parameters)
    assert counts == {
        "dataset_OR(1,200,0.8) | mlp_funnel(4,2)": 29,
        "dataset_OR(1,200,0.8) | mlp_funnel(4,3)": 52,
        "dataset_OR(1,200,0.8) | mlp_funnel(4,4)": 74,
        "dataset_OR(1,200,0.8) | mlp_brick(4,2)": 27,
        "dataset_OR(1,200,0.8) | mlp_brick(4,3)": 49,
        "dataset_OR(1,200,0.8) | mlp_brick(4,4)": 77,
    }


def test_tutorial_save_and_load_model_round_trip(tmp_path):
    path = str(REPO / "share" / "mlp.py")
    for name in ("mlp_funnel", "mlp_brick"):
        cls = load_class(path, name)
        torch.manual_seed(1)
        saved = cls(2, 1, 4, 3)
        torch.manual_seed(2)
        loaded = cls(2, 1, 4, 3)
        assert not torch.equal(saved.layers[0].weight, loaded.layers[0].weight)
        saved.save_model(str(tmp_path / name))
        assert (tmp_path / f"{name}.pt").exists()  # the class adds its own extension
        loaded.load_model(str(tmp_path / name))
        for a, b in zip(saved.state_dict().values(), loaded.state_dict().values()):
            assert torch.equal(a, b)
        x = torch.rand(5, 2)
        assert torch.equal(saved(x, {}, {}), loaded(x, {}, {}))


def test_tutorial_run_trains(tutorial):
    run = tutorial.runs[0]
    result = train_run(tutorial, run, target_epochs=2, log=quiet)
    rows = losses(tutorial, run)
    assert result["nb_params"] == 29 and result["epochs"] == 2
    assert rows[1][1] < rows[0][1]
    folder = run_folder(tutorial, run)
    user_file = torch.load(folder / "model_0_mlp_funnel.pt", weights_only=True)
    for name, tensor in final_models(tutorial, run)[0].items():
        assert torch.equal(user_file[name], tensor)


def test_backward_gives_torchs_gradients_bit_for_bit():
    def grads(call):
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        x, y = torch.randn(5, 3), torch.randn(5, 1)
        for _ in range(2):  # the second accumulates into the first's gradients
            call(torch.nn.functional.mse_loss(model(x), y))
        return [param.grad for param in model.parameters()]

    ours, theirs = grads(training.backward), grads(lambda loss: loss.backward())
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert all(grad.abs().sum() > 0 for grad in ours)
    with pytest.raises(RuntimeError, match="scalar outputs"):  # not a scalar: torch's own call and error
        training.backward(torch.ones(2, requires_grad=True) * 2)
