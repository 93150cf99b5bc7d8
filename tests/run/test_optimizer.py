"""The run's optimizer (mosaic/run/optimizer.py): torch's own fused implementation, bit for bit, with its kernel
called directly; over every model module's parameters, the ini's class."""

import pytest
import torch

from mosaic.errors import MosaicError
from mosaic.run.optimizer import RunOptimizer, make_optimizer
from mosaic.run.training import Pipeline, seed_everything, train_run
from tests.fakes import TOY_DATA, final_models, losses, make_experiment, optimizer_experiment, quiet, toy


def mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Sigmoid(), torch.nn.Linear(5, 3),
                               torch.nn.Sigmoid(), torch.nn.Linear(3, 1))


class WithUnused(torch.nn.Module):
    """An MLP with a layer its forward never uses."""

    def __init__(self):
        super().__init__()
        self.body = mlp()
        self.unused = torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.body(x)


def data(steps=30):
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(steps, 4, 2, generator=generator)
    return [(xs, xs.sum(dim=1, keepdim=True)) for xs in x]


def train(model, optimizer, forward=None, steps=30, with_step=False):
    """A plain loop (train_epoch's calls): zero_grad, forward, backward, step."""
    forward = forward or model
    for step, (x, y) in enumerate(data(steps)):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(forward(x, step) if with_step else forward(x), y)
        loss.backward()
        optimizer.step()


def flat_values(model):
    return torch.cat([param.detach().reshape(-1) for param in model.parameters()])


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
def test_the_update_is_torchs_fused_implementation_bit_for_bit(name):
    ours, theirs, default = mlp(), mlp(), mlp()
    optimizer = make_optimizer(optimizer_experiment(name), list(ours.parameters()))
    train(ours, optimizer, steps=200)
    train(theirs, getattr(torch.optim, name)(theirs.parameters(), lr=1e-2, fused=True), steps=200)
    assert torch.equal(flat_values(ours), flat_values(theirs))
    assert not torch.equal(flat_values(ours), flat_values(mlp()))  # it learned
    # the default single-tensor implementation: the same to about 1e-7 (docs/classes.md)
    train(default, getattr(torch.optim, name)(default.parameters(), lr=1e-2), steps=200)
    assert torch.allclose(flat_values(ours), flat_values(default), rtol=0, atol=1e-5)


def test_an_optimizer_without_a_fused_kernel_is_torchs_default():
    ours, theirs = mlp(), mlp()
    train(ours, make_optimizer(optimizer_experiment("RMSprop"), list(ours.parameters())))
    train(theirs, torch.optim.RMSprop(theirs.parameters(), lr=1e-2))
    assert torch.equal(flat_values(ours), flat_values(theirs))


def test_a_flat_checkpoint_of_an_earlier_mosaic_is_continued_tensor_by_tensor():
    """An optimizer state saved over one flat tensor per model is split per parameter: the run goes on as
    torch's would from the same moments."""
    model, theirs = mlp(), mlp()
    params = list(theirs.parameters())
    reference = torch.optim.Adam(params, lr=1e-2, fused=True)
    train(theirs, reference, steps=10)
    state = reference.state_dict()
    flat = {key: torch.cat([state["state"][i][key].reshape(-1) for i in range(len(params))])
            for key in ("exp_avg", "exp_avg_sq")}
    flat["step"] = state["state"][0]["step"].clone()
    saved = {"state": {0: flat}, "param_groups": [dict(state["param_groups"][0], params=[0])]}
    model.load_state_dict(theirs.state_dict())
    optimizer = make_optimizer(optimizer_experiment("Adam"), list(model.parameters()))
    optimizer.load_state_dict(saved)
    train(model, optimizer, steps=10)
    train(theirs, reference, steps=10)
    assert torch.equal(flat_values(model), flat_values(theirs))


