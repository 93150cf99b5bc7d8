"""The loss rules of a training step, shared by the eager step (training.py) and the traced one (traced.py):
the loss of a batch, its samples, the per-sample sums an epoch's loss is made of, and the backward call."""

import torch


def backward(loss):
    """loss.backward() for a scalar loss: the root gradient and the call of the autograd engine that
    torch.autograd.backward makes, without its Python argument handling (18 us of the tutorial's step)."""
    if _engine_run_backward is None or type(loss) is not torch.Tensor or loss.dim() != 0:
        loss.backward()  # a tensor subclass, an older torch, or no scalar: torch's own call
        return
    _engine_run_backward((loss,), (torch.ones_like(loss, memory_format=torch.preserve_format),), False, False, (),
                         allow_unreachable=True, accumulate_grad=True)


_engine_run_backward = getattr(torch.autograd.graph, "_engine_run_backward", None)  # torch >= 2.3


def batch_loss(loss_fn, prediction, target):
    """loss(prediction, target), squeezing singleton dimensions when only they differ."""
    if prediction.shape != target.shape:
        squeezed = prediction.squeeze(), target.squeeze()
        if squeezed[0].shape == squeezed[1].shape:
            prediction, target = squeezed
    return loss_fn(prediction, target)


def batch_size(target):
    """Samples in a batch: the first dimension of its target (1 for a scalar or a non-tensor)."""
    return target.shape[0] if isinstance(target, torch.Tensor) and target.dim() > 0 else 1


def reduction_of(loss_fn):
    """The loss's reduction, as per_sample takes it: "mean" for a loss class without a `reduction` attribute."""
    return getattr(loss_fn, "reduction", "mean")


def per_sample(loss, samples, reduction):
    """(the loss to backpropagate, the batch's loss summed over its samples).

    An epoch's loss is the per-sample mean: each batch weighs its number of samples, so a partial last
    batch counts for what it holds. reduction "mean" (torch's default, and assumed for a loss class
    without a `reduction` attribute): the batch mean times its samples; "sum": the loss as it is;
    "none" (one loss per element): their mean is backpropagated and counted like "mean".
    """
    if loss.dim() > 0:
        loss = loss.mean()
        reduction = "mean"
    if reduction == "sum" or samples == 1:
        return loss, loss.detach()
    return loss, loss.detach() * samples
