"""The names `loss_function` and `optimizer` may take, known without importing torch.

Checking them when the ini is read (not in every job) needs the names of torch's losses and optimizers;
importing torch for that would make every ini read slow. tests/run/test_validation.py checks these lists against
the installed torch; `python -m mosaic.experiment.torchnames` prints them from it when torch changes.
"""

LOSSES = frozenset({
    "BCELoss", "BCEWithLogitsLoss", "CTCLoss", "CosineEmbeddingLoss", "CrossEntropyLoss", "GaussianNLLLoss",
    "HingeEmbeddingLoss", "HuberLoss", "KLDivLoss", "L1Loss", "LinearCrossEntropyLoss", "MSELoss",
    "MarginRankingLoss", "MultiLabelMarginLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss", "NLLLoss",
    "NLLLoss2d", "PoissonNLLLoss", "SmoothL1Loss", "SoftMarginLoss", "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
})

OPTIMIZERS = frozenset({
    "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "Muon", "NAdam", "RAdam",
    "RMSprop", "Rprop", "SGD", "SparseAdam",
})


def installed():
    """(losses, optimizers) of the installed torch: the torch.nn loss classes and torch.optim optimizers."""
    import inspect

    import torch

    losses = {name for name, value in vars(torch.nn).items()
              if inspect.isclass(value) and issubclass(value, torch.nn.modules.loss._Loss) and name[0] != "_"}
    optimizers = {name for name, value in vars(torch.optim).items()
                  if inspect.isclass(value) and issubclass(value, torch.optim.Optimizer)
                  and name not in ("Optimizer",) and name[0] != "_"}
    return losses, optimizers


if __name__ == "__main__":
    for title, names in zip(("LOSSES", "OPTIMIZERS"), installed()):
        print(title, sorted(names))