class TwoHeads(torch.nn.Module):
    """The second head is used on steps 0, 3, 6...: on the others backward does not reach it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head, self.extra = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)

    def forward(self, x, step=0):
        h = torch.tanh(self.body(x))
        return self.head(h) + self.extra(h) if step % 3 == 0 else self.head(h)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
def test_a_parameter_reached_on_some_steps_only_is_stepped_as_torch_steps_it(name):
    """Reached on the first step, then on one step in three: torch skips it on the others (weights and
    state unchanged); an earlier flat update gave it zero-gradient steps (Adam: |diff| 0.016)."""
    ours, theirs = TwoHeads(), TwoHeads()
    before = ours.extra.weight.detach().clone()
    optimizer = make_optimizer(optimizer_experiment(name), list(ours.parameters()))
    train(ours, optimizer, forward=ours.forward, with_step=True, steps=2)
    moved = ours.extra.weight.detach().clone()
    assert not torch.equal(moved, before)  # the first step reached it
    train(ours, optimizer, forward=lambda x, step: ours.forward(x, step + 1), with_step=True, steps=2)
    assert torch.equal(ours.extra.weight, moved)  # steps 2 and 3 did not
    ours = TwoHeads()
    optimizer = make_optimizer(optimizer_experiment(name), list(ours.parameters()))
    train(ours, optimizer, forward=ours.forward, with_step=True)
    train(theirs, getattr(torch.optim, name)(theirs.parameters(), lr=1e-2, fused=True),
          forward=theirs.forward, with_step=True)
    assert torch.equal(flat_values(ours), flat_values(theirs))


@pytest.mark.parametrize("cls, options", [
    (torch.optim.Adam, {}),
    (torch.optim.AdamW, {}),
    (torch.optim.Adam, {"weight_decay": 0.1, "amsgrad": True}),
    (torch.optim.AdamW, {"weight_decay": 0.3, "amsgrad": True, "maximize": True, "betas": (0.8, 0.9)}),
])
def test_the_direct_fused_kernel_is_torchs_step_bit_for_bit(cls, options):
    def run(direct):
        model = mlp()
        params = list(model.parameters())
        optimizer = RunOptimizer(lambda tensors: cls(tensors, lr=1e-2, fused=True, **options), params)
        if not direct:
            optimizer.fused_step = False  # torch.optim's step every time
        train(model, optimizer)
        return model, optimizer

    ours, direct = run(True)
    theirs, plain = run(False)
    assert callable(direct.fused_step)
    assert torch.equal(flat_values(ours), flat_values(theirs))
    for name in ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if options.get("amsgrad") else ()):
        assert torch.equal(direct.state_dict()["state"][0][name], plain.state_dict()["state"][0][name]), name


def test_the_direct_fused_kernel_only_for_fused_adam_and_steps_where_every_parameter_has_a_gradient():
    for name, direct in (("Adam", True), ("AdamW", True), ("SGD", False), ("Adagrad", False)):
        model = mlp()
        optimizer = make_optimizer(optimizer_experiment(name), list(model.parameters()))
        train(model, optimizer, steps=2)
        assert callable(optimizer.fused_step) == direct, name
    ours, theirs = WithUnused(), WithUnused()
    before = ours.unused.weight.detach().clone()
    train(ours, make_optimizer(optimizer_experiment("AdamW"), list(ours.parameters())))
    train(theirs, torch.optim.AdamW(theirs.parameters(), lr=1e-2, fused=True))
    assert torch.equal(ours.unused.weight, before)  # AdamW's weight decay would shrink it, torch skips it
    assert torch.equal(flat_values(ours), flat_values(theirs))


@pytest.mark.parametrize("device, fused", [("cpu", True), ("meta", False)])
def test_adagrad_is_fused_on_the_cpu_only(device, fused):
    """torch's fused Adagrad runs on the CPU alone: on a GPU its constructor took fused=True and the
    first step raised, so every Adagrad run on a GPU failed (found on an H200, torch 2.11)."""
    params = [torch.nn.Parameter(torch.zeros(3, device=device))]
    optimizer = make_optimizer(optimizer_experiment("Adagrad"), params)
    assert bool(optimizer.optimizer.defaults.get("fused")) == fused


# ---------------------------------------------------------------------------------------------------------
# The run's optimizer: every model module's parameters, the ini's class

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


def test_sgd_optimizer_by_name(tmp_path):
    experiment = toy(tmp_path, epochs=3, process="optimizer = SGD\n", lr=0.05)
    train_run(experiment, experiment.runs[0], log=quiet)
    rows = losses(experiment, experiment.runs[0])
    assert rows[-1][1] < rows[0][1]



# ---------------------------------------------------------------------------------------------------------
# Training settings (mosaic/run/schedule.py); their runs equal the plain loop in tests/run/test_oracle.py


def with_settings(settings, name="Adam", epochs=3, loader=None):
    experiment = optimizer_experiment(name)
    experiment.process.epochs = epochs
    return make_optimizer(experiment, list(mlp().parameters()), settings, loader, "exp.ini: run 1")


@pytest.mark.parametrize("settings, message", [
    ({"momentum": 0.9}, "exp.ini: run 1: momentum: Adam takes no argument 'momentum' (it takes: weight_decay,"
                        " beta1, beta2, eps, amsgrad, maximize)"),
    ({"optimizer": "SGD", "beta1": 0.9}, "exp.ini: run 1: beta1: SGD takes no argument 'betas' (it takes:"
                                         " weight_decay, momentum, nesterov, dampening, maximize)"),
    ({"optimizer": "SGD", "momentum": -1}, "exp.ini: run 1: optimizer = SGD: Invalid momentum value: -1"),
    ({"scheduler": "StepLR", "scheduler_step": 2}, "exp.ini: run 1: scheduler_step: StepLR takes no argument"
                                                   " 'step' (it takes: step_size, gamma)"),
    ({"scheduler": "StepLR"}, "exp.ini: run 1: scheduler = StepLR needs scheduler_step_size"),
    ({"scheduler": "CyclicLR"}, "exp.ini: run 1: scheduler = CyclicLR needs scheduler_max_lr"),
    ({"scheduler": "LinearLR", "scheduler_start_factor": 2}, "exp.ini: run 1: scheduler = LinearLR: Starting"
                                                             " multiplicative factor expected to be greater than 0"),
    ({"scheduler": "ReduceLROnPlateau"}, "exp.ini: run 1: scheduler = ReduceLROnPlateau: not a"
                                         " torch.optim.lr_scheduler class Mosaic can make from the ini's values"
                                         " (not LambdaLR, MultiplicativeLR, SequentialLR, ChainedScheduler,"
                                         " ReduceLROnPlateau)"),
    ({"scheduler": "Steplr"}, "exp.ini: run 1: scheduler = Steplr: not a torch.optim.lr_scheduler class"),
])
def test_a_setting_torch_does_not_take_is_a_one_line_error(settings, message):
    with pytest.raises(MosaicError) as error:
        with_settings(settings, settings.get("optimizer", "Adam"))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_settings_reach_the_optimizer_and_scheduler():
    optimizer = with_settings({"optimizer": "SGD", "momentum": 0.9, "nesterov": True, "weight_decay": 0.1,
                               "scheduler": "MultiStepLR", "scheduler_milestones": (1, 2)}, "SGD")
    group = optimizer.optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"], group["fused"]) == (0.9, True, 0.1, True)
    assert optimizer.schedule.scheduler.milestones == {1: 1, 2: 1}
    betas = with_settings({"beta2": 0.9}).optimizer.param_groups[0]["betas"]
    assert betas == (0.9, 0.9)  # beta1 alone keeps Adam's default beta2, and the other way round
    cosine = with_settings({"scheduler": "CosineAnnealingLR"}, epochs=7).schedule.scheduler
    assert cosine.T_max == 7 and not with_settings({"scheduler": "CosineAnnealingLR"}).schedule.per_batch


def test_one_cycle_spans_the_runs_epochs_and_stops_at_its_end():
    """total_steps = epochs x batches; a run trained past its epochs (mosaic_rerun --epochs) keeps the last
    learning rate instead of failing on torch's 'Tried to step 7 times'."""
    optimizer = with_settings({"scheduler": "OneCycleLR"}, epochs=2, loader=[0, 1, 2])
    scheduler = optimizer.schedule.scheduler
    assert scheduler.total_steps == 6 and optimizer.schedule.per_batch
    assert optimizer.optimizer.param_groups[0]["max_lr"] == 1e-2  # max_lr: the run's lr
    lrs = []
    for _ in range(9):
        optimizer.step()
        lrs.append(optimizer.optimizer.param_groups[0]["lr"])
    assert lrs[6:] == [lrs[5]] * 3 and lrs[5] < lrs[0]
    with pytest.raises(MosaicError, match="the train loader has no length: give scheduler_total_steps"):
        with_settings({"scheduler": "OneCycleLR"}, loader=iter([]))


def test_clipping_bounds_the_gradients_norm():
    model = mlp()
    experiment = optimizer_experiment("SGD")
    optimizer = make_optimizer(experiment, list(model.parameters()), {"clip_grad_norm": 1e-3}, None, "run 1")
    before = flat_values(model)
    x, y = data(1)[0]
    torch.nn.functional.mse_loss(model(x) * 1e3, y).backward()
    optimizer.step()
    assert torch.linalg.vector_norm(flat_values(model) - before) <= 1e-2 * 1e-3 * (1 + 1e-5)
