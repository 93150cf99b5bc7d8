"""Tests for mosaic.run.traced: the training step traced once and replayed.

A replayed step must train exactly as the eager step does (losses and weights bit for bit), and a forward
whose replay could differ (it branches on a value, counts, prints, draws Python's random numbers) must
keep the eager step.
"""

import shutil

import pytest
import torch

from mosaic.errors import MosaicError
from mosaic.run import traced, training
from tests.fakes import ASYM, ROOT, TOY_DATA, final_models, losses, make_experiment, quiet, toy

NETS = """
import random
import types

import numpy
import torch

SEEN = []


class Net(torch.nn.Module):
    "Linear, batch norm (buffers updated in place), tanh, dropout (the torch RNG), linear."
    def __init__(self, input_size, output_size, hidden=8):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(input_size, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.Tanh(),
            torch.nn.Dropout(0.2), torch.nn.Linear(hidden, output_size),
        )

    def forward(self, x):
        return self.net(x)


class Branchy(Net):
    "Branches on a tensor's value."
    def forward(self, x):
        h = self.net(x)
        return h * 2 if h.sum() > 0 else h


class Counter(Net):
    "Scales its output by a step counter it keeps."
    def __init__(self, input_size, output_size):
        super().__init__(input_size, output_size)
        self.steps = 0

    def forward(self, x):
        if self.training:
            self.steps += 1
        return self.net(x) * (1 + 0.01 * self.steps)


class ClassCounter(Net):
    "Counts its calls in a class attribute."
    calls = 0

    def forward(self, x):
        ClassCounter.calls += 1
        return self.net(x) * (1 + 0.01 * ClassCounter.calls)


class Keeper(Net):
    "Keeps its outputs in a global list of its file."
    def forward(self, x):
        out = self.net(x)
        SEEN.append(out.detach())
        return out


class Hooked(Net):
    "Counts its first layer's gradients with a tensor hook, which autograd calls in the backward."
    grads = []

    def __init__(self, input_size, output_size):
        super().__init__(input_size, output_size)
        self.net[0].weight.register_hook(lambda grad: Hooked.grads.append(grad.norm().item()))


class Printer(Net):
    "Prints a line each call."
    def forward(self, x):
        print("forward called")
        return self.net(x)


class Coin(Net):
    "Draws Python's random numbers."
    def forward(self, x):
        out = self.net(x)
        return out if random.random() < 0.5 else out * 0.5


class WarmUp(Net):
    "Halves its output for the first 5 training steps, counted in a plain object."
    def __init__(self, input_size, output_size):
        super().__init__(input_size, output_size)
        self.state = types.SimpleNamespace(steps=0)

    def forward(self, x):
        if self.training:
            self.state.steps += 1
        return self.net(x) * (0.5 if self.state.steps <= 5 else 1.0)


class NumpyNoise(Net):
    "Adds noise from a NumPy generator it keeps."
    def __init__(self, input_size, output_size):
        super().__init__(input_size, output_size)
        self.rng = numpy.random.default_rng(3)

    def forward(self, x):
        if self.training:
            x = x + torch.from_numpy(self.rng.normal(0, 0.1, size=tuple(x.shape))).float()
        return self.net(x)


class SubInput(Net):
    "Changes its input in place."
    def forward(self, x):
        return self.net(x.sub_(0.1))


class ShrinkWeight(Net):
    "Shrinks a weight in place under no_grad."
    def forward(self, x):
        with torch.no_grad():
            self.net[0].weight.mul_(0.99)
        return self.net(x)
"""


def net_experiment(folder, model, traced_step=True, epochs=3, n_train=30):
    """Toy data (batches of 8; 30 rows: a partial last batch of 6) and one model of NETS."""
    sections = TOY_DATA + f"n_train = {n_train}\n" + (
        f"\n[model]\ntype = model\nclass = {model}\npath_to_class = nets.py\n"
    )
    return make_experiment(folder, sections, epochs=epochs, process=f"traced_step = {traced_step}",
                           files={"nets.py": NETS})


@pytest.fixture
def tracers(monkeypatch):
    """The StepTracers the runs make, in order; runs of any length are traced."""
    monkeypatch.setattr(traced, "MIN_STEPS", 0)
    made = []
    original = training.step_tracer

    def spy(*args):
        tracer = original(*args)
        made.append(tracer)
        return tracer

    monkeypatch.setattr(training, "step_tracer", spy)
    return made


def train(experiment):
    run = experiment.runs[0]
    training.train_run(experiment, run, log=quiet)
    return losses(experiment, run), final_models(experiment, run)


def assert_same_training(a, b):
    assert a[0] == b[0]  # every epoch's train and test loss, exactly
    for models_a, models_b in zip(a[1], b[1]):
        assert models_a.keys() == models_b.keys()
        assert all(torch.equal(models_a[key], models_b[key]) for key in models_a)


