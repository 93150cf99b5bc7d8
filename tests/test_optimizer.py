"""The run's optimizer: one flat tensor per model where that is torch's own update, tensor by tensor elsewhere."""

import copy
from types import SimpleNamespace

import pytest
import torch

from mosaic.run.optimizer import RunOptimizer, flat_groups, make_optimizer, reached_parameters


def experiment(optimizer="Adam", lr=1e-2):
    return SimpleNamespace(ini_path="exp.ini", process=SimpleNamespace(optimizer=optimizer, lr=lr))


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


def train(model, optimizer, forward=None, steps=30):
    """A plain loop (train_epoch's calls): zero_grad, forward, check_graph once, backward, step."""
    forward = forward or model
    check = getattr(optimizer, "check_graph", None)
    for x, y in data(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(forward(x), y)
        if check is not None:
            check(loss)
            check = None
        loss.backward()
        optimizer.step()


def flat_values(model):
    return torch.cat([param.detach().reshape(-1) for param in model.parameters()])


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
def test_flat_update_is_torchs_per_tensor_update(name):
    ours, theirs = mlp(), mlp()
    optimizer = make_optimizer(experiment(name), list(ours.parameters()), [ours])
    assert optimizer.flat
    train(ours, optimizer)
    train(theirs, getattr(torch.optim, name)(theirs.parameters(), lr=1e-2))
    assert torch.allclose(flat_values(ours), flat_values(theirs), rtol=0, atol=1e-5)
    assert not torch.equal(flat_values(ours), flat_values(mlp()))  # it learned
    # the parameters are still the model's own objects, now views into one tensor
    storages = {param.untyped_storage().data_ptr() for param in ours.parameters()}
    assert len(storages) == 1
    assert all(isinstance(value, torch.Tensor) for value in ours.state_dict().values())


def test_a_parameter_the_loss_does_not_reach_is_left_alone_as_torch_does():
    # AdamW's weight decay would shrink the unused layer in a flat tensor; torch skips it (no gradient)
    model = WithUnused()
    before = model.unused.weight.detach().clone()
    optimizer = make_optimizer(experiment("AdamW"), list(model.parameters()), [model])
    assert optimizer.flat
    train(model, optimizer)
    assert not optimizer.flat
    assert torch.equal(model.unused.weight.detach(), before)
    assert model.unused.weight.grad is None


def test_a_per_tensor_checkpoint_is_continued_per_tensor():
    # an optimizer state saved tensor by tensor (an earlier version) loads, and the run goes on as torch's would
    ours, theirs = mlp(), mlp()
    torch_optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    train(theirs, torch_optimizer, steps=10)
    ours.load_state_dict(theirs.state_dict())
    optimizer = make_optimizer(experiment("Adam"), list(ours.parameters()), [ours])
    optimizer.load_state_dict(copy.deepcopy(torch_optimizer.state_dict()))  # as torch.load gives it
    assert not optimizer.flat
    train(ours, optimizer, steps=10)
    train(theirs, torch_optimizer, steps=10)
    assert torch.allclose(flat_values(ours), flat_values(theirs), rtol=0, atol=1e-6)


def test_a_flat_checkpoint_is_continued_flat_and_gives_the_uninterrupted_result():
    whole, first = mlp(), mlp()
    optimizer = make_optimizer(experiment("Adam"), list(whole.parameters()), [whole])
    train(whole, optimizer, steps=20)
    optimizer = make_optimizer(experiment("Adam"), list(first.parameters()), [first])
    train(first, optimizer, steps=10)
    state, weights = optimizer.state_dict(), first.state_dict()
    second = mlp(seed=5)
    resumed = make_optimizer(experiment("Adam"), list(second.parameters()), [second])
    second.load_state_dict(weights)
    resumed.load_state_dict(state)
    assert resumed.flat
    for x, y in data(20)[10:]:  # the last ten batches
        resumed.zero_grad()
        torch.nn.functional.mse_loss(second(x), y).backward()
        resumed.step()
    assert torch.equal(flat_values(second), flat_values(whole))


def test_one_flat_tensor_per_model_and_a_shared_parameter_once():
    first, second = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    second.extra = first.weight  # tied: it belongs to the first model's tensor
    params = list(first.parameters()) + [second.weight, second.bias]
    optimizer = make_optimizer(experiment("Adam"), params, [first, second])
    assert [len(group) for _, group in optimizer.groups] == [2, 2]
    train(first, optimizer, forward=lambda x: second(first(x)))
    assert optimizer.flat


@pytest.mark.parametrize("case", ["frozen", "another optimizer", "custom backward", "two dtypes", "recurrent"])
def test_per_tensor_where_flat_would_not_be_the_same(case):
    model = mlp()
    name, flat = "Adam", True
    if case == "frozen":
        model[0].weight.requires_grad_(False)
    elif case == "another optimizer":
        name = "RMSprop"
    elif case == "custom backward":
        flat = False  # train_run passes flat=not pipeline.has_custom_backward
    elif case == "two dtypes":
        model[4].double()
    else:
        model.append(torch.nn.GRU(1, 1))  # its flatten_parameters() would re-point its weights on a GPU
    optimizer = make_optimizer(experiment(name), list(model.parameters()), [model], flat=flat)
    assert not optimizer.flat
    before = [param.detach().clone() for param in model.parameters()]
    if case not in ("two dtypes", "recurrent"):
        train(model, optimizer)
        assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))


def test_reached_parameters_follows_the_graph():
    model = WithUnused()
    loss = model(torch.ones(1, 2)).sum()
    reached = reached_parameters(loss)
    assert {id(p) for p in model.body.parameters()} <= reached
    assert not ({id(p) for p in model.unused.parameters()} & reached)


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
        optimizer = RunOptimizer(lambda tensors: cls(tensors, lr=1e-2, fused=True, **options), params,
                                 flat_groups([model], params))
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


def test_the_direct_fused_kernel_only_for_flat_fused_adam():
    for name, direct in (("Adam", True), ("AdamW", True), ("SGD", False), ("Adagrad", False)):
        model = mlp()
        optimizer = make_optimizer(experiment(name), list(model.parameters()), [model])
        train(model, optimizer, steps=2)
        assert callable(optimizer.fused_step) == direct, name
    model = WithUnused()  # per tensor: torch's step
    optimizer = make_optimizer(experiment("Adam"), list(model.parameters()), [model])
    train(model, optimizer, steps=2)
    assert optimizer.fused_step is False
