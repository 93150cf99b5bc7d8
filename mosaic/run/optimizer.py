"""The run's optimizer: the ini's torch.optim class over the parameters as the models hold them, with
torch's fused kernel where the class has one, so that a run's update is torch's own, bit for bit.

Adam, AdamW, SGD and Adagrad are made with fused=True: one kernel call per step over every tensor
instead of a Python loop over them (a third less per step than the default implementation). Their
results equal torch.optim's fused implementation bit for bit (tests/run/test_oracle.py); they differ from
the default single-tensor implementation in the last bits (about 1e-7 after 200 steps). After torch's
first step, Adam and AdamW call torch's fused kernel themselves, as torch.optim's step calls it, without
its Python layers (the same update, bit for bit), on every step where each parameter has a gradient;
a step that leaves a parameter without one is torch's own step (it skips that parameter).

A run's optimizer arguments (weight_decay, momentum, betas, ...) are passed to the class, fused or not; where
the fused constructor refuses them, the class is made without fused=True (torch's default implementation).
A learning-rate scheduler changes the groups' lr (and OneCycleLR/CyclicLR the momentum or betas) between
steps: the direct kernel call reads them at each step. Clipping and the schedule: mosaic/run/schedule.py.

An earlier Mosaic kept each model's parameters in one flat tensor (a flat optimizer): its update differs
from torch's per-tensor kernels in the last bits, and a parameter without a gradient was still moved.
A checkpoint saved that way is continued tensor by tensor, its state split per parameter.
"""

import torch

from mosaic.errors import MosaicError

# torch.optim classes with a fused kernel -> the device types it runs on (None: every device torch's
# constructor accepts). Adagrad's runs on the CPU only: on a GPU its constructor takes fused=True and its
# first step raises (torch 2.11 to 2.13).
FUSED = {"Adam": None, "AdamW": None, "SGD": None, "Adagrad": {"cpu"}}


class RunOptimizer:
    """zero_grad, step, state_dict, load_state_dict as torch's. zero_grad leaves every gradient None, as
    torch's does with set_to_none=True: a replayed step (mosaic/run/traced.py) sets them as autograd does
    into None, and step reads them."""

    def __init__(self, make, parameters):
        self.parameters = parameters
        self.optimizer = make(parameters)
        self.fused_step = None  # after torch's first step: fused_adam_step(), or False where it does not apply
        self.schedule = None  # a Schedule (mosaic/run/schedule.py): clipping and the learning-rate schedule

    def zero_grad(self, set_to_none=True):
        for param in self.parameters:
            param.grad = None

    def step(self):
        if self.schedule is None:
            self.optimizer_step()
            return
        self.schedule.before_step()
        self.optimizer_step()
        self.schedule.after_step()

    def end_epoch(self):
        """The epoch's training and test passes are done: a per-epoch schedule steps."""
        if self.schedule is not None:
            self.schedule.end_epoch()

    def optimizer_step(self):
        if self.fused_step and all(param.grad is not None for param in self.parameters):
            try:
                self.fused_step()
                return
            except (RuntimeError, TypeError):  # a torch whose private kernel differs: torch's own step
                self.fused_step = False
        self.optimizer.step()  # the first one creates the state (step, moments) as torch lays it out
        if self.fused_step is None:
            self.fused_step = fused_adam_step(self.optimizer) or False

    def state_dict(self):
        return self.optimizer.state_dict()

    def scheduler_state(self):
        """The scheduler's state_dict, None without one."""
        return None if self.schedule is None else self.schedule.state_dict()

    def load_state_dict(self, state, scheduler=None):
        """torch's optimizer state, then the scheduler's (`scheduler`, from scheduler_state())."""
        self.fused_step = None  # the state's tensors are replaced
        groups = state.get("param_groups", [])
        if len(groups) == 1 and len(groups[0]["params"]) == 1 < len(self.parameters):
            state = split_flat_state(state, self.parameters)
        self.optimizer.load_state_dict(state)
        if self.schedule is not None:
            self.schedule.load_state_dict(scheduler)


