"""Tests for mosaic.run.loss and the run's loss: the ini's loss (a torch name or a class of its own) and how
it is called, an epoch's loss as the per-sample mean, the backward call."""

import math
from types import SimpleNamespace

import pytest
import torch

from mosaic.run.classes import load_class
from mosaic.run.loss import backward, batch_loss
from mosaic.run.training import Pipeline, evaluate, seed_everything, train_epoch, train_run
from tests.fakes import ASYM, quiet, toy

# ---------------------------------------------------------------------------------------------------------
# The ini's loss


def loss_class_run(folder, name):
    """A 2-epoch toy run whose [PROCESS] class_loss_function is `name` of ASYM's file: (experiment, run, the
    loss its pipeline builds)."""
    experiment = toy(folder, epochs=2, files={"loss.py": ASYM},
                     process=f"class_loss_function = {name}\npath_to_class_loss_function = loss.py\n")
    run = experiment.runs[0]
    seed_everything(run.seed)
    return experiment, run, Pipeline(run, experiment, "cpu").loss_fn


def test_custom_loss_is_instantiated_and_called_prediction_first(tmp_path):
    experiment, run, loss_fn = loss_class_run(tmp_path, "Asym")
    assert type(loss_fn).__name__ == "Asym"
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
    experiment, run, loss_fn = loss_class_run(tmp_path, "Mse")
    assert isinstance(loss_fn, torch.nn.MSELoss) and type(loss_fn).__name__ == "Mse"
    result = train_run(experiment, run, log=quiet)
    assert math.isfinite(result["train_loss"])


def test_torch_loss_by_name(tmp_path):
    experiment = toy(tmp_path, epochs=1, process="loss_function = L1Loss\n")
    seed_everything(0)
    assert isinstance(Pipeline(experiment.runs[0], experiment, "cpu").loss_fn, torch.nn.L1Loss)


# ---------------------------------------------------------------------------------------------------------
# The loss of a batch, the backward call


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


def test_backward_gives_torchs_gradients_bit_for_bit():
    def grads(call):
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        x, y = torch.randn(5, 3), torch.randn(5, 1)
        for _ in range(2):  # the second accumulates into the first's gradients
            call(torch.nn.functional.mse_loss(model(x), y))
        return [param.grad for param in model.parameters()]

    ours, theirs = grads(backward), grads(lambda loss: loss.backward())
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert all(grad.abs().sum() > 0 for grad in ours)
    with pytest.raises(RuntimeError, match="scalar outputs"):  # not a scalar: torch's own call and error
        backward(torch.ones(2, requires_grad=True) * 2)


# ---------------------------------------------------------------------------------------------------------
# An epoch's loss: the per-sample mean, each batch weighted by its number of samples

N, BATCH = 539, 256  # batches of 256, 256 and 27 samples


def targets():
    # the last 27 samples have much larger targets: a mean of batch means would give them a third of the weight
    y = torch.ones(N, 1)
    y[2 * BATCH :] = 10.0
    return y


def zero_model():
    model = torch.nn.Linear(1, 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    return model


def pipeline(model, loss_fn):
    return SimpleNamespace(
        loss_fn=loss_fn, forward=model, train_mode=model.train, custom_backward=lambda loss: None
    )


def batches():
    x, y = torch.zeros(N, 1), targets()
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, N, BATCH)]


# by hand: the model predicts 0, so each sample's squared error is its target squared
PER_SAMPLE = (2 * BATCH * 1.0 + 27 * 100.0) / N  # 5.9573...
MEAN_OF_BATCH_MEANS = (1.0 + 1.0 + 100.0) / 3  # 34, what older versions reported


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_evaluate_is_the_per_sample_mean(reduction):
    found = evaluate(pipeline(zero_model(), torch.nn.MSELoss(reduction=reduction)), batches())
    assert found == pytest.approx(PER_SAMPLE, rel=1e-6)
    assert abs(found - MEAN_OF_BATCH_MEANS) > 20


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_train_epoch_is_the_per_sample_mean(reduction):
    model = zero_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the predictions stay 0 during the epoch
    found = train_epoch(pipeline(model, torch.nn.MSELoss(reduction=reduction)), batches(), optimizer)
    assert found == pytest.approx(PER_SAMPLE, rel=1e-6)


def test_a_loss_class_without_reduction_counts_as_a_mean():
    class Squared:
        def __call__(self, prediction, target):
            return ((prediction - target) ** 2).mean()

    assert evaluate(pipeline(zero_model(), Squared()), batches()) == pytest.approx(PER_SAMPLE, rel=1e-6)


def test_reduction_none_trains_on_the_mean():
    model = zero_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train_epoch(pipeline(model, torch.nn.MSELoss(reduction="none")), batches(), optimizer)
    assert model.bias.item() > 0  # the gradient of the mean loss moved it towards the targets