def replayed(tracer):
    return [key for key, replay in tracer.steps.items() if replay]


def test_a_replayed_step_trains_bit_identically_to_the_eager_step(tmp_path, tracers):
    """Batch norm's buffers, dropout's random numbers and a partial last batch (two traced shapes)."""
    eager = train(net_experiment(tmp_path / "eager", "Net", traced_step=False))
    assert tracers == []  # traced_step = False: no tracer is made
    replay = train(net_experiment(tmp_path / "traced", "Net"))
    (tracer,) = tracers
    assert len(replayed(tracer)) == 2, tracer.why  # the full batches of 8 and the last one of 6
    assert all(step.fast for step in tracer.steps.values())  # through torch's bindings
    assert_same_training(eager, replay)


def test_the_tutorial_model_is_replayed_bit_identically(tmp_path, tracers):
    results = []
    for traced_step in (False, True):
        folder = tmp_path / str(traced_step)
        shutil.copytree(ROOT / "share", folder)
        ini = (folder / "config.ini").read_text().replace("epochs = 400", f"epochs = 3\ntraced_step = {traced_step}")
        (folder / "config.ini").write_text(ini)
        from mosaic.experiment import load_experiment

        experiment = load_experiment(str(folder / "config.ini"))
        assert experiment.process.traced_step is traced_step
        results.append(train(experiment))
    assert len(tracers) == 1 and replayed(tracers[0])
    assert_same_training(*results)


@pytest.mark.parametrize(
    "model, why",
    [
        ("Branchy", "not traced"),  # fake tensors have no value to branch on
        ("Counter", "changes"),
        ("ClassCounter", "changes"),
        ("Keeper", "changes"),
        ("Printer", "prints"),
        ("Coin", "changes"),
    ],
)
def test_a_forward_that_a_replay_would_change_keeps_the_eager_step(tmp_path, tracers, model, why):
    eager = train(net_experiment(tmp_path / "eager", model, traced_step=False))
    shutil.rmtree(tmp_path / "eager")  # the same class files again, loaded afresh
    kept = train(net_experiment(tmp_path / "traced", model))
    (tracer,) = tracers
    assert not replayed(tracer)
    assert all(why in reason for reason in tracer.why.values()) and tracer.why, tracer.why
    assert_same_training(eager, kept)


def test_a_custom_loss_that_records_its_calls_keeps_the_eager_step(tmp_path, tracers):
    experiment = make_experiment(
        tmp_path, TOY_DATA + "\n[model]\ntype = model\nclass = Net\npath_to_class = nets.py\n", epochs=2,
        files={"nets.py": NETS, "loss.py": ASYM},
        process="class_loss_function = Asym\npath_to_class_loss_function = loss.py\ntraced_step = True\n",
    )
    train(experiment)
    (tracer,) = tracers
    assert not replayed(tracer) and all("changes" in reason for reason in tracer.why.values())
    from mosaic.run.classes import load_class

    assert len(load_class(experiment.process.path_to_class_loss_function, "Asym").calls) == 2 * (4 + 2)


def test_a_backward_hook_keeps_the_eager_step(tmp_path, tracers):
    experiment = net_experiment(tmp_path, "Hooked", epochs=2)
    train(experiment)
    assert tracers == [False]
    from mosaic.run.classes import load_class

    assert len(load_class(experiment.runs[0].modules[1].path, "Hooked").grads) == 2 * 4  # every train step


def test_a_forward_that_prints_prints_at_every_step(tmp_path, capsys):
    train(net_experiment(tmp_path, "Printer", epochs=2))
    # 4 train and 2 test batches an epoch
    assert capsys.readouterr().out.count("forward called") == 2 * (4 + 2)


def test_a_replay_that_differs_from_the_eager_step_is_not_used(tmp_path, tracers, monkeypatch):
    """The check on the first batch of each shape: a replay whose gradient is a little off is refused."""
    compile_graph = traced.compile_graph

    def off(graph, fast=True):
        replay = compile_graph(graph, fast)
        return lambda *tensors: [out * (1 + 1e-6) if i == 1 else out for i, out in enumerate(replay(*tensors))]

    monkeypatch.setattr(traced, "compile_graph", off)
    eager = train(net_experiment(tmp_path / "eager", "Net", traced_step=False))
    kept = train(net_experiment(tmp_path / "traced", "Net"))
    (tracer,) = tracers
    assert not replayed(tracer)
    assert all("differs" in reason for reason in tracer.why.values()) and tracer.why, tracer.why
    assert_same_training(eager, kept)