def split_flat_state(state, parameters):
    """An optimizer state saved over one flat tensor (an earlier Mosaic): each entry split per parameter
    in the order the flat tensor held them (the models' parameters, in order)."""
    total = sum(param.numel() for param in parameters)
    flat = state["state"].get(state["param_groups"][0]["params"][0], {})
    per_param, offset = {}, 0
    for index, param in enumerate(parameters):
        size = param.numel()
        per_param[index] = {
            key: value[offset : offset + size].view_as(param).clone()
            if isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() == total
            else (value.clone() if isinstance(value, torch.Tensor) else value)
            for key, value in flat.items()
        }
        offset += size
    group = dict(state["param_groups"][0], params=list(range(len(parameters))))
    return {"state": {k: v for k, v in per_param.items() if v}, "param_groups": [group]}


def fused_adam_step(optimizer):
    """A step of `optimizer`, a fused Adam or AdamW that has stepped once, as torch.optim's fused path
    computes it (torch/optim/adam.py, _fused_adam): the step counts raised by one, then one call of the
    kernel over every tensor. None where that path is not the one torch would take."""
    kernel = getattr(torch, "_fused_adam_", None)
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or kernel is None:
        return None
    if len(optimizer.param_groups) != 1 or getattr(optimizer, "grad_scale", None) is not None:
        return None
    group = optimizer.param_groups[0]
    params = group["params"]
    states = [optimizer.state.get(param) for param in params]
    if (
        not group.get("fused")
        or group.get("differentiable")
        or group.get("capturable")
        or isinstance(group["lr"], torch.Tensor)
        or any(isinstance(beta, torch.Tensor) for beta in group["betas"])
        or len({(param.device, param.dtype) for param in params}) != 1
        or not all(state and "step" in state for state in states)
    ):
        return None
    if group.get("decoupled_weight_decay", type(optimizer) is torch.optim.AdamW):
        kernel = torch._fused_adamw_
    steps = [state["step"] for state in states]
    exp_avgs = [state["exp_avg"] for state in states]
    exp_avg_sqs = [state["exp_avg_sq"] for state in states]
    max_exp_avg_sqs = [state["max_exp_avg_sq"] for state in states] if group["amsgrad"] else []

    def step():
        torch._foreach_add_(steps, 1)
        try:
            kernel(params, [param.grad for param in params], exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                   amsgrad=group["amsgrad"], lr=group["lr"], beta1=group["betas"][0], beta2=group["betas"][1],
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                   grad_scale=None, found_inf=None)
        except (RuntimeError, TypeError):
            torch._foreach_sub_(steps, 1)
            raise

    return step


def require_parameters(parameters):
    if not parameters:
        raise MosaicError("the model modules have no parameters to optimize")


def make_optimizer(experiment, parameters, settings=None, loader=None, where=None):
    """The run's optimizer over `parameters`, fused where the class has a fused kernel for these tensors (see
    the module). `settings`, the run's training settings ({name: value}, its spec's "process" dict), give
    the class, lr, its arguments, the schedule and clipping (mosaic/run/schedule.py); without them, the
    [PROCESS] optimizer and lr. `loader`: the train loader (a per-batch schedule's length); `where` names
    the run in messages."""
    from mosaic.run.schedule import Schedule, make_scheduler, optimizer_arguments

    process, settings = experiment.process, settings or {}
    name, lr = settings.get("optimizer", process.optimizer), settings.get("lr", process.lr)
    where = where or str(experiment.ini_path)
    cls = getattr(torch.optim, name, None)
    if cls is None:
        raise MosaicError(f"{experiment.ini_path}: [PROCESS] optimizer: torch.optim has no '{name}'")
    require_parameters(parameters)
    arguments = optimizer_arguments(cls, settings, where)

    def make(tensors):
        devices = FUSED.get(name, set())
        if name in FUSED and (devices is None or {tensor.device.type for tensor in tensors} <= devices):
            try:  # the fused kernels cost a third less per step
                return cls(tensors, lr=lr, fused=True, **arguments)
            except (RuntimeError, TypeError, ValueError):  # tensors or arguments the kernel does not take
                pass
        try:
            return cls(tensors, lr=lr, **arguments)
        except (TypeError, ValueError) as error:
            raise MosaicError(f"{where}: optimizer = {name}: {str(error).splitlines()[0]}") from None

    optimizer = RunOptimizer(make, parameters)
    scheduler = make_scheduler(optimizer.optimizer, settings, process.epochs, loader, where) \
        if settings.get("scheduler") else None
    clip = settings.get("clip_grad_norm")
    if scheduler is not None or clip is not None:
        optimizer.schedule = Schedule(scheduler, clip, parameters)
    return optimizer
