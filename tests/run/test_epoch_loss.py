"""An epoch's loss is the per-sample mean: each batch weighted by its number of samples."""

from types import SimpleNamespace

import pytest
import torch

from mosaic.run.training import evaluate, train_epoch

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
