"""A run's training settings beyond lr and optimizer: the optimizer's arguments, a learning-rate schedule and
gradient clipping, read from the run's settings ({name: value}: its spec's "process" dict).

- Optimizer arguments (OPTIMIZER_ARGS) are passed to the torch.optim class; beta1 and beta2 make its betas
  (one of them alone keeps the class's default for the other). A name the class does not take is a one-line
  error naming it and what the class takes.
- `scheduler = StepLR` is a torch.optim.lr_scheduler class, made over the optimizer after it, with each
  `scheduler_<arg>` as its argument <arg>. Filled in when absent: CosineAnnealingLR T_max = the run's epochs;
  OneCycleLR max_lr = lr and total_steps = epochs x batches per epoch (unless epochs and steps_per_epoch are
  given); CyclicLR base_lr = lr. OneCycleLR and CyclicLR are stepped after each batch's optimizer step, the
  others after each epoch's test (and validation) pass. A run trained past its ini's epochs (mosaic_rerun
  --epochs) keeps OneCycleLR at its last learning rate.
- `clip_grad_norm = 1.0`: torch.nn.utils.clip_grad_norm_ over the trained parameters, after backward and
  before the optimizer's step.
"""

import inspect

from mosaic.errors import MosaicError
from mosaic.experiment.model import OPTIMIZER_ARGS, SCHEDULER_PREFIX

PER_BATCH = ("OneCycleLR", "CyclicLR")
# classes that take functions, other schedulers or a metric: not made from the ini's values
NOT_MADE = ("LambdaLR", "MultiplicativeLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau")


def torch_argument(name):
    """The torch.optim argument an optimizer setting gives: betas for beta1 and beta2, else its own name."""
    return "betas" if name in ("beta1", "beta2") else name


def optimizer_arguments(cls, settings, where):
    """{argument: value} for the torch.optim class `cls` from `settings`; `where` names the run in messages."""
    parameters = inspect.signature(cls).parameters
    takes = [name for name in OPTIMIZER_ARGS if torch_argument(name) in parameters]  # as the ini names them
    arguments = {}
    for name in OPTIMIZER_ARGS:
        if name not in settings:
            continue
        argument = torch_argument(name)
        if name not in takes:
            raise MosaicError(f"{where}: {name}: {cls.__name__} takes no argument '{argument}'"
                              f" (it takes: {', '.join(takes) or 'none'})")
        if argument == "betas":
            betas = list(arguments.get("betas", parameters["betas"].default))
            betas[name == "beta2"] = settings[name]
            arguments["betas"] = tuple(betas)
        else:
            arguments[argument] = settings[name]
    return arguments


def scheduler_class(name, where):
    import torch

    cls = getattr(torch.optim.lr_scheduler, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.lr_scheduler.LRScheduler)) or name in NOT_MADE:
        raise MosaicError(f"{where}: scheduler = {name}: not a torch.optim.lr_scheduler class Mosaic can make"
                          f" from the ini's values (not {', '.join(NOT_MADE)})")
    return cls


def make_scheduler(optimizer, settings, epochs, loader, where):
    """The scheduler `settings` names (its "scheduler") over the torch optimizer `optimizer`; `loader`, the
    train loader, gives the batches per epoch where a per-batch schedule needs them."""
    name = settings["scheduler"]
    cls = scheduler_class(name, where)
    parameters = inspect.signature(cls).parameters
    takes = [arg for arg in parameters if arg not in ("optimizer", "last_epoch", "verbose")]
    arguments = {}
    for key, value in settings.items():
        argument = key[len(SCHEDULER_PREFIX):]
        if not key.startswith(SCHEDULER_PREFIX):
            continue
        if argument not in takes:
            raise MosaicError(f"{where}: {key}: {name} takes no argument '{argument}' (it takes: {', '.join(takes)})")
        arguments[argument] = list(value) if isinstance(value, (tuple, list)) else value
    lr = optimizer.param_groups[0]["lr"]
    if name == "CosineAnnealingLR":
        arguments.setdefault("T_max", epochs)
    if name == "CyclicLR":
        arguments.setdefault("base_lr", lr)
    if name == "OneCycleLR":
        arguments.setdefault("max_lr", lr)
        if "total_steps" not in arguments and not {"epochs", "steps_per_epoch"} <= arguments.keys():
            try:
                arguments["total_steps"] = epochs * len(loader)
            except TypeError:  # a loader without a length
                raise MosaicError(f"{where}: scheduler = OneCycleLR: the train loader has no length: give"
                                  " scheduler_total_steps") from None
    missing = [arg for arg in takes if parameters[arg].default is inspect.Parameter.empty and arg not in arguments]
    if missing:
        raise MosaicError(f"{where}: scheduler = {name} needs {', '.join(SCHEDULER_PREFIX + arg for arg in missing)}")
    try:
        return cls(optimizer, **arguments)
    except (TypeError, ValueError) as error:
        raise MosaicError(f"{where}: scheduler = {name}: {str(error).splitlines()[0]}") from None


class Schedule:
    """What a run does around each optimizer step: clip the gradients before it; step the scheduler after it
    (per-batch classes) or after the epoch (the others). `scheduler` None: no schedule; `clip` None: no
    clipping."""

    def __init__(self, scheduler, clip, parameters):
        self.scheduler = scheduler
        self.clip = clip
        self.parameters = parameters
        self.per_batch = type(scheduler).__name__ in PER_BATCH

    def before_step(self):
        if self.clip is not None:
            import torch

            torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)

    def after_step(self):
        if self.per_batch and self.scheduler.last_epoch < getattr(self.scheduler, "total_steps", float("inf")):
            self.scheduler.step()

    def end_epoch(self):
        if self.scheduler is not None and not self.per_batch:
            self.scheduler.step()

    def state_dict(self):
        return None if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state):
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)
