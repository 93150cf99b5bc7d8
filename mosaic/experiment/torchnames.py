"""The names `loss_function`, `optimizer` and `scheduler` may take and the arguments of each optimizer and
scheduler, known without importing torch.

Checking them when the ini is read (not in every job) needs the names of torch's losses and optimizers;
importing torch for that would make every ini read slow. tests/run/test_validation.py and
tests/experiment/test_training_settings.py check these tables against the installed torch;
`python -m mosaic.experiment.torchnames` prints them from it when torch changes.
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

# Each optimizer's keyword arguments but lr (and but the implementation switches: foreach, fused, ...)
_SWITCHES = frozenset({"lr", "foreach", "fused", "capturable", "differentiable"})
OPTIMIZER_ARGUMENTS = {
    "ASGD": ("lambd", "alpha", "t0", "weight_decay", "maximize"),
    "Adadelta": ("rho", "eps", "weight_decay", "maximize"),
    "Adafactor": ("beta2_decay", "eps", "d", "weight_decay", "maximize"),
    "Adagrad": ("lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
    "Adam": ("betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"),
    "AdamW": ("betas", "eps", "weight_decay", "amsgrad", "maximize"),
    "Adamax": ("betas", "eps", "weight_decay", "maximize"),
    "LBFGS": ("max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn"),
    "Muon": ("weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn"),
    "NAdam": ("betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "maximize"),
    "RAdam": ("betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"),
    "RMSprop": ("alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
    "Rprop": ("etas", "step_sizes", "maximize"),
    "SGD": ("momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    "SparseAdam": ("betas", "eps", "maximize"),
}

# The torch.optim.lr_scheduler classes a run may use (those whose arguments are plain values), and their
# arguments but the optimizer and last_epoch
SCHEDULERS = {
    "ConstantLR": ("factor", "total_iters"),
    "CosineAnnealingLR": ("T_max", "eta_min"),
    "CosineAnnealingWarmRestarts": ("T_0", "T_mult", "eta_min"),
    "CyclicLR": ("base_lr", "max_lr", "step_size_up", "step_size_down", "mode", "gamma", "scale_mode",
                 "cycle_momentum", "base_momentum", "max_momentum"),
    "ExponentialLR": ("gamma",),
    "LinearLR": ("start_factor", "end_factor", "total_iters"),
    "MultiStepLR": ("milestones", "gamma"),
    "OneCycleLR": ("max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start", "anneal_strategy",
                   "cycle_momentum", "base_momentum", "max_momentum", "div_factor", "final_div_factor",
                   "three_phase"),
    "PolynomialLR": ("total_iters", "power"),
    "StepLR": ("step_size", "gamma"),
}

# The arguments without a default that Mosaic does not fill in (mosaic/run/schedule.py fills CosineAnnealingLR's
# T_max, OneCycleLR's max_lr and total_steps, CyclicLR's base_lr): an ini without them is refused when read
SCHEDULER_REQUIRED = {
    "CosineAnnealingWarmRestarts": ("T_0",),
    "CyclicLR": ("max_lr",),
    "ExponentialLR": ("gamma",),
    "MultiStepLR": ("milestones",),
    "StepLR": ("step_size",),
}


def installed_arguments():
    """({optimizer: its arguments}, {scheduler of SCHEDULERS: its arguments}) of the installed torch, as the
    tables above list them."""
    import inspect

    import torch

    _, optimizers = installed()
    optimizer_arguments = {name: tuple(p for p in inspect.signature(getattr(torch.optim, name)).parameters
                                       if p not in _SWITCHES and p != "params") for name in optimizers}
    scheduler_arguments = {name: tuple(p for p in inspect.signature(getattr(torch.optim.lr_scheduler, name)).parameters
                                       if p not in ("optimizer", "last_epoch", "scale_fn"))
                           for name in SCHEDULERS if hasattr(torch.optim.lr_scheduler, name)}
    return optimizer_arguments, scheduler_arguments


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
    for title, table in zip(("OPTIMIZER_ARGUMENTS", "SCHEDULERS"), installed_arguments()):
        print(title, table)
