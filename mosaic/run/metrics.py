"""Metrics beyond the loss, computed on the test set after every epoch.

Two sources, both optional:
- `[PROCESS] metrics = accuracy, mae`: built-in metrics by name (BUILTIN);
- a `metrics(self, prediction, target)` method on the last model class, returning {name: float}.
Each is called once per epoch on the predictions and targets of the whole test set (concatenated), so a
metric that is not a mean over samples (F1, AUC) is exact too.
"""

import torch

from mosaic.errors import MosaicError


def _flat(prediction, target):
    if prediction.shape != target.shape and prediction.squeeze().shape == target.squeeze().shape:
        return prediction.squeeze(), target.squeeze()
    return prediction, target


def accuracy(prediction, target):
    """Share of samples classified right: argmax over classes when the prediction has one column per
    class (target: class indices or one-hot), else a threshold of 0.5 against targets rounded to 0/1."""
    if prediction.dim() > 1 and prediction.shape[-1] > 1:
        predicted = prediction.argmax(dim=-1)
        if target.shape == prediction.shape:  # one-hot or probabilities
            target = target.argmax(dim=-1)
        return (predicted == target.reshape(predicted.shape)).float().mean()
    prediction, target = _flat(prediction, target)
    return ((prediction > 0.5) == (target > 0.5)).float().mean()


def mae(prediction, target):
    """Mean absolute error."""
    prediction, target = _flat(prediction, target)
    return (prediction - target).abs().float().mean()


def rmse(prediction, target):
    """Root mean squared error."""
    prediction, target = _flat(prediction, target)
    return ((prediction - target).float() ** 2).mean().sqrt()


BUILTIN = {"accuracy": accuracy, "mae": mae, "rmse": rmse}


def metric_names(experiment):
    """The built-in metrics named by `[PROCESS] metrics` (comma-separated), checked."""
    text = dict(experiment.process.extra).get("metrics") or ""
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    for name in names:
        if name not in BUILTIN:
            raise MosaicError(
                f"{experiment.ini_path}: [PROCESS] metrics: unknown metric '{name}' "
                f"(built-in: {', '.join(BUILTIN)}; or define metrics(self, prediction, target) on the last model class)"
            )
    return names


class Metrics:
    """The metrics of one run: `compute(predictions, targets)` gives {name: float} for one epoch."""

    def __init__(self, experiment, last_model):
        self.builtin = metric_names(experiment)
        hook = getattr(last_model, "metrics", None)
        self.hook = hook if callable(hook) else None
        self.where = f"{type(last_model).__name__}.metrics"

    def __bool__(self):
        return bool(self.builtin or self.hook)

    @torch.no_grad()
    def compute(self, predictions, targets):
        prediction = torch.cat([p.detach() for p in predictions])
        target = torch.cat([t.detach() for t in targets])
        found = {name: float(BUILTIN[name](prediction, target)) for name in self.builtin}
        if self.hook is not None:
            extra = self.hook(prediction, target)
            if not isinstance(extra, dict):
                raise MosaicError(f"{self.where} must return a dict of floats, not {type(extra).__name__}")
            for name, value in extra.items():
                try:
                    found[str(name)] = float(value)
                except (TypeError, ValueError) as error:
                    raise MosaicError(f"{self.where}: '{name}' is not a number: {value!r}") from error
        return found