def test_where_a_binding_differs_the_aten_overloads_are_replayed(tmp_path, tracers, monkeypatch):
    """torch's binding of an operation computing tanh a little off: the replay through the overloads
    themselves (the second one checked) is used instead, with the same results."""
    fast = traced.fast_callable

    def off(target):
        function = fast(target)
        if target is torch.ops.aten.tanh.default:
            return lambda x: function(x) * (1 + 1e-6)
        return function

    monkeypatch.setattr(traced, "fast_callable", off)
    eager = train(net_experiment(tmp_path / "eager", "Net", traced_step=False))
    replay = train(net_experiment(tmp_path / "traced", "Net"))
    (tracer,) = tracers
    assert len(replayed(tracer)) == 2 and not tracer.why, tracer.why
    assert not any(step.fast for step in tracer.steps.values())  # through the overloads
    assert_same_training(eager, replay)


@pytest.mark.parametrize("model, adopted", [("WarmUp", False), ("NumpyNoise", False), ("SubInput", True),
                                           ("ShrinkWeight", True)])
def test_a_trial_leaves_the_run_as_the_eager_step_would(tmp_path, tracers, model, adopted):
    """The trace runs on copies of the models and the replays on copies of the tensors: a forward with state
    out of torch's sight (a counter in a plain object, a NumPy generator) is refused without its state
    moving; one that writes into its input or a weight is replayed, writes included. Either way the
    losses and weights are the eager step's, and train.log says what was decided."""
    eager = train(net_experiment(tmp_path / "eager", model, traced_step=False))
    shutil.rmtree(tmp_path / "eager")
    experiment = net_experiment(tmp_path / "traced", model)
    lines = []
    training.train_run(experiment, experiment.runs[0], log=lines.append)
    kept = losses(experiment, experiment.runs[0]), final_models(experiment, experiment.runs[0])
    (tracer,) = tracers
    assert bool(replayed(tracer)) is adopted, tracer.why
    decisions = [line for line in lines if line.startswith("traced step:")]
    assert len(decisions) == 2  # the batches of 8 and the last one of 6
    assert all(("replayed" in line) is adopted for line in decisions), decisions
    if not adopted:
        assert all("state that is not a tensor" in line for line in decisions), decisions
    assert_same_training(eager, kept)


def test_a_custom_backward_or_a_model_that_is_no_module_is_not_traced(tmp_path, tracers):
    experiment = toy(tmp_path, model="Bare", process="traced_step = True")
    training.train_run(experiment, experiment.runs[0], log=quiet)
    assert tracers == [False]


def test_traced_step_must_be_a_boolean(tmp_path):
    with pytest.raises(MosaicError, match=r"\[PROCESS\] traced_step.*boolean"):
        net_experiment(tmp_path, "Net", traced_step="sometimes")


def test_a_run_too_short_for_a_trace_to_pay_keeps_the_eager_step(tmp_path, tracers, monkeypatch):
    """3 epochs of 4 batches: 12 steps to train."""
    monkeypatch.setattr(traced, "MIN_STEPS", 13)
    train(net_experiment(tmp_path / "short", "Net"))
    assert tracers == []
    monkeypatch.setattr(traced, "MIN_STEPS", 12)
    train(net_experiment(tmp_path / "long enough", "Net"))
    assert len(tracers) == 1 and replayed(tracers[0])


STREAM = """
import torch


class Stream:
    "A train loader over an IterableDataset: it has no length."
    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(5)
        x = torch.randn(24, 3, generator=g)
        y = x.sum(1)

        class Rows(torch.utils.data.IterableDataset):
            def __iter__(self):
                return iter(zip(x, y))

        test = torch.utils.data.TensorDataset(x[:8], y[:8])
        return torch.utils.data.DataLoader(Rows(), batch_size=8), torch.utils.data.DataLoader(test, batch_size=8)

    def info(self):
        return {"input_size": 3, "output_size": 1}
"""


def test_a_train_loader_without_a_length_trains_eagerly(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(training, "step_tracer", lambda *args: made.append(args) or False)
    sections = ("\n[stream]\ntype = data\nclass = Stream\npath_to_class = stream.py\n"
                "\n[model]\ntype = model\nclass = Net\npath_to_class = nets.py\n")
    experiment = make_experiment(tmp_path, sections, epochs=2, files={"nets.py": NETS, "stream.py": STREAM},
                                 process="traced_step = True")
    rows, _ = train(experiment)
    assert [row[0] for row in rows] == [1, 2] and made == []


def test_the_traced_step_is_off_by_default(tmp_path, tracers):
    """Opt-in, as torch.compile is: a run with the default settings never traces its step."""
    experiment = make_experiment(tmp_path, TOY_DATA + "\n[model]\ntype = model\nclass = Net\npath_to_class = nets.py\n",
                                 files={"nets.py": NETS})
    assert experiment.process.traced_step is False
    train(experiment)
    assert tracers == []
